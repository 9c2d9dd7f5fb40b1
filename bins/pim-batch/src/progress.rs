//! The progress line on a terminal, and the logging set-up that keeps log lines and the progress
//! line from running into each other.
//!
//! On a terminal, [`TerminalProgress`] redraws one status line on stderr ("querying AuditLogs…",
//! "correlating…", "assessing 37 of 200") and clears it when the scan is done. Anywhere else
//! (a scheduler, a pipe, a file) it draws nothing and the plain log lines are the whole story.
//!
//! Log lines go through [`TerminalProgress::log_writer`]: before a log record is written, a
//! status line on screen is wiped, so the record starts at the left margin; the next progress
//! update draws the status line again below it.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use pim_core::{ScanObserver, ScanStage};
use pim_telemetry::{LogFormat, LogOptions};
use tracing_subscriber::fmt::MakeWriter;

/// Shortest time between two redraws of the assessment count: about ten a second, enough to
/// look alive without flooding a slow terminal (an SSH session) during a fast rules-only scan.
const MIN_REDRAW: Duration = Duration::from_millis(100);

/// Longest status line drawn, in characters.
const MAX_STATUS_CHARS: usize = 120;

/// Carriage return, then ANSI "erase to end of line": the status line is rewritten in place.
const CLEAR_LINE: &str = "\r\x1b[K";

/// Draws the progress of a scan on one line of stderr, when stderr is a terminal.
///
/// Register it with `AuditorBuilder::observer`; give [`log_writer`](Self::log_writer) to the
/// tracing subscriber so that log records clear the line first.
pub struct TerminalProgress {
    state: Arc<Mutex<State>>,
}

struct State {
    /// Whether to draw at all (stderr is a terminal).
    enabled: bool,
    /// Where the status line and the log records go: stderr, or a buffer in tests.
    out: Box<dyn Write + Send>,
    /// Whether a status line is on screen now (so it must be cleared before anything else).
    shown: bool,
    /// When the assessment count was last drawn, for the throttle.
    last_count: Option<Instant>,
}

impl State {
    fn draw(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        // The text names tables and counts, but it is drawn on a terminal: show controls, bidi
        // and zero-width characters escaped and keep it to one bounded line (issue 9).
        let text = pim_core::terminal_line(text, MAX_STATUS_CHARS);
        // A failed write to stderr has nowhere better to be reported; the scan goes on.
        let _ = write!(self.out, "{CLEAR_LINE}{text}");
        let _ = self.out.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let _ = write!(self.out, "{CLEAR_LINE}");
            let _ = self.out.flush();
            self.shown = false;
        }
    }
}

impl TerminalProgress {
    /// Progress on stderr, drawn only if stderr is a terminal.
    pub fn new() -> Self {
        let enabled = std::io::stderr().is_terminal();
        Self::with_output(Box::new(std::io::stderr()), enabled)
    }

    /// Progress written to `out`, drawn only if `enabled`: for tests, which cannot be a
    /// terminal.
    fn with_output(out: Box<dyn Write + Send>, enabled: bool) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                enabled,
                out,
                shown: false,
                last_count: None,
            })),
        }
    }

    /// The writer for the tracing subscriber: the same stderr, but a status line on screen is
    /// wiped before each log record.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            state: Arc::clone(&self.state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while drawing; drawing on is still harmless.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl ScanObserver for TerminalProgress {
    fn stage(&self, stage: ScanStage) {
        let mut state = self.lock();
        match stage {
            ScanStage::Querying { what } => state.draw(&format!("querying {what}…")),
            ScanStage::Correlating => state.draw("correlating…"),
            ScanStage::Assessing { total } => {
                state.last_count = Some(Instant::now());
                state.draw(&format!("assessing 0 of {total}"));
            }
            ScanStage::Done => state.clear(),
            // A stage this binary does not know yet: keep the current line.
            _ => {}
        }
    }

    fn assessed(&self, done: usize, total: usize) {
        let mut state = self.lock();
        let now = Instant::now();
        let due = state
            .last_count
            .is_none_or(|last| now.duration_since(last) >= MIN_REDRAW);
        // The last count is always drawn, so the line never stops short of the total.
        if due || done >= total {
            state.last_count = Some(now);
            state.draw(&format!("assessing {done} of {total}"));
        }
    }
}

/// The log destination of a process that may show a progress line: see
/// [`TerminalProgress::log_writer`].
#[derive(Clone)]
pub struct LogWriter {
    state: Arc<Mutex<State>>,
}

/// One log record being written; holds the lock so that no status line is drawn halfway
/// through it.
pub struct LogRecord<'a> {
    state: MutexGuard<'a, State>,
}

impl Write for LogRecord<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.state.clear();
        self.state.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.state.out.flush()
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogRecord<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogRecord {
            state: self.state.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// Builds the process's log subscriber (`pim_telemetry`'s): `level` is a tracing filter (`info`,
/// `pim_core=debug`); `json` selects one JSON object per line (for log shippers) over the human
/// text format; `file` gets the same records appended.
fn log_options(level: &str, json: bool, ansi: bool, file: Option<&Path>) -> LogOptions {
    LogOptions {
        level: level.to_owned(),
        format: if json {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
        ansi,
        target: false,
        file: file.map(Path::to_path_buf),
    }
}

#[cfg(test)]
fn subscriber(
    level: &str,
    json: bool,
    writer: LogWriter,
    ansi: bool,
) -> anyhow::Result<Box<dyn tracing::Subscriber + Send + Sync>> {
    Ok(pim_telemetry::subscriber(
        &log_options(level, json, ansi, None),
        writer,
    )?)
}

/// Installs the process's logging: records to stderr through `progress`'s
/// [`log_writer`](TerminalProgress::log_writer), as text (coloured on a terminal) or, with
/// `json`, one JSON object per line; with `file`, appended there too; and, when `telemetry`
/// exports traces, the scan's spans to OpenTelemetry.
///
/// # Errors
/// When `level` is not a valid filter, the file cannot be opened, or a logger is already
/// installed.
pub fn init_logging(
    level: &str,
    json: bool,
    file: Option<&Path>,
    progress: &TerminalProgress,
    telemetry: &pim_telemetry::Telemetry,
) -> anyhow::Result<()> {
    let ansi = std::io::stderr().is_terminal();
    let subscriber = pim_telemetry::subscriber_with(
        &log_options(level, json, ansi, file),
        progress.log_writer(),
        telemetry,
    )?;
    tracing::subscriber::set_global_default(subscriber).context("installing the logger")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn progress(enabled: bool) -> (TerminalProgress, Buffer) {
        let buffer = Buffer::default();
        (
            TerminalProgress::with_output(Box::new(buffer.clone()), enabled),
            buffer,
        )
    }

    #[test]
    fn on_a_terminal_each_stage_redraws_the_line_and_done_clears_it() {
        let (p, out) = progress(true);
        p.stage(ScanStage::Querying {
            what: "AuditLogs".into(),
        });
        p.stage(ScanStage::Correlating);
        p.stage(ScanStage::Assessing { total: 2 });
        p.assessed(1, 2);
        p.assessed(2, 2);
        p.stage(ScanStage::Done);
        let text = out.text();
        assert!(text.starts_with("\r\x1b[Kquerying AuditLogs…\r\x1b[Kcorrelating…"));
        assert!(text.contains("\r\x1b[Kassessing 0 of 2"));
        assert!(
            text.ends_with("\r\x1b[Kassessing 2 of 2\r\x1b[K"),
            "{text:?}"
        );
        assert!(!text.contains('\n'));
        // Done with nothing on screen writes nothing more.
        p.stage(ScanStage::Done);
        assert_eq!(out.text(), text);
    }

    // Issue 9: the status line shows hostile characters escaped and stays one bounded line.
    #[test]
    fn the_status_line_is_escaped_and_bounded() {
        let (p, out) = progress(true);
        p.stage(ScanStage::Querying {
            what: format!("Audit\u{202E}Logs\u{200B}\n\u{1b}[2J{}", "x".repeat(1_000)),
        });
        let text = out.text();
        let drawn = text.strip_prefix("\r\x1b[K").unwrap();
        assert!(
            drawn.starts_with(r"querying Audit\u{202E}Logs\u{200B}\n\u{001B}[2Jxxx"),
            "{drawn:?}"
        );
        assert!(drawn.ends_with(" more chars)"), "{drawn:?}");
        assert!(
            !drawn
                .chars()
                .any(|c| c.is_control() || c == '\u{202E}' || c == '\u{200B}')
        );
        assert!(drawn.chars().count() < 200, "{}", drawn.chars().count());
    }

    #[test]
    fn counts_are_throttled_but_the_last_is_always_drawn() {
        let (p, out) = progress(true);
        p.stage(ScanStage::Assessing { total: 10_000 });
        for done in 1..=10_000 {
            p.assessed(done, 10_000);
        }
        let text = out.text();
        let draws = text.matches("assessing").count();
        // The loop takes far less than a second: a handful of draws, not ten thousand.
        assert!(draws <= 5, "{draws} draws");
        assert!(text.ends_with("assessing 10000 of 10000"), "{text:?}");
    }

    #[test]
    fn off_a_terminal_nothing_is_drawn() {
        let (p, out) = progress(false);
        p.stage(ScanStage::Querying {
            what: "AzureActivity".into(),
        });
        p.stage(ScanStage::Assessing { total: 1 });
        p.assessed(1, 1);
        p.stage(ScanStage::Done);
        assert_eq!(out.text(), "");
    }

    #[test]
    fn a_log_record_wipes_the_status_line_first() {
        let (p, out) = progress(true);
        p.stage(ScanStage::Correlating);
        let writer = p.log_writer();
        writer.make_writer().write_all(b"INFO hello\n").unwrap();
        // Nothing on screen now: the next record is written as is.
        writer.make_writer().write_all(b"INFO again\n").unwrap();
        assert_eq!(
            out.text(),
            "\r\x1b[Kcorrelating…\r\x1b[KINFO hello\nINFO again\n"
        );
    }

    #[test]
    fn json_logs_are_one_flat_object_per_line() {
        let (p, out) = progress(false);
        let subscriber = subscriber("info", true, p.log_writer(), false).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(activations = 12, findings = 3, "scan summary");
            tracing::debug!("filtered out at info");
        });
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "scan summary");
        assert_eq!(v["activations"], 12);
        assert_eq!(v["findings"], 3);
        assert!(v["timestamp"].is_string());
        assert!(v.get("target").is_none());
    }

    #[test]
    fn text_logs_keep_the_plain_format() {
        let (p, out) = progress(false);
        let subscriber = subscriber("warn", false, p.log_writer(), false).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(query = "pim-events", "slow");
            tracing::info!("filtered out at warn");
        });
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains(" WARN slow query=\"pim-events\""), "{text}");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn a_bad_level_is_an_error_naming_it() {
        let (p, _) = progress(false);
        let err = subscriber("info,=[", false, p.log_writer(), false)
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("invalid --log-level"),
            "{err:#}"
        );
    }
}
