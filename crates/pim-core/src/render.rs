//! Rendering a report as Markdown or JSON.

use std::path::Path;

use pim_domain::Report;
use pim_report::{MarkdownOptions, Renderer};

use crate::Result;

/// The output formats of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Markdown for people, from the embedded (or a custom) tera template.
    #[default]
    Markdown,
    /// JSON for machines, following `docs/report.schema.json`.
    Json,
}

/// Renders `report` in `format`. `template` replaces the embedded Markdown template; it is
/// ignored for JSON.
///
/// # Errors
/// [`crate::Error::Render`] when the template cannot be read or fails to render.
pub fn render(
    report: &Report,
    format: ReportFormat,
    template: Option<&Path>,
    options: &MarkdownOptions,
) -> Result<String> {
    match format {
        ReportFormat::Json => Ok(pim_report::render_json(report)?),
        ReportFormat::Markdown => {
            let renderer = match template {
                Some(path) => Renderer::with_template(path)?,
                None => Renderer::new()?,
            };
            Ok(renderer.render_markdown(report, options)?)
        }
    }
}
