//! Configuration from the environment (or a `.env` file), validated up front.
//!
//! [`Settings`] owns every variable the binaries read, and [`VARIABLES`] lists them (with what
//! they mean, for `--help` and the README): nothing else reads the environment, and clap flags
//! bind to no variable. A binary builds the settings once, then lets its flags override them:
//!
//! 1. [`load_environment`] reads `.env` (with `dotenvy`, into a map: the process environment is
//!    never modified) and lays the process's own variables over it, so the real environment
//!    wins;
//! 2. [`Settings::from_env`] validates that snapshot and reports the first missing or malformed
//!    setting by its variable name;
//! 3. the binary assigns the flags it was given over the fields (`--hours` over
//!    [`ScanDefaults::hours`], `--auth` through [`Settings::pin_auth`], ...).
//!
//! Library code never reads the process environment itself; the binary passes the snapshot.
//!
//! See: issue 11, "One `Settings` owns every variable".

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use azure_core::credentials::Secret;

/// Default Log Analytics query endpoint.
pub const DEFAULT_LOG_ANALYTICS_ENDPOINT: &str = "https://api.loganalytics.azure.com";
/// Default Azure OpenAI API version: the version-less `v1` API (the only one the `gpt-5`
/// family is documented for).
pub const DEFAULT_OPENAI_API_VERSION: &str = "v1";
/// Default number of model assessments in flight at once.
pub const DEFAULT_MODEL_CONCURRENCY: usize = 8;

/// Every variable [`Settings::from_env`] reads, with what it means: the one list that
/// `--help` prints and the README's *Configuration* section documents (a test holds all three
/// together).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "LOG_ANALYTICS_WORKSPACE_ID",
        "workspace id(s), comma-separated (GUID or ARM resource id)",
    ),
    (
        "LOG_ANALYTICS_ENDPOINT",
        "query endpoint (default https://api.loganalytics.azure.com)",
    ),
    (
        "AZURE_OPENAI_ENDPOINT",
        "Azure OpenAI or Azure AI Foundry endpoint: https://res.openai.azure.com, https://res.services.ai.azure.com or a Foundry project https://res.services.ai.azure.com/api/projects/NAME",
    ),
    ("AZURE_OPENAI_DEPLOYMENT", "deployment name"),
    (
        "AZURE_OPENAI_API_VERSION",
        "v1 (the default) or a dated API version such as 2024-10-21",
    ),
    (
        "AZURE_OPENAI_API_KEY",
        "API key (optional: an Entra token is used without it)",
    ),
    (
        "OPENAI_BASE_URL",
        "OpenAI-compatible endpoint for a self-hosted model (instead of Azure OpenAI)",
    ),
    ("OPENAI_API_KEY", "key for OPENAI_BASE_URL (optional)"),
    ("OPENAI_MODEL", "model name for OPENAI_BASE_URL"),
    (
        "PIM_MODEL_FAMILY",
        "auto (default: from the model name the service returns, else the deployment name), reasoning (o1/o3/o4, gpt-5) or standard (gpt-4o, gpt-4.1, non-OpenAI)",
    ),
    (
        "PIM_MODEL_REASONING_EFFORT",
        "reasoning_effort for reasoning models: none, minimal, low (default), medium, high",
    ),
    (
        "PIM_MODEL_MAX_OUTPUT_TOKENS",
        "output cap for reasoning models, hidden reasoning included (default 4000)",
    ),
    (
        "PIM_MODEL_CONCURRENCY",
        "model assessments in flight at once (default 8)",
    ),
    (
        "PIM_MODEL_RPM",
        "client-side budget of model requests per minute (optional)",
    ),
    (
        "PIM_MODEL_TPM",
        "client-side budget of model tokens per minute (optional)",
    ),
    (
        "PIM_MODEL_DEADLINE",
        "longest time the whole model stage of a scan may take (default 10m; --model-deadline)",
    ),
    (
        "PIM_AUTH",
        "pin one credential: env, workload-identity, managed-identity, cli, azd (--auth)",
    ),
    (
        "AZURE_TENANT_ID",
        "tenant of the service principal or workload identity",
    ),
    (
        "AZURE_CLIENT_ID",
        "client id of the service principal, workload identity or user-assigned managed identity",
    ),
    ("AZURE_CLIENT_SECRET", "secret of the service principal"),
    (
        "AZURE_FEDERATED_TOKEN_FILE",
        "token file of a workload identity (set by the platform)",
    ),
    (
        "AZURE_AUTHORITY_HOST",
        "Entra authority for a sovereign cloud, e.g. https://login.chinacloudapi.cn",
    ),
    (
        "IDENTITY_ENDPOINT",
        "App Service / Container Apps managed identity endpoint (set by the platform; read from the process environment only)",
    ),
    (
        "IDENTITY_HEADER",
        "App Service / Container Apps managed identity secret (set by the platform; read from the process environment only)",
    ),
    (
        "PIM_SCAN_HOURS",
        "length of the scan window in hours (default 24; --hours)",
    ),
    (
        "PIM_LOOKBACK_HOURS",
        "how long before the window to look for activations still active in it (default 24; --lookback-hours)",
    ),
    (
        "PIM_MAX_ACTIVITIES",
        "operations kept per activation (default 5000; --max-activities)",
    ),
    (
        "PIM_BASELINE_DAYS",
        "days of history before the window for the behaviour baseline: first-time operations and activation counts (default 30, 0 turns it off, at most 365; --baseline-days)",
    ),
    (
        "PIM_QUERY_CONCURRENCY",
        "Log Analytics queries in flight at once, per scan and across the scans of one process (default 4, 1 to 64; the query API allows 5 per identity)",
    ),
    (
        "PIM_PRIVILEGED_PATTERNS",
        "comma-separated name fragments that make a role or group privileged (--privileged-patterns)",
    ),
    (
        "PIM_MAX_REPAIRS",
        "pim-chat: most corrections asked of the model when a query it wrote fails (default 3; --max-repairs)",
    ),
    (
        "PIM_ALLOWED_TABLES",
        "pim-chat: tables model-written queries may read (default AuditLogs,AzureActivity; --allowed-tables)",
    ),
    (
        "PIM_DCR_ENDPOINT",
        "Logs Ingestion: the data collection endpoint (--dcr-endpoint)",
    ),
    (
        "PIM_DCR_RULE_ID",
        "Logs Ingestion: the data collection rule's immutable id, dcr-... (--dcr-rule-id)",
    ),
    (
        "PIM_DCR_STREAM",
        "Logs Ingestion: the stream declared in the rule (default Custom-PimAudit_CL; --dcr-stream)",
    ),
    (
        "PIM_DCR_RUN_STREAM",
        "Logs Ingestion: the heartbeat stream, one row per pim-batch run, written whenever PIM_DCR_ENDPOINT and PIM_DCR_RULE_ID are set (default Custom-PimRun_CL)",
    ),
    (
        "PIM_WEBHOOK_URL",
        "the URL for --send webhook (a secret: never logged; --webhook-url)",
    ),
    (
        "PIM_SERVICENOW_URL",
        "ticket verification: the ServiceNow instance, https://<instance>.service-now.com (turns ServiceNow lookups on)",
    ),
    (
        "PIM_SERVICENOW_USER",
        "ticket verification: ServiceNow Basic auth user (with PIM_SERVICENOW_PASSWORD; give it read-only roles)",
    ),
    (
        "PIM_SERVICENOW_PASSWORD",
        "ticket verification: ServiceNow Basic auth password (a secret: never logged)",
    ),
    (
        "PIM_SERVICENOW_TOKEN",
        "ticket verification: a ServiceNow OAuth access token, sent as Bearer, instead of Basic auth (a secret)",
    ),
    (
        "PIM_JIRA_URL",
        "ticket verification: the Jira site, https://<site>.atlassian.net or a Data Center base URL (turns Jira lookups on)",
    ),
    (
        "PIM_JIRA_EMAIL",
        "ticket verification: Jira Cloud account e-mail (with PIM_JIRA_API_TOKEN; REST v3)",
    ),
    (
        "PIM_JIRA_API_TOKEN",
        "ticket verification: Jira Cloud API token from id.atlassian.com (a secret: never logged)",
    ),
    (
        "PIM_JIRA_PAT",
        "ticket verification: Jira Data Center personal access token, instead of e-mail and API token (REST v2; a secret)",
    ),
    (
        "PIM_JIRA_PROJECTS",
        "ticket verification: the Jira project keys, comma-separated (required with PIM_JIRA_URL); only KEY-123 of these projects is looked up in Jira",
    ),
    (
        "PIM_STATE",
        "pim-batch: the state store of scheduled runs, a SQLite file created on first use (--state)",
    ),
    (
        "PIM_SERVE_AUTH",
        "pim-chat serve: entra (default: Entra ID tokens) or none (loopback listen only)",
    ),
    (
        "PIM_SERVE_TENANT_ID",
        "pim-chat serve: the Entra tenant whose tokens are accepted",
    ),
    (
        "PIM_SERVE_AUTHORITY",
        "pim-chat serve: OIDC authority (default https://login.microsoftonline.com/{PIM_SERVE_TENANT_ID}/v2.0; http:// on loopback only)",
    ),
    (
        "PIM_SERVE_AUDIENCE",
        "pim-chat serve: accepted token audience(s), comma-separated (the app's client id and/or api://... URI)",
    ),
    (
        "PIM_SERVE_ROLE",
        "pim-chat serve: the app role a caller needs (default PIM.Auditor)",
    ),
    (
        "PIM_SERVE_MAX_BODY",
        "pim-chat serve: largest request body in bytes (default 16384)",
    ),
    (
        "PIM_SERVE_SESSIONS_PER_USER",
        "pim-chat serve: open sessions per user (default 5)",
    ),
    (
        "PIM_SERVE_MESSAGES_PER_MINUTE",
        "pim-chat serve: messages per user per minute (default 30)",
    ),
    (
        "PIM_SERVE_IDLE",
        "pim-chat serve: idle time after which a session is dropped (default 30m)",
    ),
    (
        "PIM_SERVE_MAX_SESSIONS",
        "pim-chat serve: open sessions in all (default 500)",
    ),
    (
        "LOG_LEVEL",
        "error, warn, info, debug, trace or a tracing filter (pim-batch default info, pim-chat warn; --log-level)",
    ),
    ("LOG_FORMAT", "logs: text (default) or json (--log-format)"),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OpenTelemetry: the OTLP/HTTP collector's base URL (e.g. http://localhost:4318); traces go to /v1/traces, metrics to /v1/metrics. Unset: nothing is exported",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OpenTelemetry: the full URL for traces, over OTEL_EXPORTER_OTLP_ENDPOINT",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OpenTelemetry: the full URL for metrics, over OTEL_EXPORTER_OTLP_ENDPOINT",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OpenTelemetry: headers sent with every export, key=value,... (values URL-encoded; a secret: never logged)",
    ),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OpenTelemetry: http/protobuf, the only protocol supported (default)",
    ),
    (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OpenTelemetry: milliseconds one export may take (default 10000)",
    ),
    (
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OpenTelemetry: milliseconds between metric exports of a long-running pim-chat (default 60000); every process also exports at exit",
    ),
    (
        "OTEL_SERVICE_NAME",
        "OpenTelemetry: the service.name resource attribute (default pim-batch / pim-chat)",
    ),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "OpenTelemetry: more resource attributes, key=value,... (values URL-encoded)",
    ),
    (
        "OTEL_SDK_DISABLED",
        "OpenTelemetry: true turns all export off whatever else is set",
    ),
];

/// Variables that a hosting platform sets and that `azure_identity` reads from the process
/// environment itself: taken from a `.env` file they would make the chain describe a managed
/// identity that the credential then does not use, so [`environment`] ignores them there.
pub const PLATFORM_VARIABLES: &[&str] = &[
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
];

/// [`VARIABLES`] as `--help` prints it: one `NAME  meaning` line each.
pub fn variables_help() -> String {
    let width = VARIABLES.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::from(
        "Configuration (from the environment, or a .env file in the working directory; the environment wins; flags win over both):\n",
    );
    for (name, meaning) in VARIABLES {
        out.push_str(&format!("  {name:width$}  {meaning}\n"));
    }
    out
}

/// A setting that is missing or malformed, named by its variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable (or flag) at fault.
    pub variable: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// A secret value (API key): shown as `[redacted]` by `Debug` and never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which model to use, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSettings {
    /// An Azure OpenAI deployment.
    AzureOpenAi {
        /// Resource endpoint.
        endpoint: String,
        /// Deployment name.
        deployment: String,
        /// Dated API version, or `v1`.
        api_version: String,
        /// API key; `None` means an Entra token.
        api_key: Option<SecretValue>,
    },
    /// A self-hosted OpenAI-compatible endpoint.
    OpenAiCompatible {
        /// Base URL (the one that `/chat/completions` is appended to).
        base_url: String,
        /// Bearer key, if the server wants one.
        api_key: Option<SecretValue>,
        /// Model name sent in the body.
        model: String,
    },
}

/// Client-side limits on model calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    /// Assessments in flight at once.
    pub concurrency: usize,
    /// Requests per minute, if budgeted.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute, if budgeted.
    pub tokens_per_minute: Option<u32>,
    /// Tokens one assessment is charged against the per-minute budget: the prompt budget plus
    /// the answer cap, as the service itself estimates a request on arrival.
    pub estimated_tokens_per_call: u32,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_MODEL_CONCURRENCY,
            requests_per_minute: None,
            tokens_per_minute: None,
            estimated_tokens_per_call: 3_600,
        }
    }
}

/// Everything the binaries are configured with: the live sources, the model, the credential
/// chain, the scan defaults, pim-chat's query policy, delivery and logging.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Log Analytics workspace ids; empty when no workspace is configured.
    pub workspaces: Vec<String>,
    /// Query endpoint.
    pub log_analytics_endpoint: String,
    /// The model, when one is configured.
    pub model: Option<ModelSettings>,
    /// Limits on model calls.
    pub model_limits: ModelLimits,
    /// The model family and its parameters (`PIM_MODEL_FAMILY`, `PIM_MODEL_REASONING_EFFORT`,
    /// `PIM_MODEL_MAX_OUTPUT_TOKENS`).
    pub model_parameters: pim_openai::ModelParameters,
    /// The credential chain's view of the environment (`AZURE_*`, `IDENTITY_*`) and the method
    /// `PIM_AUTH` pins (overridden by `--auth` through [`Settings::pin_auth`]).
    pub auth: pim_auth::AuthSettings,
    /// Defaults of a scan (`PIM_SCAN_HOURS`, `PIM_LOOKBACK_HOURS`, ...).
    pub scan: ScanDefaults,
    /// pim-chat's settings (`PIM_MAX_REPAIRS`, `PIM_ALLOWED_TABLES`).
    pub chat: ChatSettings,
    /// Where findings are sent (`PIM_DCR_*`, `PIM_WEBHOOK_URL`; the targets come from `--send`).
    pub delivery: pim_deliver::DeliverySettings,
    /// Logging (`LOG_LEVEL`, `LOG_FORMAT`).
    pub logging: LogSettings,
    /// pim-batch's state store (`PIM_STATE`, overridden by `--state`; issue 13).
    pub state: Option<std::path::PathBuf>,
    /// `pim-chat serve`'s sign-in and limits (`PIM_SERVE_*`).
    pub serve: ServeSettings,
    /// Ticket verification (`PIM_SERVICENOW_*`, `PIM_JIRA_*`; issue 14): off unless a
    /// system's URL is set.
    pub tickets: TicketSettings,
    /// OpenTelemetry export (`OTEL_*`; issue 16).
    pub telemetry: TelemetrySettings,
}

/// OpenTelemetry export over OTLP/HTTP, from the standard `OTEL_*` variables: off unless an
/// endpoint is set, and off whatever is set with `OTEL_SDK_DISABLED=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL.
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full URL for traces.
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: the full URL for metrics.
    pub metrics_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, decoded; the values are secrets (API keys).
    pub headers: Vec<(String, SecretValue)>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` as given (only `http/protobuf` is accepted).
    pub protocol: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`.
    pub timeout: Option<Duration>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub metric_interval: Option<Duration>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_SDK_DISABLED=true`.
    pub disabled: bool,
}

impl TelemetrySettings {
    /// Whether anything is to be exported: an endpoint is set and the SDK is not disabled.
    pub fn enabled(&self) -> bool {
        !self.disabled
            && (self.endpoint.is_some()
                || self.traces_endpoint.is_some()
                || self.metrics_endpoint.is_some())
    }
}

/// Reads the `OTEL_*` variables.
fn telemetry_settings<'e>(
    get: impl Fn(&'static str) -> Option<&'e str>,
) -> Result<TelemetrySettings, ConfigError> {
    let mut t = TelemetrySettings {
        endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|v| otlp_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", v))
            .transpose()?,
        traces_endpoint: get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .map(|v| otlp_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v))
            .transpose()?,
        metrics_endpoint: get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .map(|v| otlp_endpoint("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", v))
            .transpose()?,
        service_name: get("OTEL_SERVICE_NAME").map(str::to_owned),
        ..TelemetrySettings::default()
    };
    if let Some(v) = get("OTEL_EXPORTER_OTLP_HEADERS") {
        t.headers = key_values("OTEL_EXPORTER_OTLP_HEADERS", v, false)?
            .into_iter()
            .map(|(k, v)| (k, SecretValue::new(v)))
            .collect();
    }
    if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
        t.resource_attributes = key_values("OTEL_RESOURCE_ATTRIBUTES", v, true)?;
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_PROTOCOL") {
        if !v.eq_ignore_ascii_case("http/protobuf") {
            return Err(ConfigError::new(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                format!(
                    "{:?} is not supported: only http/protobuf (OTLP over HTTP, usually port 4318) is",
                    shorten(v)
                ),
            ));
        }
        t.protocol = Some(v.to_ascii_lowercase());
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_TIMEOUT") {
        t.timeout = Some(Duration::from_millis(u64::from(positive(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            v,
            600_000,
        )?)));
    }
    if let Some(v) = get("OTEL_METRIC_EXPORT_INTERVAL") {
        t.metric_interval = Some(Duration::from_millis(u64::from(positive(
            "OTEL_METRIC_EXPORT_INTERVAL",
            v,
            86_400_000,
        )?)));
    }
    if let Some(v) = get("OTEL_SDK_DISABLED") {
        t.disabled = match v.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError::new(
                    "OTEL_SDK_DISABLED",
                    format!("{:?} is not true or false", shorten(v)),
                ));
            }
        };
    }
    // Headers usually carry an API key: never in clear text to another host.
    let clear = [&t.endpoint, &t.traces_endpoint, &t.metrics_endpoint]
        .into_iter()
        .flatten()
        .find(|url| url.to_ascii_lowercase().starts_with("http://") && !is_loopback_http(url));
    if let (Some(url), false) = (clear, t.headers.is_empty()) {
        return Err(ConfigError::new(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!(
                "would be sent in clear text to {}: use an https:// endpoint (plain http is for a collector on this host)",
                shorten(url)
            ),
        ));
    }
    Ok(t)
}

/// An OTLP endpoint: an `http://` or `https://` URL with a host. Plain http is allowed (a
/// collector beside the job is the usual set-up); headers then stay on this host.
fn otlp_endpoint(variable: &'static str, v: &str) -> Result<String, ConfigError> {
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && !host.starts_with(['/', ':'])
                && !v.contains(char::is_whitespace) =>
        {
            Ok(v.to_owned())
        }
        _ => Err(ConfigError::new(
            variable,
            format!(
                "{:?} is not an http:// or https:// URL with a host",
                shorten(v)
            ),
        )),
    }
}

fn is_loopback_http(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://") else {
        return false;
    };
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|h| {
        rest.strip_prefix(h)
            .is_some_and(|after| after.is_empty() || after.starts_with([':', '/']))
    })
}

/// `key=value,key2=value2` as the OpenTelemetry environment specification writes headers and
/// resource attributes: keys trimmed, values trimmed and percent-decoded. A malformed pair is
/// an error naming its position, never its text (a header value is a secret); with `show`
/// the key is named too.
fn key_values(
    variable: &'static str,
    v: &str,
    show: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, pair) in v.split(',').enumerate() {
        if pair.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            ConfigError::new(
                variable,
                format!("entry {} {why}: write key=value,key2=value2", i + 1),
            )
        };
        let (key, value) = pair.split_once('=').ok_or_else(|| bad("has no '='"))?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("has no valid key"));
        }
        let value = percent_decode(value.trim()).ok_or_else(|| {
            if show {
                bad(&format!("({key}) is not valid percent-encoded UTF-8"))
            } else {
                bad("is not valid percent-encoded UTF-8")
            }
        })?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Which ticket systems cited tickets are verified in (issue 14). Credentials are secrets
/// inside the auth types, shown as `[REDACTED]` by `Debug`.
#[derive(Debug, Clone, Default)]
pub struct TicketSettings {
    /// `PIM_SERVICENOW_URL` and its credential.
    pub servicenow: Option<ServiceNowSettings>,
    /// `PIM_JIRA_URL`, its credential and `PIM_JIRA_PROJECTS`.
    pub jira: Option<JiraSettings>,
}

impl TicketSettings {
    /// Whether any ticket system is configured.
    pub fn is_configured(&self) -> bool {
        self.servicenow.is_some() || self.jira.is_some()
    }
}

/// A configured ServiceNow instance.
#[derive(Debug, Clone)]
pub struct ServiceNowSettings {
    /// `PIM_SERVICENOW_URL`.
    pub url: String,
    /// Basic (`PIM_SERVICENOW_USER` + `PIM_SERVICENOW_PASSWORD`) or OAuth
    /// (`PIM_SERVICENOW_TOKEN`).
    pub auth: pim_tickets::ServiceNowAuth,
}

/// A configured Jira site.
#[derive(Debug, Clone)]
pub struct JiraSettings {
    /// `PIM_JIRA_URL`.
    pub url: String,
    /// Cloud (`PIM_JIRA_EMAIL` + `PIM_JIRA_API_TOKEN`) or Data Center (`PIM_JIRA_PAT`).
    pub auth: pim_tickets::JiraAuth,
    /// `PIM_JIRA_PROJECTS`, upper-cased.
    pub projects: Vec<String>,
}

/// The defaults of a scan that variables (and then flags) may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanDefaults {
    /// Length of the scan window in hours (`PIM_SCAN_HOURS`, default [`crate::DEFAULT_HOURS`]).
    pub hours: u32,
    /// Look-back before the window (`PIM_LOOKBACK_HOURS`, default
    /// [`crate::DEFAULT_LOOKBACK_HOURS`]).
    pub lookback_hours: u32,
    /// Most operations kept per activation (`PIM_MAX_ACTIVITIES`, default
    /// [`crate::DEFAULT_MAX_ACTIVITIES`]).
    pub max_activities: usize,
    /// Name fragments that make a role or group privileged (`PIM_PRIVILEGED_PATTERNS`);
    /// `None` keeps the rules engine's built-in list.
    pub privileged_patterns: Option<Vec<String>>,
    /// Bound on the whole model stage (`PIM_MODEL_DEADLINE`, default
    /// [`crate::DEFAULT_MODEL_DEADLINE`]).
    pub model_deadline: Duration,
    /// Log Analytics queries in flight at once (`PIM_QUERY_CONCURRENCY`, default
    /// [`crate::DEFAULT_QUERY_CONCURRENCY`]): each scan's bound, and the auditor's bound across
    /// all its scans, since the query API's limit is per identity (reference §9.4).
    pub query_concurrency: usize,
    /// Days of history for the behaviour baseline (`PIM_BASELINE_DAYS`, default
    /// [`crate::DEFAULT_BASELINE_DAYS`]; 0 turns it off; issue 14).
    pub baseline_days: u32,
}

impl Default for ScanDefaults {
    fn default() -> Self {
        Self {
            hours: crate::DEFAULT_HOURS,
            lookback_hours: crate::DEFAULT_LOOKBACK_HOURS,
            max_activities: crate::DEFAULT_MAX_ACTIVITIES,
            privileged_patterns: None,
            model_deadline: crate::DEFAULT_MODEL_DEADLINE,
            query_concurrency: crate::DEFAULT_QUERY_CONCURRENCY,
            baseline_days: crate::DEFAULT_BASELINE_DAYS,
        }
    }
}

/// Tables model-written queries may read unless `PIM_ALLOWED_TABLES` says otherwise.
pub const DEFAULT_ALLOWED_TABLES: &[&str] = &["AuditLogs", "AzureActivity"];

/// pim-chat's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSettings {
    /// Most repairs of a model-written query (`PIM_MAX_REPAIRS`); `None` keeps the session's
    /// default.
    pub max_repairs: Option<usize>,
    /// Tables model-written queries may read (`PIM_ALLOWED_TABLES`, default
    /// [`DEFAULT_ALLOWED_TABLES`]).
    pub allowed_tables: Vec<String>,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            max_repairs: None,
            allowed_tables: DEFAULT_ALLOWED_TABLES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
        }
    }
}

/// How `pim-chat serve` signs callers in (`PIM_SERVE_AUTH`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServeAuth {
    /// Entra ID tokens, validated against the authority's keys (the default).
    #[default]
    Entra,
    /// No sign-in: every caller is one local user. Refused unless the listen address is
    /// loopback.
    None,
}

/// `pim-chat serve`'s settings: the sign-in and every limit (issue 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// `PIM_SERVE_AUTH` (default [`ServeAuth::Entra`]).
    pub auth: ServeAuth,
    /// `PIM_SERVE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `PIM_SERVE_AUTHORITY`; `None` derives it from the tenant.
    pub authority: Option<String>,
    /// `PIM_SERVE_AUDIENCE`: the accepted `aud` values.
    pub audiences: Vec<String>,
    /// `PIM_SERVE_ROLE` (default `PIM.Auditor`).
    pub role: String,
    /// `PIM_SERVE_MAX_BODY`: largest request body in bytes (default 16 KiB).
    pub max_body_bytes: usize,
    /// `PIM_SERVE_SESSIONS_PER_USER` (default 5).
    pub sessions_per_user: usize,
    /// `PIM_SERVE_MESSAGES_PER_MINUTE` (default 30).
    pub messages_per_minute: usize,
    /// `PIM_SERVE_IDLE` (default 30 minutes).
    pub idle: Duration,
    /// `PIM_SERVE_MAX_SESSIONS` (default 500).
    pub max_sessions: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            auth: ServeAuth::Entra,
            tenant_id: None,
            authority: None,
            audiences: Vec::new(),
            role: "PIM.Auditor".to_owned(),
            max_body_bytes: 16 * 1024,
            sessions_per_user: 5,
            messages_per_minute: 30,
            idle: Duration::from_secs(30 * 60),
            max_sessions: 500,
        }
    }
}

impl ServeSettings {
    /// The OIDC authority: `PIM_SERVE_AUTHORITY`, else the tenant's v2.0 authority; `None`
    /// when neither is set.
    pub fn authority(&self) -> Option<String> {
        self.authority.clone().or_else(|| {
            self.tenant_id
                .as_ref()
                .map(|t| format!("https://login.microsoftonline.com/{t}/v2.0"))
        })
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings; each binary has its own default level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `LOG_LEVEL`, when set.
    pub level: Option<String>,
    /// `LOG_FORMAT` (default text).
    pub format: LogFormat,
}

impl Settings {
    /// Reads and validates the settings from an environment snapshot.
    ///
    /// # Errors
    /// The first missing or malformed setting, named by its variable, with the fix.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &'static str| {
            // Settings reads only what VARIABLES documents (a test checks the other direction).
            debug_assert!(
                VARIABLES.iter().any(|(n, _)| *n == k),
                "{k} is not in VARIABLES"
            );
            env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
        };

        let workspaces = match get("LOG_ANALYTICS_WORKSPACE_ID") {
            None => Vec::new(),
            Some(v) => parse_workspaces(v)?,
        };
        let log_analytics_endpoint = match get("LOG_ANALYTICS_ENDPOINT") {
            None => DEFAULT_LOG_ANALYTICS_ENDPOINT.to_owned(),
            Some(v) => endpoint("LOG_ANALYTICS_ENDPOINT", v)?,
        };

        let azure = get("AZURE_OPENAI_ENDPOINT");
        let compat = get("OPENAI_BASE_URL");
        let model = match (azure, compat) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "OPENAI_BASE_URL",
                    "set either AZURE_OPENAI_ENDPOINT (Azure OpenAI) or OPENAI_BASE_URL (an OpenAI-compatible server), not both",
                ));
            }
            (Some(ep), None) => {
                let endpoint = endpoint("AZURE_OPENAI_ENDPOINT", ep)?;
                let deployment = get("AZURE_OPENAI_DEPLOYMENT")
                    .ok_or_else(|| {
                        ConfigError::new(
                            "AZURE_OPENAI_DEPLOYMENT",
                            "missing: AZURE_OPENAI_ENDPOINT is set, so name the deployment to call",
                        )
                    })?
                    .to_owned();
                if !deployment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(ConfigError::new(
                        "AZURE_OPENAI_DEPLOYMENT",
                        "a deployment name has only letters, digits, '-', '_' and '.'",
                    ));
                }
                let api_version = match get("AZURE_OPENAI_API_VERSION") {
                    None => DEFAULT_OPENAI_API_VERSION.to_owned(),
                    Some(v) => api_version(v)?,
                };
                Some(ModelSettings::AzureOpenAi {
                    endpoint,
                    deployment,
                    api_version,
                    api_key: get("AZURE_OPENAI_API_KEY").map(SecretValue::new),
                })
            }
            (None, Some(base)) => Some(ModelSettings::OpenAiCompatible {
                base_url: endpoint("OPENAI_BASE_URL", base)?,
                api_key: get("OPENAI_API_KEY").map(SecretValue::new),
                model: get("OPENAI_MODEL")
                    .ok_or_else(|| {
                        ConfigError::new(
                            "OPENAI_MODEL",
                            "missing: OPENAI_BASE_URL is set, so name the model to call",
                        )
                    })?
                    .to_owned(),
            }),
            (None, None) => {
                if get("AZURE_OPENAI_DEPLOYMENT").is_some() {
                    return Err(ConfigError::new(
                        "AZURE_OPENAI_ENDPOINT",
                        "missing: AZURE_OPENAI_DEPLOYMENT is set, so give the resource endpoint too",
                    ));
                }
                None
            }
        };

        let mut model_limits = ModelLimits::default();
        if let Some(v) = get("PIM_MODEL_CONCURRENCY") {
            model_limits.concurrency = positive("PIM_MODEL_CONCURRENCY", v, 256)? as usize;
        }
        if let Some(v) = get("PIM_MODEL_RPM") {
            model_limits.requests_per_minute = Some(positive("PIM_MODEL_RPM", v, 1_000_000)?);
        }
        if let Some(v) = get("PIM_MODEL_TPM") {
            model_limits.tokens_per_minute = Some(positive("PIM_MODEL_TPM", v, 100_000_000)?);
        }
        let mut model_parameters = pim_openai::ModelParameters::default();
        if let Some(v) = get("PIM_MODEL_FAMILY")
            && !v.eq_ignore_ascii_case("auto")
        {
            model_parameters.family = Some(v.parse().map_err(|_| {
                ConfigError::new(
                    "PIM_MODEL_FAMILY",
                    format!(
                        "{:?} is not a model family: use auto, reasoning or standard",
                        shorten(v)
                    ),
                )
            })?);
        }
        if let Some(v) = get("PIM_MODEL_REASONING_EFFORT") {
            model_parameters.reasoning_effort = v.parse().map_err(|_| {
                ConfigError::new(
                    "PIM_MODEL_REASONING_EFFORT",
                    format!(
                        "{:?} is not a reasoning effort: use none, minimal, low, medium or high",
                        shorten(v)
                    ),
                )
            })?;
        }
        if let Some(v) = get("PIM_MODEL_MAX_OUTPUT_TOKENS") {
            model_parameters.max_output_tokens =
                positive("PIM_MODEL_MAX_OUTPUT_TOKENS", v, 200_000)?;
        }
        // The chain keeps its own variables (AZURE_*, IDENTITY_*, PIM_AUTH) from the snapshot.
        let auth = pim_auth::AuthSettings::from_env_map(env.clone())
            .map_err(|e| ConfigError::new("PIM_AUTH", e.to_string()))?;

        let mut scan = ScanDefaults::default();
        if let Some(v) = get("PIM_SCAN_HOURS") {
            scan.hours = whole("PIM_SCAN_HOURS", v)?;
        }
        if let Some(v) = get("PIM_LOOKBACK_HOURS") {
            scan.lookback_hours = whole("PIM_LOOKBACK_HOURS", v)?;
        }
        if let Some(v) = get("PIM_MAX_ACTIVITIES") {
            scan.max_activities = whole("PIM_MAX_ACTIVITIES", v)?;
        }
        if let Some(v) = get("PIM_BASELINE_DAYS") {
            let days: u32 = whole("PIM_BASELINE_DAYS", v)?;
            if days > crate::MAX_BASELINE_DAYS {
                return Err(ConfigError::new(
                    "PIM_BASELINE_DAYS",
                    format!("{days} is more than {} days", crate::MAX_BASELINE_DAYS),
                ));
            }
            scan.baseline_days = days;
        }
        if let Some(v) = get("PIM_QUERY_CONCURRENCY") {
            scan.query_concurrency = positive(
                "PIM_QUERY_CONCURRENCY",
                v,
                crate::MAX_QUERY_CONCURRENCY as u32,
            )? as usize;
        }
        if let Some(v) = get("PIM_PRIVILEGED_PATTERNS") {
            scan.privileged_patterns =
                Some(list("PIM_PRIVILEGED_PATTERNS", v.split(','), "pattern")?);
        }
        if let Some(v) = get("PIM_MODEL_DEADLINE") {
            scan.model_deadline =
                parse_duration(v).map_err(|e| ConfigError::new("PIM_MODEL_DEADLINE", e))?;
        }

        let mut chat = ChatSettings::default();
        if let Some(v) = get("PIM_MAX_REPAIRS") {
            chat.max_repairs = Some(whole("PIM_MAX_REPAIRS", v)?);
        }
        if let Some(v) = get("PIM_ALLOWED_TABLES") {
            chat.allowed_tables = list("PIM_ALLOWED_TABLES", v.split(','), "table")?;
        }

        let mut delivery = pim_deliver::DeliverySettings::default();
        delivery.logs_ingestion.endpoint = get("PIM_DCR_ENDPOINT").map(str::to_owned);
        delivery.logs_ingestion.rule_id = get("PIM_DCR_RULE_ID").map(str::to_owned);
        if let Some(v) = get("PIM_DCR_STREAM") {
            delivery.logs_ingestion.stream = v.to_owned();
        }
        if let Some(v) = get("PIM_DCR_RUN_STREAM") {
            delivery.logs_ingestion.run_stream = v.to_owned();
        }
        delivery.webhook_url = get("PIM_WEBHOOK_URL").map(|v| Secret::new(v.to_owned()));

        let mut serve = ServeSettings::default();
        match get("PIM_SERVE_AUTH") {
            None => {}
            Some(v) if v.eq_ignore_ascii_case("entra") => serve.auth = ServeAuth::Entra,
            Some(v) if v.eq_ignore_ascii_case("none") => serve.auth = ServeAuth::None,
            Some(v) => {
                return Err(ConfigError::new(
                    "PIM_SERVE_AUTH",
                    format!("{:?} is not a sign-in mode: use entra or none", shorten(v)),
                ));
            }
        }
        serve.tenant_id = get("PIM_SERVE_TENANT_ID").map(str::to_owned);
        serve.authority = get("PIM_SERVE_AUTHORITY").map(|v| v.trim_end_matches('/').to_owned());
        if let Some(v) = get("PIM_SERVE_AUDIENCE") {
            serve.audiences = list("PIM_SERVE_AUDIENCE", v.split(','), "audience")?;
        }
        if let Some(v) = get("PIM_SERVE_ROLE") {
            serve.role = v.to_owned();
        }
        if let Some(v) = get("PIM_SERVE_MAX_BODY") {
            serve.max_body_bytes = positive("PIM_SERVE_MAX_BODY", v, 16_777_216)? as usize;
        }
        if let Some(v) = get("PIM_SERVE_SESSIONS_PER_USER") {
            serve.sessions_per_user = positive("PIM_SERVE_SESSIONS_PER_USER", v, 1_000)? as usize;
        }
        if let Some(v) = get("PIM_SERVE_MESSAGES_PER_MINUTE") {
            serve.messages_per_minute =
                positive("PIM_SERVE_MESSAGES_PER_MINUTE", v, 10_000)? as usize;
        }
        if let Some(v) = get("PIM_SERVE_IDLE") {
            serve.idle = parse_duration(v).map_err(|e| ConfigError::new("PIM_SERVE_IDLE", e))?;
        }
        if let Some(v) = get("PIM_SERVE_MAX_SESSIONS") {
            serve.max_sessions = positive("PIM_SERVE_MAX_SESSIONS", v, 1_000_000)? as usize;
        }

        let tickets = ticket_settings(&get)?;

        let logging = LogSettings {
            level: get("LOG_LEVEL").map(str::to_owned),
            format: match get("LOG_FORMAT") {
                None => LogFormat::Text,
                Some(v) if v.eq_ignore_ascii_case("text") => LogFormat::Text,
                Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
                Some(v) => {
                    return Err(ConfigError::new(
                        "LOG_FORMAT",
                        format!("{:?} is not a log format: use text or json", shorten(v)),
                    ));
                }
            },
        };

        Ok(Self {
            workspaces,
            log_analytics_endpoint,
            model,
            model_limits,
            model_parameters,
            auth,
            scan,
            chat,
            delivery,
            logging,
            state: get("PIM_STATE").map(std::path::PathBuf::from),
            serve,
            telemetry: telemetry_settings(get)?,
            tickets,
        })
    }

    /// Pins one credential method from a flag (`--auth`), over `PIM_AUTH`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `--auth` when the method is unknown.
    pub fn pin_auth(&mut self, method: &str) -> Result<(), ConfigError> {
        self.auth.pinned = pim_auth::AuthMethod::parse_pin(method)
            .map_err(|e| ConfigError::new("--auth", e.to_string()))?;
        Ok(())
    }

    /// Whether anything configured needs an Azure credential: a workspace source, an Azure
    /// model, or a destination that says so. (Building the chain fetches no token.)
    pub fn needs_azure_credential(&self, source: &crate::live::SourceChoice) -> bool {
        matches!(source, crate::live::SourceChoice::Workspace)
            || self.model.is_some()
            || self.delivery.needs_azure_credential()
    }
}

/// `PIM_SERVICENOW_*` and `PIM_JIRA_*`: each system needs its URL and exactly one complete
/// credential; credentials without a URL are a mistake, not a silent no-op.
fn ticket_settings<'e>(
    get: &impl Fn(&'static str) -> Option<&'e str>,
) -> Result<TicketSettings, ConfigError> {
    let secret = |v: &str| Secret::new(v.to_owned());
    let servicenow = match (
        get("PIM_SERVICENOW_URL"),
        get("PIM_SERVICENOW_USER"),
        get("PIM_SERVICENOW_PASSWORD"),
        get("PIM_SERVICENOW_TOKEN"),
    ) {
        (None, None, None, None) => None,
        (None, ..) => {
            return Err(ConfigError::new(
                "PIM_SERVICENOW_URL",
                "missing: ServiceNow credentials are set, so give the instance URL (https://<instance>.service-now.com) too",
            ));
        }
        (Some(url), user, password, token) => {
            let auth = match (user, password, token) {
                (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        "PIM_SERVICENOW_TOKEN",
                        "set either PIM_SERVICENOW_USER and PIM_SERVICENOW_PASSWORD (Basic) or PIM_SERVICENOW_TOKEN (OAuth), not both",
                    ));
                }
                (Some(user), Some(password), None) => pim_tickets::ServiceNowAuth::Basic {
                    user: user.to_owned(),
                    password: secret(password),
                },
                (None, None, Some(token)) => pim_tickets::ServiceNowAuth::OAuth(secret(token)),
                (Some(_), None, None) => {
                    return Err(ConfigError::new(
                        "PIM_SERVICENOW_PASSWORD",
                        "missing: PIM_SERVICENOW_USER is set, so give its password too",
                    ));
                }
                (None, Some(_), None) => {
                    return Err(ConfigError::new(
                        "PIM_SERVICENOW_USER",
                        "missing: PIM_SERVICENOW_PASSWORD is set, so name its user too",
                    ));
                }
                (None, None, None) => {
                    return Err(ConfigError::new(
                        "PIM_SERVICENOW_USER",
                        "missing: PIM_SERVICENOW_URL is set, so set PIM_SERVICENOW_USER and PIM_SERVICENOW_PASSWORD, or PIM_SERVICENOW_TOKEN",
                    ));
                }
            };
            pim_tickets::check_base_url(url, "PIM_SERVICENOW_URL")
                .map_err(|e| ConfigError::new("PIM_SERVICENOW_URL", e))?;
            Some(ServiceNowSettings {
                url: url.to_owned(),
                auth,
            })
        }
    };

    let jira = match (
        get("PIM_JIRA_URL"),
        get("PIM_JIRA_EMAIL"),
        get("PIM_JIRA_API_TOKEN"),
        get("PIM_JIRA_PAT"),
    ) {
        (None, None, None, None) => {
            if get("PIM_JIRA_PROJECTS").is_some() {
                return Err(ConfigError::new(
                    "PIM_JIRA_URL",
                    "missing: PIM_JIRA_PROJECTS is set, so give the Jira site URL and its credential too",
                ));
            }
            None
        }
        (None, ..) => {
            return Err(ConfigError::new(
                "PIM_JIRA_URL",
                "missing: Jira credentials are set, so give the site URL (https://<site>.atlassian.net) too",
            ));
        }
        (Some(url), email, token, pat) => {
            let auth = match (email, token, pat) {
                (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        "PIM_JIRA_PAT",
                        "set either PIM_JIRA_EMAIL and PIM_JIRA_API_TOKEN (Jira Cloud) or PIM_JIRA_PAT (Data Center), not both",
                    ));
                }
                (Some(email), Some(token), None) => pim_tickets::JiraAuth::Cloud {
                    email: email.to_owned(),
                    api_token: secret(token),
                },
                (None, None, Some(pat)) => pim_tickets::JiraAuth::DataCenter(secret(pat)),
                (Some(_), None, None) => {
                    return Err(ConfigError::new(
                        "PIM_JIRA_API_TOKEN",
                        "missing: PIM_JIRA_EMAIL is set, so give its API token too",
                    ));
                }
                (None, Some(_), None) => {
                    return Err(ConfigError::new(
                        "PIM_JIRA_EMAIL",
                        "missing: PIM_JIRA_API_TOKEN is set, so give the account's e-mail too",
                    ));
                }
                (None, None, None) => {
                    return Err(ConfigError::new(
                        "PIM_JIRA_EMAIL",
                        "missing: PIM_JIRA_URL is set, so set PIM_JIRA_EMAIL and PIM_JIRA_API_TOKEN (Cloud), or PIM_JIRA_PAT (Data Center)",
                    ));
                }
            };
            pim_tickets::check_base_url(url, "PIM_JIRA_URL")
                .map_err(|e| ConfigError::new("PIM_JIRA_URL", e))?;
            let projects = match get("PIM_JIRA_PROJECTS") {
                None => {
                    return Err(ConfigError::new(
                        "PIM_JIRA_PROJECTS",
                        "missing: PIM_JIRA_URL is set, so list the Jira project keys (e.g. OPS,SEC); only their keys are looked up in Jira",
                    ));
                }
                Some(v) => list("PIM_JIRA_PROJECTS", v.split(','), "project key")?,
            };
            let projects: Vec<String> = projects.iter().map(|p| p.to_ascii_uppercase()).collect();
            if let Some(bad) = projects
                .iter()
                .find(|p| !pim_tickets::is_jira_key(&format!("{p}-1")))
            {
                return Err(ConfigError::new(
                    "PIM_JIRA_PROJECTS",
                    format!(
                        "{:?} is not a Jira project key (a letter, then letters, digits or _; at least two)",
                        shorten(bad)
                    ),
                ));
            }
            Some(JiraSettings {
                url: url.to_owned(),
                auth,
                projects,
            })
        }
    };
    Ok(TicketSettings { servicenow, jira })
}

/// A list given by a flag or a variable: items trimmed, empty ones dropped, and at least one
/// left (`what` names an item in the message: "pattern", "table").
///
/// # Errors
/// [`ConfigError`] naming `variable` when no item is left.
pub fn list<'a>(
    variable: &'static str,
    items: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> Result<Vec<String>, ConfigError> {
    let out: Vec<String> = items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if out.is_empty() {
        return Err(ConfigError::new(
            variable,
            format!("set but names no {what}"),
        ));
    }
    Ok(out)
}

fn whole<T: std::str::FromStr>(variable: &'static str, v: &str) -> Result<T, ConfigError> {
    v.parse()
        .map_err(|_| ConfigError::new(variable, format!("{:?} is not a whole number", shorten(v))))
}

fn parse_workspaces(v: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let arm = id.starts_with('/')
            && id
                .to_ascii_lowercase()
                .contains("/providers/microsoft.operationalinsights/workspaces/");
        if !(is_guid(id) || arm) {
            return Err(ConfigError::new(
                "LOG_ANALYTICS_WORKSPACE_ID",
                format!(
                    "{:?} is not a workspace id: give the workspace GUID (Workspace ID on the workspace's overview page) or its ARM resource id",
                    shorten(id)
                ),
            ));
        }
        if !out.iter().any(|o: &String| o.eq_ignore_ascii_case(id)) {
            out.push(id.to_owned());
        }
    }
    if out.is_empty() {
        return Err(ConfigError::new(
            "LOG_ANALYTICS_WORKSPACE_ID",
            "set but names no workspace",
        ));
    }
    Ok(out)
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// An https URL, or http on a loopback host (for local fakes and proxies); trailing `/` trimmed.
fn endpoint(variable: &'static str, v: &str) -> Result<String, ConfigError> {
    let lower = v.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        let loopback = ["127.0.0.1", "localhost", "[::1]"].iter().any(|h| {
            r.strip_prefix(h)
                .is_some_and(|after| after.is_empty() || after.starts_with([':', '/']))
        });
        if !loopback {
            return Err(ConfigError::new(
                variable,
                format!(
                    "{:?} must be an https:// URL (plain http is accepted only for localhost)",
                    shorten(v)
                ),
            ));
        }
        r
    } else {
        return Err(ConfigError::new(
            variable,
            format!("{:?} is not a URL: expected https://…", shorten(v)),
        ));
    };
    if rest.is_empty()
        || rest.starts_with('/')
        || v.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::new(
            variable,
            format!("{:?} has no host", shorten(v)),
        ));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

fn api_version(v: &str) -> Result<String, ConfigError> {
    if v.eq_ignore_ascii_case("v1") {
        return Ok("v1".to_owned());
    }
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let ok = date.len() == 10
        && date.bytes().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ConfigError::new(
            "AZURE_OPENAI_API_VERSION",
            format!(
                "{:?} is not an API version: use a date such as 2024-10-21 (optionally -preview) or v1",
                shorten(v)
            ),
        ))
    }
}

/// Reads a duration as typed on a command line or in the environment: `90` or `90s` (seconds),
/// `1500ms`, `10m`, `2h`; at least 1 ms and at most a day.
///
/// ```
/// use std::time::Duration;
/// use pim_core::config::parse_duration;
/// assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
/// assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert!(parse_duration("soon").is_err());
/// ```
///
/// # Errors
/// A sentence saying what is accepted.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (t.as_str(), 1_000.0)
    };
    let ms = number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(|n| n * unit_ms)
        .filter(|ms| (1.0..=86_400_000.0).contains(ms));
    match ms {
        Some(ms) => Ok(std::time::Duration::from_millis(ms.round() as u64)),
        None => Err(format!(
            "{:?} is not a duration from 1ms to 24h (e.g. 90s, 10m, 1h)",
            shorten(text)
        )),
    }
}

/// A duration as [`parse_duration`] reads it: `10m`, `90s`, `1500ms`.
pub fn format_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

fn positive(variable: &'static str, v: &str, max: u32) -> Result<u32, ConfigError> {
    match v.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            variable,
            format!("{:?} is not a whole number from 1 to {max}", shorten(v)),
        )),
    }
}

fn shorten(v: &str) -> String {
    v.chars().take(80).collect()
}

/// Reads a `.env` file's text with `dotenvy`: `KEY=VALUE` lines, `#` comments, optional
/// `export `, values optionally in single or double quotes (double-quoted and bare values
/// expand `$NAME` / `${NAME}`; single-quoted ones are taken as written). When a name is given
/// twice the last one wins. Lines that are not assignments are reported by number.
///
/// # Errors
/// The 1-based numbers of the lines that could not be read (0 for a fault `dotenvy` could not
/// tie to a line).
pub fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, Vec<usize>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut map = BTreeMap::new();
    let mut bad = Vec::new();
    // Where to look for the next faulty line: dotenvy names the line's text, not its number.
    let mut cursor = 0;
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                map.insert(key, value);
            }
            Err(dotenvy::Error::LineParse(line, _)) => {
                let first = line.lines().next().unwrap_or_default().trim_end();
                let found = lines
                    .iter()
                    .skip(cursor)
                    .position(|l| l.trim_start_matches('\u{feff}').trim_end() == first);
                match found {
                    Some(i) => {
                        cursor += i + 1;
                        bad.push(cursor);
                    }
                    None => bad.push(0),
                }
            }
            Err(_) => bad.push(0),
        }
    }
    if bad.is_empty() { Ok(map) } else { Err(bad) }
}

/// The variables a binary runs with, and what was left out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The `.env` file's variables under the process's own, which win.
    pub vars: BTreeMap<String, String>,
    /// The names whose value came from `.env` (not overridden by the process).
    pub from_dotenv: std::collections::BTreeSet<String>,
    /// Warnings to log: [`PLATFORM_VARIABLES`] found in `.env` and ignored.
    pub warnings: Vec<String>,
}

/// Where a documented variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The process environment.
    Process,
    /// The `.env` file.
    DotEnv,
}

impl Environment {
    /// The [`VARIABLES`] that are set (not blank), in that order, and where each came from:
    /// what `--check` lists (names only: a value may be a secret).
    pub fn documented(&self) -> Vec<(&'static str, Origin)> {
        VARIABLES
            .iter()
            .filter(|(name, _)| self.vars.get(*name).is_some_and(|v| !v.trim().is_empty()))
            .map(|(name, _)| {
                let origin = if self.from_dotenv.contains(*name) {
                    Origin::DotEnv
                } else {
                    Origin::Process
                };
                (*name, origin)
            })
            .collect()
    }
}

/// The environment a binary runs with: the variables of a `.env` file (its text, if there is
/// one), overridden by the process's own variables (`std::env::vars()`), which always win.
/// [`PLATFORM_VARIABLES`] are taken from the process only.
///
/// # Errors
/// A message naming the `.env` lines that are not `KEY=VALUE` assignments (never their text:
/// a line may hold a secret).
pub fn environment(
    dotenv: Option<&str>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Environment, String> {
    let mut env = match dotenv {
        Some(text) => parse_dotenv(text).map_err(|lines| {
            let lines: Vec<String> = lines
                .iter()
                .map(|n| {
                    if *n == 0 {
                        "?".to_owned()
                    } else {
                        n.to_string()
                    }
                })
                .collect();
            format!(
                ".env: lines {} are not KEY=VALUE assignments",
                lines.join(", ")
            )
        })?,
        None => BTreeMap::new(),
    };
    let mut warnings = Vec::new();
    for name in PLATFORM_VARIABLES {
        if env.remove(*name).is_some() {
            warnings.push(format!(
                ".env: {name} is ignored: the hosting platform sets it in the process environment, where the managed identity credential reads it"
            ));
        }
    }
    let mut from_dotenv: std::collections::BTreeSet<String> = env.keys().cloned().collect();
    for (name, value) in vars {
        from_dotenv.remove(&name);
        env.insert(name, value);
    }
    Ok(Environment {
        vars: env,
        from_dotenv,
        warnings,
    })
}

/// [`environment`] for a `.env` file at `path` (none there is fine).
///
/// # Errors
/// The file exists but cannot be read, or has lines that are not assignments.
pub fn load_environment(
    path: &Path,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Environment, String> {
    let text = if path.is_file() {
        Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
        )
    } else {
        None
    };
    environment(text.as_deref(), vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const WS: &str = "11111111-2222-4333-8444-555555555555";

    #[test]
    fn nothing_configured_is_valid_and_empty() {
        let s = Settings::from_env(&env(&[])).unwrap();
        assert!(s.workspaces.is_empty());
        assert!(s.model.is_none());
        assert_eq!(s.log_analytics_endpoint, DEFAULT_LOG_ANALYTICS_ENDPOINT);
        assert_eq!(s.model_limits.concurrency, 8);
    }

    #[test]
    fn several_workspaces_and_an_azure_openai_deployment() {
        let other = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws2";
        let s = Settings::from_env(&env(&[
            ("LOG_ANALYTICS_WORKSPACE_ID", &format!("{WS}, {other},{WS}")),
            ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/"),
            ("AZURE_OPENAI_DEPLOYMENT", "gpt-4o"),
            ("AZURE_OPENAI_API_VERSION", "v1"),
            ("AZURE_OPENAI_API_KEY", "sk-very-secret"),
            ("PIM_MODEL_RPM", "120"),
        ]))
        .unwrap();
        assert_eq!(s.workspaces, vec![WS.to_owned(), other.to_owned()]);
        let Some(ModelSettings::AzureOpenAi {
            endpoint,
            api_version,
            api_key,
            ..
        }) = &s.model
        else {
            panic!("{:?}", s.model)
        };
        assert_eq!(endpoint, "https://res.openai.azure.com");
        assert_eq!(api_version, "v1");
        assert_eq!(
            api_key.as_ref().map(SecretValue::expose),
            Some("sk-very-secret")
        );
        assert_eq!(s.model_limits.requests_per_minute, Some(120));
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn each_malformed_setting_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("LOG_ANALYTICS_WORKSPACE_ID", "my-workspace")],
                "LOG_ANALYTICS_WORKSPACE_ID",
            ),
            (
                &[("LOG_ANALYTICS_ENDPOINT", "http://evil.example")],
                "LOG_ANALYTICS_ENDPOINT",
            ),
            (
                &[("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")],
                "AZURE_OPENAI_DEPLOYMENT",
            ),
            (&[("AZURE_OPENAI_DEPLOYMENT", "d")], "AZURE_OPENAI_ENDPOINT"),
            (
                &[
                    ("AZURE_OPENAI_ENDPOINT", "https://r"),
                    ("AZURE_OPENAI_DEPLOYMENT", "d"),
                    ("AZURE_OPENAI_API_VERSION", "latest"),
                ],
                "AZURE_OPENAI_API_VERSION",
            ),
            (
                &[("OPENAI_BASE_URL", "https://llm.internal/v1")],
                "OPENAI_MODEL",
            ),
            (
                &[
                    ("OPENAI_BASE_URL", "https://x"),
                    ("AZURE_OPENAI_ENDPOINT", "https://y"),
                ],
                "OPENAI_BASE_URL",
            ),
            (&[("PIM_MODEL_CONCURRENCY", "0")], "PIM_MODEL_CONCURRENCY"),
            (&[("PIM_MODEL_TPM", "lots")], "PIM_MODEL_TPM"),
            (&[("PIM_MODEL_FAMILY", "gpt")], "PIM_MODEL_FAMILY"),
            (
                &[("PIM_MODEL_REASONING_EFFORT", "max")],
                "PIM_MODEL_REASONING_EFFORT",
            ),
            (
                &[("PIM_MODEL_MAX_OUTPUT_TOKENS", "0")],
                "PIM_MODEL_MAX_OUTPUT_TOKENS",
            ),
        ];
        for (pairs, variable) in cases {
            let e = Settings::from_env(&env(pairs)).unwrap_err();
            assert_eq!(e.variable, *variable, "{e}");
            assert!(e.to_string().starts_with(variable), "{e}");
        }
    }

    #[test]
    fn the_api_version_defaults_to_v1_and_model_parameters_are_read() {
        let s = Settings::from_env(&env(&[
            ("AZURE_OPENAI_ENDPOINT", "https://res.services.ai.azure.com"),
            ("AZURE_OPENAI_DEPLOYMENT", "gpt-5-mini"),
        ]))
        .unwrap();
        assert!(
            matches!(&s.model, Some(ModelSettings::AzureOpenAi { api_version, .. }) if api_version == "v1"),
            "{:?}",
            s.model
        );
        assert_eq!(s.model_parameters, pim_openai::ModelParameters::default());
        let s = Settings::from_env(&env(&[
            ("PIM_MODEL_FAMILY", "Reasoning"),
            ("PIM_MODEL_REASONING_EFFORT", "medium"),
            ("PIM_MODEL_MAX_OUTPUT_TOKENS", "8000"),
        ]))
        .unwrap();
        assert_eq!(
            s.model_parameters,
            pim_openai::ModelParameters {
                family: Some(pim_openai::ModelFamily::Reasoning),
                reasoning_effort: pim_openai::ReasoningEffort::Medium,
                max_output_tokens: 8_000,
            }
        );
        let auto = Settings::from_env(&env(&[("PIM_MODEL_FAMILY", "AUTO")])).unwrap();
        assert_eq!(auto.model_parameters.family, None);
    }

    #[test]
    fn loopback_http_is_accepted_for_local_fakes() {
        let s = Settings::from_env(&env(&[(
            "LOG_ANALYTICS_ENDPOINT",
            "http://127.0.0.1:8080/",
        )]))
        .unwrap();
        assert_eq!(s.log_analytics_endpoint, "http://127.0.0.1:8080");
    }

    #[test]
    fn the_process_environment_wins_over_dotenv() {
        let env = environment(
            Some("A=from-file\nB=file-only\n"),
            [("A".to_owned(), "from-process".to_owned())],
        )
        .unwrap();
        assert_eq!(env.vars["A"], "from-process");
        assert_eq!(env.vars["B"], "file-only");
        let e = environment(Some("ok=1\nbroken line\n"), []).unwrap_err();
        assert_eq!(e, ".env: lines 2 are not KEY=VALUE assignments");
    }

    #[test]
    fn dotenv_lines() {
        let text = "# comment\nexport A=1\nB = \"two words\" \nC='x#y'\nD=plain # trailing\n\nnot an assignment\n=bad\n";
        let bad = parse_dotenv(text).unwrap_err();
        assert_eq!(bad, vec![7, 8]);
        let ok = parse_dotenv("A=1\nB = \"two words\"\nC='x#y'\nD=plain # trailing\n").unwrap();
        assert_eq!(ok["A"], "1");
        assert_eq!(ok["B"], "two words");
        assert_eq!(ok["C"], "x#y");
        assert_eq!(ok["D"], "plain");
    }

    /// A value for each variable that must change the settings, with the variables it needs
    /// beside it (set in both runs). Every variable of VARIABLES must have a row.
    /// A variable, a value that must change the settings, and the variables it needs.
    type Sample = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );

    const SN: &str = "https://acme.service-now.com";
    const JIRA: &str = "https://acme.atlassian.net";

    #[test]
    fn ticket_systems_need_a_url_and_one_complete_credential() {
        let s = Settings::from_env(&env(&[
            ("PIM_SERVICENOW_URL", SN),
            ("PIM_SERVICENOW_USER", "svc-pim"),
            ("PIM_SERVICENOW_PASSWORD", "sn-very-secret"),
            ("PIM_JIRA_URL", JIRA),
            ("PIM_JIRA_PAT", "jira-very-secret"),
            ("PIM_JIRA_PROJECTS", " ops, Sec_2 "),
        ]))
        .unwrap();
        assert!(s.tickets.is_configured());
        assert_eq!(s.tickets.jira.as_ref().unwrap().projects, ["OPS", "SEC_2"]);
        let debug = format!("{s:?}");
        assert!(!debug.contains("sn-very-secret") && !debug.contains("jira-very-secret"));
        assert!(debug.contains("svc-pim"), "{debug}");
        assert!(
            !Settings::from_env(&env(&[]))
                .unwrap()
                .tickets
                .is_configured()
        );

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("PIM_SERVICENOW_USER", "u")], "PIM_SERVICENOW_URL"),
            (&[("PIM_SERVICENOW_URL", SN)], "PIM_SERVICENOW_USER"),
            (
                &[("PIM_SERVICENOW_URL", SN), ("PIM_SERVICENOW_USER", "u")],
                "PIM_SERVICENOW_PASSWORD",
            ),
            (
                &[
                    ("PIM_SERVICENOW_URL", SN),
                    ("PIM_SERVICENOW_USER", "u"),
                    ("PIM_SERVICENOW_PASSWORD", "p"),
                    ("PIM_SERVICENOW_TOKEN", "t"),
                ],
                "PIM_SERVICENOW_TOKEN",
            ),
            (
                &[
                    ("PIM_SERVICENOW_URL", "http://acme.service-now.com"),
                    ("PIM_SERVICENOW_TOKEN", "t"),
                ],
                "PIM_SERVICENOW_URL",
            ),
            (&[("PIM_JIRA_PROJECTS", "OPS")], "PIM_JIRA_URL"),
            (
                &[("PIM_JIRA_URL", JIRA), ("PIM_JIRA_PAT", "p")],
                "PIM_JIRA_PROJECTS",
            ),
            (
                &[
                    ("PIM_JIRA_URL", JIRA),
                    ("PIM_JIRA_PAT", "p"),
                    ("PIM_JIRA_PROJECTS", "OPS,1X"),
                ],
                "PIM_JIRA_PROJECTS",
            ),
            (
                &[
                    ("PIM_JIRA_URL", JIRA),
                    ("PIM_JIRA_PAT", "p"),
                    ("PIM_JIRA_API_TOKEN", "t"),
                    ("PIM_JIRA_PROJECTS", "OPS"),
                ],
                "PIM_JIRA_PAT",
            ),
            (
                &[
                    ("PIM_JIRA_URL", JIRA),
                    ("PIM_JIRA_EMAIL", "a@b.c"),
                    ("PIM_JIRA_PROJECTS", "OPS"),
                ],
                "PIM_JIRA_API_TOKEN",
            ),
        ];
        for (pairs, variable) in cases {
            let e = Settings::from_env(&env(pairs)).unwrap_err();
            assert_eq!(e.variable, *variable, "{e}");
        }
    }

    const SAMPLES: &[Sample] = &[
        ("LOG_ANALYTICS_WORKSPACE_ID", WS, &[]),
        (
            "LOG_ANALYTICS_ENDPOINT",
            "https://api.loganalytics.azure.cn",
            &[],
        ),
        (
            "AZURE_OPENAI_ENDPOINT",
            "https://r.openai.azure.com",
            &[("AZURE_OPENAI_DEPLOYMENT", "d")],
        ),
        (
            "AZURE_OPENAI_DEPLOYMENT",
            "d",
            &[("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com")],
        ),
        (
            "AZURE_OPENAI_API_VERSION",
            "2024-10-21",
            &[
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
                ("AZURE_OPENAI_DEPLOYMENT", "d"),
            ],
        ),
        (
            "AZURE_OPENAI_API_KEY",
            "k",
            &[
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
                ("AZURE_OPENAI_DEPLOYMENT", "d"),
            ],
        ),
        (
            "OPENAI_BASE_URL",
            "https://llm.internal/v1",
            &[("OPENAI_MODEL", "m")],
        ),
        (
            "OPENAI_API_KEY",
            "k",
            &[
                ("OPENAI_BASE_URL", "https://llm.internal/v1"),
                ("OPENAI_MODEL", "m"),
            ],
        ),
        (
            "OPENAI_MODEL",
            "m2",
            &[
                ("OPENAI_BASE_URL", "https://llm.internal/v1"),
                ("OPENAI_MODEL", "m"),
            ],
        ),
        ("PIM_MODEL_FAMILY", "reasoning", &[]),
        ("PIM_MODEL_REASONING_EFFORT", "high", &[]),
        ("PIM_MODEL_MAX_OUTPUT_TOKENS", "9000", &[]),
        ("PIM_MODEL_CONCURRENCY", "2", &[]),
        ("PIM_MODEL_RPM", "60", &[]),
        ("PIM_MODEL_TPM", "6000", &[]),
        ("PIM_MODEL_DEADLINE", "90s", &[]),
        ("PIM_AUTH", "cli", &[]),
        ("AZURE_TENANT_ID", "t", &[]),
        ("AZURE_CLIENT_ID", "c", &[]),
        ("AZURE_CLIENT_SECRET", "s", &[]),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token", &[]),
        (
            "AZURE_AUTHORITY_HOST",
            "https://login.chinacloudapi.cn",
            &[],
        ),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi", &[]),
        ("IDENTITY_HEADER", "h", &[]),
        ("PIM_SCAN_HOURS", "6", &[]),
        ("PIM_LOOKBACK_HOURS", "48", &[]),
        ("PIM_MAX_ACTIVITIES", "10", &[]),
        ("PIM_BASELINE_DAYS", "7", &[]),
        ("PIM_QUERY_CONCURRENCY", "2", &[]),
        ("PIM_PRIVILEGED_PATTERNS", "crown, jewel", &[]),
        ("PIM_MAX_REPAIRS", "1", &[]),
        ("PIM_ALLOWED_TABLES", "AuditLogs", &[]),
        (
            "PIM_DCR_ENDPOINT",
            "https://dce.westeurope-1.ingest.monitor.azure.com",
            &[],
        ),
        (
            "PIM_DCR_RULE_ID",
            "dcr-00112233445566778899aabbccddeeff",
            &[],
        ),
        ("PIM_DCR_STREAM", "Custom-Other_CL", &[]),
        ("PIM_DCR_RUN_STREAM", "Custom-Beat_CL", &[]),
        ("PIM_WEBHOOK_URL", "https://hooks.example/x?sig=s", &[]),
        (
            "PIM_SERVICENOW_URL",
            SN,
            &[
                ("PIM_SERVICENOW_USER", "u"),
                ("PIM_SERVICENOW_PASSWORD", "p"),
            ],
        ),
        (
            "PIM_SERVICENOW_USER",
            "svc",
            &[("PIM_SERVICENOW_URL", SN), ("PIM_SERVICENOW_PASSWORD", "p")],
        ),
        (
            "PIM_SERVICENOW_PASSWORD",
            "pw",
            &[("PIM_SERVICENOW_URL", SN), ("PIM_SERVICENOW_USER", "u")],
        ),
        ("PIM_SERVICENOW_TOKEN", "tok", &[("PIM_SERVICENOW_URL", SN)]),
        (
            "PIM_JIRA_URL",
            JIRA,
            &[
                ("PIM_JIRA_EMAIL", "a@b.c"),
                ("PIM_JIRA_API_TOKEN", "t"),
                ("PIM_JIRA_PROJECTS", "OPS"),
            ],
        ),
        (
            "PIM_JIRA_EMAIL",
            "a@b.c",
            &[
                ("PIM_JIRA_URL", JIRA),
                ("PIM_JIRA_API_TOKEN", "t"),
                ("PIM_JIRA_PROJECTS", "OPS"),
            ],
        ),
        (
            "PIM_JIRA_API_TOKEN",
            "t",
            &[
                ("PIM_JIRA_URL", JIRA),
                ("PIM_JIRA_EMAIL", "a@b.c"),
                ("PIM_JIRA_PROJECTS", "OPS"),
            ],
        ),
        (
            "PIM_JIRA_PAT",
            "pat",
            &[("PIM_JIRA_URL", JIRA), ("PIM_JIRA_PROJECTS", "OPS")],
        ),
        (
            "PIM_JIRA_PROJECTS",
            "ops,SEC",
            &[("PIM_JIRA_URL", JIRA), ("PIM_JIRA_PAT", "pat")],
        ),
        ("PIM_STATE", "/var/lib/pim/state.db", &[]),
        ("PIM_SERVE_AUTH", "none", &[]),
        ("PIM_SERVE_TENANT_ID", "t", &[]),
        ("PIM_SERVE_AUTHORITY", "http://127.0.0.1:9/t/v2.0", &[]),
        ("PIM_SERVE_AUDIENCE", "api://pim", &[]),
        ("PIM_SERVE_ROLE", "PIM.Reader", &[]),
        ("PIM_SERVE_MAX_BODY", "1024", &[]),
        ("PIM_SERVE_SESSIONS_PER_USER", "2", &[]),
        ("PIM_SERVE_MESSAGES_PER_MINUTE", "3", &[]),
        ("PIM_SERVE_IDLE", "90s", &[]),
        ("PIM_SERVE_MAX_SESSIONS", "7", &[]),
        ("LOG_LEVEL", "debug", &[]),
        ("LOG_FORMAT", "json", &[]),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318", &[]),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://otel.example/v1/traces",
            &[],
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "https://otel.example/v1/metrics",
            &[],
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k%3D1", &[]),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", &[]),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000", &[]),
        ("OTEL_METRIC_EXPORT_INTERVAL", "15000", &[]),
        ("OTEL_SERVICE_NAME", "pim-nightly", &[]),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod",
            &[],
        ),
        ("OTEL_SDK_DISABLED", "true", &[]),
    ];

    #[test]
    fn every_variable_is_read_by_settings() {
        let names: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
        let sampled: Vec<&str> = SAMPLES.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(
            names, sampled,
            "every variable needs a sample, in VARIABLES order"
        );
        for (name, value, companions) in SAMPLES {
            // Without the variable its companions alone may be an error: compare the results.
            let without = Settings::from_env(&env(companions));
            let mut with = env(companions);
            with.insert((*name).to_owned(), (*value).to_owned());
            let with = Settings::from_env(&with);
            assert!(with.is_ok(), "{name}: {with:?}");
            assert_ne!(
                format!("{without:?}"),
                format!("{with:?}"),
                "{name}={value} changed nothing"
            );
        }
    }

    #[test]
    fn otel_variables_are_decoded_checked_and_their_headers_kept_secret() {
        let s = Settings::from_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                " api-key = s3cr3t%2Cvalue , x-tenant=t1",
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=prod,team=sec%20ops",
            ),
            ("OTEL_SERVICE_NAME", "pim-nightly"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SDK_DISABLED", "FALSE"),
        ]))
        .unwrap();
        let t = &s.telemetry;
        assert!(t.enabled());
        let headers: Vec<(&str, &str)> = t
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(headers, [("api-key", "s3cr3t,value"), ("x-tenant", "t1")]);
        assert_eq!(
            t.resource_attributes,
            [
                ("deployment.environment.name".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "sec ops".to_owned())
            ]
        );
        assert_eq!(t.timeout, Some(Duration::from_millis(2500)));
        assert!(!format!("{s:?}").contains("s3cr3t"), "{s:?}");

        // Off: no endpoint, or disabled.
        assert!(!Settings::from_env(&env(&[])).unwrap().telemetry.enabled());
        let off = Settings::from_env(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]))
        .unwrap();
        assert!(!off.telemetry.enabled());

        for (pairs, variable, never) in [
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")][..],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")][..],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=plain-secret"),
                ][..],
                "OTEL_EXPORTER_OTLP_HEADERS",
                "plain-secret",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=bad%zzsecret")][..],
                "OTEL_EXPORTER_OTLP_HEADERS",
                "secret",
            ),
            (&[("OTEL_SDK_DISABLED", "yes")][..], "OTEL_SDK_DISABLED", ""),
        ] {
            let err = Settings::from_env(&env(pairs)).unwrap_err();
            assert_eq!(err.variable, variable, "{err}");
            if !never.is_empty() {
                assert!(!err.to_string().contains(never), "{err}");
            }
        }
        // Plain http to a collector on this host may carry headers.
        assert!(
            Settings::from_env(&env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn the_new_variables_land_where_the_binaries_read_them() {
        let s = Settings::from_env(&env(&[
            ("PIM_SCAN_HOURS", "6"),
            ("PIM_LOOKBACK_HOURS", "48"),
            ("PIM_MAX_ACTIVITIES", "10"),
            ("PIM_BASELINE_DAYS", "7"),
            ("PIM_QUERY_CONCURRENCY", "2"),
            ("PIM_PRIVILEGED_PATTERNS", " crown, ,jewel "),
            ("PIM_MODEL_DEADLINE", "90s"),
            ("PIM_MAX_REPAIRS", "1"),
            ("PIM_ALLOWED_TABLES", "AuditLogs"),
            ("PIM_DCR_ENDPOINT", "https://dce.example"),
            ("PIM_DCR_RULE_ID", "dcr-1"),
            ("PIM_DCR_STREAM", "Custom-Other_CL"),
            ("PIM_DCR_RUN_STREAM", "Custom-Beat_CL"),
            ("PIM_WEBHOOK_URL", "https://hooks.example/x?sig=very-secret"),
            ("PIM_AUTH", "cli"),
            ("LOG_LEVEL", "debug"),
            ("LOG_FORMAT", "JSON"),
        ]))
        .unwrap();
        assert_eq!(
            s.scan,
            ScanDefaults {
                hours: 6,
                lookback_hours: 48,
                max_activities: 10,
                privileged_patterns: Some(vec!["crown".into(), "jewel".into()]),
                model_deadline: Duration::from_secs(90),
                query_concurrency: 2,
                baseline_days: 7,
            }
        );
        assert_eq!(s.chat.max_repairs, Some(1));
        assert_eq!(s.chat.allowed_tables, vec!["AuditLogs".to_owned()]);
        let li = &s.delivery.logs_ingestion;
        assert_eq!(li.endpoint.as_deref(), Some("https://dce.example"));
        assert_eq!(li.rule_id.as_deref(), Some("dcr-1"));
        assert_eq!(li.stream, "Custom-Other_CL");
        assert_eq!(li.run_stream, "Custom-Beat_CL");
        assert_eq!(
            s.delivery.webhook_url.as_ref().map(Secret::secret),
            Some("https://hooks.example/x?sig=very-secret")
        );
        assert_eq!(s.auth.pinned, Some(pim_auth::AuthMethod::AzureCli));
        assert_eq!(s.logging.level.as_deref(), Some("debug"));
        assert_eq!(s.logging.format, LogFormat::Json);
        assert!(!format!("{s:?}").contains("very-secret"));

        let defaults = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(defaults.scan, ScanDefaults::default());
        assert_eq!(defaults.chat, ChatSettings::default());
        assert_eq!(
            defaults.delivery.logs_ingestion.stream,
            "Custom-PimAudit_CL"
        );
        assert_eq!(defaults.auth.pinned, None);
    }

    #[test]
    fn flags_override_and_bad_new_values_are_named() {
        let mut s = Settings::from_env(&env(&[("PIM_AUTH", "cli")])).unwrap();
        s.pin_auth("managed-identity").unwrap();
        assert_eq!(s.auth.pinned, Some(pim_auth::AuthMethod::ManagedIdentity));
        assert_eq!(s.pin_auth("password").unwrap_err().variable, "--auth");
        for (pairs, variable) in [
            (&[("PIM_SCAN_HOURS", "a day")][..], "PIM_SCAN_HOURS"),
            (&[("PIM_LOOKBACK_HOURS", "-1")][..], "PIM_LOOKBACK_HOURS"),
            (&[("PIM_BASELINE_DAYS", "366")][..], "PIM_BASELINE_DAYS"),
            (&[("PIM_BASELINE_DAYS", "a month")][..], "PIM_BASELINE_DAYS"),
            (&[("PIM_MAX_ACTIVITIES", "many")][..], "PIM_MAX_ACTIVITIES"),
            (
                &[("PIM_PRIVILEGED_PATTERNS", " , ")][..],
                "PIM_PRIVILEGED_PATTERNS",
            ),
            (&[("PIM_ALLOWED_TABLES", ",")][..], "PIM_ALLOWED_TABLES"),
            (&[("PIM_MAX_REPAIRS", "x")][..], "PIM_MAX_REPAIRS"),
            (&[("PIM_MODEL_DEADLINE", "soon")][..], "PIM_MODEL_DEADLINE"),
            (&[("PIM_AUTH", "password")][..], "PIM_AUTH"),
            (&[("LOG_FORMAT", "xml")][..], "LOG_FORMAT"),
        ] {
            let e = Settings::from_env(&env(pairs)).unwrap_err();
            assert_eq!(e.variable, variable, "{e}");
        }
        assert_eq!(
            list("--allowed-tables", [" ", ""], "table")
                .unwrap_err()
                .to_string(),
            "--allowed-tables: set but names no table"
        );
    }

    #[test]
    fn serve_variables_take_effect_from_a_dotenv_file() {
        let dir = std::env::temp_dir().join(format!("pim-core-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(
            &path,
            "PIM_SERVE_AUTH=none\nPIM_SERVE_TENANT_ID=11111111-2222-3333-4444-555555555555\n\
             PIM_SERVE_AUTHORITY=http://127.0.0.1:9/tenant/v2.0/\n\
             PIM_SERVE_AUDIENCE=\"api://pim, 0000-client\"\nPIM_SERVE_ROLE=PIM.Reader\n\
             PIM_SERVE_MAX_BODY=1024\nPIM_SERVE_SESSIONS_PER_USER=2\n\
             PIM_SERVE_MESSAGES_PER_MINUTE=3\nPIM_SERVE_IDLE=90s\nPIM_SERVE_MAX_SESSIONS=7\n",
        )
        .unwrap();
        let loaded = load_environment(&path, []).unwrap();
        let s = Settings::from_env(&loaded.vars).unwrap();
        assert_eq!(
            s.serve,
            ServeSettings {
                auth: ServeAuth::None,
                tenant_id: Some("11111111-2222-3333-4444-555555555555".into()),
                authority: Some("http://127.0.0.1:9/tenant/v2.0".into()),
                audiences: vec!["api://pim".into(), "0000-client".into()],
                role: "PIM.Reader".into(),
                max_body_bytes: 1024,
                sessions_per_user: 2,
                messages_per_minute: 3,
                idle: Duration::from_secs(90),
                max_sessions: 7,
            }
        );
        assert!(
            loaded
                .documented()
                .iter()
                .filter(|(n, o)| n.starts_with("PIM_SERVE_") && *o == Origin::DotEnv)
                .count()
                == 10
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let defaults = Settings::from_env(&env(&[("PIM_SERVE_TENANT_ID", "t1")])).unwrap();
        assert_eq!(defaults.serve.auth, ServeAuth::Entra);
        assert_eq!(defaults.serve.role, "PIM.Auditor");
        assert_eq!(defaults.serve.max_body_bytes, 16 * 1024);
        assert_eq!(
            defaults.serve.authority().as_deref(),
            Some("https://login.microsoftonline.com/t1/v2.0")
        );
        for (pairs, variable) in [
            (&[("PIM_SERVE_AUTH", "basic")][..], "PIM_SERVE_AUTH"),
            (&[("PIM_SERVE_MAX_BODY", "0")][..], "PIM_SERVE_MAX_BODY"),
            (&[("PIM_SERVE_IDLE", "later")][..], "PIM_SERVE_IDLE"),
            (&[("PIM_SERVE_AUDIENCE", " , ")][..], "PIM_SERVE_AUDIENCE"),
        ] {
            assert_eq!(
                Settings::from_env(&env(pairs)).unwrap_err().variable,
                variable
            );
        }
    }

    /// The backticked variable names (`NAME_WITH_UNDERSCORE`) of the README's Configuration
    /// section.
    fn readme_configuration_variables() -> Vec<String> {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("### Configuration")
            .expect("a Configuration section");
        let section = &readme[start + 3..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        let mut names: Vec<String> = section
            .split('`')
            .skip(1)
            .step_by(2)
            // `NAME` or `NAME=value`: the name is the leading run of capitals, digits and `_`.
            .map(|w| {
                let end = w
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(w.len());
                (&w[..end], &w[end..])
            })
            .filter(|(name, rest)| {
                name.contains('_') && name.len() > 3 && (rest.is_empty() || rest.starts_with('='))
            })
            .map(|(name, _)| name.to_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_variable_is_documented_in_the_readme_and_every_documented_one_is_read() {
        let documented = readme_configuration_variables();
        for (name, _) in VARIABLES {
            assert!(
                documented.iter().any(|d| d == name),
                "{name} is read but not documented in README.md's Configuration section"
            );
        }
        for name in &documented {
            assert!(
                VARIABLES.iter().any(|(n, _)| n == name),
                "{name} is documented in README.md's Configuration section but not in VARIABLES"
            );
        }
        let help = variables_help();
        for (name, meaning) in VARIABLES {
            assert!(help.contains(name) && help.contains(meaning), "{name}");
        }
    }

    #[test]
    fn a_dotenv_file_is_read_without_touching_the_process_environment() {
        let dir = std::env::temp_dir().join(format!("pim-core-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(
            &path,
            "PIM_SCAN_HOURS=6\nexport PIM_WEBHOOK_URL='https://hooks.example/x?sig=a$b'\nIDENTITY_HEADER=from-file\nPIM_TEST_ONLY_IN_FILE=1\n",
        )
        .unwrap();
        let loaded =
            load_environment(&path, [("PIM_SCAN_HOURS".to_owned(), "7".to_owned())]).unwrap();
        assert_eq!(loaded.vars["PIM_SCAN_HOURS"], "7", "the process wins");
        assert_eq!(
            loaded.vars["PIM_WEBHOOK_URL"],
            "https://hooks.example/x?sig=a$b"
        );
        assert!(!loaded.vars.contains_key("IDENTITY_HEADER"));
        assert_eq!(
            loaded.documented(),
            vec![
                ("PIM_SCAN_HOURS", Origin::Process),
                ("PIM_WEBHOOK_URL", Origin::DotEnv)
            ]
        );
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("IDENTITY_HEADER"),
            "{:?}",
            loaded.warnings
        );
        assert!(std::env::var_os("PIM_TEST_ONLY_IN_FILE").is_none());
        let missing = load_environment(&dir.join("none"), []).unwrap();
        assert!(missing.vars.is_empty());
        std::fs::write(&path, "A=1\nB=\"unterminated\nC=3\n").unwrap();
        let e = load_environment(&path, []).unwrap_err();
        assert!(e.starts_with(".env: lines 2"), "{e}");
        assert!(!e.contains("unterminated"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
