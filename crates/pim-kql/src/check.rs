//! Safety checks for KQL written by a model, before it runs against the workspace.
//!
//! [`check_query`] keeps a query read-only and inside the allowed tables, and returns it with a
//! final row cap. It works on the structure of the query, not on keywords: the
//! [lexer](crate::lexer) turns the text into tokens (so a keyword inside a string literal or a
//! `//` comment never counts), the brackets are paired, and the checker walks the statements,
//! the pipelines and every bracketed group, deciding for each whether Kusto reads it as a
//! tabular expression.
//!
//! This is not a full KQL parser. Where the structure is unclear the checker refuses with a
//! message the model can act on, rather than guessing in the permissive direction. The tests
//! hold it to Microsoft's own parser (`@kusto/language-service-next`, see `oracle/` and
//! `tests/it/oracle.rs`) over a corpus of hostile and legitimate queries.
//!
//! Decisions a caller must know:
//! - **Statements.** Any number of `let` statements, then exactly one tabular statement. A second
//!   tabular statement, `set`/`declare`/`alias`/`restrict`/`pattern` statements and management
//!   commands (a `.` where a statement or line starts) are refused.
//! - **Where tables are read.** A table name is looked for wherever Kusto takes a tabular
//!   expression: the start of a statement, a `let` value and a `let` function body; the arguments
//!   of `union`, `join` and `lookup`; the brackets of `toscalar`, `materialize`, and of
//!   `in`/`!in`/`in~`/`!in~`/`has_any`/`has_all` at any depth of parentheses; every bracketed
//!   group that holds a `|` or starts with a tabular operator, which covers `fork`, `facet … with`,
//!   `partition by … (…)`/`{…}` and `mv-apply … on (…)`; `search in (…)`/`find in (…)`; and the
//!   tabular arguments of functions defined by `let`. Each must be an allowed table (matched
//!   case-insensitively) or a name bound earlier by `let`, a function parameter or `| as`.
//!   Wildcards such as `union Audit*`, and `search`/`find` without `in (...)`, are refused.
//! - **Outside the workspace.** `cluster()`, `database()`, `workspace()`, `app()`, `table()`,
//!   `externaldata` and the other data-source calls are refused anywhere, as are `evaluate`
//!   plugins other than the row-reshaping ones, graph operators and `macro-expand`.
//! - **Calls.** Where Kusto reads a call's result as a table (a statement's start, `union`/
//!   `join`/`lookup` arguments, `in (f())`), only Kusto's built-in functions
//!   ([`crate::builtins`]) and functions defined by `let` may be called: any other name could be
//!   a function stored in the workspace that reads any table. Known limitation: in a scalar
//!   position an unknown call is accepted (it may be a typo, which Kusto reports and the repair
//!   loop fixes), so a stored *scalar* function whose body reads another table through
//!   `toscalar` is not detected; the stored functions of a workspace are the operator's to
//!   keep clean.
//! - **ASCII.** Outside literals and comments only printable ASCII is accepted, so a look-alike
//!   such as a full-width `｜` is refused.
//! - **Row cap.** `\n| take {row_cap}` is appended to the final statement every time (before a
//!   final `render`, which must stay last); a `take`, `top` or `summarize` already in the query
//!   is never trusted, since its count may be an expression (`take 10 * 10000000`). `fork` and
//!   `facet` are refused (after the tables in them are checked): they return several result
//!   tables, which one cap cannot bound.
//!   One row can still hold everything (`summarize make_list(pack_all())`): the caller must also
//!   bound the size of the response, as the [repair loop](crate::repair) does.
//! - **Time range.** The control is the query API's `timespan`, which the caller must send on
//!   every request. The text filter added here is a hint that keeps scans small:
//!   `| where TimeGenerated > ago(..)` is inserted after every allowed-table reference whose
//!   pipeline's leading `where` operators do not compare `TimeGenerated` (wrapped in parentheses inside
//!   `union`/`join`/`lookup` argument lists), on the same line, so the line numbers of a Kusto
//!   error still point into the model's own text. Tables named in `search in (...)`/`find in
//!   (...)` or passed to a `let` function get no filter.
//! - `print`, `range` and `datatable` are accepted: they read no stored data.
//!
//! See: issue 4, "Natural language to KQL, and repair" and "Safety"; issue 9, "KQL tables",
//! "KQL row cap" and "KQL time filter".

use std::time::Duration;

use crate::builtins::is_builtin;
use crate::lexer::{Kind, Tok, match_brackets, tokenize};

/// Queries longer than this (in characters) are refused before tokenizing.
pub const MAX_QUERY_CHARS: usize = 20_000;

/// Calls that reach data outside the workspace's allowed tables, or outside the workspace.
const FORBIDDEN_CALLS: &[&str] = &[
    "cluster",
    "database",
    "workspace",
    "app",
    "adx",
    "resource",
    "externaldata",
    "external_data",
    "external_table",
    "materialized_view",
    "stored_query_result",
    "entity_group",
    "table",
    "graph",
];

/// `evaluate` plugins that only reshape the rows they are given. Everything else (for example
/// `http_request`, `sql_request`, `python`, `r`) may reach outside the workspace or run code.
const ALLOWED_PLUGINS: &[&str] = &[
    "bag_unpack",
    "pivot",
    "narrow",
    "autocluster",
    "basket",
    "diffpatterns",
];

/// Statement kinds that change query options or the name scope; a model has no use for them.
const REFUSED_STATEMENTS: &[&str] = &["set", "declare", "alias", "restrict", "pattern"];

/// Operators refused wherever they appear: they read tables or entity groups by other routes.
const REFUSED_OPERATORS: &[&str] = &[
    "make-graph",
    "graph-match",
    "graph-merge",
    "graph-to-table",
    "graph-shortest-paths",
    "graph-mark-components",
    "macro-expand",
    "execute-and-cache",
];

/// Tabular operators. A bracketed group that starts with one is a sub-pipeline (`fork`,
/// `facet … with`, `partition`, `mv-apply … on`), applied to rows handed in from outside.
const OPERATORS: &[&str] = &[
    "as",
    "consume",
    "count",
    "distinct",
    "evaluate",
    "extend",
    "facet",
    "filter",
    "find",
    "fork",
    "getschema",
    "invoke",
    "join",
    "limit",
    "lookup",
    "make-series",
    "mv-apply",
    "mv-expand",
    "order",
    "parse",
    "parse-kv",
    "parse-where",
    "partition",
    "project",
    "project-away",
    "project-keep",
    "project-rename",
    "project-reorder",
    "reduce",
    "render",
    "sample",
    "sample-distinct",
    "scan",
    "search",
    "serialize",
    "sort",
    "summarize",
    "take",
    "top",
    "top-hitters",
    "top-nested",
    "union",
    "where",
];

/// Words followed by `(` that are not calls: type literals and keywords.
const NOT_CALLS: &[&str] = &[
    "and", "or", "by", "on", "with", "of", "step", "to", "from", "between", "typeof", "dynamic",
    "datetime", "timespan", "time", "date", "guid", "uniqueid", "bool", "boolean", "int", "int8",
    "long", "real", "double", "decimal", "string", "kind", "title",
];

/// What [`check_query`] enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPolicy {
    /// Tables a query may read, compared case-insensitively. Default: `AuditLogs`, `AzureActivity`.
    pub allowed_tables: Vec<String>,
    /// Most rows a query may return: `| take {row_cap}` is appended to every query. Default: 1000.
    pub row_cap: usize,
    /// Most bytes of cell text a result may hold; the caller measures the returned table,
    /// since one row can hold everything. Default: 8 MiB (1000 full AzureActivity rows are
    /// about 1.3 MB; the API itself stops near 64 MB).
    pub max_result_bytes: usize,
    /// Lookback of the `| where TimeGenerated > ago(..)` hint added to a table reference that
    /// has no time filter. Default: 7 days.
    pub default_lookback: Duration,
}

impl Default for QueryPolicy {
    fn default() -> Self {
        Self {
            allowed_tables: vec!["AuditLogs".into(), "AzureActivity".into()],
            row_cap: 1000,
            max_result_bytes: 8 * 1024 * 1024,
            default_lookback: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A query that passed [`check_query`], ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedQuery {
    /// The query to run: the original text, plus the row cap and the time-filter hints.
    pub kql: String,
    /// Whether `| where TimeGenerated > ago(..)` was inserted anywhere.
    pub added_time_filter: bool,
    /// Whether `| take {cap}` was appended; always true, kept so callers can say so.
    pub added_row_cap: bool,
    /// The allowed tables the query reads, spelled as in the policy, in order of first use.
    pub tables: Vec<String>,
}

/// Why a query was refused. The messages are specific so a model asked to repair the query
/// can act on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryRejection {
    /// A management (control) command such as `.drop table` or `.show`; only queries may run.
    #[error(
        "management command `{0}` is not allowed: only read-only queries may run; remove every statement that starts with `.`"
    )]
    ManagementCommand(String),
    /// A table (or table pattern) outside the policy's list.
    #[error("table `{table}` is not allowed; query only these tables: {}", .allowed.join(", "))]
    DisallowedTable {
        /// The name as written in the query.
        table: String,
        /// The tables the policy allows.
        allowed: Vec<String>,
    },
    /// Nothing but whitespace, comments or `;`.
    #[error("the query is empty: it holds no statement, only whitespace or comments")]
    Empty,
    /// Longer than [`MAX_QUERY_CHARS`]; carries the length in characters.
    #[error("the query is {0} characters long; the limit is 20000 characters")]
    TooLong(usize),
    /// A construct the checker refuses; the message says which and what to do instead.
    #[error("{0}")]
    Unsupported(String),
}

/// Checks a model-written query against `policy` and returns the text to run.
///
/// ```
/// use pim_kql::{check_query, QueryPolicy, QueryRejection};
///
/// let policy = QueryPolicy::default();
/// let checked = check_query("AuditLogs | where OperationName has \"role\"", &policy).unwrap();
/// assert_eq!(
///     checked.kql,
///     "AuditLogs | where TimeGenerated > ago(7d) | where OperationName has \"role\"\n| take 1000"
/// );
/// assert!(matches!(
///     check_query("AuditLogs; .drop table AuditLogs", &policy),
///     Err(QueryRejection::ManagementCommand(_))
/// ));
/// assert!(matches!(
///     check_query("AuditLogs | where Id in ((SigninLogs | project Id))", &policy),
///     Err(QueryRejection::DisallowedTable { .. })
/// ));
/// ```
///
/// # Errors
///
/// Returns a [`QueryRejection`] when the query is empty or too long, holds a management
/// command or more than one tabular statement, reads a table outside the policy or outside
/// the workspace, calls a function that is neither built in nor defined by `let`, calls a
/// refused `evaluate` plugin, or cannot be tokenized (an unterminated string, unbalanced
/// brackets, a non-ASCII character outside a literal).
pub fn check_query(kql: &str, policy: &QueryPolicy) -> Result<CheckedQuery, QueryRejection> {
    let length = kql.chars().count();
    if length > MAX_QUERY_CHARS {
        return Err(QueryRejection::TooLong(length));
    }
    let toks = tokenize(kql)?;
    if toks.iter().all(|t| t.is_punct(";")) {
        return Err(QueryRejection::Empty);
    }
    reject_management_commands(&toks)?;
    let matching = match_brackets(&toks)?;
    let mut walker = Walker {
        toks: &toks,
        matching: &matching,
        policy,
        scopes: vec![Vec::new()],
        refs: Vec::new(),
    };
    let (last_lo, last_hi) = walker.program(0, toks.len())?;

    // Only one result table can be capped. Tables inside were checked above; a `fork` or
    // `facet` anywhere (also in parentheses or a `let`) may reach the result.
    if let Some(op) = toks.windows(2).find_map(|w| {
        (w[0].is_punct("|") && (w[1].is_ident("fork") || w[1].is_ident("facet"))).then_some(&w[1])
    }) {
        return Err(unsupported(format!(
            "`{}` returns several result tables, which one row cap cannot bound; write one pipeline (a `union` of subqueries if needed)",
            op.value
        )));
    }
    let segments = walker.segments(last_lo, last_hi);

    // (byte offset, text) pairs, applied from the end so earlier offsets stay valid.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let filter = format!(
        " | where TimeGenerated > ago({})",
        timespan(policy.default_lookback)
    );
    let mut added_time_filter = false;
    for r in walker.refs.iter().filter(|r| r.filterable && !r.filtered) {
        added_time_filter = true;
        let tok = &toks[r.tok];
        if r.wrap {
            inserts.push((tok.start, "(".into()));
            inserts.push((tok.end, format!("{filter})")));
        } else {
            inserts.push((tok.end, filter.clone()));
        }
    }
    // `render` must stay the last operator, so the cap goes before it.
    let mut cap_end = toks[last_hi - 1].end;
    if let Some(&(lo, _)) = segments.last().filter(|_| segments.len() > 1)
        && toks[lo].is_ident("render")
    {
        cap_end = toks[lo - 2].end;
    }
    inserts.push((cap_end, format!("\n| take {}", policy.row_cap)));
    // Stable sort keeps a wrap's "(" before the table and its suffix after it.
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = kql.to_string();
    for (at, text) in inserts.iter().rev() {
        out.insert_str(*at, text);
    }

    let mut tables: Vec<String> = Vec::new();
    for r in &walker.refs {
        if !tables.contains(&r.table) {
            tables.push(r.table.clone());
        }
    }
    Ok(CheckedQuery {
        kql: out,
        added_time_filter,
        added_row_cap: true,
        tables,
    })
}

fn unsupported(message: impl Into<String>) -> QueryRejection {
    QueryRejection::Unsupported(message.into())
}

/// Formats a lookback as a KQL timespan literal in the largest whole unit.
fn timespan(d: Duration) -> String {
    let ms = d.as_millis();
    let secs = d.as_secs();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if secs != 0 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs != 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs != 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Kusto runs a management command only when the statement starts with `.`; refusing a `.`
/// at the start of any statement or line also covers one hidden after `;` or a comment.
fn reject_management_commands(toks: &[Tok]) -> Result<(), QueryRejection> {
    for (i, tok) in toks.iter().enumerate() {
        let starts = i == 0
            || tok.line_start
            || toks[i - 1].is_punct(";")
            || toks[i - 1].is_punct("{")
            || toks[i - 1].is_punct("|");
        if tok.is_punct(".") && starts {
            let name = toks
                .get(i + 1)
                .filter(|t| t.kind == Kind::Ident)
                .map_or(String::new(), |t| t.value.clone());
            return Err(QueryRejection::ManagementCommand(format!(".{name}")));
        }
    }
    Ok(())
}

struct TableRef {
    table: String,
    tok: usize,
    /// In an argument list, the filtered table must be wrapped in parentheses.
    wrap: bool,
    /// `search in (...)`/`find in (...)` and function arguments take bare names only, so no
    /// filter can be added.
    filterable: bool,
    /// The table's own pipeline starts with a `where` on `TimeGenerated`.
    filtered: bool,
}

/// A name in scope: a `let` binding, a function parameter or an `| as` name.
struct Binding {
    name: String,
    /// A `let` function with at least one tabular parameter: its arguments may be tables.
    tabular_params: bool,
}

struct Walker<'a> {
    toks: &'a [Tok],
    matching: &'a [usize],
    policy: &'a QueryPolicy,
    /// Names visible at this point, innermost scope last.
    scopes: Vec<Vec<Binding>>,
    refs: Vec<TableRef>,
}

/// How the first part of a pipeline is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A tabular expression: the first part is a source (a table, `union`, `print`, ...).
    Source,
    /// A sub-pipeline of `fork`/`facet`/`partition`/`mv-apply`: every part is an operator.
    Stages,
}

impl Walker<'_> {
    fn tok(&self, i: usize, hi: usize) -> Option<&Tok> {
        self.toks.get(i).filter(|_| i < hi)
    }

    fn binding(&self, name: &str) -> Option<&Binding> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|b| b.name == name)
    }

    fn is_bound(&self, name: &str) -> bool {
        self.binding(name).is_some()
    }

    fn bind(&mut self, name: String, tabular_params: bool) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(Binding {
                name,
                tabular_params,
            });
        }
    }

    fn allowed(&self, name: &str) -> Option<String> {
        self.policy
            .allowed_tables
            .iter()
            .find(|t| t.eq_ignore_ascii_case(name))
            .cloned()
    }

    fn disallowed(&self, table: impl Into<String>) -> QueryRejection {
        QueryRejection::DisallowedTable {
            table: table.into(),
            allowed: self.policy.allowed_tables.clone(),
        }
    }

    fn forbidden_call(&self, name: &str) -> QueryRejection {
        unsupported(format!(
            "`{name}` reads data outside the allowed tables and is not allowed; query only {}",
            self.policy.allowed_tables.join(", ")
        ))
    }

    /// Index after the bracket group opened at `open`.
    fn after(&self, open: usize) -> usize {
        self.matching[open] + 1
    }

    /// Splits `[lo, hi)` at top-level `sep` tokens (outside brackets).
    fn split(&self, lo: usize, hi: usize, sep: &str) -> Vec<(usize, usize)> {
        let mut parts = Vec::new();
        let mut begin = lo;
        let mut i = lo;
        while i < hi {
            if self.toks[i].is_open() {
                i = self.after(i);
            } else if self.toks[i].is_punct(sep) {
                parts.push((begin, i));
                begin = i + 1;
                i += 1;
            } else {
                i += 1;
            }
        }
        parts.push((begin, hi));
        parts
    }

    /// The parts of a pipeline, split at top-level `|`.
    fn segments(&self, lo: usize, hi: usize) -> Vec<(usize, usize)> {
        self.split(lo, hi, "|")
    }

    fn has_top_level(&self, lo: usize, hi: usize, sep: &str) -> bool {
        self.split(lo, hi, sep).len() > 1
    }

    fn starts_with_operator(&self, lo: usize, hi: usize) -> bool {
        self.tok(lo, hi).is_some_and(|t| {
            t.kind == Kind::Ident
                && (OPERATORS.contains(&t.value.as_str())
                    || REFUSED_OPERATORS.contains(&t.value.as_str()))
                // `count()` is a call; `join (T)` and `union (T)` are operators.
                && !(is_builtin(&t.value) && self.tok(lo + 1, hi).is_some_and(|n| n.is_punct("(")))
        })
    }

    /// Statements of a query or a function body: `let`s, then exactly one tabular statement.
    /// Returns the range of the tabular statement.
    fn program(&mut self, lo: usize, hi: usize) -> Result<(usize, usize), QueryRejection> {
        let statements: Vec<(usize, usize)> = self
            .split(lo, hi, ";")
            .into_iter()
            .filter(|(a, b)| a < b)
            .collect();
        let Some(&last) = statements.last() else {
            return Err(QueryRejection::Empty);
        };
        for &(a, b) in &statements {
            let first = &self.toks[a];
            if first.kind == Kind::Ident && REFUSED_STATEMENTS.contains(&first.value.as_str()) {
                return Err(unsupported(format!(
                    "`{}` statements are not allowed; write only `let` statements and one tabular expression",
                    first.value
                )));
            }
            if first.is_ident("let") {
                if (a, b) == last {
                    return Err(unsupported(
                        "the query must end with a tabular expression, not a `let` statement",
                    ));
                }
                self.let_statement(a, b)?;
            } else if (a, b) != last {
                return Err(unsupported(
                    "the query holds more than one tabular statement; write `let` statements and exactly one tabular expression, the last",
                ));
            } else {
                self.pipeline(a, b, Mode::Source)?;
            }
        }
        Ok(last)
    }

    fn let_statement(&mut self, lo: usize, hi: usize) -> Result<(), QueryRejection> {
        let (Some(name), Some(eq)) = (self.tok(lo + 1, hi), self.tok(lo + 2, hi)) else {
            return Err(unsupported(
                "malformed `let` statement: expected `let name = ...`",
            ));
        };
        if name.kind != Kind::Ident || !eq.is_punct("=") {
            return Err(unsupported(
                "malformed `let` statement: expected `let name = ...`",
            ));
        }
        let name = name.value.clone();
        let mut rhs = lo + 3;
        if self.tok(rhs, hi).is_some_and(|t| t.is_ident("view")) {
            rhs += 1;
        }
        let Some(value) = self.tok(rhs, hi) else {
            return Err(unsupported(format!("`let {name} =` has no value")));
        };
        let function_body = if value.is_punct("(") {
            let close = self.matching[rhs];
            self.tok(close + 1, hi)
                .filter(|t| t.is_punct("{"))
                .map(|_| (close, close + 1))
        } else {
            None
        };
        let Some((close, open)) = function_body else {
            self.pipeline(rhs, hi, Mode::Source)?;
            self.bind(name, false);
            return Ok(());
        };
        // Parameters: identifiers followed by `:` at the first level; `t:(*)` or
        // `t:(x:string)` is a tabular one. Default values are scalar expressions.
        let mut params = Vec::new();
        let mut tabular_params = false;
        for (a, b) in self.split(rhs + 1, close, ",") {
            let (Some(p), Some(colon)) = (self.tok(a, b), self.tok(a + 1, b)) else {
                continue;
            };
            if p.kind != Kind::Ident || !colon.is_punct(":") {
                return Err(unsupported(format!(
                    "malformed parameter list of `let {name}`: expected `(name:type, ...)`"
                )));
            }
            let tabular = self.tok(a + 2, b).is_some_and(|t| t.is_punct("("));
            tabular_params |= tabular;
            params.push(Binding {
                name: p.value.clone(),
                tabular_params: false,
            });
            let mut j = if tabular { self.after(a + 2) } else { a + 3 };
            if self.tok(j, b).is_some_and(|t| t.is_punct("=")) {
                j += 1;
                self.scalar(j, b)?;
            }
        }
        self.scopes.push(params);
        let body = self.program(open + 1, self.matching[open]);
        self.scopes.pop();
        body?;
        let after = self.after(open);
        if after < hi {
            return Err(unsupported(format!(
                "unexpected text after the body of `let {name}`; end the statement with `;`"
            )));
        }
        self.bind(name, tabular_params);
        Ok(())
    }

    /// A pipeline in `[lo, hi)`: parts split at top-level `|`.
    fn pipeline(&mut self, lo: usize, hi: usize, mode: Mode) -> Result<(), QueryRejection> {
        if lo >= hi {
            return Err(unsupported("expected a tabular expression here"));
        }
        if self.has_top_level(lo, hi, ";") {
            return Err(unsupported(
                "`;` may only end a statement at the top level or inside a `let` function body",
            ));
        }
        let segments = self.segments(lo, hi);
        for (k, &(a, b)) in segments.iter().enumerate() {
            if a >= b {
                return Err(unsupported(
                    "an empty pipeline stage: every `|` must be followed by an operator",
                ));
            }
            if k == 0 && mode == Mode::Source {
                let refs_before = self.refs.len();
                self.source(a, b)?;
                // A lone table whose leading `where`s compare `TimeGenerated` needs no hint.
                let time_filtered = segments[1..]
                    .iter()
                    .take_while(|&&(wa, wb)| self.tok(wa, wb).is_some_and(|t| t.is_ident("where")))
                    .any(|&(wa, wb)| self.is_time_where(wa, wb));
                if b == a + 1 && time_filtered {
                    for r in self.refs[refs_before..].iter_mut() {
                        if r.tok == a {
                            r.filtered = true;
                        }
                    }
                }
            } else {
                self.operator(a, b)?;
            }
        }
        Ok(())
    }

    /// `where` with a comparison of `TimeGenerated` anywhere in its predicate.
    fn is_time_where(&self, lo: usize, hi: usize) -> bool {
        if !self.tok(lo, hi).is_some_and(|t| t.is_ident("where")) {
            return false;
        }
        (lo + 1..hi).any(|i| {
            self.toks[i].is_ident("TimeGenerated")
                && self.tok(i + 1, hi).is_some_and(|n| {
                    n.is_ident("between")
                        || n.is_ident("in")
                        || (n.kind == Kind::Punct
                            && matches!(n.value.as_str(), ">" | ">=" | "<" | "<=" | "=="))
                })
        })
    }

    /// The first part of a tabular expression.
    fn source(&mut self, lo: usize, hi: usize) -> Result<(), QueryRejection> {
        let tok = &self.toks[lo];
        match tok.kind {
            Kind::Punct if tok.is_punct("(") || tok.is_punct("{") => {
                let after = self.after(lo);
                self.tabular_group(lo)?;
                return self.scalar(after, hi);
            }
            Kind::Punct if tok.is_punct("*") => return Err(self.disallowed("*")),
            Kind::Ident => {}
            _ => return self.scalar(lo, hi),
        }
        let name = tok.value.clone();
        let call = self.tok(lo + 1, hi).is_some_and(|t| t.is_punct("("));
        match name.as_str() {
            "print" | "range" | "datatable" => return self.scalar(lo + 1, hi),
            "true" | "false" | "null" => return self.scalar(lo + 1, hi),
            "union" => {
                let j = self.union_args(lo + 1, hi)?;
                return self.nothing_after(j, hi, "the arguments of `union`");
            }
            "search" | "find" => {
                let j = self.search_tables(lo, hi)?;
                return self.scalar(j, hi);
            }
            "evaluate" => return self.evaluate(lo, hi),
            _ => {}
        }
        if FORBIDDEN_CALLS.contains(&name.as_str()) {
            return Err(self.forbidden_call(&name));
        }
        if REFUSED_OPERATORS.contains(&name.as_str()) {
            return Err(self.refused_operator(&name));
        }
        if call && NOT_CALLS.contains(&name.as_str()) {
            // `let d = datetime(...)`, `let l = dynamic([...])`: a literal.
            return self.scalar(lo, hi);
        }
        if call {
            let j = self.call(lo, hi, true)?;
            return self.scalar(j, hi);
        }
        if OPERATORS.contains(&name.as_str()) {
            return Err(unsupported(format!(
                "`{name}` must follow a table name and `|`, e.g. `AuditLogs | {name} ...`"
            )));
        }
        let refs_before = self.refs.len();
        self.table_ref(lo, hi, false)?;
        if self.refs.len() > refs_before {
            return self.nothing_after(lo + 1, hi, &format!("the table `{name}`"));
        }
        // A `let` name or a parameter: a scalar function body may go on (`{ x * 2 }`).
        self.scalar(lo + 1, hi)
    }

    /// Refuses tokens left in a source part where Kusto expects a `|`.
    fn nothing_after(&self, i: usize, hi: usize, what: &str) -> Result<(), QueryRejection> {
        match self.tok(i, hi) {
            None => Ok(()),
            Some(t) => Err(unsupported(format!(
                "unexpected `{}` after {what}; a `|` is missing",
                if t.kind == Kind::Str {
                    "string"
                } else {
                    t.value.as_str()
                }
            ))),
        }
    }

    fn refused_operator(&self, name: &str) -> QueryRejection {
        unsupported(format!(
            "`{name}` is not allowed: it can read data outside the allowed tables ({})",
            self.policy.allowed_tables.join(", ")
        ))
    }

    /// One operator of a pipeline, starting at its name.
    fn operator(&mut self, lo: usize, hi: usize) -> Result<(), QueryRejection> {
        let tok = &self.toks[lo];
        if tok.kind != Kind::Ident {
            return Err(unsupported(format!(
                "expected an operator name after `|`, found `{}`",
                tok.value
            )));
        }
        let name = tok.value.clone();
        if REFUSED_OPERATORS.contains(&name.as_str()) {
            return Err(self.refused_operator(&name));
        }
        match name.as_str() {
            "union" => {
                let j = self.union_args(lo + 1, hi)?;
                self.nothing_after(j, hi, "the arguments of `union`")
            }
            "join" | "lookup" => {
                let j = self.skip_params(lo + 1, hi);
                let j = self.source_item(j, hi)?;
                self.scalar(j, hi)
            }
            "evaluate" => self.evaluate(lo, hi),
            "invoke" => {
                let j = self.skip_params(lo + 1, hi);
                let bound = self
                    .tok(j, hi)
                    .is_some_and(|t| t.kind == Kind::Ident && self.is_bound(&t.value))
                    && self.tok(j + 1, hi).is_some_and(|t| t.is_punct("("));
                if !bound {
                    return Err(unsupported(
                        "`invoke` may only call a function defined by `let` in this query",
                    ));
                }
                let j = self.call(j, hi, true)?;
                self.scalar(j, hi)
            }
            "as" => {
                let j = self.skip_params(lo + 1, hi);
                if let Some(t) = self.tok(j, hi).filter(|t| t.kind == Kind::Ident) {
                    let bound = t.value.clone();
                    self.bind(bound, false);
                }
                Ok(())
            }
            "fork" | "facet" | "partition" | "mv-apply" => self.subpipeline_args(lo + 1, hi),
            _ => self.scalar(lo + 1, hi),
        }
    }

    /// The arguments of `fork`, `facet`, `partition` and `mv-apply`: every bracketed group is
    /// a tabular expression or a sub-pipeline.
    fn subpipeline_args(&mut self, lo: usize, hi: usize) -> Result<(), QueryRejection> {
        let mut i = lo;
        while i < hi {
            let tok = &self.toks[i];
            if tok.is_punct("(") || tok.is_punct("{") {
                let after = self.after(i);
                self.tabular_group(i)?;
                i = after;
            } else if tok.is_open() {
                let after = self.after(i);
                self.scalar(i + 1, after - 1)?;
                i = after;
            } else if tok.kind == Kind::Ident
                && self.tok(i + 1, hi).is_some_and(|t| t.is_punct("("))
            {
                let name = tok.value.as_str();
                if is_builtin(name) || self.is_bound(name) || FORBIDDEN_CALLS.contains(&name) {
                    i = self.call(i, hi, true)?;
                } else if NOT_CALLS.contains(&name) && !matches!(name, "on" | "with") {
                    let after = self.after(i + 1);
                    self.scalar(i + 2, after - 1)?;
                    i = after;
                } else {
                    // `on (...)`, `with (...)`, `by Column (...)`: a sub-pipeline.
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// A bracketed group read as a tabular expression: a sub-pipeline when it starts with an
    /// operator, otherwise a source and its pipeline.
    fn tabular_group(&mut self, open: usize) -> Result<(), QueryRejection> {
        let close = self.matching[open];
        let (lo, hi) = (open + 1, close);
        if lo == hi {
            return Err(unsupported(
                "empty brackets where a tabular expression belongs",
            ));
        }
        let mode = if self.starts_with_operator(lo, hi) {
            Mode::Stages
        } else {
            Mode::Source
        };
        self.pipeline(lo, hi, mode)
    }

    /// A scalar expression (or an operator's arguments): finds the tabular expressions inside.
    fn scalar(&mut self, lo: usize, hi: usize) -> Result<(), QueryRejection> {
        let mut i = lo;
        while i < hi {
            let tok = &self.toks[i];
            if tok.is_open() {
                let after = self.after(i);
                self.group(i, false)?;
                i = after;
                continue;
            }
            if tok.kind != Kind::Ident {
                i += 1;
                continue;
            }
            let name = tok.value.as_str();
            if name == "externaldata" || name == "external_data" {
                return Err(self.forbidden_call(name));
            }
            if REFUSED_OPERATORS.contains(&name) {
                return Err(self.refused_operator(name));
            }
            // `in (`, `in~ (`, `!in (`, `!in~ (`, `has_any (`, `has_all (`.
            if matches!(name, "in" | "has_any" | "has_all") {
                let mut j = i + 1;
                if self.tok(j, hi).is_some_and(|t| t.is_punct("~")) {
                    j += 1;
                }
                if self.tok(j, hi).is_some_and(|t| t.is_punct("(")) {
                    let after = self.after(j);
                    self.group(j, true)?;
                    i = after;
                    continue;
                }
                i = j;
                continue;
            }
            let follows_dot = i > lo && self.toks[i - 1].is_punct(".");
            if self.tok(i + 1, hi).is_some_and(|t| t.is_punct("("))
                && !NOT_CALLS.contains(&name)
                && (!follows_dot || FORBIDDEN_CALLS.contains(&name))
            {
                i = self.call(i, hi, false)?;
                continue;
            }
            i += 1;
        }
        Ok(())
    }

    /// A bracketed group inside a scalar expression. `after_in` is set for the brackets of
    /// `in`/`has_any`/`has_all`, where Kusto also takes a tabular expression.
    fn group(&mut self, open: usize, after_in: bool) -> Result<(), QueryRejection> {
        let close = self.matching[open];
        let (lo, hi) = (open + 1, close);
        if lo == hi {
            return Ok(());
        }
        if self.has_top_level(lo, hi, ";") {
            return Err(unsupported(
                "`;` may only end a statement at the top level or inside a `let` function body",
            ));
        }
        let bracket = self.toks[open].value.as_str();
        if bracket != "[" && (self.has_top_level(lo, hi, "|") || self.starts_with_operator(lo, hi))
        {
            return self.tabular_group(open);
        }
        if !after_in && bracket != "(" {
            return self.scalar(lo, hi);
        }
        let elements = self.split(lo, hi, ",");
        if elements.len() == 1 && after_in {
            return self.in_element(lo, hi);
        }
        for (a, b) in elements {
            // A lone parenthesized element of a list may itself be a subquery.
            if b == a + 1 || !self.toks[a].is_punct("(") || self.after(a) != b {
                self.scalar(a, b)?;
            } else {
                self.group(a, after_in)?;
            }
        }
        Ok(())
    }

    /// The one element of `in (...)`: a name there is a table or a `let` name, never a column.
    fn in_element(&mut self, lo: usize, hi: usize) -> Result<(), QueryRejection> {
        let tok = &self.toks[lo];
        if tok.is_punct("(") && self.after(lo) == hi {
            return self.group(lo, true);
        }
        if tok.is_ident("datatable") {
            return self.pipeline(lo, hi, Mode::Source);
        }
        if tok.kind == Kind::Ident && self.tok(lo + 1, hi).is_some_and(|t| t.is_punct("(")) {
            // `in (f())`: a tabular position, unless `f` is a built-in such as `dynamic`.
            if NOT_CALLS.contains(&tok.value.as_str()) || is_builtin(&tok.value) {
                return self.scalar(lo, hi);
            }
            let j = self.call(lo, hi, true)?;
            return self.scalar(j, hi);
        }
        let plain_name = tok.kind == Kind::Ident
            && !matches!(tok.value.as_str(), "true" | "false" | "null")
            && !self
                .tok(lo + 1, hi)
                .is_some_and(|t| t.is_punct(".") || t.is_punct("["));
        if plain_name {
            return self.pipeline(lo, hi, Mode::Source);
        }
        self.scalar(lo, hi)
    }

    /// A call at `i` (a name followed by `(`); returns the index after its `)`. `tabular` is
    /// set where Kusto reads the call's result as a table: there, only `let` functions and the
    /// built-ins may be called.
    fn call(&mut self, i: usize, hi: usize, tabular: bool) -> Result<usize, QueryRejection> {
        let name = self.toks[i].value.clone();
        let open = i + 1;
        let close = self.matching[open];
        if close >= hi {
            return Err(unsupported("unbalanced call brackets"));
        }
        if FORBIDDEN_CALLS.contains(&name.as_str()) {
            return Err(self.forbidden_call(&name));
        }
        if name == "toscalar" || name == "materialize" {
            self.tabular_group(open)?;
            return Ok(close + 1);
        }
        if let Some(binding) = self.binding(&name) {
            let tabular_args = binding.tabular_params;
            for (a, b) in self.split(open + 1, close, ",") {
                if a >= b {
                    continue;
                }
                // A named argument, `T = SigninLogs`: its value is what is read.
                let mut v = a;
                if b > a + 2 && self.toks[a].kind == Kind::Ident && self.toks[a + 1].is_punct("=") {
                    v = a + 2;
                }
                if tabular_args {
                    // Any argument may be the table: `f(T)`, `f((T))`, `f(T = T2)`.
                    let refs_before = self.refs.len();
                    self.pipeline(v, b, Mode::Source)?;
                    // Kusto takes no `| where` inside a call's argument list.
                    for r in self.refs[refs_before..].iter_mut() {
                        if r.tok == v {
                            r.filterable = false;
                        }
                    }
                } else if self.has_top_level(v, b, "|") {
                    self.pipeline(v, b, Mode::Source)?;
                } else {
                    self.scalar(v, b)?;
                }
            }
            return Ok(close + 1);
        }
        if is_builtin(&name) || !tabular {
            // Known limitation: in a scalar position an unknown name may be a typo (Kusto
            // reports it) or a stored scalar function, which cannot be told apart here.
            self.scalar(open + 1, close)?;
            return Ok(close + 1);
        }
        Err(unsupported(format!(
            "`{name}()` is not a known data source: it is neither a Kusto built-in function nor a function defined by `let` in this query; stored workspace functions are not allowed: read the allowed tables directly ({})",
            self.policy.allowed_tables.join(", ")
        )))
    }

    /// Skips `name=value` parameters (`kind=inner`, `hint.strategy=shuffle`, `withsource=T`).
    fn skip_params(&self, mut i: usize, hi: usize) -> usize {
        loop {
            let mut j = i;
            if !self.tok(j, hi).is_some_and(|t| t.kind == Kind::Ident) {
                return i;
            }
            j += 1;
            while self.tok(j, hi).is_some_and(|t| t.is_punct("."))
                && self.tok(j + 1, hi).is_some_and(|t| t.kind == Kind::Ident)
            {
                j += 2;
            }
            if !self.tok(j, hi).is_some_and(|t| t.is_punct("=")) {
                return i;
            }
            let value = self.tok(j + 1, hi).is_some_and(|t| t.kind != Kind::Punct);
            if !value {
                return i;
            }
            i = j + 2;
        }
    }

    /// Checks one table name (not a call) at `i`.
    fn table_ref(&mut self, i: usize, hi: usize, wrap: bool) -> Result<(), QueryRejection> {
        let name = self.toks[i].value.clone();
        if self.tok(i + 1, hi).is_some_and(|t| t.is_punct("*")) {
            return Err(self.disallowed(format!("{name}*")));
        }
        if self.is_bound(&name) {
            return Ok(());
        }
        match self.allowed(&name) {
            Some(table) => {
                self.refs.push(TableRef {
                    table,
                    tok: i,
                    wrap,
                    filterable: true,
                    filtered: false,
                });
                Ok(())
            }
            None => Err(self.disallowed(name)),
        }
    }

    /// One argument of `union`/`join`/`lookup`: a name, a call or a parenthesized subquery.
    fn source_item(&mut self, i: usize, hi: usize) -> Result<usize, QueryRejection> {
        let Some(tok) = self.tok(i, hi) else {
            return Err(unsupported("expected a table or `(subquery)` here"));
        };
        if tok.is_punct("(") {
            let after = self.after(i);
            self.tabular_group(i)?;
            return Ok(after);
        }
        if tok.is_punct("*") {
            return Err(self.disallowed("*"));
        }
        if tok.kind != Kind::Ident {
            return Err(unsupported("expected a table or `(subquery)` here"));
        }
        if self.tok(i + 1, hi).is_some_and(|t| t.is_punct("(")) {
            let name = tok.value.clone();
            if name == "datatable" {
                // `datatable(schema)[values]`: literals only, skipped whole.
                let mut j = self.after(i + 1);
                if self.tok(j, hi).is_some_and(|t| t.is_punct("[")) {
                    j = self.after(j);
                }
                return Ok(j);
            }
            return self.call(i, hi, true);
        }
        if self.tok(i + 1, hi).is_some_and(|t| t.is_punct(".")) {
            return Err(unsupported(format!(
                "`{}.` names data in another database or cluster; read the allowed tables directly",
                tok.value
            )));
        }
        self.table_ref(i, hi, true)?;
        Ok(i + 1)
    }

    fn union_args(&mut self, i: usize, hi: usize) -> Result<usize, QueryRejection> {
        let mut j = self.skip_params(i, hi);
        loop {
            j = self.source_item(j, hi)?;
            if self.tok(j, hi).is_some_and(|t| t.is_punct(",")) {
                j += 1;
            } else {
                return Ok(j);
            }
        }
    }

    /// `search`/`find` at the start of a statement read every table unless given `in (...)`.
    fn search_tables(&mut self, i: usize, hi: usize) -> Result<usize, QueryRejection> {
        let keyword = self.toks[i].value.clone();
        let j = self.skip_params(i + 1, hi);
        let listed = self.tok(j, hi).is_some_and(|t| t.is_ident("in"))
            && self.tok(j + 1, hi).is_some_and(|t| t.is_punct("("));
        if !listed {
            return Err(unsupported(format!(
                "`{keyword}` without `in (...)` reads every table; name them, e.g. `{keyword} in ({}) ...`",
                self.policy.allowed_tables.join(", ")
            )));
        }
        let close = self.matching[j + 1];
        let mut k = j + 2;
        while k < close {
            let tok = &self.toks[k];
            if tok.kind == Kind::Ident {
                self.table_ref(k, close, false)?;
                if let Some(last) = self.refs.last_mut().filter(|r| r.tok == k) {
                    last.filterable = false;
                }
            } else if !tok.is_punct(",") {
                return Err(unsupported(format!(
                    "`{keyword} in (...)` takes only table names separated by commas"
                )));
            }
            k += 1;
        }
        Ok(close + 1)
    }

    /// `evaluate plugin(args)`: only the allowed plugins; their arguments are scalar.
    fn evaluate(&mut self, i: usize, hi: usize) -> Result<(), QueryRejection> {
        let j = self.skip_params(i + 1, hi);
        let plugin = self
            .tok(j, hi)
            .filter(|t| t.kind == Kind::Ident)
            .map(|t| t.value.clone())
            .unwrap_or_default();
        if !ALLOWED_PLUGINS.contains(&plugin.as_str()) {
            return Err(unsupported(format!(
                "`evaluate {plugin}` is not allowed: plugins may reach outside the workspace; allowed plugins: {}",
                ALLOWED_PLUGINS.join(", ")
            )));
        }
        let mut k = j + 1;
        if self.tok(k, hi).is_some_and(|t| t.is_punct("(")) {
            let after = self.after(k);
            self.scalar(k + 1, after - 1)?;
            k = after;
        }
        self.scalar(k, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kql: &str) -> Result<CheckedQuery, QueryRejection> {
        check_query(kql, &QueryPolicy::default())
    }

    fn management(kql: &str) -> String {
        match check(kql) {
            Err(QueryRejection::ManagementCommand(c)) => c,
            other => format!("not a management rejection: {other:?}"),
        }
    }

    fn disallowed(kql: &str) -> String {
        match check(kql) {
            Err(QueryRejection::DisallowedTable { table, allowed }) => {
                assert_eq!(allowed, ["AuditLogs", "AzureActivity"]);
                table
            }
            other => format!("not a table rejection: {other:?}"),
        }
    }

    fn unsupported_message(kql: &str) -> String {
        match check(kql) {
            Err(QueryRejection::Unsupported(m)) => m,
            other => format!("not unsupported: {other:?}"),
        }
    }

    #[test]
    fn rejects_management_commands_wherever_a_statement_starts() {
        assert_eq!(management(".drop table AuditLogs"), ".drop");
        assert_eq!(management(".set x <| AuditLogs"), ".set");
        assert_eq!(management("AuditLogs; .drop table T"), ".drop");
        assert_eq!(management("// comment\n.show tables"), ".show");
        assert_eq!(
            management("AuditLogs | take 1\n  .append T <| AuditLogs"),
            ".append"
        );
        assert_eq!(management(".export to csv (h@'x') <| AuditLogs"), ".export");
    }

    #[test]
    fn rejects_tables_outside_the_policy() {
        assert_eq!(disallowed("SigninLogs | take 10"), "SigninLogs");
        assert_eq!(disallowed("union AuditLogs, SigninLogs"), "SigninLogs");
        assert_eq!(
            disallowed("AuditLogs | join (OfficeActivity) on X"),
            "OfficeActivity"
        );
        assert_eq!(
            disallowed("AuditLogs | lookup kind=leftouter Usage on X"),
            "Usage"
        );
        assert_eq!(disallowed("union Audit*"), "Audit*");
        assert_eq!(disallowed("['SigninLogs'] | take 1"), "SigninLogs");
        assert_eq!(disallowed("let t = SigninLogs; t"), "SigninLogs");
        assert_eq!(
            disallowed("AuditLogs | where Id in (SigninLogs | project Id)"),
            "SigninLogs"
        );
        assert_eq!(
            disallowed("search in (AuditLogs, Heartbeat) \"x\""),
            "Heartbeat"
        );
        // A function parameter shadows a table only inside the function body.
        assert_eq!(
            disallowed("let f = (SigninLogs:(x:string)) { SigninLogs | take 1 };\nSigninLogs"),
            "SigninLogs"
        );
        let message = check("SigninLogs").unwrap_err().to_string();
        assert_eq!(
            message,
            "table `SigninLogs` is not allowed; query only these tables: AuditLogs, AzureActivity"
        );
    }

    #[test]
    fn rejects_reaching_outside_the_workspace() {
        let m = unsupported_message("externaldata(x:string) [h@\"https://e.example/x.csv\"]");
        assert!(m.contains("`externaldata`"), "{m}");
        let m = unsupported_message("AuditLogs | evaluate http_request(\"https://e.example\")");
        assert!(m.contains("evaluate http_request"), "{m}");
        let m = unsupported_message("evaluate sql_request('Server=x', 'select 1')");
        assert!(m.contains("evaluate sql_request"), "{m}");
        let m = unsupported_message("AuditLogs | evaluate python(typeof(*), 'x')");
        assert!(m.contains("evaluate python"), "{m}");
        let m = unsupported_message("cluster(\"x\").database(\"y\").T");
        assert!(m.contains("`cluster`"), "{m}");
        let m = unsupported_message("union AuditLogs, workspace(\"other\").AuditLogs");
        assert!(m.contains("`workspace`"), "{m}");
        let m = unsupported_message("search \"admin\"");
        assert!(m.contains("reads every table"), "{m}");
        let m = unsupported_message("StoredFunc() | take 1");
        assert!(m.contains("not a known data source"), "{m}");
        let m = unsupported_message("set notruncation;\nAuditLogs");
        assert!(m.starts_with("`set` statements"), "{m}");
    }

    #[test]
    fn rejects_limits_and_malformed_input() {
        assert_eq!(check(""), Err(QueryRejection::Empty));
        assert_eq!(
            check("  // only a comment\n ;;"),
            Err(QueryRejection::Empty)
        );
        let long = format!(
            "AuditLogs | where Id == \"{}\"",
            "é".repeat(MAX_QUERY_CHARS)
        );
        assert_eq!(
            check(&long),
            Err(QueryRejection::TooLong(MAX_QUERY_CHARS + 26))
        );
        assert!(unsupported_message("AuditLogs | where x == \"open").contains("unterminated"));
        assert!(unsupported_message("AuditLogs | where (x").contains("unclosed"));
        assert!(unsupported_message("AuditLogs | where x)").contains("unbalanced"));
        let deep = format!("print {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(unsupported_message(&deep).contains("nested"));
        assert!(unsupported_message("let x = 1;").contains("must end with a tabular"));
        // Control characters and odd Unicode never panic.
        for odd in [
            "\u{0}\u{202e}",
            "\u{feff}AuditLogs",
            "h",
            "@",
            "```",
            "~~~",
            "h~~",
            "[",
            "'",
        ] {
            let _ = check(odd);
        }
    }

    #[test]
    fn accepts_let_comments_and_keywords_inside_literals() {
        let kql = "let since = ago(1d);\nAuditLogs | where TimeGenerated > since | take 5";
        let checked = check(kql).unwrap();
        // The row cap is appended every time, whatever `take` the query already has.
        assert_eq!(checked.kql, format!("{kql}\n| take 1000"));
        assert!(checked.added_row_cap && !checked.added_time_filter);
        assert_eq!(checked.tables, ["AuditLogs"]);

        for kql in [
            "AuditLogs | where OperationName == \".drop table x\" | where TimeGenerated > ago(1d) | take 3",
            "AuditLogs // .drop table x; union SigninLogs\n| where TimeGenerated > ago(1d) | take 3",
            "AuditLogs | where OperationName has \"union SigninLogs\" and TimeGenerated > ago(1d) | take 3",
            "AuditLogs | where x == @'C:\\.drop' and y == h'union SigninLogs' and TimeGenerated > ago(1h) | count",
        ] {
            let checked = check(kql).unwrap();
            assert_eq!(checked.kql, format!("{kql}\n| take 1000"));
        }

        let checked = check("AuditLogs | where OperationName has \"union SigninLogs\"").unwrap();
        assert_eq!(checked.tables, ["AuditLogs"]);
        assert!(checked.added_time_filter && checked.added_row_cap);

        let checked = check(
            "let f = (n:int) { AzureActivity | where TimeGenerated > ago(1d) | take n };\nf(3)",
        )
        .unwrap();
        assert_eq!(checked.tables, ["AzureActivity"]);
        let checked = check("print x = 1").unwrap();
        assert!(checked.tables.is_empty() && !checked.added_time_filter);
    }

    #[test]
    fn inserts_a_time_filter_and_a_row_cap() {
        let checked =
            check("// which users deleted things\nAzureActivity | where OperationNameValue endswith \"/delete\"")
                .unwrap();
        assert!(checked.added_time_filter && checked.added_row_cap);
        insta::assert_snapshot!(checked.kql, @r#"
        // which users deleted things
        AzureActivity | where TimeGenerated > ago(7d) | where OperationNameValue endswith "/delete"
        | take 1000
        "#);
    }

    #[test]
    fn accepts_a_let_bound_table_and_filters_its_definition() {
        let checked = check(
            "let t = AzureActivity | where CategoryValue == \"Administrative\"; t | summarize count() by Caller",
        )
        .unwrap();
        assert_eq!(checked.tables, ["AzureActivity"]);
        assert_eq!(
            checked.kql,
            "let t = AzureActivity | where TimeGenerated > ago(7d) | where CategoryValue == \"Administrative\"; t | summarize count() by Caller\n| take 1000"
        );
    }

    #[test]
    fn wraps_union_arguments_and_caps_grouped_summaries() {
        let checked = check(
            "let t = AzureActivity | where CategoryValue == \"Administrative\";\nunion t, AuditLogs | summarize count() by Caller",
        )
        .unwrap();
        assert_eq!(checked.tables, ["AzureActivity", "AuditLogs"]);
        insta::assert_snapshot!(checked.kql, @r#"
        let t = AzureActivity | where TimeGenerated > ago(7d) | where CategoryValue == "Administrative";
        union t, (AuditLogs | where TimeGenerated > ago(7d)) | summarize count() by Caller
        | take 1000
        "#);
    }

    #[test]
    fn keeps_a_bounded_query_and_still_caps_it() {
        let kql = "AuditLogs\n| where TimeGenerated between (ago(2d) .. now())\n| top 20 by TimeGenerated desc";
        let checked = check(kql).unwrap();
        assert!(!checked.added_time_filter && checked.added_row_cap);
        insta::assert_snapshot!(checked.kql, @r"
        AuditLogs
        | where TimeGenerated between (ago(2d) .. now())
        | top 20 by TimeGenerated desc
        | take 1000
        ");
        let checked =
            check("AuditLogs | where TimeGenerated > ago(1d) | render timechart").unwrap();
        assert_eq!(
            checked.kql,
            "AuditLogs | where TimeGenerated > ago(1d)\n| take 1000 | render timechart"
        );
        // Over the cap, under it, or a single row: the cap is appended all the same.
        for kql in [
            "AuditLogs | where TimeGenerated > ago(1d) | take 5000",
            "AuditLogs | where TimeGenerated > ago(1d) | summarize count()",
        ] {
            let checked = check(kql).unwrap();
            assert!(checked.added_row_cap);
            assert_eq!(checked.kql, format!("{kql}\n| take 1000"));
        }
    }

    /// Every bypass of issue 9 ("KQL tables", "KQL row cap", "KQL time filter"): each was
    /// accepted by the keyword-based checker, and Microsoft's parser confirms each reads
    /// `SigninLogs` (see `tests/corpus/hostile.kql`).
    #[test]
    fn issue_9_table_bypasses_are_refused() {
        for kql in [
            "AuditLogs | where Id in ((SigninLogs | project Id))",
            "AuditLogs | where Id in~ ((SigninLogs | project Id))",
            "AuditLogs | where Id !in ((SigninLogs | project Id))",
            "AuditLogs | where Id !in~ (((SigninLogs | project Id)))",
            "AuditLogs | where Id in ((SigninLogs))",
            "AuditLogs | where Id has_any (SigninLogs | project Id)",
            "AuditLogs | where Id has_all (SigninLogs | project Id)",
            "AuditLogs | facet by OperationName with (union SigninLogs | take 5)",
            "AuditLogs | partition by OperationName (union SigninLogs | take 5)",
            "AuditLogs | partition by OperationName { union SigninLogs | take 5 }",
            "AuditLogs | fork (union SigninLogs | take 5) (take 1)",
            "AuditLogs | mv-apply t = TargetResources on (union SigninLogs | take 5)",
            "AuditLogs | mv-apply t = TargetResources on (join (SigninLogs) on Id)",
            "let f = (t:(*)) { t | take 1 };\nf(SigninLogs)",
            "let f = (t:(*)) { t | take 1 };\nf((SigninLogs))",
            "let f = (t:(*)) { t | take 1 };\nf(t = SigninLogs)",
            "let f = (n:int, t:(*)) { t | take n };\nAuditLogs | invoke f(1, SigninLogs)",
            "AuditLogs | where Id in (\"a\", (SigninLogs | project Id))",
            "AuditLogs | extend n = toscalar(SigninLogs | count)",
            "AuditLogs | union (SigninLogs | where TimeGenerated > ago(1d))",
        ] {
            assert_eq!(disallowed(kql), "SigninLogs", "{kql}");
        }
        let m = unsupported_message("AuditLogs | join kind=inner Other.SigninLogs on Id");
        assert!(m.contains("another database"), "{m}");
        // A full-width `｜` hides the pipe from a keyword scan.
        let m = unsupported_message("AuditLogs \u{ff5c} union SigninLogs");
        assert!(m.contains("U+FF5C"), "{m}");
        assert!(m.contains("look-alike"), "{m}");
        // Two tabular statements: two result sets, only the last one capped.
        for kql in [
            "AuditLogs | where TimeGenerated > ago(1d) | take 1; AzureActivity | take 1",
            "AuditLogs | take 100000000;\nAuditLogs | take 1",
        ] {
            let m = unsupported_message(kql);
            assert!(m.contains("more than one tabular statement"), "{kql}: {m}");
        }
        // A fork returns several tables, which one cap cannot bound.
        for kql in [
            "AuditLogs | fork (take 100000) (take 100000)",
            "(AuditLogs | fork (take 100000) (take 100000))",
            "let x = AuditLogs | facet by Category;\nx",
        ] {
            let m = unsupported_message(kql);
            assert!(m.contains("several result tables"), "{kql}: {m}");
        }
        // A stored function may read any table.
        let m = unsupported_message("AuditLogs | where Id in (MyStoredIds())");
        assert!(m.contains("not a known data source"), "{m}");
    }

    #[test]
    fn issue_9_row_cap_bypasses_get_a_final_take() {
        for kql in [
            "AuditLogs | where TimeGenerated > ago(1d) | take 10 * 10000000",
            "AuditLogs | where TimeGenerated > ago(1d) | take 1000 + 1000000",
            "AuditLogs | where TimeGenerated > ago(1d) | top 10 * 100000 by TimeGenerated",
            "AuditLogs | where TimeGenerated > ago(1d) | limit 5",
            // One row holding everything: capped here, and refused by size where it runs.
            "AuditLogs | where TimeGenerated > ago(1d) | summarize make_list(pack_all())",
            // A `~~~` literal runs to the next `~~~`: the cap must land after it, not in it.
            "AuditLogs | where TimeGenerated > ago(1d) | extend x = ~~~ // ~~~",
            "AuditLogs | where TimeGenerated > ago(1d) | extend x = h~~~\n| take 100000000 // ~~~",
        ] {
            let checked = check(kql).unwrap();
            assert_eq!(checked.kql, format!("{kql}\n| take 1000"), "{kql}");
            assert!(checked.added_row_cap);
        }
    }

    #[test]
    fn issue_9_time_filter_is_decided_per_table_not_by_keyword() {
        // `TimeGenerated` and `ago(` appear, but no `where` filters the table's rows on them.
        for (kql, expected) in [
            (
                "AuditLogs | extend t = ago(1d)",
                "AuditLogs | where TimeGenerated > ago(7d) | extend t = ago(1d)\n| take 1000",
            ),
            (
                "AuditLogs | project TimeGenerated, OperationName",
                "AuditLogs | where TimeGenerated > ago(7d) | project TimeGenerated, OperationName\n| take 1000",
            ),
            (
                "AuditLogs | summarize count() by bin(TimeGenerated, 1h) | where TimeGenerated > ago(1d)",
                "AuditLogs | where TimeGenerated > ago(7d) | summarize count() by bin(TimeGenerated, 1h) | where TimeGenerated > ago(1d)\n| take 1000",
            ),
            (
                "AuditLogs | where TimeGenerated > ago(1d) | join (AzureActivity) on CorrelationId",
                "AuditLogs | where TimeGenerated > ago(1d) | join (AzureActivity | where TimeGenerated > ago(7d)) on CorrelationId\n| take 1000",
            ),
        ] {
            let checked = check(kql).unwrap();
            assert!(checked.added_time_filter, "{kql}");
            assert_eq!(checked.kql, expected);
        }
    }

    /// No input panics: token soup from KQL's own pieces, through a fixed pseudo-random walk.
    #[test]
    fn token_soup_never_panics() {
        const PIECES: &[&str] = &[
            "AuditLogs",
            "SigninLogs",
            "|",
            "(",
            ")",
            "{",
            "}",
            "[",
            "]",
            ",",
            ";",
            "=",
            ".",
            "*",
            "~",
            "!",
            "let",
            "x",
            "f",
            "union",
            "join",
            "lookup",
            "on",
            "in",
            "has_any",
            "where",
            "take",
            "10",
            "fork",
            "facet",
            "by",
            "with",
            "partition",
            "mv-apply",
            "toscalar",
            "materialize",
            "as",
            "invoke",
            "evaluate",
            "pivot",
            "render",
            "print",
            "datatable",
            "search",
            "find",
            "view",
            "T:(*)",
            "'s'",
            "\"q\"",
            "h'o'",
            "@'v'",
            "```m```",
            "~~~t~~~",
            "// c\n",
            "\n",
            ".show",
            "table",
            "kind=inner",
            "$left",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = 1 + next() % 24;
            let mut kql = String::new();
            for _ in 0..len {
                kql.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
                kql.push(' ');
            }
            // Whatever the verdict, an accepted query ends with the cap.
            if let Ok(checked) = check(&kql) {
                assert!(checked.kql.contains("\n| take 1000"), "{kql:?}");
            }
        }
    }

    #[test]
    fn follows_the_policy() {
        let policy = QueryPolicy {
            allowed_tables: vec!["SigninLogs".into()],
            row_cap: 50,
            max_result_bytes: 4096,
            default_lookback: Duration::from_secs(36 * 3600),
        };
        let checked = check_query("signinlogs", &policy).unwrap();
        assert_eq!(
            checked.kql,
            "signinlogs | where TimeGenerated > ago(36h)\n| take 50"
        );
        assert_eq!(checked.tables, ["SigninLogs"]);
        assert!(matches!(
            check_query("AuditLogs", &policy),
            Err(QueryRejection::DisallowedTable { .. })
        ));
        assert_eq!(timespan(Duration::from_millis(1500)), "1500ms");
        assert_eq!(timespan(Duration::from_secs(90)), "90s");
    }
}
