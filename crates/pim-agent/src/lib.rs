//! The chat agent of the PIM Activity Audit Agent: one investigation conversation per user.
//!
//! A [`Session`] understands commands (`scan`, "what did 2 do", `assess`, `report`, `show
//! kql`), conversation context ("they", "the second one"), and free-form questions that a model
//! turns into checked, repaired KQL ([`pim_kql::repair`]). Every line gets a typed [`Answer`]
//! carrying its data (the activations as in the JSON report, the query and its result table):
//! [`render_text`] prints it as `pim-chat` does, and the answer serializes to JSON
//! ([`serde::Serialize`]) for a served agent.
//!
//! A session holds one conversation and no global state: a bot or web service creates one per
//! user, all sharing one [`Auditor`](pim_core::Auditor), source and model behind `Arc`s, and
//! one [`ScanCache`] so that identical scans run once. The session never reads the clock or
//! the environment: each line comes with `now`.
//!
//! The crate's public API is this page: [`Session`] and its [`SessionOptions`], the answer
//! types ([`Answer`] and what it holds), [`render_text`], [`ScanCache`], [`BANNER`] and
//! [`COMMANDS`]. Reading lines (intents), resolving "they" (context), writing reports and the
//! chat's prompts are private modules.
//!
//! ```
//! use std::sync::Arc;
//! use pim_agent::{Answer, Session, SessionOptions, render_text};
//! use pim_core::{Auditor, KqlSource};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = pim_core::demo_source()?;
//! let auditor = Arc::new(Auditor::builder(source.clone()).build());
//! // The demo tenant's data ends at a fixed time; live sessions leave `end` unset.
//! let options = SessionOptions { end: source.info().default_end, ..SessionOptions::default() };
//! let mut session = Session::new(auditor, source, None, options);
//! let now = time::OffsetDateTime::now_utc(); // the caller's clock
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let answer = runtime.block_on(session.handle_line("scan", now));
//! assert!(render_text(&answer).starts_with("Scanned") && !answer.ends_session());
//! let Answer::Scan(scan) = &answer else { unreachable!() };
//! assert_eq!(scan.identities[1].number, 2);
//! let answer = runtime.block_on(session.handle_line("what did 2 do", now));
//! assert!(render_text(&answer).contains("activation"));
//! // The same answer as data, for a served agent.
//! let json = serde_json::to_value(&answer)?;
//! assert_eq!(json["kind"], "activity");
//! assert!(json["activations"][0]["principal"].is_object());
//! # Ok(())
//! # }
//! ```
//!
//! See: issue 4 (the chat), issue 11 (its own crate, structured answers).

mod answer;
mod cache;
mod context;
mod intent;
mod nl;
mod save;
mod session;
mod source;
mod text;

pub use answer::{
    Answer, Confirm, ListedIdentity, Problem, QueryAnswer, ReportActivation, ReportCounts,
    ScanSummary, Summary, UserActivations,
};
pub use cache::ScanCache;
pub use session::Session;
pub use text::render_text;

use pim_kql::QueryPolicy;
use time::OffsetDateTime;

/// The banner a chat front end prints first.
pub const BANNER: &str = "PIM Activity Audit Agent\nType `scan` to list elevated identities, ask questions about them, or `exit` to leave.";

/// The command words, for completion and help.
pub const COMMANDS: &[&str] = &[
    "scan", "what did", "assess", "report", "show kql", "help", "exit", "quit",
];

/// How a [`Session`] scans and answers.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Default scan window length in hours (`scan` without an argument).
    pub hours: u32,
    /// The end of every scan window; `None` uses the `now` passed with each line. Fix it for
    /// the demo tenant and reproducible sessions.
    pub end: Option<OffsetDateTime>,
    /// Corrected queries the model may write after a failed or refused one (default 3).
    pub max_repairs: usize,
    /// Earlier question/answer exchanges sent with each free-form question (default 6).
    pub history_turns: usize,
    /// What model-written KQL may do before it runs (tables, row cap, time-filter hint) and how
    /// large its result may be.
    pub query_policy: QueryPolicy,
    /// Result rows printed for a free-form question (default 20); the rest are counted.
    pub max_table_rows: usize,
    /// Log Analytics queries one scan runs at once (default
    /// [`pim_core::DEFAULT_QUERY_CONCURRENCY`]).
    pub query_concurrency: usize,
    /// Days of history for each scan's behaviour baseline (default
    /// [`pim_core::DEFAULT_BASELINE_DAYS`]; 0 turns it off; `PIM_BASELINE_DAYS`).
    pub baseline_days: u32,
    /// Whether `report PATH` may write a file (default `true`). A served agent sets `false`:
    /// its users are remote, and the server's disk is not theirs (issue 15).
    pub write_files: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            hours: pim_core::DEFAULT_HOURS,
            end: None,
            max_repairs: 3,
            history_turns: 6,
            query_policy: QueryPolicy::default(),
            max_table_rows: 20,
            query_concurrency: pim_core::DEFAULT_QUERY_CONCURRENCY,
            baseline_days: pim_core::DEFAULT_BASELINE_DAYS,
            write_files: true,
        }
    }
}
