//! The [`Renderer`] (Markdown through tera) and [`render_json`].

use std::path::Path;

use pim_domain::Report;
use tera::{Context, Tera};

use crate::view::ReportView;
use crate::{Error, Result, filters};

/// Name of the embedded main template.
pub const REPORT_TEMPLATE: &str = "report.md.tera";
/// Name of the embedded per-activation template, which the main template includes.
pub const ACTIVATION_TEMPLATE: &str = "activation.md.tera";

const EMBEDDED: &[(&str, &str)] = &[
    (
        ACTIVATION_TEMPLATE,
        include_str!("../templates/activation.md.tera"),
    ),
    (REPORT_TEMPLATE, include_str!("../templates/report.md.tera")),
];

/// Options for [`Renderer::render_markdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkdownOptions {
    /// Most operations listed one by one per activation (default 50). The grouped summary above
    /// the list is capped at the same number of rows; both caps are stated in the report. The
    /// JSON report is never capped.
    pub max_listed_activities: usize,
}

impl Default for MarkdownOptions {
    fn default() -> Self {
        Self {
            max_listed_activities: 50,
        }
    }
}

/// Renders reports as Markdown with tera templates.
///
/// Autoescaping is off (HTML escaping is wrong for Markdown); templates escape every untrusted
/// value with the `md`, `md_cell`, `md_code` and `mermaid_label` filters instead (see
/// [`crate::escape`]). The time filters `utc`, `utc_compact` and `duration` are registered too.
#[derive(Debug)]
pub struct Renderer {
    tera: Tera,
    main: String,
}

impl Renderer {
    /// A renderer with the embedded templates.
    ///
    /// # Errors
    ///
    /// [`Error::Template`] if an embedded template does not parse (a bug caught by the tests).
    pub fn new() -> Result<Self> {
        let mut tera = base();
        tera.add_raw_templates(EMBEDDED.iter().copied())
            .map_err(|e| template_error("embedded templates", &e))?;
        Ok(Self {
            tera,
            main: REPORT_TEMPLATE.to_owned(),
        })
    }

    /// A renderer whose main template is read from `path` (the `--template` option). The
    /// embedded templates stay available, so the file may `{% include "activation.md.tera" %}`.
    ///
    /// # Errors
    ///
    /// [`Error::ReadTemplate`] if the file cannot be read, [`Error::Template`] (naming the file,
    /// with tera's message and the line) if it does not parse.
    pub fn with_template(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadTemplate {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_template_str(&path.display().to_string(), &text)
    }

    /// A renderer whose main template is `template`, registered under `name` (used in errors).
    ///
    /// # Errors
    ///
    /// [`Error::Template`] if the template does not parse.
    pub fn from_template_str(name: &str, template: &str) -> Result<Self> {
        let mut renderer = Self::new()?;
        renderer
            .tera
            .add_raw_template(name, template)
            .map_err(|e| template_error(name, &e))?;
        renderer.main = name.to_owned();
        Ok(renderer)
    }

    /// Renders `report` as Markdown.
    ///
    /// # Errors
    ///
    /// [`Error::Render`] if the template fails (an unknown variable or filter in a custom
    /// template, for example).
    pub fn render_markdown(&self, report: &Report, options: &MarkdownOptions) -> Result<String> {
        let view = ReportView::new(report, options);
        let mut context = Context::from_serialize(&view).map_err(|e| Error::Render {
            name: self.main.clone(),
            message: flatten(&e),
        })?;
        context.insert("max_listed_activities", &options.max_listed_activities);
        let text = self
            .tera
            .render(&self.main, &context)
            .map_err(|e| Error::Render {
                name: self.main.clone(),
                message: flatten(&e),
            })?;
        Ok(tidy(&text))
    }
}

/// The JSON report: `report` exactly as serde serializes it, pretty-printed, with a trailing
/// newline. Nothing is capped or escaped; consumers must treat every string as untrusted.
///
/// # Errors
///
/// [`Error::Json`] if serialization fails (not expected for a [`Report`]).
pub fn render_json(report: &Report) -> Result<String> {
    let mut out = serde_json::to_string_pretty(report)?;
    out.push('\n');
    Ok(out)
}

/// Template whitespace control is fiddly; rather than contort the templates, the output is
/// normalised: trailing spaces dropped (two would make a hard line break), runs of blank lines
/// outside fenced blocks collapsed to one, no leading blank lines, one final newline.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fence = false;
    let mut blank_run = true;
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if line.is_empty() && !in_fence {
            if blank_run {
                continue;
            }
            blank_run = true;
        } else {
            blank_run = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    if out.is_empty() {
        out.push('\n');
    }
    out
}

fn base() -> Tera {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    filters::register(&mut tera);
    tera
}

fn template_error(name: &str, e: &tera::Error) -> Error {
    Error::Template {
        name: name.to_owned(),
        message: flatten(e),
    }
}

/// Tera's `Display` shows only the outer message ("Failed to parse 'x'"); the cause with the line
/// and column sits in the source chain.
fn flatten(e: &tera::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(cause.to_string().trim_end());
        source = cause.source();
    }
    message
}
