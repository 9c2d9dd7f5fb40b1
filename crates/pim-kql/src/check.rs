//! Safety checks for KQL written by a model, before it runs against the workspace.
//!
//! [`check_query`] keeps a query read-only and inside the allowed tables, and makes sure it
//! reads a bounded time range and returns a bounded number of rows. It works on tokens, not on
//! raw text, so a keyword inside a string literal or a `//` comment never triggers anything.
//!
//! This is not a full KQL parser. Where the structure is unclear the checker refuses with a
//! message the model can act on, rather than guessing in the permissive direction.
//!
//! Decisions a caller must know:
//! - Table references are looked for where a tabular expression starts: a statement (also the
//!   right side of `let x =` and the body of a `let` function), the parentheses of `join`,
//!   `lookup`, `toscalar`, `materialize` and `in (...)`, and the arguments of `union`, `join`,
//!   `lookup`, `search in (...)` and `find in (...)`. Each must be an allowed table (matched
//!   case-insensitively) or a name bound earlier by `let` (or `| as`). Wildcards such as
//!   `union Audit*`, and `search`/`find` without `in (...)`, are refused: they read every table.
//! - `print`, `range` and `datatable` are accepted: they read no stored data.
//! - Known limitation: a `let` right side that calls an unknown function and is used as a
//!   scalar (`let x = f();`) is accepted, since scalar built-ins cannot be told apart from
//!   stored workspace functions without a catalogue. The same call at the start of a tabular
//!   statement, or followed by `|`, is refused.
//! - The time filter `| where TimeGenerated > ago(..)` is added after *every* allowed-table
//!   reference (wrapped in parentheses inside `union`/`join`/`lookup` argument lists), but only
//!   when the query has no `TimeGenerated` comparison, `between` or `ago(` anywhere. Tables named
//!   in `search in (...)`/`find in (...)` get no filter. It is inserted on the same line, so the
//!   line numbers of a Kusto error still point into the model's own text.
//! - The row cap is satisfied when the final statement's last operator is `take`/`limit`/`top N`
//!   with `N <= cap`, `count`, or a `summarize` without `by`; otherwise `\n| take {cap}` is
//!   appended (before a final `render`, which must stay last). A `summarize ... by` gets the cap
//!   too: its group count is unbounded.
//!
//! See: issue 4, "Natural language to KQL, and repair" and "Safety".

use std::time::Duration;

/// Queries longer than this (in characters) are refused before tokenizing.
pub const MAX_QUERY_CHARS: usize = 20_000;

/// Bracket nesting deeper than this is refused, so the recursive walk cannot exhaust the stack.
const MAX_NESTING: usize = 64;

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

/// Tabular operators: when one appears where a table name belongs, the `|` is missing.
const OPERATORS: &[&str] = &[
    "where",
    "project",
    "extend",
    "summarize",
    "take",
    "limit",
    "sort",
    "order",
    "top",
    "count",
    "distinct",
    "render",
    "parse",
    "join",
    "lookup",
    "evaluate",
];

/// What [`check_query`] enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPolicy {
    /// Tables a query may read, compared case-insensitively. Default: `AuditLogs`, `AzureActivity`.
    pub allowed_tables: Vec<String>,
    /// Most rows a query may return; `| take {row_cap}` is appended when needed. Default: 1000.
    pub row_cap: usize,
    /// Lookback of the `| where TimeGenerated > ago(..)` filter added to a query that has no
    /// time filter. Default: 7 days.
    pub default_lookback: Duration,
}

impl Default for QueryPolicy {
    fn default() -> Self {
        Self {
            allowed_tables: vec!["AuditLogs".into(), "AzureActivity".into()],
            row_cap: 1000,
            default_lookback: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A query that passed [`check_query`], ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedQuery {
    /// The query to run: the original text, plus the row cap and time filter when they were needed.
    pub kql: String,
    /// Whether `| where TimeGenerated > ago(..)` was inserted.
    pub added_time_filter: bool,
    /// Whether `| take {cap}` was appended.
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
/// ```
///
/// # Errors
///
/// Returns a [`QueryRejection`] when the query is empty or too long, holds a management
/// command, reads a table outside the policy or outside the workspace, calls a refused
/// `evaluate` plugin, or cannot be tokenized (an unterminated string, unbalanced brackets).
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
    let mut checker = Checker {
        toks: &toks,
        matching: &matching,
        policy,
        scopes: vec![Vec::new()],
        refs: Vec::new(),
    };
    let statements = checker.statements(0, toks.len())?;
    let Some(&(last_lo, last_hi)) = statements.last() else {
        return Err(QueryRejection::Empty);
    };
    if toks[last_lo].is_ident("let") {
        return Err(unsupported(
            "the query must end with a tabular expression, not a `let` statement",
        ));
    }

    // (byte offset, text) pairs, applied from the end so earlier offsets stay valid.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let added_time_filter = !has_time_filter(&toks) && checker.refs.iter().any(|r| r.filterable);
    if added_time_filter {
        let filter = format!(
            " | where TimeGenerated > ago({})",
            timespan(policy.default_lookback)
        );
        for r in checker.refs.iter().filter(|r| r.filterable) {
            let tok = &toks[r.tok];
            if r.wrap {
                inserts.push((tok.start, "(".into()));
                inserts.push((tok.end, format!("{filter})")));
            } else {
                inserts.push((tok.end, filter.clone()));
            }
        }
    }
    // `render` must stay the last operator, so the cap goes before it.
    let mut cap_hi = last_hi;
    let op = last_operator(&toks, &matching, last_lo, last_hi);
    if op > last_lo && toks[op].is_ident("render") {
        cap_hi = op - 1;
    }
    let added_row_cap = !row_cap_satisfied(&toks, &matching, last_lo, cap_hi, policy.row_cap);
    if added_row_cap {
        inserts.push((toks[cap_hi - 1].end, format!("\n| take {}", policy.row_cap)));
    }
    // Stable sort keeps a wrap's "(" before the table and its suffix after it.
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = kql.to_string();
    for (at, text) in inserts.iter().rev() {
        out.insert_str(*at, text);
    }

    let mut tables: Vec<String> = Vec::new();
    for r in &checker.refs {
        if !tables.contains(&r.table) {
            tables.push(r.table.clone());
        }
    }
    Ok(CheckedQuery {
        kql: out,
        added_time_filter,
        added_row_cap,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Str,
    Num,
    Punct,
}

#[derive(Debug, Clone)]
struct Tok {
    kind: Kind,
    /// Identifier name (unquoted for `['x']`), punctuation, or number text; empty for strings.
    value: String,
    start: usize,
    end: usize,
    /// First token on its line: a `.` there starts a management command.
    line_start: bool,
}

impl Tok {
    fn is_punct(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.value == p
    }
    fn is_ident(&self, name: &str) -> bool {
        self.kind == Kind::Ident && self.value == name
    }
    fn is_open(&self) -> bool {
        self.kind == Kind::Punct && matches!(self.value.as_str(), "(" | "[" | "{")
    }
}

fn tokenize(src: &str) -> Result<Vec<Tok>, QueryRejection> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(src.len(), |&(o, _)| o);
    let line_of = |i: usize| src[..offset(i)].matches('\n').count() + 1;
    let mut toks: Vec<Tok> = Vec::new();
    let mut line_start = true;
    let mut i = 0;
    while let Some(c) = at(i) {
        if c == '\n' {
            line_start = true;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && at(i + 1) == Some('/') {
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
            continue;
        }
        let begin = i;
        // String literals: optional h/H (obfuscated), optional @ (verbatim), then a quote;
        // or a ``` multi-line literal.
        let mut q = i;
        if matches!(c, 'h' | 'H') {
            q += 1;
        }
        let verbatim = at(q) == Some('@');
        if verbatim {
            q += 1;
        }
        let kind;
        let mut value = String::new();
        if c == '`' && at(i + 1) == Some('`') && at(i + 2) == Some('`') {
            i += 3;
            loop {
                match at(i) {
                    None => {
                        return Err(unsupported(format!(
                            "unterminated ``` string literal starting on line {}",
                            line_of(begin)
                        )));
                    }
                    Some('`') if at(i + 1) == Some('`') && at(i + 2) == Some('`') => {
                        i += 3;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            kind = Kind::Str;
        } else if let Some(quote @ ('"' | '\'')) = at(q)
            && (q > i || matches!(c, '"' | '\''))
        {
            i = q + 1;
            loop {
                match at(i) {
                    None | Some('\n' | '\r') => {
                        return Err(unsupported(format!(
                            "unterminated string literal starting on line {}; a string must close on the same line (use ``` for multi-line text)",
                            line_of(begin)
                        )));
                    }
                    Some('\\') if !verbatim => {
                        if let Some(next) = at(i + 1)
                            && next != '\n'
                        {
                            value.push(next);
                            i += 2;
                        } else {
                            i += 1;
                        }
                    }
                    Some(ch) if ch == quote => {
                        if verbatim && at(i + 1) == Some(quote) {
                            value.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(ch) => {
                        value.push(ch);
                        i += 1;
                    }
                }
            }
            kind = Kind::Str;
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            i += 1;
            while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                i += 1;
            }
            value = src[offset(begin)..offset(i)].to_string();
            kind = Kind::Ident;
        } else if c.is_ascii_digit() {
            i += 1;
            while let Some(ch) = at(i) {
                let decimal = ch == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit());
                if ch.is_alphanumeric() || ch == '_' || decimal {
                    i += 1;
                } else {
                    break;
                }
            }
            value = src[offset(begin)..offset(i)].to_string();
            kind = Kind::Num;
        } else {
            let two: String = [Some(c), at(i + 1)].into_iter().flatten().collect();
            i += if matches!(
                two.as_str(),
                "==" | "!=" | "<=" | ">=" | "=~" | "!~" | "<|" | ".." | "=>" | "<>"
            ) {
                2
            } else {
                1
            };
            value = src[offset(begin)..offset(i)].to_string();
            kind = Kind::Punct;
        }
        toks.push(Tok {
            kind,
            value,
            start: offset(begin),
            end: offset(i),
            line_start,
        });
        line_start = false;
    }
    Ok(merge_bracketed_names(toks))
}

/// Turns `['name']` / `["name"]` into one identifier token, so a quoted table name is
/// checked like a bare one.
fn merge_bracketed_names(toks: Vec<Tok>) -> Vec<Tok> {
    let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if toks[i].is_punct("[")
            && toks.get(i + 1).is_some_and(|t| t.kind == Kind::Str)
            && toks.get(i + 2).is_some_and(|t| t.is_punct("]"))
        {
            out.push(Tok {
                kind: Kind::Ident,
                value: toks[i + 1].value.clone(),
                start: toks[i].start,
                end: toks[i + 2].end,
                line_start: toks[i].line_start,
            });
            i += 3;
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    out
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

/// For each opening bracket, the index of its closing one.
fn match_brackets(toks: &[Tok]) -> Result<Vec<usize>, QueryRejection> {
    let mut matching = vec![usize::MAX; toks.len()];
    let mut stack: Vec<(usize, &str)> = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        if tok.kind != Kind::Punct {
            continue;
        }
        match tok.value.as_str() {
            "(" | "[" | "{" => {
                stack.push((i, tok.value.as_str()));
                if stack.len() > MAX_NESTING {
                    return Err(unsupported(format!(
                        "brackets are nested more than {MAX_NESTING} deep"
                    )));
                }
            }
            close @ (")" | "]" | "}") => {
                let expected = match close {
                    ")" => "(",
                    "]" => "[",
                    _ => "{",
                };
                match stack.pop() {
                    Some((open, kind)) if kind == expected => matching[open] = i,
                    _ => return Err(unsupported(format!("unbalanced `{close}`"))),
                }
            }
            _ => {}
        }
    }
    if let Some((_, open)) = stack.pop() {
        return Err(unsupported(format!("unclosed `{open}`")));
    }
    Ok(matching)
}

fn has_time_filter(toks: &[Tok]) -> bool {
    toks.iter().enumerate().any(|(i, t)| {
        let next = toks.get(i + 1);
        if t.is_ident("ago") {
            return next.is_some_and(|n| n.is_punct("("));
        }
        if t.is_ident("between") {
            return true;
        }
        t.is_ident("TimeGenerated")
            && next.is_some_and(|n| {
                n.is_ident("in")
                    || n.is_punct("!")
                    || (n.kind == Kind::Punct
                        && matches!(n.value.as_str(), ">" | ">=" | "<" | "<=" | "==" | "!="))
            })
    })
}

/// Index of the final statement's last operator: what follows its last top-level `|`.
fn last_operator(toks: &[Tok], matching: &[usize], lo: usize, hi: usize) -> usize {
    let mut op = lo;
    let mut i = lo;
    while i < hi {
        if toks[i].is_open() {
            i = matching[i] + 1;
            continue;
        }
        if toks[i].is_punct("|") {
            op = i + 1;
        }
        i += 1;
    }
    op
}

fn row_cap_satisfied(toks: &[Tok], matching: &[usize], lo: usize, hi: usize, cap: usize) -> bool {
    let op = last_operator(toks, matching, lo, hi);
    let Some(first) = toks.get(op).filter(|_| op < hi) else {
        return false;
    };
    let count_ok = |j: usize| {
        toks.get(j)
            .filter(|t| j < hi && t.kind == Kind::Num)
            .and_then(|t| t.value.parse::<usize>().ok())
            .is_some_and(|n| n <= cap)
    };
    match first.value.as_str() {
        "take" | "limit" | "top" if first.kind == Kind::Ident => count_ok(op + 1),
        "count" if first.kind == Kind::Ident => op + 1 == hi,
        "summarize" if first.kind == Kind::Ident => {
            let mut j = op + 1;
            while j < hi {
                if toks[j].is_open() {
                    j = matching[j] + 1;
                    continue;
                }
                if toks[j].is_ident("by") {
                    return false;
                }
                j += 1;
            }
            true
        }
        _ => false,
    }
}

struct TableRef {
    table: String,
    tok: usize,
    /// In an argument list, the filtered table must be wrapped in parentheses.
    wrap: bool,
    /// `search in (...)`/`find in (...)` take bare names only, so no filter can be added.
    filterable: bool,
}

struct Checker<'a> {
    toks: &'a [Tok],
    matching: &'a [usize],
    policy: &'a QueryPolicy,
    /// `let` names (and function parameters) visible at this point, innermost scope last.
    scopes: Vec<Vec<String>>,
    refs: Vec<TableRef>,
}

/// Where a tabular source is being read, which decides how calls are treated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The start of a statement or subquery.
    Tabular,
    /// The right side of `let x =`: scalars are legitimate here.
    LetValue,
}

impl Checker<'_> {
    fn tok(&self, i: usize, hi: usize) -> Option<&Tok> {
        self.toks.get(i).filter(|_| i < hi)
    }

    fn is_bound(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.iter().any(|n| n == name))
    }

    fn bind(&mut self, name: String) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(name);
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

    /// Splits `[lo, hi)` at top-level `;`, checks each statement, returns the non-empty ones.
    fn statements(&mut self, lo: usize, hi: usize) -> Result<Vec<(usize, usize)>, QueryRejection> {
        let mut ranges = Vec::new();
        let mut begin = lo;
        let mut i = lo;
        while i <= hi {
            if i == hi || self.toks[i].is_punct(";") {
                if begin < i {
                    self.statement(begin, i)?;
                    ranges.push((begin, i));
                }
                begin = i + 1;
                i += 1;
            } else if self.toks[i].is_open() {
                i = self.matching[i] + 1;
            } else {
                i += 1;
            }
        }
        Ok(ranges)
    }

    fn statement(&mut self, lo: usize, hi: usize) -> Result<(), QueryRejection> {
        let first = &self.toks[lo];
        if first.kind == Kind::Ident && REFUSED_STATEMENTS.contains(&first.value.as_str()) {
            return Err(unsupported(format!(
                "`{}` statements are not allowed; write only `let` statements and one tabular expression",
                first.value
            )));
        }
        if !first.is_ident("let") {
            return self.expr(lo, hi, Some(Start::Tabular));
        }
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
        if let Some((close, open)) = function_body {
            // Parameter names: identifiers directly followed by `:` at the first level.
            let mut params = Vec::new();
            let mut i = rhs + 1;
            while i < close {
                if self.toks[i].is_open() {
                    i = self.matching[i] + 1;
                    continue;
                }
                if self.toks[i].kind == Kind::Ident
                    && self.toks.get(i + 1).is_some_and(|t| t.is_punct(":"))
                {
                    params.push(self.toks[i].value.clone());
                }
                i += 1;
            }
            self.scopes.push(params);
            let body = self.statements(open + 1, self.matching[open]);
            self.scopes.pop();
            body?;
            let after = self.matching[open] + 1;
            if after < hi {
                self.expr(after, hi, None)?;
            }
        } else {
            self.expr(rhs, hi, Some(Start::LetValue))?;
        }
        self.bind(name);
        Ok(())
    }

    /// Checks `[lo, hi)`; `start` says whether `lo` is where a tabular source is read.
    fn expr(&mut self, lo: usize, hi: usize, start: Option<Start>) -> Result<(), QueryRejection> {
        let mut i = lo;
        if let Some(start) = start {
            i = self.source(lo, hi, start)?;
        }
        while i < hi {
            let tok = &self.toks[i];
            let prev = i
                .checked_sub(1)
                .and_then(|p| self.tok(p, hi))
                .filter(|_| i > lo);
            let after_pipe = prev.is_some_and(|p| p.is_punct("|"));
            if tok.is_open() {
                let close = self.matching[i];
                let tabular = tok.is_punct("(") && self.paren_is_tabular(i, prev);
                let inner = if tabular { Some(Start::Tabular) } else { None };
                self.expr(i + 1, close, inner)?;
                i = close + 1;
                continue;
            }
            if tok.kind == Kind::Ident {
                let name = tok.value.as_str();
                if name == "externaldata" || name == "external_data" {
                    return Err(self.forbidden_call(name));
                }
                if FORBIDDEN_CALLS.contains(&name)
                    && self.toks.get(i + 1).is_some_and(|t| t.is_punct("("))
                {
                    return Err(self.forbidden_call(name));
                }
                if after_pipe {
                    match name {
                        "union" => {
                            i = self.union_args(i + 1, hi)?;
                            continue;
                        }
                        "join" | "lookup" => {
                            let j = self.skip_params(i + 1, hi);
                            i = self.source_item(j, hi)?;
                            continue;
                        }
                        "evaluate" => {
                            i = self.evaluate(i, hi)?;
                            continue;
                        }
                        "invoke" => {
                            let j = self.skip_params(i + 1, hi);
                            let bound = self
                                .tok(j, hi)
                                .is_some_and(|t| t.kind == Kind::Ident && self.is_bound(&t.value));
                            if !bound {
                                return Err(unsupported(
                                    "`invoke` may only call a function defined by `let` in this query",
                                ));
                            }
                        }
                        "as" => {
                            let j = self.skip_params(i + 1, hi);
                            if let Some(t) = self.tok(j, hi).filter(|t| t.kind == Kind::Ident) {
                                let bound = t.value.clone();
                                self.bind(bound);
                            }
                        }
                        _ => {}
                    }
                }
            }
            i += 1;
        }
        Ok(())
    }

    fn paren_is_tabular(&self, open: usize, prev: Option<&Tok>) -> bool {
        let Some(prev) = prev else {
            return false;
        };
        if prev.is_ident("toscalar") || prev.is_ident("materialize") {
            return true;
        }
        let in_list = prev.is_ident("in")
            || (prev.is_punct("~")
                && open >= 2
                && self.toks.get(open - 2).is_some_and(|t| t.is_ident("in")));
        // `x in ("a", b)` is a scalar list; `x in (T | project y)` and `x in (T)` are subqueries.
        in_list
            && self
                .toks
                .get(open + 1)
                .is_some_and(|t| t.kind == Kind::Ident)
            && self
                .toks
                .get(open + 2)
                .is_some_and(|t| t.is_punct("|") || t.is_punct(")"))
    }

    fn forbidden_call(&self, name: &str) -> QueryRejection {
        unsupported(format!(
            "`{name}` reads data outside the allowed tables and is not allowed; query only {}",
            self.policy.allowed_tables.join(", ")
        ))
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

    /// Reads the source at a tabular start; returns where the rest of the expression begins.
    fn source(&mut self, i: usize, hi: usize, start: Start) -> Result<usize, QueryRejection> {
        let Some(tok) = self.tok(i, hi) else {
            return Ok(i);
        };
        if tok.kind != Kind::Ident {
            // A parenthesized source is itself a tabular start; literals read no table.
            if tok.is_punct("(") {
                let close = self.matching[i];
                self.expr(i + 1, close, Some(Start::Tabular))?;
                return Ok(close + 1);
            }
            if tok.is_punct("*") {
                return Err(self.disallowed("*"));
            }
            return Ok(i);
        }
        let name = tok.value.clone();
        match name.as_str() {
            "print" | "range" | "datatable" | "true" | "false" | "null" => return Ok(i + 1),
            "union" => return self.union_args(i + 1, hi),
            "search" | "find" => return self.search_tables(i, hi),
            "evaluate" => return self.evaluate(i, hi),
            "toscalar" | "materialize" => return Ok(i + 1),
            _ => {}
        }
        if start == Start::Tabular && OPERATORS.contains(&name.as_str()) {
            return Err(unsupported(format!(
                "`{name}` must follow a table name and `|`, e.g. `AuditLogs | {name} ...`"
            )));
        }
        if self.tok(i + 1, hi).is_some_and(|t| t.is_punct("(")) {
            if FORBIDDEN_CALLS.contains(&name.as_str()) {
                return Err(self.forbidden_call(&name));
            }
            let close = self.matching[i + 1];
            let piped = self.tok(close + 1, hi).is_some_and(|t| t.is_punct("|"));
            if self.is_bound(&name) || (start == Start::LetValue && !piped) {
                return Ok(i + 1);
            }
            return Err(unsupported(format!(
                "`{name}()` is not a known data source; read the allowed tables directly ({})",
                self.policy.allowed_tables.join(", ")
            )));
        }
        self.table_ref(i, hi, false)?;
        Ok(i + 1)
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
            let close = self.matching[i];
            self.expr(i + 1, close, Some(Start::Tabular))?;
            return Ok(close + 1);
        }
        if tok.is_punct("*") {
            return Err(self.disallowed("*"));
        }
        if tok.kind != Kind::Ident {
            return Err(unsupported("expected a table or `(subquery)` here"));
        }
        if self.tok(i + 1, hi).is_some_and(|t| t.is_punct("(")) {
            let name = tok.value.clone();
            if name == "datatable" || self.is_bound(&name) {
                return Ok(i + 1);
            }
            if FORBIDDEN_CALLS.contains(&name.as_str()) {
                return Err(self.forbidden_call(&name));
            }
            return Err(unsupported(format!(
                "`{name}()` is not a known data source; read the allowed tables directly"
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

    fn evaluate(&mut self, i: usize, hi: usize) -> Result<usize, QueryRejection> {
        let j = self.skip_params(i + 1, hi);
        let plugin = self
            .tok(j, hi)
            .filter(|t| t.kind == Kind::Ident)
            .map(|t| t.value.clone())
            .unwrap_or_default();
        if ALLOWED_PLUGINS.contains(&plugin.as_str()) {
            return Ok(j + 1);
        }
        Err(unsupported(format!(
            "`evaluate {plugin}` is not allowed: plugins may reach outside the workspace; allowed plugins: {}",
            ALLOWED_PLUGINS.join(", ")
        )))
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
        assert_eq!(checked.kql, kql);
        assert!(!checked.added_row_cap && !checked.added_time_filter);
        assert_eq!(checked.tables, ["AuditLogs"]);

        for kql in [
            "AuditLogs | where OperationName == \".drop table x\" | where TimeGenerated > ago(1d) | take 3",
            "AuditLogs // .drop table x; union SigninLogs\n| where TimeGenerated > ago(1d) | take 3",
            "AuditLogs | where OperationName has \"union SigninLogs\" and TimeGenerated > ago(1d) | take 3",
            "AuditLogs | where x == @'C:\\.drop' and y == h'union SigninLogs' and TimeGenerated > ago(1h) | count",
        ] {
            let checked = check(kql).unwrap();
            assert_eq!(checked.kql, kql);
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
    fn leaves_a_bounded_query_unchanged() {
        let kql = "AuditLogs\n| where TimeGenerated between (ago(2d) .. now())\n| top 20 by TimeGenerated desc";
        let checked = check(kql).unwrap();
        assert!(!checked.added_time_filter && !checked.added_row_cap);
        insta::assert_snapshot!(checked.kql, @r"
        AuditLogs
        | where TimeGenerated between (ago(2d) .. now())
        | top 20 by TimeGenerated desc
        ");
        let checked =
            check("AuditLogs | where TimeGenerated > ago(1d) | render timechart").unwrap();
        assert_eq!(
            checked.kql,
            "AuditLogs | where TimeGenerated > ago(1d)\n| take 1000 | render timechart"
        );
        // Over the cap, or unknown, still gets the cap.
        assert!(
            check("AuditLogs | where TimeGenerated > ago(1d) | take 5000")
                .unwrap()
                .added_row_cap
        );
        assert!(
            !check("AuditLogs | where TimeGenerated > ago(1d) | summarize count()")
                .unwrap()
                .added_row_cap
        );
    }

    #[test]
    fn follows_the_policy() {
        let policy = QueryPolicy {
            allowed_tables: vec!["SigninLogs".into()],
            row_cap: 50,
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
