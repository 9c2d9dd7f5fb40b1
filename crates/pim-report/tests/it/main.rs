//! Integration tests of pim-report: one test binary (see the house style).

// clippy.toml allows these inside #[test] functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Shared fixtures and the `pim_snapshot!` helper.
#[macro_use]
mod support;

/// Markdown and JSON snapshots of the fixture report, and its structure.
mod snapshots;

/// Untrusted text that tries to break out of the Markdown.
mod hostile;

/// The JSON report against `docs/report.schema.json`.
mod schema;

/// Custom templates and their errors.
mod templates;

/// The report parsed as GitHub-flavoured Markdown (comrak): no link from untrusted text.
mod autolinks;
