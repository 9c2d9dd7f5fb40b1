//! Azure credential chain for the PIM Activity Audit Agent: environment service principal, workload identity, managed identity, Azure CLI, Azure Developer CLI, with a per-scope token cache.
