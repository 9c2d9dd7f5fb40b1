//! Configuration from the environment (or a `.env` file), validated up front.
//!
//! Library code never reads the process environment: the binary gathers a snapshot (its own
//! environment over a `.env` file) and passes it to [`Settings::from_env`], which reports the
//! first missing or malformed setting by its variable name.

use std::collections::BTreeMap;
use std::fmt;

/// Default Log Analytics query endpoint.
pub const DEFAULT_LOG_ANALYTICS_ENDPOINT: &str = "https://api.loganalytics.azure.com";
/// Default Azure OpenAI API version: the version-less `v1` API (the only one the `gpt-5`
/// family is documented for).
pub const DEFAULT_OPENAI_API_VERSION: &str = "v1";
/// Default number of model assessments in flight at once.
pub const DEFAULT_MODEL_CONCURRENCY: usize = 8;

/// Every variable [`Settings::from_env`] reads, for documentation and for `--check`.
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
        "PIM_AUTH",
        "pin one credential: env, workload-identity, managed-identity, cli, azd",
    ),
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
];

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

/// Everything the live sources need.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A pinned credential method (`PIM_AUTH`), as given.
    pub auth: Option<String>,
}

impl Settings {
    /// Reads and validates the settings from an environment snapshot.
    ///
    /// # Errors
    /// The first missing or malformed setting, named by its variable, with the fix.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

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
        Ok(Self {
            workspaces,
            log_analytics_endpoint,
            model,
            model_limits,
            model_parameters,
            auth: get("PIM_AUTH").map(str::to_owned),
        })
    }
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

/// Reads a `.env` file's text: `KEY=VALUE` lines, `#` comments, optional `export `, values
/// optionally in single or double quotes. Lines that are not assignments are reported by number.
///
/// # Errors
/// The 1-based numbers of the lines that could not be read.
pub fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, Vec<usize>> {
    let mut map = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bad.push(i + 1);
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bad.push(i + 1);
            continue;
        }
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(e)) if value.len() >= 2 && e == q => {
                &value[1..value.len() - 1]
            }
            _ => value.split(" #").next().unwrap_or(value).trim(),
        };
        map.insert(key.to_owned(), value.to_owned());
    }
    if bad.is_empty() { Ok(map) } else { Err(bad) }
}

/// The environment a binary runs with: the variables of a `.env` file (its text, if there is
/// one), overridden by the process's own variables (`std::env::vars()`), which always win.
///
/// # Errors
/// A message naming the `.env` lines that are not `KEY=VALUE` assignments.
pub fn environment(
    dotenv: Option<&str>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = match dotenv {
        Some(text) => parse_dotenv(text).map_err(|lines| {
            let lines: Vec<String> = lines.iter().map(ToString::to_string).collect();
            format!(
                ".env: lines {} are not KEY=VALUE assignments",
                lines.join(", ")
            )
        })?,
        None => BTreeMap::new(),
    };
    env.extend(vars);
    Ok(env)
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
        assert_eq!(env["A"], "from-process");
        assert_eq!(env["B"], "file-only");
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
}
