//! KQL building with safe literals: the scan queries and the escaping of every spliced value.
//!
//! Every value that ends up inside KQL text goes through this crate:
//!
//! - [`string_literal`] and [`obfuscated_string_literal`] quote one value (`"..."` /
//!   `h"..."`), refusing characters that cannot be written safely ([`Error::UnsafeCharacter`]);
//! - [`string_list`] builds the `(h"a", h"b")` list of an `in~` filter;
//! - [`datetime_literal`] writes a UTC `datetime(...)` with Kusto's full tick precision;
//! - [`pim_events_query`], [`azure_activity_queries`] and [`directory_activity_queries`] are
//!   the scan queries. They only cut volume on the server and project the raw columns the
//!   parser reads (plus the caller's object-id claim, [`CALLER_OBJECT_ID`], extracted on the
//!   server); every row is re-checked in Rust. Their [`QueryRange`] splits into half-open
//!   parts, so a query cut at a service limit can be re-run in halves that add up exactly.
//! - [`azure_baseline_queries`], [`directory_baseline_queries`] and
//!   [`activation_count_queries`] are the behaviour-baseline queries (issue 14): they summarize
//!   on the server, one row per identity, operation and resource type (or per identity, for
//!   activation counts), over the days before the scan window.
//!
//! [`check_query`] guards model-written KQL before it runs: one read-only tabular statement,
//! only the [`QueryPolicy`]'s tables wherever Kusto reads a table, a final `| take N` on every
//! query, and a time-filter hint. It works on tokens and structure (the `lexer` and `check`
//! modules, with Kusto's function catalogue in [`BUILTINS`]), and is tested against Microsoft's
//! own parser over a corpus of hostile and legitimate queries (`oracle/`, `tests/corpus/`).
//!
//! [`repair::write_and_run`] is the prompt-and-repair loop for model-written KQL: it asks a
//! [`KqlWriter`](repair::KqlWriter) (a model) for a query, checks it, runs it with a
//! [`QueryRunner`](repair::QueryRunner) (a source), and feeds every refusal, service error or
//! oversized result back to the model, a bounded number of times. [`prompt`] holds its prompts
//! (the schemas of both tables) and [`extract_kql`]. Both traits are the caller's to implement,
//! so this crate depends on no model and no source.
//!
//! Identities (UPNs, object ids) are always written as obfuscated literals, so they stay out of
//! Kusto's query telemetry.
//!
//! ```
//! use pim_domain::{timestamp::parse_timestamp, TimeRange};
//! use pim_kql::{azure_activity_queries, Identity, DEFAULT_CHUNK};
//!
//! let range = TimeRange::new(
//!     parse_timestamp("2026-11-20T09:00:00Z").unwrap(),
//!     parse_timestamp("2026-11-20T13:00:00Z").unwrap(),
//! );
//! let who = [Identity { upn: Some(r#"eve" or 1==1 //@contoso.com"#.into()), object_id: None }];
//! let queries = azure_activity_queries(&who, range, false, DEFAULT_CHUNK).unwrap();
//! assert!(queries[0].contains(r#"Caller in~ (h"eve\" or 1==1 //@contoso.com")"#));
//! ```

mod baseline;
mod builtins;
pub mod check;
mod lexer;
mod literal;
pub mod prompt;
pub mod repair;
mod scan;

pub use baseline::{
    ACTIVATION_COUNT_COLUMNS, BASELINE_COLUMNS, activation_count_queries, azure_baseline_queries,
    directory_baseline_queries,
};
pub use builtins::BUILTINS;
pub use check::{CheckedQuery, QueryPolicy, QueryRejection, check_query};
pub use literal::{datetime_literal, obfuscated_string_literal, string_list, string_literal};
pub use prompt::extract_kql;
pub use scan::{
    ACTIVITY_COLUMNS, ACTIVITY_PIM_COLUMNS, AUDIT_COLUMNS, CALLER_OBJECT_ID, DEFAULT_CHUNK,
    Identity, PIM_OPERATIONS, QueryRange, activity_pim_events_query, azure_activity_queries,
    directory_activity_queries, pim_events_query,
};

/// Why a value or request cannot be turned into KQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The value holds a character that has no verified, safe spelling in a KQL string literal
    /// (a control character, a line separator or a bidirectional control). The value itself
    /// is not repeated in the message: it is usually personal data.
    #[error(
        "value contains U+{code_point:04X} at character position {position}, which cannot be written safely in a KQL string literal"
    )]
    UnsafeCharacter {
        /// The refused character's code point.
        code_point: u32,
        /// Zero-based position of the character (in characters, not bytes).
        position: usize,
    },
    /// An `in~ (...)` list was requested for no values.
    #[error("cannot build an empty KQL list")]
    EmptyList,
    /// A chunk size of 0 identities per query was requested.
    #[error("identities per query must be at least 1")]
    ZeroChunk,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
