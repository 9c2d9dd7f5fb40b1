#![doc = include_str!("../README.md")]

mod auditor;
mod budget;
pub mod chat;
pub mod config;
mod error;
pub mod live;
mod observer;
mod options;
pub mod preflight;
mod render;
mod report_id;
mod split;

use std::path::PathBuf;
use std::sync::Arc;

pub use auditor::{Auditor, AuditorBuilder, DEFAULT_MODEL_DEADLINE};
pub use budget::CallBudget;
pub use error::{Error, Result};
pub use observer::{ScanObserver, ScanStage};
pub use options::{
    DEFAULT_HOURS, DEFAULT_LOOKBACK_HOURS, DEFAULT_MAX_ACTIVITIES, DEFAULT_QUERY_CONCURRENCY,
    DEFAULT_WINDOW_HOURS, MAX_QUERY_CONCURRENCY, ScanOptions,
};
pub use render::{ReportFormat, render};

/// The domain types of reports, activations and assessments.
pub use pim_domain as domain;
/// The Log Analytics port, for embedders that bring their own source.
pub use pim_loganalytics::{
    KqlSource, LogQuery, LogTable, QueryOutcome, SourceCapabilities, SourceInfo, SourceKind,
};
/// Markdown options for [`render`].
pub use pim_report::MarkdownOptions;
/// Untrusted text made safe for a terminal (controls, bidi and zero-width characters shown
/// escaped, long lines cut visibly): what `pim-chat` prints and `pim-batch`'s progress line
/// draws.
pub use pim_report::escape::{terminal as terminal_text, terminal_line};
/// The rules engine's configuration and the seam for model-backed assessors.
pub use pim_rules::{Assessor, Case, RulesConfig};

/// The bundled demo tenant: a realistic, fixed set of PIM activations and activity embedded in
/// the library, with a fixed scan end ([`SourceInfo::default_end`]).
///
/// # Errors
/// [`Error::Source`] if the embedded data cannot be parsed (a build defect, reported not panicked).
pub fn demo_source() -> Result<Arc<dyn KqlSource>> {
    let demo = pim_loganalytics::DemoTenant::new().map_err(Error::Source)?;
    Ok(Arc::new(demo))
}

/// A directory of offline exports: `AuditLogs.json` (required) and `AzureActivity.json`, each a
/// Log Analytics query API response or an array of row objects as `az monitor log-analytics
/// query -o json` prints them.
///
/// # Errors
/// [`Error::Source`] naming the path when the directory or `AuditLogs.json` is missing.
pub fn export_source(dir: impl Into<PathBuf>) -> Result<Arc<dyn KqlSource>> {
    let export = pim_loganalytics::ExportDir::open(dir).map_err(Error::Source)?;
    Ok(Arc::new(export))
}
