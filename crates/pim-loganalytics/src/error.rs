//! The errors of the Log Analytics port and its adapters.

use std::path::PathBuf;
use std::time::Duration;

use crate::LogTable;

/// Why a query (or opening a source) failed.
///
/// Offline sources (exports, the demo tenant) only fail in ways a retry cannot fix;
/// [`Error::is_retryable`] is `false` for all of them. The HTTP variants are shaped for the Log
/// Analytics REST adapter: fatal API errors keep the status, the error code and the innermost
/// message of the `innererror` chain; a 400 for bad KQL becomes [`Error::BadQuery`] with its
/// line and position. A partial result (HTTP 200 with a `PartialError`) is not an error: it is a
/// [`QueryOutcome`](crate::QueryOutcome) with `partial_error` set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A file (or embedded document) is not a usable export: not JSON, truncated, or the wrong
    /// shape.
    #[error("{source_name}{}: {message}", row.map(|r| format!(" row {r}")).unwrap_or_default())]
    Format {
        /// The file or document name, e.g. `AuditLogs.json`.
        source_name: String,
        /// Zero-based row index, when the problem is in one row.
        row: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The source has no data for a table, e.g. an export directory without
    /// `AzureActivity.json`. Callers must treat the affected results as unknown, never as "no
    /// activity".
    #[error("no {} data: {} does not exist", table.name(), path.display())]
    MissingTable {
        /// The table asked for.
        table: LogTable,
        /// Where the data was expected.
        path: PathBuf,
    },
    /// The source cannot answer this kind of query, e.g. free-form KQL on an offline source.
    #[error("{message}")]
    Unsupported {
        /// What was asked and what is needed instead.
        message: String,
    },
    /// The service answered with an HTTP error status that has no more specific variant:
    /// throttling (429), server failures (500, 502, 503, 504) and unexpected statuses.
    #[error(
        "log analytics returned HTTP {status}{}{}: {message}",
        code_suffix(code.as_deref()),
        pim_domain::retry::wait_hint(*retry_after)
    )]
    Http {
        /// HTTP status code.
        status: u16,
        /// The API error code, e.g. `ServiceUnavailable`.
        code: Option<String>,
        /// The innermost error message, or the start of the raw body when it was not an API
        /// error.
        message: String,
        /// The `Retry-After` delay, when the service sent one.
        retry_after: Option<Duration>,
    },
    /// The service rejected the KQL (HTTP 400, usually `BadArgumentError`): a syntax error, or a
    /// semantic one such as a table or column that does not exist in the workspace. The fields
    /// come from the innermost entry of the `innererror` chain, so that a repair loop can show a
    /// model exactly where the query broke.
    #[error(
        "the query was rejected{}{}: {message}{}",
        location(*line, *pos),
        near(token.as_deref()),
        semantic_hint(*semantic)
    )]
    BadQuery {
        /// The innermost error code, e.g. `SYN0002` or `SEM0100`.
        code: Option<String>,
        /// The innermost error message.
        message: String,
        /// One-based line of the error in the query text, when given.
        line: Option<u32>,
        /// Position within that line, when given.
        pos: Option<u32>,
        /// The query text the parser stopped at (a KQL token, not a credential), when given.
        token: Option<String>,
        /// A semantic error (`SemanticError` / `SEMxxxx`): the query parsed, but names something
        /// the workspace does not have, most often a table that receives no data there.
        semantic: bool,
    },
    /// The service refused the caller (HTTP 401 or 403). The message says which identity needs
    /// which role on which resource; it never contains the token.
    #[error(
        "log analytics denied access to workspace {workspace} (HTTP {status}{}: {message}); {}",
        code_suffix(code.as_deref()),
        access_advice(*status, code.as_deref())
    )]
    AccessDenied {
        /// 401 or 403.
        status: u16,
        /// The API error code, e.g. `InsufficientAccessError` or
        /// `InvalidAuthenticationTokenAudience`.
        code: Option<String>,
        /// The innermost error message.
        message: String,
        /// The workspace (or comma-separated workspaces) the query was sent to.
        workspace: String,
    },
    /// The service does not know the workspace or path (HTTP 404).
    #[error(
        "log analytics workspace {workspace} was not found at {endpoint} (HTTP 404{}: {message}); check the workspace id (its GUID, or the full ARM resource id) and the endpoint",
        code_suffix(code.as_deref())
    )]
    WorkspaceNotFound {
        /// The workspace id the request was sent to.
        workspace: String,
        /// The API endpoint, e.g. `https://api.loganalytics.azure.com`.
        endpoint: String,
        /// The API error code, e.g. `PathNotFoundError`.
        code: Option<String>,
        /// The innermost error message.
        message: String,
    },
    /// No answer arrived within the request timeout. The service may be slow or the query
    /// heavy; a retry may succeed.
    #[error(
        "log analytics did not answer within {} (the request timeout)",
        seconds(*after)
    )]
    Timeout {
        /// The request timeout that expired.
        after: Duration,
    },
    /// The service answered with a success status but a body this adapter cannot read (not
    /// JSON, no `tables`, wrong types, or empty).
    #[error("log analytics sent an unreadable answer (HTTP {status}): {message}")]
    InvalidResponse {
        /// The HTTP status of the answer.
        status: u16,
        /// What is wrong with it.
        message: String,
    },
    /// The credential could not produce a token. The credential retries transient failures
    /// itself, so this adapter does not retry it again.
    #[error("cannot get a token for {scope}: {message}")]
    Credential {
        /// The scope asked for.
        scope: String,
        /// The credential's error, as text (its `Debug` may be long and is not kept).
        message: String,
    },
    /// The adapter was configured with unusable settings (no workspace, a malformed id, a bad
    /// endpoint or wait time).
    #[error("invalid log analytics settings: {message}")]
    InvalidConfig {
        /// What is wrong and what is expected.
        message: String,
    },
    /// A transient failure persisted through every attempt the retry policy allowed. The retry
    /// budget of this call is spent: a caller that retries again should wait first.
    #[error(
        "log analytics query failed after {attempts} attempt{} over {}: {last}",
        if *attempts == 1 { "" } else { "s" },
        seconds(*elapsed)
    )]
    RetriesExhausted {
        /// Attempts made, the first included.
        attempts: u32,
        /// Time from the first attempt to the last failure.
        elapsed: Duration,
        /// The last attempt's error (its status, code and message).
        #[source]
        last: Box<Error>,
    },
    /// The service asked to wait longer than what was left of this call's retry budget, so the
    /// call failed at once instead of sleeping past it.
    #[error(
        "log analytics asked to wait {} before a retry, more than the {} left of this query's retry budget (after {attempts} attempt{}): {last}",
        seconds(*asked),
        seconds(*remaining),
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
        #[source]
        last: Box<Error>,
    },
    /// The request never got an HTTP answer (connection refused, DNS, TLS, a broken
    /// connection).
    #[error("{context}: {source}")]
    Transport {
        /// What was being done.
        context: String,
        /// The underlying error, boxed so this crate's callers need no HTTP types.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|c| format!(" {c}")).unwrap_or_default()
}

fn near(token: Option<&str>) -> String {
    token
        .filter(|t| !t.is_empty())
        .map(|t| format!(" near '{t}'"))
        .unwrap_or_default()
}

fn semantic_hint(semantic: bool) -> &'static str {
    if semantic {
        " (a table or column the query names may not exist in this workspace, e.g. because no diagnostic setting sends that table there)"
    } else {
        ""
    }
}

fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// What to do about a 401/403, keyed on the service's error code.
fn access_advice(status: u16, code: Option<&str>) -> &'static str {
    match code {
        Some(c) if c.eq_ignore_ascii_case("InvalidAuthenticationTokenAudience") => {
            "the token was requested for the wrong resource: it must be issued for the Log Analytics scope of the endpoint's cloud (https://api.loganalytics.io/.default in the public cloud, https://api.loganalytics.azure.cn/.default in China, https://api.loganalytics.us/.default in US Government); check LOG_ANALYTICS_ENDPOINT"
        }
        Some(c) if c.eq_ignore_ascii_case("InvalidAuthenticationToken") => {
            "the token is invalid or expired: sign in again (e.g. `az login`) or check the credential's tenant"
        }
        _ if status == 401 => {
            "the service did not accept the identity's token: check that the credential signs in to the workspace's tenant and requests the Log Analytics scope of the endpoint's cloud (https://api.loganalytics.io/.default in the public cloud)"
        }
        _ => {
            "grant the role Log Analytics Reader (or Reader) on each workspace queried to the identity the tool runs as (user, service principal or managed identity); role assignments can take a few minutes to apply"
        }
    }
}

fn location(line: Option<u32>, pos: Option<u32>) -> String {
    match (line, pos) {
        (Some(l), Some(p)) => format!(" at line {l}, position {p}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

impl Error {
    /// Whether the same request may succeed if sent again later: throttling (429), server-side
    /// failures and timeouts (500, 502, 503, 504), request timeouts and transport errors, and
    /// [`Error::RetriesExhausted`] wrapping one of those. Offline errors, rejected queries,
    /// access and configuration problems never are.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Http { status, .. } => is_retryable_status(*status),
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::RetriesExhausted { last, .. } | Error::ServerWaitTooLong { last, .. } => {
                last.is_retryable()
            }
            Error::Io { .. }
            | Error::Format { .. }
            | Error::MissingTable { .. }
            | Error::Unsupported { .. }
            | Error::BadQuery { .. }
            | Error::AccessDenied { .. }
            | Error::WorkspaceNotFound { .. }
            | Error::InvalidResponse { .. }
            | Error::Credential { .. }
            | Error::InvalidConfig { .. } => false,
        }
    }

    /// The delay the service asked for before a retry (`Retry-After`), when it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { retry_after, .. } => *retry_after,
            Error::RetriesExhausted { last, .. } => last.retry_after(),
            Error::ServerWaitTooLong { asked, .. } => Some(*asked),
            _ => None,
        }
    }

    pub(crate) fn format(source_name: &str, message: impl Into<String>) -> Self {
        Error::Format {
            source_name: source_name.to_owned(),
            row: None,
            message: message.into(),
        }
    }
}

/// The statuses worth retrying: throttling and transient server-side failures.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        let http = |status| Error::Http {
            status,
            code: None,
            message: String::new(),
            retry_after: None,
        };
        assert!(http(429).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(403).is_retryable());
        assert!(!Error::format("AuditLogs.json", "x").is_retryable());
        assert!(
            !Error::MissingTable {
                table: LogTable::AzureActivity,
                path: "d/AzureActivity.json".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn messages_name_what_failed() {
        let e = Error::BadQuery {
            code: Some("SYN0002".into()),
            message: "Query could not be parsed at 'string'".into(),
            line: Some(1),
            pos: Some(4),
            token: Some("string".into()),
            semantic: false,
        };
        assert_eq!(
            e.to_string(),
            "the query was rejected at line 1, position 4 near 'string': Query could not be parsed at 'string'"
        );
        let e = Error::Format {
            source_name: "AuditLogs.json".into(),
            row: Some(3),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "AuditLogs.json row 3: bad");
    }

    #[test]
    fn adapter_errors_are_retryable_only_when_transient() {
        let timeout = Error::Timeout {
            after: Duration::from_secs(200),
        };
        assert!(timeout.is_retryable());
        assert_eq!(
            timeout.to_string(),
            "log analytics did not answer within 200.0 s (the request timeout)"
        );
        let exhausted = |last: Error| Error::RetriesExhausted {
            attempts: 1,
            elapsed: Duration::from_millis(5),
            last: Box::new(last),
        };
        let throttled = Error::Http {
            status: 429,
            code: None,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        let e = exhausted(throttled);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            e.to_string(),
            "log analytics query failed after 1 attempt over 5 ms: log analytics returned HTTP 429 (the service asked to wait 3 s): slow down"
        );
        for e in [
            Error::AccessDenied {
                status: 403,
                code: None,
                message: String::new(),
                workspace: "w".into(),
            },
            Error::WorkspaceNotFound {
                workspace: "w".into(),
                endpoint: "e".into(),
                code: None,
                message: String::new(),
            },
            Error::InvalidResponse {
                status: 200,
                message: String::new(),
            },
            Error::Credential {
                scope: "s".into(),
                message: String::new(),
            },
            Error::InvalidConfig {
                message: String::new(),
            },
            exhausted(Error::InvalidConfig {
                message: String::new(),
            }),
        ] {
            assert!(!e.is_retryable(), "{e}");
            assert_eq!(e.retry_after(), None);
        }
    }

    #[test]
    fn access_advice_depends_on_status_and_code() {
        let denied = |status, code: Option<&str>| {
            Error::AccessDenied {
                status,
                code: code.map(str::to_owned),
                message: "m".into(),
                workspace: "ws-1".into(),
            }
            .to_string()
        };
        assert!(denied(403, None).contains("grant the role Log Analytics Reader (or Reader)"));
        assert!(denied(403, Some("InvalidAuthenticationTokenAudience")).contains("wrong resource"));
        assert!(denied(401, Some("InvalidAuthenticationToken")).contains("invalid or expired"));
        assert!(denied(401, None).contains("did not accept the identity's token"));
        assert!(
            denied(403, None)
                .starts_with("log analytics denied access to workspace ws-1 (HTTP 403: m)")
        );
    }

    #[test]
    fn semantic_errors_hint_at_a_missing_table() {
        let e = Error::BadQuery {
            code: Some("SEM0100".into()),
            message: "Failed to resolve table or column expression named 'AzureActivity'".into(),
            line: None,
            pos: None,
            token: None,
            semantic: true,
        };
        assert_eq!(
            e.to_string(),
            "the query was rejected: Failed to resolve table or column expression named 'AzureActivity' (a table or column the query names may not exist in this workspace, e.g. because no diagnostic setting sends that table there)"
        );
    }
}
