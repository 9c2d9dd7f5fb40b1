//! The Log Analytics port (an async trait) and its offline adapters.
//!
//! Every source answers a [`LogQuery`] with raw [`pim_domain::Table`]s, exactly as Log
//! Analytics returns them; one shared parser (in `pim-correlate`) turns rows into domain types
//! whatever the source. This crate never interprets PIM semantics.
//!
//! - [`KqlSource`]: the port, a KQL query source, held as `Arc<dyn KqlSource>` by `pim-core`;
//!   [`SourceCapabilities`] says what a source can run (arbitrary KQL, identities per query,
//!   splitting by time), so core never branches on the kind of source;
//! - [`ExportDir`]: a directory of exported query results (`--from-dir`): JSON in either shape
//!   or the Azure portal's CSV, `AuditLogs` and/or `AzureActivity`;
//! - [`DemoTenant`]: a small embedded tenant with a generated runaway script (`--demo`);
//! - `LogAnalyticsClient` (feature `azure`, on by default): the Log Analytics query REST API,
//!   with typed errors and retries of throttling and transient failures;
//! - [`format::read_export`] and [`csv_export::read_csv_export`]: stream an export file (both
//!   JSON shapes, the portal's CSV) and keep only the rows a [`RowScope`] keeps;
//! - [`format::parse_export`]: reads both export shapes (query API response, `az ... -o json`
//!   row objects) from memory; one unreadable cell costs only its row;
//! - [`csv_export::parse_csv_export`]: reads the portal's CSV export (` [UTC]` headers,
//!   US-style times, dynamic columns as JSON text);
//! - [`Error`]: what failed and whether a retry can help ([`Error::is_retryable`]);
//! - [`Truncation`]: a result cut at a service limit (reference §9.2), told apart from other
//!   partial errors so the caller can split the query and re-run the parts.
//!
//! Offline sources do not run KQL: they answer with the table the query reads
//! ([`LogQuery::table`]), in the file's row order. The scan says which rows it can use in
//! [`LogQuery::scope`]; an export applies it while it streams the file, so its memory follows
//! the rows the scan needs, not the export's size, and [`QueryOutcome::scoped`] says where each
//! row kept stands in the whole table, so that problems still name the right rows. The parser
//! re-checks every row against its window and identity either way.
//!
//! ```
//! use pim_domain::{timestamp::parse_timestamp, TimeRange};
//! use pim_loganalytics::{DemoTenant, KqlSource, LogQuery, LogTable, SourceKind};
//!
//! # tokio_test_runtime(async {
//! let demo = DemoTenant::new().unwrap();
//! assert_eq!(demo.info().kind, SourceKind::Demo);
//! let end = demo.info().default_end.unwrap();
//! let query = LogQuery {
//!     label: "pim-events".into(),
//!     table: Some(LogTable::AuditLogs),
//!     kql: "AuditLogs | take 1".into(),
//!     timespan: TimeRange::new(end - time::Duration::days(1), end),
//!     scope: None,
//! };
//! let outcome = demo.query(&query).await.unwrap();
//! assert_eq!(outcome.tables[0].name, "AuditLogs");
//! # });
//! # fn tokio_test_runtime(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

pub mod csv_export;
mod demo;
mod error;
mod export_dir;
pub mod format;
mod offline;
#[cfg(feature = "azure")]
mod rest;

pub use demo::DemoTenant;
pub use error::{Error, Result};
pub use export_dir::ExportDir;
pub use format::StreamedRow;
#[cfg(feature = "azure")]
pub use rest::{
    DEFAULT_ENDPOINT, LOG_ANALYTICS_SCOPE, LOG_ANALYTICS_SCOPE_CHINA,
    LOG_ANALYTICS_SCOPE_US_GOVERNMENT, LogAnalyticsClient, LogAnalyticsOptions,
    log_analytics_scope,
};

use pim_domain::{Column, DataProblem, Table, TimeRange};
use time::OffsetDateTime;

/// The Log Analytics tables the scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogTable {
    /// Microsoft Entra audit log: PIM events and directory changes.
    AuditLogs,
    /// Azure Resource Manager activity log.
    AzureActivity,
}

impl LogTable {
    /// Every table, in declaration order.
    pub const ALL: [LogTable; 2] = [LogTable::AuditLogs, LogTable::AzureActivity];

    /// The table name as Log Analytics spells it (also the export file stem).
    pub fn name(&self) -> &'static str {
        match self {
            LogTable::AuditLogs => "AuditLogs",
            LogTable::AzureActivity => "AzureActivity",
        }
    }

    /// The export file name, e.g. `AuditLogs.json`.
    pub fn file_name(&self) -> &'static str {
        match self {
            LogTable::AuditLogs => "AuditLogs.json",
            LogTable::AzureActivity => "AzureActivity.json",
        }
    }
}

impl std::fmt::Display for LogTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One query to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// A short purpose for logs, e.g. `pim-events` or `azure-activity 1/2`.
    pub label: String,
    /// The table the query reads; `None` for free-form KQL (which only a workspace can run).
    pub table: Option<LogTable>,
    /// The KQL text (built with `pim-kql`).
    pub kql: String,
    /// The time range, sent as the API `timespan` (offline sources apply [`LogQuery::scope`]
    /// instead).
    pub timespan: TimeRange,
    /// The rows that can matter to this query, said in a form a source that runs no KQL can
    /// apply while it reads ([`RowScope`]). Live sources ignore it: the KQL says the same.
    /// `None` asks for the whole table.
    pub scope: Option<RowScope>,
}

/// Which rows of a table can matter to a scan query, for sources that do not run KQL.
///
/// An export answers every query with the table the query names. Handed a scope, it keeps only
/// the rows that can matter while it streams the file, so its memory follows the rows the scan
/// needs rather than the size of the export (issue 12). Every test is conservative: a row is left
/// out only for a readable operation that is not wanted, or for a readable time *and* a readable
/// identity of which one is out of scope. A row whose time, operation or identity cannot be read
/// is kept, because the parser reports it and counts it against every activation it could belong
/// to. Applying a scope is an optimisation: a source may ignore it (the demo tenant does).
///
/// A kept row keeps its position: [`QueryOutcome::scoped`] lists, for each row returned, where
/// it stands in the whole table, so problems still name the right row of the file.
///
/// A scoped answer gives the scan the same report as the whole table, with two deliberate
/// exceptions that the live query has too: a row outside the scope that is also broken in
/// another way (a missing status, say) is not reported, and an operation whose rows straddle
/// the time span's edge is read from its rows inside the span.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowScope {
    /// Keep rows whose time is within a span.
    pub time: Option<TimeScope>,
    /// Keep rows that name one of a set of identities.
    pub identities: Option<IdentityScope>,
    /// Keep rows whose operation is one of a set of names.
    pub operations: Option<OperationScope>,
    /// Column groups the parser cannot do without (any one column of a group will do, matched
    /// case-insensitively). When the table lacks a group, none of its rows can be read and the
    /// parser says so naming every row: the scope is then not applied at all.
    pub required_columns: Vec<Vec<String>>,
}

/// Rows whose time is within `span` (both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeScope {
    /// The time is the first of these columns that holds a readable timestamp (a string of the
    /// year 2000 or later); a row with none is kept.
    pub columns: Vec<String>,
    /// The span.
    pub span: TimeRange,
}

/// Rows that name one of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityScope {
    /// Where a row names identities; every field that can be read counts. A row where none can
    /// be read is kept.
    pub fields: Vec<IdentityField>,
    /// The identities (UPNs and object ids), compared trimmed and case-insensitively.
    pub values: Vec<String>,
}

/// One place a row names an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityField {
    /// A string column, e.g. `Caller`.
    Column(String),
    /// A key path inside a `dynamic` column (nested JSON, or JSON text), keys matched exactly
    /// first and then case-insensitively, e.g. `InitiatedBy` → `user` → `userPrincipalName`.
    Dynamic {
        /// The column.
        column: String,
        /// The keys, outermost first.
        path: Vec<String>,
    },
}

/// Rows whose operation is one of `names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationScope {
    /// The operation is the first of these columns that holds text; a row with none is kept.
    pub columns: Vec<String>,
    /// The operation names, compared trimmed and case-insensitively.
    pub names: Vec<String>,
}

/// How a scoped answer relates to the whole table ([`QueryOutcome::scoped`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopedRows {
    /// For each row returned, its position in the whole table, as an unscoped answer would
    /// number it (strictly increasing).
    pub positions: Vec<usize>,
    /// Rows of the whole table the scope left out.
    pub left_out: usize,
    /// The earliest readable time (of the scope's time columns) of any row of the whole
    /// table, kept or left out; `None` when the scope reads no time. Tells how far back an
    /// export reaches (the behaviour baseline's coverage check, issue 14) without keeping the
    /// rows.
    pub earliest: Option<OffsetDateTime>,
}

/// Where a streaming read hands the rows one reader keeps (issue 12), so that no table of them
/// is ever held: a parser that collapses rows into operations as they come, say.
///
/// The reader calls [`columns`](Self::columns) before the first row, and again whenever the
/// column list grows (an export of row objects learns its columns as it goes; columns are only
/// ever added at the end), then [`row`](Self::row) for each row kept, in file order.
pub trait RowSink {
    /// The table's columns so far.
    fn columns(&mut self, columns: &[Column]);
    /// One row kept: `position` is its row number in the whole table, as an unscoped answer
    /// would number it (problems name it); `cells` are in column order, and a missing cell (a
    /// short row, a key a row object did not have) reads as null.
    fn row(&mut self, position: usize, cells: &[serde_json::Value]);
    /// As [`row`](Self::row), handing over the cells (the reader no longer needs them), which
    /// spares a sink that keeps or forwards them a copy.
    fn row_owned(&mut self, position: usize, cells: Vec<serde_json::Value>) {
        self.row(position, &cells);
    }
    /// As [`row`](Self::row), the cells borrowed from the reader's buffer: how a streamed
    /// export hands its rows over. A sink that reads the cells in place (through
    /// [`RowCells`](pim_domain::cells::RowCells)) spares every cell a `serde_json::Value`;
    /// by default the cells are made into values and handed to [`row_owned`](Self::row_owned).
    fn row_cells(&mut self, position: usize, cells: &StreamedRow<'_>) {
        self.row_owned(position, cells.to_values());
    }
    /// Forget every row seen: the read starts over (a file that turned out not to be a plain
    /// export is read again, whole).
    fn restart(&mut self);
}

/// One reader of a streamed table ([`RowStream::stream`]): the rows it wants, and where they go.
pub struct RowConsumer<'a> {
    /// The rows that can matter to it; `None` for every row.
    pub scope: Option<RowScope>,
    /// Where they go.
    pub sink: &'a mut dyn RowSink,
}

impl std::fmt::Debug for RowConsumer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowConsumer")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// What one consumer of a streamed table was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Rows handed to its sink.
    pub kept: usize,
    /// Rows of the whole table its scope left out.
    pub left_out: usize,
    /// As [`ScopedRows::earliest`]: the earliest readable time of the scope's time columns
    /// among all rows tested, kept or not.
    pub earliest: Option<OffsetDateTime>,
}

/// The answer to a streamed read, besides the rows the sinks were given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamedAnswer {
    /// The table's columns (all of them, whatever the scopes).
    pub columns: Vec<Column>,
    /// As [`QueryOutcome::partial_error`].
    pub partial_error: Option<String>,
    /// As [`QueryOutcome::problems`]: every row that cannot be read, whatever the scopes.
    pub problems: Vec<DataProblem>,
    /// For each consumer, in order, what it was given.
    pub stats: Vec<StreamStats>,
}

/// A source that can stream a table's rows, to several readers in one pass (an export): the
/// scan then holds what its parsers make of the rows, never the rows (issue 12). A source
/// offers it through [`KqlSource::row_stream`].
pub trait RowStream: Send + Sync + std::fmt::Debug {
    /// How problems name `table` (as [`KqlSource::table_label`], but the file actually read,
    /// e.g. `AzureActivity.csv`).
    ///
    /// # Errors
    ///
    /// As [`RowStream::stream`], when the table cannot be found.
    fn file_label(&self, table: LogTable) -> Result<String>;

    /// Reads `table` once, handing every consumer the rows its scope keeps. Answers with what
    /// [`KqlSource::query`] would answer for a query of the same table and scope, less the
    /// rows.
    ///
    /// # Errors
    ///
    /// As [`KqlSource::query`] for an export: [`Error::MissingTable`], [`Error::Io`],
    /// [`Error::Format`]. Not retryable.
    fn stream(&self, table: LogTable, consumers: &mut [RowConsumer<'_>]) -> Result<StreamedAnswer>;
}

/// The answer to a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryOutcome {
    /// The result tables; the scan queries produce one.
    pub tables: Vec<Table>,
    /// Set when the source returned only part of the result (Log Analytics `PartialError`, or
    /// an export that recorded one): code and innermost message. The data must then be treated
    /// as incomplete, never as the whole truth.
    pub partial_error: Option<String>,
    /// Input problems the adapter found but could skip (e.g. one malformed row in an export).
    /// A source that applies a [`RowScope`] still reports every such row: a row that cannot be
    /// read cannot be shown to be out of scope.
    pub problems: Vec<DataProblem>,
    /// Set when the source applied the query's [`RowScope`] and left rows out: where the rows
    /// returned stand in the whole table. `None` means the first table is the whole table.
    pub scoped: Option<ScopedRows>,
    /// Set when the result was cut at a service limit (reference §9.2), so that running the
    /// same query over a smaller range or fewer identities can return the rest. Other partial
    /// errors (a semantic warning, a workspace that did not answer) leave this `None` and only
    /// set [`partial_error`](Self::partial_error).
    pub truncation: Option<Truncation>,
}

/// The most rows the Log Analytics query API returns for one query (reference §9.1).
pub const MAX_ROWS_PER_QUERY: usize = 500_000;

/// The `innererror` code of a result cut at the service's size limit: `E_QUERY_RESULT_SET_TOO_LARGE`,
/// `0x80DA0003` read as a signed 32-bit number, sent as a string (reference §9.2).
pub const RESULT_SET_TOO_LARGE_CODE: &str = "-2133196797";

/// The Kusto name of the same error, which its messages quote.
pub const RESULT_SET_TOO_LARGE_NAME: &str = "E_QUERY_RESULT_SET_TOO_LARGE";

/// Why a result is known (or must be presumed) to be cut at a service limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truncation {
    /// The service said so: an `innererror` code [`RESULT_SET_TOO_LARGE_CODE`] or a message
    /// naming [`RESULT_SET_TOO_LARGE_NAME`]. `message` is the service's (cleaned) text.
    LimitExceeded {
        /// The innermost message, e.g. "Query result set has exceeded the internal data size
        /// limit 64000000 (E_QUERY_RESULT_SET_TOO_LARGE; ...)".
        message: String,
    },
    /// Exactly [`MAX_ROWS_PER_QUERY`] rows came back without an error: the cut cannot be told
    /// from a complete result, so it is presumed.
    RowLimit {
        /// The number of rows returned.
        rows: usize,
    },
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Truncation::LimitExceeded { message } => {
                write!(f, "the result exceeded a service limit ({message})")
            }
            Truncation::RowLimit { rows } => {
                write!(f, "exactly {rows} rows came back, the service's row limit")
            }
        }
    }
}

/// What kind of source answers the queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// The embedded demo tenant.
    Demo,
    /// A directory of exported query results.
    Export,
    /// A live Log Analytics workspace.
    LogAnalytics,
}

impl SourceKind {
    /// The stable name used in reports: `demo`, `export` or `log_analytics`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Demo => "demo",
            SourceKind::Export => "export",
            SourceKind::LogAnalytics => "log_analytics",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A description of a source, for reports and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// The kind of source.
    pub kind: SourceKind,
    /// Human-readable description: the directory path, the workspace id, or the demo name.
    pub description: String,
    /// The scan end to use when the caller gives none (the demo's fixed reference time, so demo
    /// runs are reproducible); `None` means "now".
    pub default_end: Option<OffsetDateTime>,
}

/// What a source can do. The scan and the chat agent plan their queries from this, never from
/// the source's [`SourceKind`], so a new adapter (Azure Data Explorer, say) plugs in by
/// declaring what it can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceCapabilities {
    /// The source runs the KQL text it is given, so it can answer arbitrary (model-written)
    /// queries. When `false` it answers every query with the whole table the query names
    /// ([`LogQuery::table`]), whatever the text says, and the parser re-checks every row.
    pub runs_arbitrary_kql: bool,
    /// The most identities one activity query may name, to keep the query text within the
    /// service's size limits; `None` when there is no limit.
    pub max_identities_per_query: Option<usize>,
    /// The source honours [`LogQuery::timespan`], so one query over a long range can be split
    /// into shorter ones that together return the same rows.
    pub splits_by_time: bool,
}

impl SourceCapabilities {
    /// A source that runs no KQL and answers with whole tables (an export, the demo tenant).
    pub const WHOLE_TABLES: SourceCapabilities = SourceCapabilities {
        runs_arbitrary_kql: false,
        max_identities_per_query: None,
        splits_by_time: false,
    };
}

/// The port every log source implements: a KQL query source. It runs a [`LogQuery`] and
/// returns raw tables; [`KqlSource::capabilities`] says what it can run.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait KqlSource: Send + Sync + std::fmt::Debug {
    /// What this source is.
    fn info(&self) -> SourceInfo;

    /// What this source can do.
    fn capabilities(&self) -> SourceCapabilities;

    /// How input problems name `table`: the table name, or the file it was read from.
    fn table_label(&self, table: LogTable) -> String {
        table.name().to_owned()
    }

    /// The source's rows as a stream, when it can hand them over one at a time ([`RowStream`],
    /// an export); `None` (the default) when it answers with tables only. Only a source that
    /// runs no KQL is asked.
    fn row_stream(&self) -> Option<std::sync::Arc<dyn RowStream>> {
        None
    }

    /// Runs one query.
    ///
    /// A partial result is not an error: it comes back with [`QueryOutcome::partial_error`]
    /// set, and with [`QueryOutcome::truncation`] too when a service limit cut it.
    ///
    /// # Errors
    ///
    /// - [`Error::Unsupported`]: the source cannot run this query (free-form KQL on an offline
    ///   source). Not retryable.
    /// - [`Error::MissingTable`]: the source has no data for the table. Not retryable; results
    ///   that depend on it are unknown.
    /// - [`Error::Io`], [`Error::Format`]: an export could not be read or parsed. Not retryable.
    /// - [`Error::BadQuery`]: the service rejected the KQL (innermost message, line, position,
    ///   token). Not retryable.
    /// - [`Error::AccessDenied`] (401/403, with the role to grant), [`Error::WorkspaceNotFound`]
    ///   (404), [`Error::InvalidResponse`], [`Error::Credential`] (no token could be had; the
    ///   credential retries on its own), [`Error::InvalidConfig`]: not retryable.
    /// - [`Error::Http`]: retryable for 429 and 500/502/503/504, otherwise not.
    /// - [`Error::Transport`] (no HTTP answer) and [`Error::Timeout`]: retryable.
    /// - [`Error::RetriesExhausted`]: the adapter already retried within its policy; the last
    ///   failure is inside.
    ///
    /// [`Error::is_retryable`] encodes exactly this.
    async fn query(&self, query: &LogQuery) -> Result<QueryOutcome>;
}
