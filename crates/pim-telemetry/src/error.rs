//! The crate's one error type.

use std::path::PathBuf;

/// What can go wrong setting up logs and telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log level is not a level or a tracing filter directive.
    #[error("invalid --log-level / LOG_LEVEL {level:?}")]
    Level {
        /// The level as given.
        level: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The `--log-file` could not be opened for appending.
    #[error("cannot open the log file {}", path.display())]
    LogFile {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An OpenTelemetry exporter could not be built from the `OTEL_*` settings.
    #[error("OpenTelemetry {signal} exporter: {message}")]
    Otel {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The exporter's complaint (it names the endpoint, never a header value).
        message: String,
    },
    /// A logger is already installed in this process.
    #[error("installing the logger")]
    AlreadyInstalled(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
