//! Preflight checks for `pim-batch --check`: is everything a live scan needs in place?
//!
//! [`run`] goes through the checks in a fixed order and returns one [`CheckResult`] per line:
//!
//! 1. `configuration`: the settings parsed (workspaces, model and the variables set listed,
//!    by name, with those from `.env` marked), or the variable at fault;
//! 2. `token <service>`: a token for each scope the configuration needs (Log Analytics when a
//!    workspace is configured, Cognitive Services (or Azure AI for a Foundry project endpoint)
//!    when the Azure OpenAI model uses Entra, Azure
//!    Monitor when a Logs Ingestion destination is configured), which credential supplied it
//!    and when it expires — never the token itself;
//! 3. `workspace`, `table AuditLogs`, `table AzureActivity`: the workspace answers a query and
//!    both tables exist in it;
//! 4. `model`: the model answers a minimal request with a tiny strict `json_schema`; the line
//!    says which model family was detected (and from what), whether structured output works
//!    (or the adapter fell back to `json_object` with local validation), and which request
//!    parameters the service made it adjust;
//! 5. `ticket <system>`: each configured ticket system (`servicenow`, `jira`) reads one ticket
//!    that does not exist (`INC0000000`, `<first project>-0`); a refused credential (401) or a
//!    denied read (403) fails with the variables to fix (issue 14, item 5);
//! 6. `destination <name>`: each alert destination's probe, supplied by the caller.
//!
//! A check that does not apply is [`CheckStatus::Skipped`] with the reason, and so is every
//! check after a configuration error. Every network step runs under
//! [`PreflightInputs::timeout`] so `--check` never hangs. Details and remedies are single lines,
//! cut to a readable length, and scrubbed of the configured API keys and of every token fetched.
//!
//! See: issue 5, "Preflight: `pim-batch --check`".

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use pim_auth::ChainCredential;
use pim_domain::TimeRange;
use pim_domain::timestamp::format_utc;
use pim_loganalytics::{Error as SourceError, KqlSource, LogQuery, LogTable, QueryOutcome};
use pim_openai::{
    ChatMessage, ChatModel, ChatRequest, Error as ModelError, FinishReason, ResponseFormat,
    StructuredOutput,
};
use time::OffsetDateTime;

use crate::config::{ConfigError, ModelSettings, Origin, Settings};

/// The default limit on each network step (one token, one query, one model call, one probe).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Token scope of the Log Analytics query API in the public cloud; the check requests
/// [`pim_loganalytics::log_analytics_scope`] of the configured endpoint, as the client does.
pub const LOG_ANALYTICS_SCOPE: &str = pim_loganalytics::LOG_ANALYTICS_SCOPE;
/// Token scope of Azure OpenAI with Entra authentication in the public cloud; the check
/// requests [`pim_openai::entra_scope_for`] the configured endpoint, as the adapter does.
pub const COGNITIVE_SERVICES_SCOPE: &str = pim_openai::COGNITIVE_SERVICES_SCOPE;
/// Token scope of the Azure Monitor Logs Ingestion API in the public cloud; the check requests
/// [`pim_domain::cloud::monitor_scope`] of the data collection endpoint, as the client does.
pub const MONITOR_SCOPE: &str = pim_domain::cloud::MONITOR_SCOPE;

/// How far back the table checks look; only whether the table resolves decides pass or fail,
/// the row count is information.
const TABLE_LOOKBACK: time::Duration = time::Duration::days(7);

/// Details longer than this are cut: an HTML error page must not flood the terminal.
const MAX_TEXT_CHARS: usize = 600;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// The check succeeded.
    Pass,
    /// The check failed; the result carries a remedy.
    Fail,
    /// The check does not apply (nothing configured for it, or an earlier check failed).
    Skipped,
}

impl CheckStatus {
    /// The fixed-width label printed at the start of a line: `PASS`, `FAIL` or `SKIP`.
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skipped => "SKIP",
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One line of the preflight output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// What was checked, e.g. `token log-analytics` or `table AzureActivity`.
    pub name: String,
    /// Pass, fail or skipped.
    pub status: CheckStatus,
    /// What was found (on one line; never a token or key).
    pub detail: String,
    /// How to fix a failure.
    pub remedy: Option<String>,
}

impl CheckResult {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Pass, detail, None)
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Fail, detail, Some(remedy.into()))
    }

    fn skip(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Skipped, reason, None)
    }

    fn new(
        name: impl Into<String>,
        status: CheckStatus,
        detail: impl Into<String>,
        remedy: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
            remedy,
        }
    }
}

impl fmt::Display for CheckResult {
    /// `PASS  name — detail`, `SKIP  name — reason` or `FAIL  name — detail; fix: remedy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {} — {}", self.status, self.name, self.detail)?;
        match (&self.status, &self.remedy) {
            (CheckStatus::Fail, Some(remedy)) => write!(f, "; fix: {remedy}"),
            _ => Ok(()),
        }
    }
}

/// The credential the checks fetch tokens with, and how to name it.
///
/// [`ChainCredential`] names the method that actually supplied a token only after it has
/// fetched one, so it is kept as such and asked after the first token. Any other
/// `TokenCredential` (a static token in tests, an embedder's own) comes with a fixed label.
#[derive(Clone)]
pub enum CredentialSource {
    /// The credential chain built by [`crate::live::credential`].
    Chain(Arc<ChainCredential>),
    /// Any other credential, with a label for the output (e.g. "static test token").
    Other {
        /// The credential.
        credential: Arc<dyn TokenCredential>,
        /// What to call it in the output.
        label: String,
    },
    /// No credential could be built (e.g. `--auth`/`PIM_AUTH` names a method that is not
    /// configured); the reason (already free of secrets, e.g. a `pim_auth::Error`'s text) fails
    /// every token check that is needed.
    Unavailable(String),
}

impl CredentialSource {
    /// The credential itself, when there is one.
    pub fn credential(&self) -> Option<Arc<dyn TokenCredential>> {
        match self {
            CredentialSource::Chain(chain) => Some(chain.clone()),
            CredentialSource::Other { credential, .. } => Some(credential.clone()),
            CredentialSource::Unavailable(_) => None,
        }
    }

    /// What supplies the tokens: the chain's selected method (after a token was fetched), or
    /// the label.
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Chain(chain) => chain.describe(),
            CredentialSource::Other { label, .. } => label.clone(),
            CredentialSource::Unavailable(_) => "no credential".to_owned(),
        }
    }
}

impl From<Arc<ChainCredential>> for CredentialSource {
    fn from(chain: Arc<ChainCredential>) -> Self {
        CredentialSource::Chain(chain)
    }
}

impl fmt::Debug for CredentialSource {
    // By hand: a caller's credential might print a secret in its own Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Chain(chain) => write!(f, "Chain({})", chain.describe()),
            CredentialSource::Other { label, .. } => write!(f, "Other({label})"),
            CredentialSource::Unavailable(reason) => write!(f, "Unavailable({reason})"),
        }
    }
}

/// A probe of one alert destination, supplied by the caller (destinations live in another
/// crate). The future resolves to a description of what answered, or to the reason it failed;
/// a reason of the form `"<problem>; fix: <remedy>"` is split into detail and remedy.
pub struct Destination {
    /// The destination's name, e.g. `logs-ingestion` or `webhook`.
    pub name: String,
    /// The probe; it must not print secrets in its answer.
    pub probe: Pin<Box<dyn Future<Output = Result<String, String>> + Send>>,
}

impl Destination {
    /// A destination named `name`, probed by `probe`.
    pub fn new(
        name: impl Into<String>,
        probe: impl Future<Output = Result<String, String>> + Send + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            probe: Box::pin(probe),
        }
    }
}

impl From<Arc<dyn pim_deliver::Destination>> for Destination {
    /// The probe of a configured destination, under its own name.
    fn from(destination: Arc<dyn pim_deliver::Destination>) -> Self {
        let name = destination.name();
        Self::new(name, async move { destination.probe().await })
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Everything the checks need; the binary builds the clients the same way a scan would.
#[derive(Debug)]
pub struct PreflightInputs<'a> {
    /// The validated settings, or the first configuration error.
    pub settings: Result<&'a Settings, &'a ConfigError>,
    /// The credential; `None` when the caller built none (a needed token check then fails).
    pub credential: Option<CredentialSource>,
    /// The Log Analytics client for the configured workspaces (e.g. [`crate::live::log_analytics`]).
    pub source: Option<Arc<dyn KqlSource>>,
    /// The configured model (e.g. [`crate::live::chat_model`]).
    pub model: Option<Arc<dyn ChatModel>>,
    /// The alert destinations to probe, in order.
    pub destinations: Vec<Destination>,
    /// The ticket systems to probe, in order (see [`PreflightInputs::add_ticket_systems`]);
    /// each is a `ticket <system>` line.
    pub ticket_systems: Vec<Destination>,
    /// The Azure tokens the configured destinations will ask for
    /// ([`pim_deliver::Destination::token_need`], e.g. Azure Monitor for Logs Ingestion, with
    /// the scope of the endpoint's cloud); each gets a `token <service>` check.
    pub destination_tokens: Vec<pim_deliver::TokenNeed>,
    /// The documented variables that are set and where each came from
    /// ([`crate::config::Environment::documented`]): listed, by name only, on the
    /// configuration line.
    pub variables: Vec<(&'static str, Origin)>,
    /// The current time: the end of the table checks' time range, and the reference for token
    /// expiry (library code never reads the clock).
    pub now: OffsetDateTime,
    /// The limit on each network step.
    pub timeout: Duration,
}

impl<'a> PreflightInputs<'a> {
    /// Adds the configured destinations: each one's probe, and the token it will ask for.
    pub fn add_destinations(&mut self, destinations: &[Arc<dyn pim_deliver::Destination>]) {
        for d in destinations {
            self.destination_tokens.extend(d.token_need());
            self.destinations.push(Destination::from(d.clone()));
        }
    }

    /// Adds the probe of every ticket system the verifier holds (reading a ticket that does not
    /// exist), named by its system.
    pub fn add_ticket_systems(&mut self, verifier: &pim_tickets::TicketVerifier) {
        for system in verifier.systems() {
            let name = system.kind().as_str().to_owned();
            self.ticket_systems
                .push(Destination::new(name, async move { system.probe().await }));
        }
    }

    /// Inputs with only the settings and the time: no credential, clients or destinations,
    /// [`DEFAULT_TIMEOUT`]. Set the other fields directly.
    pub fn new(settings: Result<&'a Settings, &'a ConfigError>, now: OffsetDateTime) -> Self {
        Self {
            settings,
            credential: None,
            source: None,
            model: None,
            destinations: Vec::new(),
            ticket_systems: Vec::new(),
            destination_tokens: Vec::new(),
            variables: Vec::new(),
            now,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Whether every check passed or was skipped (the `--check` exit status: 0 when true).
pub fn all_passed(results: &[CheckResult]) -> bool {
    results.iter().all(|r| r.status != CheckStatus::Fail)
}

/// Runs every check in order and returns one result per line of output.
///
/// Never fails and never panics: every problem becomes a [`CheckStatus::Fail`] with a remedy.
pub async fn run(inputs: PreflightInputs<'_>) -> Vec<CheckResult> {
    let mut run = Run {
        results: Vec::new(),
        secrets: Vec::new(),
        timeout: inputs.timeout,
    };
    let settings = match inputs.settings {
        Ok(settings) => {
            run.secrets.extend(configured_secrets(settings));
            let mut detail = describe_settings(settings);
            if !inputs.variables.is_empty() {
                let names: Vec<String> = inputs
                    .variables
                    .iter()
                    .map(|(name, origin)| match origin {
                        Origin::Process => (*name).to_owned(),
                        Origin::DotEnv => format!("{name} (.env)"),
                    })
                    .collect();
                detail.push_str(&format!("; variables set: {}", names.join(", ")));
            }
            run.push(CheckResult::pass("configuration", detail));
            settings
        }
        Err(e) => {
            run.push(CheckResult::fail(
                "configuration",
                e.to_string(),
                format!(
                    "set {} correctly in the environment or the .env file, then run --check again",
                    e.variable
                ),
            ));
            let reason = "skipped: the configuration is invalid";
            for name in ["token", "workspace", "model", "ticket", "destination"] {
                run.push(CheckResult::skip(name, reason));
            }
            return run.results;
        }
    };

    run.tokens(
        settings,
        inputs.credential.as_ref(),
        &inputs.destination_tokens,
        inputs.now,
    )
    .await;
    run.workspace(settings, inputs.source.as_deref(), inputs.now)
        .await;
    run.model(settings, inputs.model.as_deref()).await;
    run.tickets(settings, inputs.ticket_systems).await;
    run.destinations(inputs.destinations).await;
    run.results
}

struct Run {
    results: Vec<CheckResult>,
    /// Keys and tokens that must never appear in a line, however an error came to quote them.
    secrets: Vec<String>,
    timeout: Duration,
}

impl Run {
    fn push(&mut self, mut result: CheckResult) {
        result.detail = self.clean(&result.detail);
        result.remedy = result.remedy.map(|r| self.clean(&r));
        self.results.push(result);
    }

    fn clean(&self, text: &str) -> String {
        // Secrets go first, before the cut, so no part of one can survive it; then one clean
        // line (multi-line errors, such as the credential chain's list of attempts, included).
        let mut raw = text.to_owned();
        for secret in &self.secrets {
            if !secret.is_empty() {
                raw = raw.replace(secret.as_str(), "[REDACTED]");
            }
        }
        pim_domain::text::log_field(&raw, MAX_TEXT_CHARS)
    }

    fn seconds(&self) -> String {
        format!("{} s", self.timeout.as_secs_f64())
    }

    async fn tokens(
        &mut self,
        settings: &Settings,
        credential: Option<&CredentialSource>,
        destination_tokens: &[pim_deliver::TokenNeed],
        now: OffsetDateTime,
    ) {
        // Each scope comes from the same function the adapter calls on the same endpoint, so
        // the check tests exactly the token the run will ask for.
        let mut needed: Vec<(String, &str, &str)> = Vec::new();
        if !settings.workspaces.is_empty() {
            let endpoint = settings.log_analytics_endpoint.as_str();
            needed.push((
                "token log-analytics".to_owned(),
                pim_loganalytics::log_analytics_scope(endpoint),
                endpoint,
            ));
        }
        if let Some(ModelSettings::AzureOpenAi {
            api_key: None,
            endpoint,
            ..
        }) = &settings.model
        {
            needed.push((
                "token azure-openai".to_owned(),
                pim_openai::entra_scope_for(endpoint),
                endpoint.as_str(),
            ));
        }
        for need in destination_tokens {
            needed.push((
                format!("token {}", need.service),
                need.scope.as_str(),
                need.endpoint.as_str(),
            ));
        }
        if needed.is_empty() {
            self.push(CheckResult::skip(
                "token",
                "no configured service needs an Azure token (no workspace, no Entra-authenticated model, no Logs Ingestion destination)",
            ));
            return;
        }
        for (name, scope, endpoint) in needed {
            let result = self.token(&name, scope, endpoint, credential, now).await;
            self.push(result);
        }
    }

    async fn token(
        &mut self,
        name: &str,
        scope: &str,
        endpoint: &str,
        source: Option<&CredentialSource>,
        now: OffsetDateTime,
    ) -> CheckResult {
        let cloud = pim_domain::cloud::describe_choice(endpoint);
        let sign_in = "sign in with an identity of the tenant: `az login`, AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET for a service principal, or run with a managed identity; PIM_AUTH (or --auth) pins one method";
        let Some(source) = source else {
            return CheckResult::fail(
                name,
                format!("no credential to get a token for {scope}"),
                sign_in,
            );
        };
        let Some(credential) = source.credential() else {
            let reason = match source {
                CredentialSource::Unavailable(reason) => reason.clone(),
                _ => String::new(),
            };
            let (detail, remedy) = split_fix(&reason);
            return CheckResult::fail(
                name,
                format!("no credential could be built: {detail}"),
                remedy.unwrap_or_else(|| sign_in.to_owned()),
            );
        };
        let answer = tokio::time::timeout(self.timeout, credential.get_token(&[scope], None)).await;
        match answer {
            Err(_) => CheckResult::fail(
                name,
                format!("no token for {scope} ({cloud}) within {}", self.seconds()),
                "check network access to Microsoft Entra ID (login.microsoftonline.com) and, on Azure, to the managed identity endpoint",
            ),
            Ok(Err(e)) => CheckResult::fail(
                name,
                format!("no token for {scope} ({cloud}): {e}"),
                // The chain's message lists a fix per method it tried; point at those first.
                format!("apply the fix listed for the method you mean to use, or {sign_in}"),
            ),
            Ok(Ok(token)) => {
                self.secrets.push(token.token.secret().to_owned());
                let from = source.describe();
                let expires = format_utc(token.expires_on);
                if token.expires_on <= now {
                    CheckResult::fail(
                        name,
                        format!("{scope} from {from} expired at {expires}"),
                        "sign in again (e.g. `az login`): the credential handed out an expired token",
                    )
                } else {
                    CheckResult::pass(
                        name,
                        format!("{scope} ({cloud}) from {from}, expires {expires}"),
                    )
                }
            }
        }
    }

    async fn workspace(
        &mut self,
        settings: &Settings,
        source: Option<&dyn KqlSource>,
        now: OffsetDateTime,
    ) {
        if settings.workspaces.is_empty() {
            self.push(CheckResult::skip(
                "workspace",
                "no workspace configured (LOG_ANALYTICS_WORKSPACE_ID is not set)",
            ));
            return;
        }
        let workspaces = settings.workspaces.join(", ");
        let Some(source) = source else {
            self.push(CheckResult::fail(
                "workspace",
                format!("no Log Analytics client was built for {workspaces}"),
                "check LOG_ANALYTICS_WORKSPACE_ID and LOG_ANALYTICS_ENDPOINT, and the token check above",
            ));
            return;
        };
        let timespan = TimeRange::new(now - TABLE_LOOKBACK, now);
        let mut tables = Vec::new();
        for table in LogTable::ALL {
            let query = LogQuery {
                label: format!("preflight {table}"),
                // Free-form KQL: a workspace resolves the table name, which is the point.
                table: None,
                kql: format!("{} | take 1 | count", table.name()),
                timespan,
                scope: None,
            };
            let answer = tokio::time::timeout(self.timeout, source.query(&query)).await;
            let answer = match answer {
                Err(_) => {
                    self.push(CheckResult::fail(
                        "workspace",
                        format!(
                            "{workspaces} did not answer `{}` within {}",
                            query.kql,
                            self.seconds()
                        ),
                        format!(
                            "check network access to {} (proxy, firewall, private link) and the service health of the workspace's region",
                            settings.log_analytics_endpoint
                        ),
                    ));
                    return self.skip_tables("the workspace did not answer");
                }
                Ok(answer) => answer,
            };
            match answer {
                Ok(outcome) => tables.push((table, TableState::Present(outcome))),
                Err(SourceError::BadQuery {
                    semantic: true,
                    message,
                    ..
                }) => {
                    tables.push((table, TableState::Missing(message)));
                }
                Err(e) => {
                    let remedy = workspace_remedy(&e, settings);
                    self.push(CheckResult::fail(
                        "workspace",
                        workspace_problem(&e, &workspaces),
                        remedy,
                    ));
                    return self.skip_tables("the workspace did not answer");
                }
            }
        }
        self.push(CheckResult::pass(
            "workspace",
            format!(
                "{workspaces} at {} answers queries",
                settings.log_analytics_endpoint
            ),
        ));
        for (table, state) in tables {
            let result = table_result(table, state);
            self.push(result);
        }
    }

    fn skip_tables(&mut self, reason: &str) {
        for table in LogTable::ALL {
            self.push(CheckResult::skip(
                format!("table {table}"),
                format!("skipped: {reason}"),
            ));
        }
    }

    async fn model(&mut self, settings: &Settings, model: Option<&dyn ChatModel>) {
        let Some(configured) = &settings.model else {
            self.push(CheckResult::skip(
                "model",
                "no model configured (AZURE_OPENAI_ENDPOINT / OPENAI_BASE_URL not set): the rules alone assess",
            ));
            return;
        };
        let Some(model) = model else {
            self.push(CheckResult::fail(
                "model",
                format!("no model client was built for {}", describe_model(configured)),
                "check the model settings (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT, AZURE_OPENAI_API_VERSION, or OPENAI_BASE_URL, OPENAI_MODEL)",
            ));
            return;
        };
        // Minimal but real: a strict schema of one property, so the check also tells whether
        // structured output works on this deployment (reference §10.5).
        let request = ChatRequest {
            max_tokens: Some(20),
            temperature: 0.0,
            response_format: Some(ResponseFormat::JsonSchema {
                name: "pim_check".to_owned(),
                schema: serde_json::json!({
                    "type": "object",
                    "properties": {"ok": {"type": "boolean"}},
                    "required": ["ok"],
                    "additionalProperties": false
                }),
                strict: true,
            }),
            ..ChatRequest::new(vec![ChatMessage::user(
                "This is a connectivity check. Answer with the JSON object {\"ok\": true}.",
            )])
        };
        let described = model.describe();
        let answer = tokio::time::timeout(self.timeout, model.complete(&request)).await;
        let profile = model.profile();
        let family = match (&profile.family, &profile.family_source) {
            (Some(f), Some(source)) => format!("family {f} (from {source})"),
            (Some(f), None) => format!("family {f}"),
            (None, _) => "family unknown (standard parameters)".to_owned(),
        };
        let mut learned = family;
        if !profile.adjustments.is_empty() {
            learned.push_str(&format!("; adjusted: {}", profile.adjustments.join("; ")));
        }
        let result = match answer {
            Err(_) => CheckResult::fail(
                "model",
                format!("{described} did not answer within {}", self.seconds()),
                "check network access to the model endpoint and the deployment's health; a busy deployment may need more quota",
            ),
            Ok(Ok(reply)) => match &reply.finish_reason {
                FinishReason::ContentFilter => CheckResult::fail(
                    "model",
                    format!("{described} withheld its answer to a trivial prompt (content filter)"),
                    content_filter_remedy(),
                ),
                FinishReason::Length if reply.content.as_deref().is_none_or(str::is_empty) => {
                    CheckResult::fail(
                        "model",
                        format!(
                            "{described} spent its whole output cap ({} tokens) without answering; {learned}",
                            reply.usage.completion_tokens
                        ),
                        "a reasoning model needs room for its hidden reasoning: raise PIM_MODEL_MAX_OUTPUT_TOKENS, or lower PIM_MODEL_REASONING_EFFORT",
                    )
                }
                reason => {
                    let structured = match (profile.structured_output, structured_ok(&reply)) {
                        (StructuredOutput::JsonObjectFallback, true) => {
                            "structured output: json_schema rejected, json_object works (answers validated locally)"
                        }
                        (StructuredOutput::JsonObjectFallback, false) => {
                            "structured output: json_schema rejected, and the json_object answer was not the requested object"
                        }
                        (_, true) => "structured output: json_schema works",
                        (_, false) => {
                            "structured output: json_schema was accepted but the answer was not the requested object"
                        }
                    };
                    CheckResult::pass(
                        "model",
                        format!(
                            "{described} answered (finish: {}, {} tokens); {learned}; {structured}",
                            finish_name(reason),
                            reply.usage.total_tokens
                        ),
                    )
                }
            },
            Ok(Err(e)) => CheckResult::fail(
                "model",
                format!("{described}: {e}; {learned}"),
                model_remedy(&e, configured),
            ),
        };
        self.push(result);
    }

    async fn tickets(&mut self, settings: &Settings, systems: Vec<Destination>) {
        if systems.is_empty() {
            let reason = if settings.tickets.is_configured() {
                "a ticket system is configured but its client was not passed to the check"
            } else {
                "no ticket system configured (PIM_SERVICENOW_URL, PIM_JIRA_URL): cited tickets are listed, not verified"
            };
            self.push(CheckResult::skip("ticket", reason));
            return;
        }
        for system in systems {
            let name = format!("ticket {}", system.name);
            let result = match tokio::time::timeout(self.timeout, system.probe).await {
                Err(_) => CheckResult::fail(
                    name,
                    format!("no answer within {}", self.seconds()),
                    "check the ticket system's URL and network access to it",
                ),
                Ok(Ok(what)) => CheckResult::pass(name, what),
                Ok(Err(reason)) => {
                    let (detail, remedy) = split_fix(&reason);
                    CheckResult::fail(
                        name,
                        detail,
                        remedy.unwrap_or_else(|| {
                            "check the ticket system's URL and credentials".to_owned()
                        }),
                    )
                }
            };
            self.push(result);
        }
    }

    async fn destinations(&mut self, destinations: Vec<Destination>) {
        if destinations.is_empty() {
            self.push(CheckResult::skip(
                "destination",
                "no alert destination configured",
            ));
            return;
        }
        for destination in destinations {
            let name = format!("destination {}", destination.name);
            let result = match tokio::time::timeout(self.timeout, destination.probe).await {
                Err(_) => CheckResult::fail(
                    name,
                    format!("no answer within {}", self.seconds()),
                    "check the destination's URL and network access to it",
                ),
                Ok(Ok(what)) => CheckResult::pass(name, what),
                Ok(Err(reason)) => {
                    let (detail, remedy) = split_fix(&reason);
                    CheckResult::fail(
                        name,
                        detail,
                        remedy.unwrap_or_else(|| {
                            "check the destination's settings, its credentials and network access to it".to_owned()
                        }),
                    )
                }
            };
            self.push(result);
        }
    }
}

enum TableState {
    Present(QueryOutcome),
    /// The workspace answered with a semantic error: the table does not resolve there.
    Missing(String),
}

fn table_result(table: LogTable, state: TableState) -> CheckResult {
    let name = format!("table {table}");
    match state {
        TableState::Present(outcome) => {
            if let Some(partial) = outcome.partial_error {
                return CheckResult::fail(
                    name,
                    format!("{table} answered only in part: {partial}"),
                    "check that the identity can read every workspace in LOG_ANALYTICS_WORKSPACE_ID",
                );
            }
            let rows = match single_count(&outcome) {
                Some(0) => {
                    ", but has no rows in the last 7 days (is the diagnostic setting still sending?)"
                }
                Some(_) => ", with rows in the last 7 days",
                None => "",
            };
            CheckResult::pass(name, format!("{table} exists{rows}"))
        }
        TableState::Missing(message) => {
            let remedy = match table {
                LogTable::AuditLogs => {
                    "send the Microsoft Entra audit logs here: Microsoft Entra ID → Monitoring → Diagnostic settings → add a setting with AuditLogs to this workspace; or add the workspace that already holds AuditLogs to LOG_ANALYTICS_WORKSPACE_ID (comma-separated)"
                }
                LogTable::AzureActivity => {
                    "send the subscription activity log here: Subscription → Activity log → Export Activity Logs (diagnostic setting, all categories) to this workspace, for each subscription audited; or add the workspace that already holds AzureActivity to LOG_ANALYTICS_WORKSPACE_ID (comma-separated)"
                }
            };
            CheckResult::fail(
                name,
                format!("{table} does not exist in the workspace: {message}"),
                remedy,
            )
        }
    }
}

/// The `count` of a `… | count` answer: one table, one row, one numeric cell.
fn single_count(outcome: &QueryOutcome) -> Option<u64> {
    let [table] = outcome.tables.as_slice() else {
        return None;
    };
    if table.columns.len() != 1 || table.len() != 1 {
        return None;
    }
    let cell = table.cell(0, 0)?;
    cell.as_u64()
        .or_else(|| cell.as_str().and_then(|s| s.parse().ok()))
}

/// What went wrong, without the advice some error messages carry (it becomes the remedy).
fn workspace_problem(e: &SourceError, workspaces: &str) -> String {
    let code = |c: &Option<String>| c.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
    match e {
        SourceError::AccessDenied {
            status,
            code: c,
            message,
            ..
        } => format!(
            "access to {workspaces} was denied (HTTP {status}{}: {message})",
            code(c)
        ),
        SourceError::WorkspaceNotFound {
            endpoint,
            code: c,
            message,
            ..
        } => format!(
            "{workspaces} was not found at {endpoint} (HTTP 404{}: {message})",
            code(c)
        ),
        _ => format!("{workspaces}: {e}"),
    }
}

fn workspace_remedy(e: &SourceError, settings: &Settings) -> String {
    match e {
        SourceError::AccessDenied { status, code, .. } => {
            let code = code.as_deref().unwrap_or_default();
            if code.eq_ignore_ascii_case("InvalidAuthenticationTokenAudience") {
                format!(
                    "the token must be issued for {} (the scope of {}'s cloud); check LOG_ANALYTICS_ENDPOINT",
                    pim_loganalytics::log_analytics_scope(&settings.log_analytics_endpoint),
                    settings.log_analytics_endpoint
                )
            } else if *status == 401 || code.eq_ignore_ascii_case("InvalidAuthenticationToken") {
                "sign in again (e.g. `az login`) and check that the credential signs in to the workspace's tenant".to_owned()
            } else {
                "grant the identity the tool runs as the role Log Analytics Reader (or Reader) on each workspace; role assignments can take a few minutes to apply".to_owned()
            }
        }
        SourceError::WorkspaceNotFound { .. } => {
            "check LOG_ANALYTICS_WORKSPACE_ID (the Workspace ID GUID from the workspace's overview page, or its full ARM resource id) and LOG_ANALYTICS_ENDPOINT".to_owned()
        }
        SourceError::Credential { .. } => {
            "fix the credential first (see the token check above)".to_owned()
        }
        SourceError::InvalidConfig { .. } => {
            "check LOG_ANALYTICS_WORKSPACE_ID and LOG_ANALYTICS_ENDPOINT".to_owned()
        }
        SourceError::Unsupported { .. } => {
            "--check needs a live workspace: set LOG_ANALYTICS_WORKSPACE_ID".to_owned()
        }
        _ => format!(
            "check network access to {} (proxy, firewall, private link); if the service is throttling or failing, retry in a few minutes",
            settings.log_analytics_endpoint
        ),
    }
}

/// Whether a check answer is the requested `{"ok": true}` object.
fn structured_ok(reply: &pim_openai::ChatResponse) -> bool {
    reply
        .content
        .as_deref()
        .map(pim_openai::strip_reasoning_preamble)
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .is_some_and(|v| v == serde_json::json!({"ok": true}))
}

fn model_remedy(e: &ModelError, configured: &ModelSettings) -> String {
    let key_variable = match configured {
        ModelSettings::AzureOpenAi {
            api_key: Some(_), ..
        } => Some("AZURE_OPENAI_API_KEY"),
        ModelSettings::OpenAiCompatible {
            api_key: Some(_), ..
        } => Some("OPENAI_API_KEY"),
        _ => None,
    };
    let where_variables = match configured {
        ModelSettings::AzureOpenAi { .. } => {
            "AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT (the deployment name, not the model name) and AZURE_OPENAI_API_VERSION"
        }
        ModelSettings::OpenAiCompatible { .. } => "OPENAI_BASE_URL and OPENAI_MODEL",
    };
    match e {
        ModelError::ContentFilter { .. } => content_filter_remedy().to_owned(),
        ModelError::Http { status: 401, .. } => match key_variable {
            Some(var) => format!("check {var}: it must be a current key of this resource"),
            None => format!(
                "the Entra token was rejected: it must be issued for {} in the resource's tenant, or set AZURE_OPENAI_API_KEY",
                match configured {
                    ModelSettings::AzureOpenAi { endpoint, .. } => pim_openai::entra_scope_for(endpoint),
                    ModelSettings::OpenAiCompatible { .. } => COGNITIVE_SERVICES_SCOPE,
                }
            ),
        },
        ModelError::Http { status: 403, .. } => match key_variable {
            Some(_) => "check the resource's network rules and that key (local) authentication is enabled".to_owned(),
            None => "grant the identity the role Cognitive Services OpenAI User on the Azure OpenAI resource; role assignments can take a few minutes to apply".to_owned(),
        },
        ModelError::Http { status: 404, .. } => format!("check {where_variables}"),
        ModelError::Credential(_) => "fix the credential first (see the token check above)".to_owned(),
        ModelError::Config(_) => format!("check {where_variables}"),
        ModelError::RateLimited { .. } => {
            "the deployment is out of quota right now: raise its tokens-per-minute quota, or lower PIM_MODEL_RPM / PIM_MODEL_TPM and retry later".to_owned()
        }
        _ => "check network access to the model endpoint and the deployment's health, then retry".to_owned(),
    }
}

fn content_filter_remedy() -> &'static str {
    "the deployment's content filter blocks a trivial prompt: review the content filtering configuration assigned to the deployment"
}

fn finish_name(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Other(other) => other,
    }
}

/// The keys held in the settings; they must never appear in a line.
fn configured_secrets(settings: &Settings) -> Vec<String> {
    match &settings.model {
        Some(ModelSettings::AzureOpenAi {
            api_key: Some(k), ..
        })
        | Some(ModelSettings::OpenAiCompatible {
            api_key: Some(k), ..
        }) => {
            vec![k.expose().to_owned()]
        }
        _ => Vec::new(),
    }
    .into_iter()
    .chain(
        settings
            .delivery
            .webhook_url
            .as_ref()
            .map(|u| u.secret().to_owned()),
    )
    .chain(ticket_secrets(&settings.tickets))
    .collect()
}

fn ticket_secrets(t: &crate::config::TicketSettings) -> Vec<String> {
    let mut out = Vec::new();
    match t.servicenow.as_ref().map(|s| &s.auth) {
        Some(pim_tickets::ServiceNowAuth::Basic { password, .. }) => {
            out.push(password.secret().to_owned());
        }
        Some(pim_tickets::ServiceNowAuth::OAuth(token)) => out.push(token.secret().to_owned()),
        None => {}
    }
    match t.jira.as_ref().map(|j| &j.auth) {
        Some(pim_tickets::JiraAuth::Cloud { api_token, .. }) => {
            out.push(api_token.secret().to_owned());
        }
        Some(pim_tickets::JiraAuth::DataCenter(pat)) => out.push(pat.secret().to_owned()),
        None => {}
    }
    out
}

fn describe_settings(settings: &Settings) -> String {
    let workspaces = if settings.workspaces.is_empty() {
        "no workspace".to_owned()
    } else {
        format!(
            "workspace{} {} at {}",
            if settings.workspaces.len() == 1 {
                ""
            } else {
                "s"
            },
            settings.workspaces.join(", "),
            settings.log_analytics_endpoint
        )
    };
    let model = settings.model.as_ref().map_or_else(
        || "no model (rules only)".to_owned(),
        |m| format!("model: {}", describe_model(m)),
    );
    let auth = settings.auth.pinned.map_or_else(
        || "auth: credential chain".to_owned(),
        |a| format!("auth: {a}"),
    );
    format!("{workspaces}; {model}; {auth}")
}

fn describe_model(model: &ModelSettings) -> String {
    match model {
        ModelSettings::AzureOpenAi {
            endpoint,
            deployment,
            api_version,
            api_key,
        } => format!(
            "Azure OpenAI deployment {deployment} at {} (api {api_version}, {})",
            without_userinfo(endpoint),
            if api_key.is_some() {
                "api key"
            } else {
                "Entra token"
            }
        ),
        ModelSettings::OpenAiCompatible {
            base_url,
            api_key,
            model,
        } => format!(
            "{model} at {} (OpenAI-compatible, {})",
            without_userinfo(base_url),
            if api_key.is_some() {
                "api key"
            } else {
                "no key"
            }
        ),
    }
}

/// A URL without `user:password@` and without query or fragment, which may carry credentials.
fn without_userinfo(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(host_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}{path}")
}

/// `"<problem>; fix: <remedy>"` split in two (the shape `pim-auth` errors use).
fn split_fix(text: &str) -> (String, Option<String>) {
    match text.rsplit_once("; fix: ") {
        Some((detail, remedy)) if !remedy.trim().is_empty() => {
            (detail.to_owned(), Some(remedy.trim().to_owned()))
        }
        _ => (text.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_documented() {
        let pass = CheckResult::pass("workspace", "ws answers queries");
        assert_eq!(pass.to_string(), "PASS  workspace — ws answers queries");
        let fail = CheckResult::fail("model", "HTTP 401", "check the key");
        assert_eq!(
            fail.to_string(),
            "FAIL  model — HTTP 401; fix: check the key"
        );
        let skip = CheckResult::skip("destination", "none configured");
        assert_eq!(skip.to_string(), "SKIP  destination — none configured");
    }

    #[test]
    fn skipped_counts_as_passed() {
        let skip = CheckResult::skip("a", "b");
        let pass = CheckResult::pass("a", "b");
        assert!(all_passed(&[skip.clone(), pass.clone()]));
        assert!(all_passed(&[]));
        assert!(!all_passed(&[pass, CheckResult::fail("c", "d", "e"), skip]));
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            without_userinfo("https://user:pw@llm.internal:8443/v1?key=abc#x"),
            "https://llm.internal:8443/v1"
        );
        assert_eq!(
            without_userinfo("https://res.openai.azure.com"),
            "https://res.openai.azure.com"
        );
        assert_eq!(without_userinfo("not a url"), "not a url");
    }

    #[test]
    fn text_is_one_clean_line() {
        let run = Run {
            results: Vec::new(),
            secrets: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(run.clean("a\n- b\r\n\u{1b}[2Jc\t"), "a - b [2Jc");
        assert_eq!(
            split_fix("no token; fix: run `az login`"),
            ("no token".to_owned(), Some("run `az login`".to_owned()))
        );
        assert_eq!(split_fix("plain"), ("plain".to_owned(), None));
    }

    #[test]
    fn secrets_and_long_text_are_scrubbed() {
        let run = Run {
            results: Vec::new(),
            secrets: vec!["sk-123".to_owned(), String::new()],
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(run.clean("key sk-123 rejected"), "key [REDACTED] rejected");
        let long = "é".repeat(5_000);
        // The shared log-field rule counts the mark inside the bound (issue 11).
        let cut = run.clean(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
        assert!(cut.ends_with('…'));
    }
}
