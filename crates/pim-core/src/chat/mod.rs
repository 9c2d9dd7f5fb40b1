//! The interactive investigation session behind `pim-chat`: commands (`scan`, "what did 2 do",
//! `assess`, `report`, `show kql`), conversation context ("they", "the second one"), and
//! free-form questions that a model turns into checked, repaired KQL.
//!
//! A [`Session`] holds one conversation and no global state: a bot or web service creates one
//! per user, all sharing one [`Auditor`](crate::Auditor), source and model behind `Arc`s.
//! The session never reads the clock or the environment: each line comes with `now`.
//!
//! ```
//! use std::sync::Arc;
//! use pim_core::chat::{Session, SessionOptions};
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
//! let outcome = runtime.block_on(session.handle_line("scan", now));
//! assert!(outcome.text.starts_with("Scanned") && !outcome.exit);
//! let outcome = runtime.block_on(session.handle_line("what did 2 do", now));
//! assert!(outcome.text.contains("activation"));
//! # Ok(())
//! # }
//! ```
//!
//! See: issue 4.

mod cache;
mod context;
mod intent;
mod nl;
mod save;
mod session;

pub use cache::ScanCache;
pub use context::{Listed, ResolveError, resolve};
pub use intent::{Intent, UserRef, parse_intent};
pub use nl::{extract_kql, format_table};
pub use session::Session;

use pim_kql::check::QueryPolicy;
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
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            hours: crate::DEFAULT_HOURS,
            end: None,
            max_repairs: 3,
            history_turns: 6,
            query_policy: QueryPolicy::default(),
            max_table_rows: 20,
        }
    }
}

/// What a line produced: the text to print, and whether the session is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The answer, as plain text (ends without a trailing newline).
    pub text: String,
    /// True after `exit` / `quit`.
    pub exit: bool,
    /// Set when the request was refused pending the user's yes (e.g. `report PATH` onto an
    /// existing file): a front end on a terminal may ask [`Confirm::question`] and, on yes,
    /// handle [`Confirm::line`]; elsewhere `text` already says how to insist.
    pub confirm: Option<Confirm>,
}

/// A question to put to the user before running a line that replaces something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// The yes/no question, e.g. `Overwrite out.md?`.
    pub question: String,
    /// The line to handle on yes, e.g. `report! out.md`.
    pub line: String,
}

impl Outcome {
    pub(crate) fn say(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            exit: false,
            confirm: None,
        }
    }
}
