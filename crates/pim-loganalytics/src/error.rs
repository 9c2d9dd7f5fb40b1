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
    /// The service answered with an HTTP error status (REST adapter).
    #[error("log analytics returned HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Http {
        /// HTTP status code.
        status: u16,
        /// The API error code, e.g. `InsufficientAccessError`.
        code: Option<String>,
        /// The innermost error message, or the raw body when it was not an API error.
        message: String,
        /// The `Retry-After` delay, when the service sent one.
        retry_after: Option<Duration>,
    },
    /// The service rejected the KQL (HTTP 400 `BadArgumentError`): syntax or semantic errors,
    /// including a table that does not exist in the workspace.
    #[error("the query was rejected{}: {message}", location(*line, *pos))]
    BadQuery {
        /// The innermost error code, e.g. `SYN0002` or `SEM0100`.
        code: Option<String>,
        /// The innermost error message.
        message: String,
        /// One-based line of the error in the query text, when given.
        line: Option<u32>,
        /// Position within that line, when given.
        pos: Option<u32>,
    },
    /// The request never got an HTTP answer (connection, TLS, timeout) or the token could not be
    /// obtained.
    #[error("{context}: {source}")]
    Transport {
        /// What was being done.
        context: String,
        /// The underlying error, boxed so this crate's callers need no HTTP types.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
    /// failures and timeouts (500, 502, 503, 504) and transport errors. Offline errors never are.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Http { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            Error::Transport { .. } => true,
            Error::Io { .. }
            | Error::Format { .. }
            | Error::MissingTable { .. }
            | Error::Unsupported { .. }
            | Error::BadQuery { .. } => false,
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
        };
        assert_eq!(
            e.to_string(),
            "the query was rejected at line 1, position 4: Query could not be parsed at 'string'"
        );
        let e = Error::Format {
            source_name: "AuditLogs.json".into(),
            row: Some(3),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "AuditLogs.json row 3: bad");
    }
}
