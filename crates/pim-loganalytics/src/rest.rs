//! The Azure Log Analytics query API adapter (feature `azure`).
//!
//! One [`LogQuery`] becomes one `POST {endpoint}/v1/workspaces/{id}/query` with the KQL and the
//! time range as an ISO-8601 interval; extra workspaces ride along in the body's `workspaces`
//! list, so a cross-workspace scan is still one request. The bearer token comes from an
//! `azure_core` [`TokenCredential`] on every attempt (credentials cache tokens, so this is cheap)
//! and is marked sensitive so that neither reqwest nor this crate ever prints it.
//!
//! Answers map onto [`QueryOutcome`] or one specific [`Error`]: a `PartialError` next to the
//! tables is kept as [`QueryOutcome::partial_error`], 204 is one empty table, a 400 becomes
//! [`Error::BadQuery`] with the innermost line, position and token, 401/403 become
//! [`Error::AccessDenied`] naming the role to grant, 404 [`Error::WorkspaceNotFound`].
//! Throttling, 5xx, timeouts and transport failures are retried with the shared
//! [`RetryPolicy`] through `pim-http`'s driver; when it gives up the caller gets
//! [`Error::RetriesExhausted`], and a server wait longer than what is left of the budget is
//! [`Error::ServerWaitTooLong`] at once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use pim_domain::cloud::AzureCloud;
use pim_domain::retry::RetryPolicy;
use pim_domain::text;
use pim_domain::{DataProblem, Table};
use pim_http::Stop;
use pim_http::transport::TransportKind;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::is_retryable_status;
use crate::{
    Error, KqlSource, LogQuery, QueryOutcome, Result, SourceCapabilities, SourceInfo, SourceKind,
};

/// Identities per activity query: keeps the KQL text well under the query API's size limits
/// while still making a handful of queries for thousands of users.
const MAX_IDENTITIES_PER_QUERY: usize = 200;

/// Answers of at least this many bytes are parsed on a blocking thread, not on the task that
/// awaits the query: a scan polls all its queries on one task (issue 12, item 3).
const PARSE_ELSEWHERE_BYTES: usize = 1024 * 1024;

/// The public-cloud query endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.loganalytics.azure.com";

/// The token scope of the Log Analytics query API in the public cloud.
pub const LOG_ANALYTICS_SCOPE: &str = "https://api.loganalytics.io/.default";

/// The token scope of the Log Analytics query API in Azure China (`api.loganalytics.azure.cn`).
pub const LOG_ANALYTICS_SCOPE_CHINA: &str = "https://api.loganalytics.azure.cn/.default";

/// The token scope of the Log Analytics query API in Azure US Government (`api.loganalytics.us`).
pub const LOG_ANALYTICS_SCOPE_US_GOVERNMENT: &str = "https://api.loganalytics.us/.default";

/// The token scope for the query endpoint `endpoint`: that cloud's audience (reference §3.1),
/// the public one ([`LOG_ANALYTICS_SCOPE`]) for a host of no known cloud. The client and
/// `--check` both call this, so they can never disagree.
///
/// ```
/// use pim_loganalytics::log_analytics_scope;
/// assert_eq!(log_analytics_scope("https://api.loganalytics.azure.com"), "https://api.loganalytics.io/.default");
/// assert_eq!(log_analytics_scope("https://api.loganalytics.azure.cn/"), "https://api.loganalytics.azure.cn/.default");
/// assert_eq!(log_analytics_scope("https://api.loganalytics.us"), "https://api.loganalytics.us/.default");
/// ```
pub fn log_analytics_scope(endpoint: &str) -> &'static str {
    AzureCloud::pick(
        AzureCloud::of_endpoint(endpoint),
        [
            LOG_ANALYTICS_SCOPE,
            LOG_ANALYTICS_SCOPE_CHINA,
            LOG_ANALYTICS_SCOPE_US_GOVERNMENT,
        ],
    )
}

/// The longest server-side wait the service accepts (`Prefer: wait=600`).
const MAX_SERVER_WAIT: Duration = Duration::from_secs(600);

/// Service-provided text kept in errors is cut to this many characters: enough for any real
/// KQL error, small enough that an HTML error page cannot flood a terminal or a prompt.
const MAX_MESSAGE_CHARS: usize = 1000;

/// The connection phase gets its own, shorter limit, so an unreachable host fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`LogAnalyticsClient`]; `Default` gives the public cloud and the service's
/// default server wait.
#[derive(Clone)]
pub struct LogAnalyticsOptions {
    /// The API base URL, default [`DEFAULT_ENDPOINT`] (e.g. `https://api.loganalytics.azure.cn`
    /// in China). Must be `https`, except on a loopback host (tests).
    pub endpoint: String,
    /// Longest time one HTTP attempt may take, body included (default 200 s). Keep it above
    /// `server_wait`, so that a slow query ends with the service's own 504 rather than a
    /// client-side timeout.
    pub request_timeout: Duration,
    /// How long the service may run the query, sent as `Prefer: wait=<seconds>` (default 180 s,
    /// at most 600 s, rounded up to whole seconds).
    pub server_wait: Duration,
    /// Retries of throttled (429) and transiently failing (5xx, timeout, transport) attempts.
    pub retry: RetryPolicy,
    /// An HTTP client to use instead of a new one (shared connection pools, proxies). The
    /// request timeout is still applied to every request.
    pub client: Option<reqwest::Client>,
}

impl Default for LogAnalyticsOptions {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            request_timeout: Duration::from_secs(200),
            server_wait: Duration::from_secs(180),
            retry: RetryPolicy::default(),
            client: None,
        }
    }
}

impl fmt::Debug for LogAnalyticsOptions {
    // By hand: a caller's client may carry default headers, which we never print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogAnalyticsOptions")
            .field("endpoint", &self.endpoint)
            .field("request_timeout", &self.request_timeout)
            .field("server_wait", &self.server_wait)
            .field("retry", &self.retry)
            .field("custom_client", &self.client.is_some())
            .finish()
    }
}

/// A [`KqlSource`] source backed by the Log Analytics query REST API.
///
/// Cheap to share (`Arc<dyn KqlSource>`); requests may run concurrently.
pub struct LogAnalyticsClient {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    endpoint: String,
    /// The token scope of the endpoint's cloud ([`log_analytics_scope`]).
    scope: &'static str,
    /// The workspace in the URL path.
    primary: String,
    /// Every configured workspace, the primary first.
    workspaces: Vec<String>,
    url: String,
    prefer: String,
    request_timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for LogAnalyticsClient {
    // By hand: the credential is left out entirely (a caller's implementation might print a
    // secret in its Debug), and so is the HTTP client.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogAnalyticsClient")
            .field("endpoint", &self.endpoint)
            .field("scope", &self.scope)
            .field("workspaces", &self.workspaces)
            .field("prefer", &self.prefer)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl LogAnalyticsClient {
    /// A client for one or more workspaces, each a workspace GUID (customer id) or a full ARM
    /// resource id (`/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/…`).
    ///
    /// With several workspaces every query runs over their union (the body's `workspaces`
    /// list). The request goes to the first GUID in the list (or, when all are ARM ids, to the
    /// first one's resource path); duplicates are dropped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when no workspace is given, an id is neither a GUID nor a
    /// workspace ARM id, the endpoint is not an `https` URL (plain `http` is accepted only for
    /// loopback hosts, as the token would otherwise cross the network in clear), the request
    /// timeout is zero, the server wait is zero or above 600 s, or the HTTP client cannot be
    /// built.
    pub fn new(
        workspaces: Vec<String>,
        credential: Arc<dyn TokenCredential>,
        options: Option<LogAnalyticsOptions>,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        let workspaces = validate_workspaces(workspaces)?;
        let endpoint = validate_endpoint(&options.endpoint)?;
        if options.request_timeout.is_zero() {
            return Err(config("request_timeout must be more than zero"));
        }
        if options.server_wait.is_zero() || options.server_wait > MAX_SERVER_WAIT {
            return Err(config(format!(
                "server_wait must be between 1 s and 600 s (the service's maximum), got {} ms",
                options.server_wait.as_millis()
            )));
        }
        let wait_secs =
            options.server_wait.as_secs() + u64::from(options.server_wait.subsec_nanos() > 0);
        let http = match options.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(options.request_timeout)
                .connect_timeout(CONNECT_TIMEOUT.min(options.request_timeout))
                // The API never redirects; refusing keeps the token on the configured host.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?,
        };
        let primary = workspaces
            .iter()
            .find(|w| is_guid(w))
            .or_else(|| workspaces.first())
            .cloned()
            .ok_or_else(|| config("no workspace id given"))?;
        let mut ordered = vec![primary.clone()];
        ordered.extend(workspaces.into_iter().filter(|w| *w != primary));
        let url = if is_guid(&primary) {
            format!("{endpoint}/v1/workspaces/{primary}/query")
        } else {
            // A workspace ARM id is queried on its resource path, `/v1/subscriptions/…/query`.
            format!("{endpoint}/v1{primary}/query")
        };
        Ok(Self {
            http,
            credential,
            scope: log_analytics_scope(&endpoint),
            endpoint,
            primary,
            workspaces: ordered,
            url,
            prefer: format!("wait={wait_secs}"),
            request_timeout: options.request_timeout,
            retry: options.retry,
        })
    }

    /// The workspaces queried, the one in the URL path first.
    pub fn workspaces(&self) -> &[String] {
        &self.workspaces
    }

    /// The API base URL, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The token scope requested for every call: [`log_analytics_scope`] of the endpoint.
    pub fn scope(&self) -> &'static str {
        self.scope
    }

    fn workspace_label(&self) -> String {
        self.workspaces.join(", ")
    }

    async fn token(&self) -> Result<Secret> {
        self.credential
            .get_token(&[self.scope], None)
            .await
            .map(|t| t.token)
            .map_err(|e| Error::Credential {
                scope: self.scope.to_owned(),
                message: e.to_string(),
            })
    }

    /// One attempt: a token, one request, one classified answer.
    async fn attempt(&self, body: &RequestBody<'_>) -> Result<QueryOutcome> {
        let token = self.token().await?;
        let response = self
            .http
            .post(&self.url)
            // `bearer_auth` marks the header value sensitive, so reqwest's and hyper's Debug
            // output shows it as `Sensitive`.
            .bearer_auth(token.secret())
            .header(CONTENT_TYPE, "application/json")
            .header("Prefer", &self.prefer)
            .timeout(self.request_timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e, "sending the query"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, "reading the answer"))?;
        tracing::debug!(
            status = status.as_u16(),
            bytes = bytes.len(),
            "log analytics answered"
        );
        // A large answer (up to ~100 MB at the service's limit) is parsed on a blocking
        // thread: parsing it takes a second or more, and on the caller's task it would hold up
        // every other query of the scan polled there, their sending and their reading
        // (issue 12, item 3).
        let parsed = if status == StatusCode::OK && bytes.len() >= PARSE_ELSEWHERE_BYTES {
            let body = bytes.clone();
            tokio::task::spawn_blocking(move || serde_json::from_slice::<ResponseBody>(&body))
                .await
                .ok()
        } else {
            None
        };
        let answer = Answer {
            status,
            headers: &headers,
            body: &bytes,
            secret: token.secret(),
        };
        answer.classify(self, parsed)
    }

    fn transport_error(&self, e: reqwest::Error, doing: &str) -> Error {
        if TransportKind::of(&e) == TransportKind::Timeout {
            Error::Timeout {
                after: self.request_timeout,
            }
        } else {
            Error::Transport {
                context: format!("log analytics at {}: {doing} failed", self.endpoint),
                source: Box::new(e),
            }
        }
    }
}

#[async_trait::async_trait]
impl KqlSource for LogAnalyticsClient {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::LogAnalytics,
            description: format!(
                "Log Analytics workspace {} at {}",
                self.workspace_label(),
                self.endpoint
            ),
            default_end: None,
        }
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            runs_arbitrary_kql: true,
            max_identities_per_query: Some(MAX_IDENTITIES_PER_QUERY),
            splits_by_time: true,
        }
    }

    async fn query(&self, query: &LogQuery) -> Result<QueryOutcome> {
        let body = RequestBody {
            query: &query.kql,
            timespan: query.timespan.to_iso_interval(),
            workspaces: &self.workspaces[1..],
        };
        let label = &query.label;
        let run = pim_http::retry::run(&self.retry, "log analytics query", |attempt| {
            tracing::debug!(label = %label, attempt, "log analytics query");
            self.attempt(&body)
        });
        match run.await {
            Ok((outcome, _retries)) => Ok(outcome),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::Exhausted {
                last,
                attempts,
                elapsed,
            }) => Err(Error::RetriesExhausted {
                attempts,
                elapsed,
                last: Box::new(last),
            }),
            Err(Stop::ServerWaitTooLong {
                last,
                attempts,
                asked,
                remaining,
                ..
            }) => Err(Error::ServerWaitTooLong {
                attempts,
                asked,
                remaining,
                last: Box::new(last),
            }),
        }
    }
}

impl pim_http::Retryable for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        Error::retry_after(self)
    }
}

/// The request body. `workspaces` is left out for a single workspace.
#[derive(Serialize)]
struct RequestBody<'a> {
    query: &'a str,
    timespan: String,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    workspaces: &'a [String],
}

/// A successful answer: tables, and an `error` object when the result is partial.
#[derive(Deserialize)]
struct ResponseBody {
    tables: Option<Vec<Table>>,
    #[serde(default)]
    error: Option<Value>,
}

/// One HTTP answer, before it becomes an outcome or an error.
struct Answer<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
    body: &'a [u8],
    /// The bearer token of the request, scrubbed from any text kept from the answer.
    secret: &'a str,
}

impl Answer<'_> {
    /// `parsed` is the body already parsed as a success, if it was (see
    /// [`PARSE_ELSEWHERE_BYTES`]).
    fn classify(
        &self,
        client: &LogAnalyticsClient,
        parsed: Option<serde_json::Result<ResponseBody>>,
    ) -> Result<QueryOutcome> {
        let status = self.status.as_u16();
        match status {
            200 => self.tables(parsed),
            204 => Ok(QueryOutcome {
                tables: vec![Table {
                    name: "PrimaryResult".to_owned(),
                    ..Table::default()
                }],
                ..QueryOutcome::default()
            }),
            _ if self.status.is_success() => Err(Error::InvalidResponse {
                status,
                message: "unexpected success status; expected 200 or 204".to_owned(),
            }),
            _ => Err(self.failure(client)),
        }
    }

    fn tables(&self, parsed: Option<serde_json::Result<ResponseBody>>) -> Result<QueryOutcome> {
        let invalid = |message: String| Error::InvalidResponse {
            status: 200,
            message,
        };
        if self.body.iter().all(u8::is_ascii_whitespace) {
            // The service answers a POST without a JSON body or Content-Type this way.
            return Err(invalid(
                "the body is empty (the service does this when the request lacks a JSON body or Content-Type)".to_owned(),
            ));
        }
        let parsed = parsed.unwrap_or_else(|| serde_json::from_slice(self.body));
        let body: ResponseBody = parsed.map_err(|e| {
            invalid(format!(
                "expected {{\"tables\": [{{\"name\", \"columns\", \"rows\"}}]}}: {}",
                self.clean(&e.to_string())
            ))
        })?;
        let error = body
            .error
            .as_ref()
            .filter(|e| !e.is_null())
            .map(ApiError::read);
        let Some(mut tables) = body.tables else {
            let detail = error
                .map(|e| format!(" (it holds an error instead: {})", self.clean(&e.summary())))
                .unwrap_or_default();
            return Err(invalid(format!("the answer has no \"tables\"{detail}")));
        };
        let mut problems = Vec::new();
        for table in &mut tables {
            fit_rows(table, &mut problems);
        }
        // Any error next to tables means the tables may be incomplete; the service uses
        // `PartialError`, but an unknown code must not pass as complete data either.
        let partial_error = error.map(|e| self.clean(&e.summary()));
        if let Some(partial) = &partial_error {
            tracing::warn!(error = %partial, "log analytics returned a partial result");
        }
        // A cut at a service limit is told apart from other partial errors (reference §9.2):
        // the caller can split the query and get the rest.
        let truncation = body
            .error
            .as_ref()
            .and_then(limit_exceeded)
            .map(|message| crate::Truncation::LimitExceeded {
                message: self.clean(&message),
            })
            .or_else(|| {
                tables
                    .iter()
                    .map(Table::len)
                    .find(|&rows| rows == crate::MAX_ROWS_PER_QUERY)
                    .map(|rows| crate::Truncation::RowLimit { rows })
            });
        Ok(QueryOutcome {
            tables,
            partial_error,
            problems,
            scoped: None,
            truncation,
        })
    }

    fn failure(&self, client: &LogAnalyticsClient) -> Error {
        let status = self.status.as_u16();
        let api = serde_json::from_slice::<Value>(self.body)
            .ok()
            .and_then(|v| v.get("error").filter(|e| e.is_object()).map(ApiError::read));
        let (code, message) = match &api {
            Some(api) => (api.code.clone(), self.clean(&api.message)),
            None => (None, self.raw_message()),
        };
        let code = code.map(|c| self.clean(&c));
        match status {
            400 => {
                let api = api.unwrap_or_default();
                Error::BadQuery {
                    code: api.innermost_code.map(|c| self.clean(&c)).or(code),
                    message,
                    line: api.line,
                    pos: api.pos,
                    token: api.token.map(|t| self.clean(&t)),
                    semantic: api.semantic,
                }
            }
            401 | 403 => Error::AccessDenied {
                status,
                code,
                message,
                workspace: client.workspace_label(),
            },
            404 => Error::WorkspaceNotFound {
                workspace: client.primary.clone(),
                endpoint: client.endpoint.clone(),
                code,
                message,
            },
            _ => Error::Http {
                status,
                code,
                message,
                retry_after: if is_retryable_status(status) {
                    pim_http::retry_after::from_headers(self.headers)
                } else {
                    None
                },
            },
        }
    }

    fn raw_message(&self) -> String {
        let text = String::from_utf8_lossy(self.body);
        if text.trim().is_empty() {
            "(empty body)".to_owned()
        } else {
            self.clean(text.trim())
        }
    }

    /// Service text made safe to print: the token scrubbed first (should a proxy echo the
    /// request; before the cut, so no part of it survives), then one clean, capped log field.
    fn clean(&self, raw: &str) -> String {
        text::log_field(
            &pim_http::secret::scrub(raw, &[self.secret]),
            MAX_MESSAGE_CHARS,
        )
    }
}

/// Gives every row exactly one cell per column: short rows are padded with null (as
/// [`Table`] documents), cells past the last column are dropped and reported.
fn fit_rows(table: &mut Table, problems: &mut Vec<DataProblem>) {
    let width = table.columns.len();
    let mut long = 0usize;
    for row in &mut table.rows {
        if row.len() > width {
            long += 1;
            row.truncate(width);
        } else if row.len() < width {
            row.resize(width, Value::Null);
        }
    }
    if long > 0 {
        problems.push(DataProblem::source(
            "log analytics",
            format!(
                "{long} row(s) of table {} had more cells than its {width} columns; the extra cells were dropped",
                table.name
            ),
        ));
    }
}

/// The parts of an API `error` object a caller needs, read defensively (any field may be
/// missing or of the wrong type).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ApiError {
    /// The top-level code, e.g. `BadArgumentError` or `PartialError`.
    code: Option<String>,
    /// The innermost code, e.g. `SYN0002`.
    innermost_code: Option<String>,
    /// The innermost message (the top-level one when nothing is nested).
    message: String,
    line: Option<u32>,
    pos: Option<u32>,
    token: Option<String>,
    /// Some code in the chain marks a semantic error.
    semantic: bool,
}

impl ApiError {
    fn read(error: &Value) -> Self {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let number = |v: &Value, key: &str| {
            v.get(key).and_then(|n| match n {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
        };
        let mut out = ApiError {
            code: text(error, "code"),
            message: text(error, "message").unwrap_or_default(),
            ..ApiError::default()
        };
        let mut current = error;
        // Depth-capped: a hostile or broken document cannot keep us walking.
        for depth in 0..32 {
            if let Some(code) = text(current, "code") {
                out.semantic |= is_semantic_code(&code);
                if depth > 0 {
                    out.innermost_code = Some(code);
                }
            }
            if depth > 0 {
                if let Some(m) = text(current, "message").filter(|m| !m.is_empty()) {
                    out.message = m;
                }
                out.line = number(current, "line").or(out.line);
                out.pos = number(current, "pos").or(out.pos);
                out.token = text(current, "token").or(out.token.take());
            }
            // Fatal errors nest `innererror` (re-cased `innerError` by some clients); a
            // PartialError puts its cause in `details`.
            let next = current
                .get("innererror")
                .or_else(|| current.get("innerError"))
                .or_else(|| current.get("details").and_then(|d| d.get(0)));
            match next {
                Some(inner) if inner.is_object() => current = inner,
                _ => break,
            }
        }
        out.semantic |= out.message.contains("Failed to resolve");
        out
    }

    /// `CODE: innermost message`.
    fn summary(&self) -> String {
        match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// The message of the first node of an API `error` that says the result was cut at the
/// service's size limit: an `innererror` code [`RESULT_SET_TOO_LARGE_CODE`](crate::RESULT_SET_TOO_LARGE_CODE)
/// (a string on the wire; a number is accepted too) or a message naming
/// `E_QUERY_RESULT_SET_TOO_LARGE` (reference §9.2). Every `details` entry and every nested
/// `innererror` is searched, depth- and breadth-capped against hostile documents.
fn limit_exceeded(error: &Value) -> Option<String> {
    let mut stack: Vec<(&Value, usize)> = vec![(error, 0)];
    let mut visited = 0usize;
    while let Some((node, depth)) = stack.pop() {
        visited += 1;
        if visited > 256 || depth > 32 || !node.is_object() {
            continue;
        }
        let code_matches = match node.get("code") {
            Some(Value::String(c)) => c.trim() == crate::RESULT_SET_TOO_LARGE_CODE,
            Some(Value::Number(n)) => n.to_string() == crate::RESULT_SET_TOO_LARGE_CODE,
            _ => false,
        };
        let message = node.get("message").and_then(Value::as_str).unwrap_or("");
        if code_matches || message.contains(crate::RESULT_SET_TOO_LARGE_NAME) {
            return Some(if message.is_empty() {
                crate::RESULT_SET_TOO_LARGE_NAME.to_owned()
            } else {
                message.to_owned()
            });
        }
        for key in ["innererror", "innerError"] {
            if let Some(inner) = node.get(key) {
                stack.push((inner, depth + 1));
            }
        }
        if let Some(Value::Array(details)) = node.get("details") {
            stack.extend(details.iter().take(64).rev().map(|d| (d, depth + 1)));
        }
    }
    None
}

fn is_semantic_code(code: &str) -> bool {
    // `SemanticError`, or a numbered `SEMnnnn` code.
    let numbered = code.split_at_checked(3).is_some_and(|(prefix, digits)| {
        prefix.eq_ignore_ascii_case("SEM")
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
    });
    numbered || code.eq_ignore_ascii_case("SemanticError")
}

fn config(message: impl Into<String>) -> Error {
    Error::InvalidConfig {
        message: message.into(),
    }
}

fn validate_endpoint(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|e| config(format!("endpoint {trimmed:?} is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !ok_scheme || host.is_empty() {
        return Err(config(format!(
            "endpoint {trimmed:?} must be an https URL such as {DEFAULT_ENDPOINT} (plain http only on a loopback host)"
        )));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(config(format!(
            "endpoint {trimmed:?} must be a base URL without user, query or fragment"
        )));
    }
    Ok(trimmed.to_owned())
}

fn validate_workspaces(workspaces: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(workspaces.len());
    for raw in workspaces {
        let id = raw.trim();
        if id.is_empty() {
            return Err(config("a workspace id is empty"));
        }
        if !is_guid(id) && !is_workspace_arm_id(id) {
            let shown = text::log_field(id, 200);
            return Err(config(format!(
                "workspace id {shown:?} is neither a GUID (the workspace's customer id, e.g. 00000000-0000-0000-0000-000000000000) nor an ARM resource id (/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.OperationalInsights/workspaces/<name>)"
            )));
        }
        if !out.iter().any(|w| w.eq_ignore_ascii_case(id)) {
            out.push(id.to_owned());
        }
    }
    if out.is_empty() {
        return Err(config(
            "no workspace id given (set at least one Log Analytics workspace GUID or ARM id)",
        ));
    }
    Ok(out)
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_workspace_arm_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let [
        "",
        subscriptions,
        subscription,
        resource_groups,
        group,
        providers,
        provider,
        kind,
        name,
    ] = parts.as_slice()
    else {
        return false;
    };
    // Only characters that need no escaping in a URL path: the id is spliced into one.
    let plain = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'(' | b')'))
    };
    subscriptions.eq_ignore_ascii_case("subscriptions")
        && is_guid(subscription)
        && resource_groups.eq_ignore_ascii_case("resourceGroups")
        && plain(group)
        && providers.eq_ignore_ascii_case("providers")
        && provider.eq_ignore_ascii_case("Microsoft.OperationalInsights")
        && kind.eq_ignore_ascii_case("workspaces")
        && plain(name)
}

#[cfg(test)]
mod tests;
