//! The one error type of this crate.

use std::time::Duration;

/// Everything that can go wrong while delivering findings.
///
/// Which failures are worth retrying is decided by [`Error::is_retryable`]; the clients already
/// retry those with their [`RetryPolicy`](pim_domain::retry::RetryPolicy), so a caller that gets
/// one back has seen the policy give up ([`Error::RetriesExhausted`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed (endpoint, DCR id, stream name, URL, limits).
    #[error("invalid delivery settings: {message}")]
    InvalidConfig {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The credential could not produce a token for the scope.
    #[error("could not get a token for {scope}: {message}")]
    Credential {
        /// The scope asked for.
        scope: String,
        /// The credential's own message.
        message: String,
    },
    /// 401 or 403 from the Logs Ingestion API: the identity may not write to the rule.
    #[error(
        "logs ingestion refused the identity (HTTP {status}{code}): grant Monitoring Metrics Publisher on the data collection rule {dcr} to the identity (a new role assignment can take up to 30 minutes to apply); the service said: {message}",
        code = code_suffix(code.as_deref())
    )]
    AccessDenied {
        /// 401 or 403.
        status: u16,
        /// The DCR immutable id the request named.
        dcr: String,
        /// The `x-ms-error-code` header or the body's `error.code`.
        code: Option<String>,
        /// The service's message, cleaned and shortened.
        message: String,
    },
    /// A 4xx the service will answer the same way again (400 bad stream or payload, 404 unknown
    /// rule, 401/403 from a webhook, ...).
    #[error("{target} rejected the request (HTTP {status}{code}): {message}{hint}",
        code = code_suffix(code.as_deref()),
        hint = hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    Rejected {
        /// Who answered: `logs ingestion at <endpoint>` or `webhook <scheme://host/path>`.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The `x-ms-error-code` header or the body's `error.code`.
        code: Option<String>,
        /// The service's message, cleaned and shortened.
        message: String,
        /// What to check, when the status makes it clear.
        hint: Option<String>,
    },
    /// A throttling (429) or server-side (408, 5xx) answer; retryable.
    #[error(
        "{target} answered HTTP {status}{code}{wait}: {message}",
        code = code_suffix(code.as_deref()),
        wait = pim_domain::retry::wait_hint(*retry_after)
    )]
    Unavailable {
        /// Who answered.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The `x-ms-error-code` header or the body's `error.code`.
        code: Option<String>,
        /// The service's message, cleaned and shortened.
        message: String,
        /// How long the service asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// One row alone serialises to more than the per-call limit, so it can never be sent.
    #[error(
        "the row for activation {activation_id} is {bytes} bytes as JSON, over the {limit}-byte limit of one Logs Ingestion call"
    )]
    RowTooLarge {
        /// The activation the row describes.
        activation_id: String,
        /// Its serialised size.
        bytes: usize,
        /// The body limit in force.
        limit: usize,
    },
    /// One attempt took longer than the request timeout; retryable.
    #[error("{target} did not answer within {} ms", after.as_millis())]
    Timeout {
        /// Who was called.
        target: String,
        /// The request timeout.
        after: Duration,
    },
    /// The request could not be sent or the answer not read (DNS, TLS, connection); retryable.
    #[error("{context}")]
    Transport {
        /// What was being done, and where (never a secret URL).
        context: String,
        /// The HTTP client's error, with its URL removed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The retry policy gave up on a retryable failure.
    #[error("gave up after {attempts} attempts in {} ms: {last}", elapsed.as_millis())]
    RetriesExhausted {
        /// Attempts made, the first included.
        attempts: u32,
        /// Time from the first attempt to giving up.
        elapsed: Duration,
        /// The last failure.
        last: Box<Error>,
    },
    /// The service asked to wait longer than what was left of this call's retry budget, so the
    /// call failed at once instead of sleeping past it.
    #[error(
        "the service asked to wait {} before a retry, more than the {} left of this call's retry budget (after {attempts} attempt{}): {last}",
        pim_http::retry::seconds(*asked),
        pim_http::retry::seconds(*remaining),
        if *attempts == 1 { "" } else { "s" }
    )]
    ServerWaitTooLong {
        /// Attempts made, the first included.
        attempts: u32,
        /// The wait the service asked for.
        asked: Duration,
        /// What was left of the retry budget.
        remaining: Duration,
        /// The answer that asked for the wait.
        last: Box<Error>,
    },
    /// Some batches were accepted before a later one failed: re-sending everything would
    /// duplicate the delivered rows in the table.
    #[error("{delivered} of {rows} rows were delivered before a batch failed: {source}")]
    PartlyDelivered {
        /// Rows the service accepted.
        delivered: usize,
        /// Rows there were to send.
        rows: usize,
        /// Why the rest was not delivered.
        #[source]
        source: Box<Error>,
    },
    /// A destination cannot be built: a setting it needs is missing. The message names the
    /// flag and the variable that give it.
    #[error("{message}")]
    MissingSetting {
        /// What is missing and where to set it.
        message: String,
    },
    /// A destination's client rejected its settings.
    #[error("--send {destination}")]
    Setup {
        /// The destination kind, as `--send` names it.
        destination: &'static str,
        /// The client's error (an [`Error::InvalidConfig`]).
        #[source]
        source: Box<Error>,
    },
    /// The payload could not be serialised (not expected with this crate's types).
    #[error("could not encode the payload as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    /// Whether trying the same request again may succeed: throttling, 408/5xx, timeouts and
    /// transport failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Timeout { .. } | Self::Transport { .. }
        )
    }

    /// The wait the service asked for, if this is a throttling answer that named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            Self::ServerWaitTooLong { asked, .. } => Some(*asked),
            _ => None,
        }
    }

    /// The HTTP status behind this error, looking through retries and partial delivery.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::AccessDenied { status, .. }
            | Self::Rejected { status, .. }
            | Self::Unavailable { status, .. } => Some(*status),
            Self::RetriesExhausted { last, .. } | Self::ServerWaitTooLong { last, .. } => {
                last.status()
            }
            Self::PartlyDelivered { source, .. } => source.status(),
            _ => None,
        }
    }
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|c| format!(" {c}")).unwrap_or_default()
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
