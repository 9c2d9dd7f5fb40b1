//! Report rendering: Markdown from embedded tera templates, and the JSON report.
//!
//! - [`Renderer`] renders a [`pim_domain::Report`] as Markdown for people, through a view-model
//!   built in Rust (grouping, counting and capping happen there) and the templates in
//!   `templates/*.md.tera`, or a custom template ([`Renderer::with_template`]).
//! - [`render_json`] writes the JSON report for machines: the [`pim_domain::Report`] exactly as
//!   serde serializes it. `docs/report-schema.md` and `docs/report.schema.json` describe it.
//! - [`escape`] holds the Markdown and Mermaid escaping every untrusted field goes through
//!   (justifications, names, resource ids, operation names, problem messages); [`format`](mod@format) holds
//!   the time and duration formats.
//!
//! ```
//! use pim_domain::{
//!     REPORT_SCHEMA_VERSION, Report, ReportSource, ReportSummary, ReportWindow, RunSummary,
//!     ScanSettings,
//! };
//! use pim_report::{MarkdownOptions, Renderer, render_json};
//! use time::macros::datetime;
//!
//! let report = Report {
//!     schema_version: REPORT_SCHEMA_VERSION.to_owned(),
//!     report_id: "r-1".to_owned(),
//!     generated_at: datetime!(2026-11-20 12:00 UTC),
//!     generator: "pim-audit 0.1.0".to_owned(),
//!     window: ReportWindow { start: datetime!(2026-11-19 12:00 UTC), end: datetime!(2026-11-20 12:00 UTC) },
//!     source: ReportSource { kind: "demo".to_owned(), description: "demo <tenant>".to_owned() },
//!     settings: ScanSettings {
//!         hours: 24,
//!         lookback_hours: 8,
//!         include_failed: true,
//!         max_activities_per_activation: 500,
//!         assessors: vec!["rules".to_owned()],
//!         baseline_days: 0,
//!     },
//!     summary: ReportSummary::compute(&[], 0),
//!     run: RunSummary { duration_ms: 850, queries: 1, query_rows: 40, ..RunSummary::default() },
//!     problems: vec![],
//!     warnings: vec![],
//!     activations: vec![],
//! };
//! let markdown = Renderer::new()?.render_markdown(&report, &MarkdownOptions::default())?;
//! assert!(markdown.starts_with("# PIM Activity Audit Report"));
//! assert!(markdown.contains(r"demo \<tenant\>"));
//! assert!(markdown.contains("- **Run:** 850 ms; 1 query, 40 rows read; no model calls\n"));
//! assert!(render_json(&report)?.ends_with("}\n"));
//! # Ok::<(), pim_report::Error>(())
//! ```

pub mod escape;
mod filters;
pub mod format;
mod render;
mod view;

use std::path::PathBuf;

pub use render::{ACTIVATION_TEMPLATE, MarkdownOptions, REPORT_TEMPLATE, Renderer, render_json};

/// Errors of report rendering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A template file could not be read.
    #[error("cannot read template {}: {source}", path.display())]
    ReadTemplate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A template does not parse. `message` holds tera's whole error chain, with the line.
    #[error("invalid template {name}: {message}")]
    Template {
        /// The template's name (the file path for [`Renderer::with_template`]).
        name: String,
        /// Tera's messages, outermost first.
        message: String,
    },
    /// Rendering failed (e.g. a custom template uses an unknown variable or filter).
    #[error("cannot render template {name}: {message}")]
    Render {
        /// The template's name.
        name: String,
        /// Tera's messages, outermost first.
        message: String,
    },
    /// The JSON report could not be written.
    #[error("cannot serialize the report as json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
