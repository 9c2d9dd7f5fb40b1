//! Loopback fake Azure servers for tests and benchmarks: Log Analytics query API, Azure OpenAI (deployment and v1 paths), App Service managed-identity token endpoint.
