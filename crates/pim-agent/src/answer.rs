//! What a [`Session`](crate::Session) answers: one typed value per line, with the data it is
//! about (activations, the query and its result table), so that each front end renders it its
//! own way. `pim-chat` prints [`render_text`](crate::render_text); a served agent serializes
//! the same value to JSON.
//!
//! Untrusted text (names, justifications, log cells, the model's words) is kept here as it
//! came, as data. Making it safe is the renderer's job: the text renderer escapes it for a
//! terminal, and JSON escapes it by construction.
//!
//! See: issue 11, "The chat agent has its own library crate".

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use pim_domain::{ActivationReport, Report, ReportWindow, Table};
use serde::{Serialize, Serializer};

/// The answer to one line. Serialized with a `kind` tag (`"scan"`, `"query"`, …) next to the
/// variant's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Answer {
    /// A blank line: nothing to say.
    Nothing,
    /// `help`: the commands.
    Help,
    /// `exit` / `quit`: the session is over.
    Exit,
    /// `show kql`: the last query run, if any.
    LastQuery {
        /// The query; `None` before the first one.
        kql: Option<String>,
    },
    /// `scan`: who activated a role in the window.
    Scan(ScanSummary),
    /// "what did X do": the activations of one user and what they did in each window.
    Activity(UserActivations),
    /// `assess X`, "does their activity align?": the judgement of each of a user's activations.
    Assessment(UserActivations),
    /// `report`: the Markdown report of the last scan, to print.
    Report {
        /// The report.
        markdown: String,
        /// What it holds.
        #[serde(flatten)]
        counts: ReportCounts,
    },
    /// `report PATH`: the report was written.
    ReportSaved {
        /// The path as typed.
        path: String,
        /// The file written, when the path is a symlink the user asked to write through.
        through_link: Option<String>,
        /// What the report holds.
        #[serde(flatten)]
        counts: ReportCounts,
    },
    /// `report PATH` onto something that is there: not written until the user says yes.
    NeedsConfirmation {
        /// Why it was not written, e.g. `out.md already exists`.
        reason: String,
        /// What to ask and the line to handle on yes.
        confirm: Confirm,
    },
    /// A free-form question answered with model-written, checked KQL and its result.
    Query(QueryAnswer),
    /// The request could not be answered; the problem says why and what to do.
    Problem(Problem),
}

impl Answer {
    /// Whether the session is over (`exit`).
    pub fn ends_session(&self) -> bool {
        matches!(self, Self::Exit)
    }

    /// The question to put to the user before insisting, when the request was refused pending
    /// a yes. A front end on a terminal may ask [`Confirm::question`] and, on yes, handle
    /// [`Confirm::line`]; elsewhere the text already says how to insist.
    pub fn confirm(&self) -> Option<&Confirm> {
        match self {
            Self::NeedsConfirmation { confirm, .. } => Some(confirm),
            _ => None,
        }
    }

    /// Every activation the answer is about, in the answer's order.
    pub fn activations(&self) -> Vec<&ActivationReport> {
        self.report_activations()
            .into_iter()
            .map(Deref::deref)
            .collect()
    }

    /// Every activation the answer is about, in the answer's order, with the report each
    /// belongs to (so a server can render each activation of a shared report once).
    pub fn report_activations(&self) -> Vec<&ReportActivation> {
        match self {
            Self::Scan(scan) => scan
                .identities
                .iter()
                .flat_map(|i| &i.activations)
                .collect(),
            Self::Activity(user) | Self::Assessment(user) => user.activations.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// A question to put to the user before running a line that replaces something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirm {
    /// The yes/no question, e.g. `Overwrite out.md?`.
    pub question: String,
    /// The line to handle on yes, e.g. `report! out.md`.
    pub line: String,
}

/// The result of `scan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanSummary {
    /// The scan window.
    pub window: ReportWindow,
    /// Its length in hours.
    pub hours: u32,
    /// Where the data came from (the source's description).
    pub source: String,
    /// Activations in the window.
    pub activations: usize,
    /// Activations that need a human look.
    pub findings: usize,
    /// Warnings about the scan as a whole (partial results, no model configured, …).
    pub warnings: Vec<String>,
    /// The identities found, numbered as follow-ups refer to them ("what did 2 do").
    pub identities: Vec<ListedIdentity>,
}

/// One identity of a scan listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedIdentity {
    /// The number follow-ups use (1-based).
    pub number: usize,
    /// The label reports use: the UPN, else display name, else object id.
    pub label: String,
    /// Their activations in the window, as in the JSON report.
    pub activations: Vec<ReportActivation>,
}

/// One user's activations: the subject of "what did X do" and of `assess`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserActivations {
    /// The user, as resolved (a label from the listing, or the name as typed).
    pub user: String,
    /// Their activations in the scan window, as in the JSON report.
    pub activations: Vec<ReportActivation>,
}

/// One activation of the session's last report, shared rather than copied: an activation can
/// carry thousands of operations, and fifty sessions listing the same scan should not copy
/// them fifty times. Reads as (derefs to) an [`ActivationReport`] and serializes as one.
#[derive(Clone)]
pub struct ReportActivation {
    report: Arc<Report>,
    /// Always a valid index into `report.activations` (see [`ReportActivation::all`]).
    index: usize,
}

impl ReportActivation {
    /// The activations of `report` that `keep` selects, in report order.
    pub(crate) fn all(
        report: &Arc<Report>,
        mut keep: impl FnMut(&ActivationReport) -> bool,
    ) -> Vec<Self> {
        report
            .activations
            .iter()
            .enumerate()
            .filter(|(_, a)| keep(a))
            .map(|(index, _)| Self {
                report: report.clone(),
                index,
            })
            .collect()
    }
}

impl ReportActivation {
    /// The report this activation belongs to, shared with every answer about it.
    pub fn report(&self) -> &Arc<Report> {
        &self.report
    }

    /// Its position in [`ReportActivation::report`]'s `activations`.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Deref for ReportActivation {
    type Target = ActivationReport;

    fn deref(&self) -> &ActivationReport {
        // The index came from enumerating this very report, which is immutable behind the Arc.
        &self.report.activations[self.index]
    }
}

impl fmt::Debug for ReportActivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for ReportActivation {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Serialize for ReportActivation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

/// What a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportCounts {
    /// Activations in the report.
    pub activations: usize,
    /// Findings among them.
    pub findings: usize,
}

/// A free-form question's answer: the query that ran, its result, and the model's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryAnswer {
    /// The question as asked.
    pub question: String,
    /// The query that ran (checked, with the row cap and any time-filter hint).
    pub kql: String,
    /// The first result table, every row returned (within the policy's row cap and size bound).
    pub table: Table,
    /// Rows the text shows; the rest are counted.
    pub max_rows: usize,
    /// Set when the source returned only part of the result.
    pub partial_error: Option<String>,
    /// The row cap appended to the query (`| take N`).
    pub row_cap: Option<usize>,
    /// Whether a `TimeGenerated` filter was added to the query.
    pub added_time_filter: bool,
    /// What was wrong with earlier attempts, in order: what the model repaired.
    pub repairs: Vec<String>,
    /// The model's answer in words.
    pub summary: Summary,
}

/// The model's answer in words to a query result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "text", rename_all = "snake_case")]
pub enum Summary {
    /// The model's words, trimmed (untrusted: the renderer makes them printable).
    Text(String),
    /// The model answered with nothing.
    Empty,
    /// The model could not be reached; the reason.
    Failed(String),
}

/// Why a request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The scan options are invalid (e.g. a window of 0 hours).
    ScanRefused {
        /// Why.
        reason: String,
    },
    /// The scan ran and failed.
    ScanFailed {
        /// Why.
        reason: String,
    },
    /// A reference ("they", "7") that names nobody.
    UnknownUser {
        /// Why, and what to type instead.
        reason: String,
    },
    /// The user did not activate a role in the window.
    NotActivated {
        /// The user.
        user: String,
        /// The window searched, when a scan ran.
        window: Option<ReportWindow>,
    },
    /// `report` before any scan.
    NothingToReport,
    /// The report could not be rendered.
    RenderFailed {
        /// Why.
        reason: String,
    },
    /// The report could not be written, and insisting would not help.
    WriteFailed {
        /// The path as typed.
        path: String,
        /// Why.
        reason: String,
    },
    /// A free-form question, and no model is configured.
    NoModel,
    /// A free-form question, and the source runs no KQL (the demo tenant, offline exports).
    NoWorkspace,
    /// The model could not be reached.
    ModelUnreachable {
        /// Why.
        reason: String,
    },
    /// The query could not run, for a reason a new query cannot fix.
    QueryFailed {
        /// Why.
        reason: String,
    },
    /// Every attempt at a query failed.
    NoWorkingQuery {
        /// The repairs tried after the first attempt.
        repairs: usize,
        /// What was wrong with the last attempt.
        last_problem: String,
    },
}
