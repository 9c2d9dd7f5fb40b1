//! Logging and OpenTelemetry for the PIM audit binaries, set up in one place (issue 16).
//!
//! - [`LogOptions`] and [`subscriber`]: records to stderr (any [`MakeWriter`], so `pim-batch`
//!   can route them around its progress line) and, with `--log-file`, the same records appended
//!   to a file created `0600`, in one [`LogFormat`] (text or one JSON object per line).
//!
//! ```
//! use pim_telemetry::{LogFormat, LogOptions};
//!
//! let options = LogOptions { level: "warn".into(), format: LogFormat::Json, ..LogOptions::default() };
//! let subscriber = pim_telemetry::subscriber(&options, std::io::stderr).unwrap();
//! tracing::subscriber::with_default(subscriber, || tracing::warn!(rows = 3, "hello"));
//! ```
//!
//! - [`Telemetry`] and [`OtelOptions`]: OpenTelemetry over OTLP/HTTP (protobuf), traces of the
//!   spans of [`TRACE_TARGET`] and the meter the scan's instruments come from; off, with no
//!   exporter, thread or layer, unless an endpoint is configured. [`subscriber_with`] adds the
//!   tracing layer when traces are on.
//!
//! - [`generate`]: the shell completion scripts and the man page of either binary, from its clap
//!   definition.
//!
//! [`MakeWriter`]: tracing_subscriber::fmt::MakeWriter

mod error;
pub mod generate;
mod logging;
mod otel;

pub use error::{Error, Result};
pub use logging::{LogFormat, LogOptions, open_log_file, subscriber, subscriber_with};
pub use otel::{OtelOptions, TRACE_TARGET, Telemetry};
