#![doc = include_str!("../README.md")]

mod auditor; // `Auditor`: the scan pipeline (PIM events, activity, correlation, assessment)
mod baseline; // the behaviour baseline: each identity's history before the window (issue 14)
mod budget; // `CallBudget`: model calls per minute
pub mod config; // `Settings`: every variable, from the environment and `.env`
mod error; // `Error`: what a scan or set-up can fail with
mod handoff; // a streamed table's rows handed to a reader on a second core (issue 12)
pub mod live; // `live::connect`: source, credential, model, auditor and destinations from settings
mod observer; // `ScanObserver`: progress of a scan, stage by stage
mod offline; // an export's Activity Log read once for the whole scan (issue 12)
mod options; // `ScanOptions`: the window, filters and limits of one scan
pub mod preflight; // `--check`: configuration, tokens, workspace, model and destinations
mod render; // Markdown or JSON from a report
mod report_id; // stable report ids
mod sources; // the demo tenant and offline export sources
mod split; // splitting queries cut at the service's limits until each part is complete
mod telemetry; // `ScanMetrics`: the scan's OpenTelemetry instruments, as a `ScanObserver`

pub use auditor::{Auditor, AuditorBuilder, DEFAULT_MODEL_DEADLINE};
pub use baseline::{KnownActivation, KnownActivations};
pub use budget::CallBudget;
pub use error::{Error, Result};
pub use observer::{
    ModelDone, ModelOutcome, Observers, QueryDone, QueryStatus, ScanEnd, ScanObserver, ScanStage,
};
pub use telemetry::ScanMetrics;

/// The `tracing` target of the spans a scan makes for export: `pim.scan`, `pim.stage.*`,
/// `pim.query`, `pim.model.assess`. `pim_telemetry` sends exactly this target to OpenTelemetry
/// and keeps it out of the logs; with telemetry off no layer wants it, so the spans are
/// disabled where they are made.
pub const TRACE_TARGET: &str = "pim::trace";
pub use options::{
    DEFAULT_BASELINE_DAYS, DEFAULT_HOURS, DEFAULT_LOOKBACK_HOURS, DEFAULT_MAX_ACTIVITIES,
    DEFAULT_QUERY_CONCURRENCY, DEFAULT_WINDOW_HOURS, MAX_BASELINE_DAYS, MAX_QUERY_CONCURRENCY,
    ScanOptions,
};
pub use render::{ReportFormat, render};
pub use sources::{demo_source, export_source};

/// The domain types of reports, activations and assessments.
pub use pim_domain as domain;
/// The Log Analytics port, for embedders that bring their own source.
pub use pim_loganalytics::{
    IdentityField, IdentityScope, KqlSource, LogQuery, LogTable, OperationScope, QueryOutcome,
    RowScope, ScopedRows, SourceCapabilities, SourceInfo, SourceKind, TimeScope,
};
/// Markdown options for [`render`].
pub use pim_report::MarkdownOptions;
/// Untrusted text made safe for a terminal (controls, bidi and zero-width characters shown
/// escaped, long lines cut visibly): what `pim-chat` prints and `pim-batch`'s progress line
/// draws.
pub use pim_report::escape::{terminal as terminal_text, terminal_line};
/// The rules engine's configuration and the seam for model-backed assessors.
pub use pim_rules::{Assessor, Case, RulesConfig};
