//! The process's log subscriber: stderr, and with `--log-file` the same records appended to a
//! file, in one format (issue 16, item 6).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::Subscriber;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::{Error, Result};

/// The log formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text, one line per record.
    #[default]
    Text,
    /// One JSON object per line, fields at the top level (what log search tools index best).
    Json,
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// A tracing filter: `info`, `warn`, `pim_core=debug`, ...
    pub level: String,
    /// The format of every record, on stderr and in the file alike.
    pub format: LogFormat,
    /// Colours on stderr (text only; the file never gets escape codes).
    pub ansi: bool,
    /// Whether a text record names its target (the module that logged it).
    pub target: bool,
    /// Append every record to this file as well (created `0600` on unix).
    pub file: Option<PathBuf>,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
            ansi: false,
            target: false,
            file: None,
        }
    }
}

/// A boxed layer over the registry, so the layers chosen at run time stack into one type.
pub(crate) type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Opens `path` for appending, creating it readable and writable by its owner only: logs name
/// people, roles and resources.
///
/// # Errors
/// [`Error::LogFile`] when the file cannot be opened or created.
pub fn open_log_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| Error::LogFile {
        path: path.to_owned(),
        source,
    })
}

/// One formatting layer writing to `writer` in `format`.
fn fmt_layer<S, W>(
    format: LogFormat,
    ansi: bool,
    target: bool,
    writer: W,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(target);
    match format {
        // Fields at the top level of each object (`"activations": 12`), not under `fields`;
        // no colours in JSON, ever.
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .boxed(),
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
    }
}

/// The log filter of one formatting layer: the level, and never a span meant for export
/// ([`TRACE_TARGET`](crate::TRACE_TARGET)), so log lines look the same with telemetry on or off.
fn log_filter(options: &LogOptions) -> Result<impl Filter<Registry> + Send + Sync + 'static> {
    let level = EnvFilter::try_new(&options.level).map_err(|source| Error::Level {
        level: options.level.clone(),
        source,
    })?;
    Ok(level.and(filter_fn(|meta| meta.target() != crate::TRACE_TARGET)))
}

/// The formatting layers, each with its own filter: stderr through `stderr`, and the file when
/// asked.
pub(crate) fn layers<W>(options: &LogOptions, stderr: W) -> Result<Vec<BoxedLayer>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let mut layers: Vec<BoxedLayer> = vec![Box::new(
        fmt_layer(options.format, options.ansi, options.target, stderr)
            .with_filter(log_filter(options)?),
    )];
    if let Some(path) = &options.file {
        let file = open_log_file(path)?;
        layers.push(Box::new(
            fmt_layer(options.format, false, options.target, Mutex::new(file))
                .with_filter(log_filter(options)?),
        ));
    }
    Ok(layers)
}

/// The log subscriber alone (no telemetry): stderr and the optional file.
///
/// # Errors
/// [`Error::Level`] for a bad filter, [`Error::LogFile`] for a file that cannot be opened.
pub fn subscriber<W>(options: &LogOptions, stderr: W) -> Result<Box<dyn Subscriber + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber_with(options, stderr, &crate::Telemetry::disabled())
}

/// The process's subscriber: the logs as [`subscriber`] builds them, and, when `telemetry`
/// exports traces, the OpenTelemetry layer for the spans of
/// [`TRACE_TARGET`](crate::TRACE_TARGET). With telemetry off there is no such layer, so those
/// spans are disabled where they are created and cost a branch.
///
/// # Errors
/// As [`subscriber`].
pub fn subscriber_with<W>(
    options: &LogOptions,
    stderr: W,
    telemetry: &crate::Telemetry,
) -> Result<Box<dyn Subscriber + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let mut layers = layers(options, stderr)?;
    layers.extend(telemetry.layer());
    Ok(Box::new(Registry::default().with(layers)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    /// A cloneable in-memory stderr.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pim-telemetry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn the_file_gets_the_same_json_records_appended() {
        let path = temp_file("json.log");
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let stderr = Buffer::default();
        let options = LogOptions {
            format: LogFormat::Json,
            file: Some(path.clone()),
            ..LogOptions::default()
        };
        let subscriber = subscriber(&options, stderr.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(activations = 12, "scan summary");
            tracing::debug!("filtered out at info");
        });
        let file = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 2, "{file}");
        assert_eq!(lines[0], "{\"earlier\":true}", "appended, not truncated");
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["message"], "scan summary");
        assert_eq!(v["activations"], 12);
        let err: serde_json::Value = serde_json::from_str(stderr.text().trim()).unwrap();
        assert_eq!(err["message"], "scan summary");
    }

    #[test]
    fn text_in_the_file_never_has_colours() {
        let path = temp_file("text.log");
        let options = LogOptions {
            level: "warn".to_owned(),
            ansi: true,
            file: Some(path.clone()),
            ..LogOptions::default()
        };
        let stderr = Buffer::default();
        let subscriber = subscriber(&options, stderr.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(query = "pim-events", "slow")
        });
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(file.contains("WARN") && file.contains("slow"), "{file}");
        assert!(!file.contains('\x1b'), "{file:?}");
        assert!(stderr.text().contains('\x1b'), "stderr keeps its colours");
    }

    #[cfg(unix)]
    #[test]
    fn a_new_log_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_file("private.log");
        drop(open_log_file(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    #[test]
    fn export_spans_are_disabled_without_telemetry_and_never_in_log_lines() {
        let stderr = Buffer::default();
        let subscriber = subscriber(&LogOptions::default(), stderr.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: crate::TRACE_TARGET, "pim.scan", hours = 24);
            // No layer wants it: created disabled, at the cost of a branch.
            assert!(span.is_disabled());
            span.in_scope(|| tracing::info!(rows = 3, "inside"));
            // An ordinary span still frames log lines as before.
            let other = tracing::info_span!("ordinary");
            assert!(!other.is_disabled());
        });
        let text = stderr.text();
        assert!(text.contains("inside") && text.contains("rows=3"), "{text}");
        assert!(
            !text.contains("pim.scan") && !text.contains("hours"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_level_and_the_file() {
        let bad = LogOptions {
            level: "info,=[".to_owned(),
            ..LogOptions::default()
        };
        let err = subscriber(&bad, Buffer::default()).err().unwrap();
        assert!(err.to_string().contains("info,=["), "{err}");
        let missing = LogOptions {
            file: Some(PathBuf::from("/nonexistent-dir/pim.log")),
            ..LogOptions::default()
        };
        let err = subscriber(&missing, Buffer::default()).err().unwrap();
        assert!(
            err.to_string().contains("/nonexistent-dir/pim.log"),
            "{err}"
        );
    }
}
