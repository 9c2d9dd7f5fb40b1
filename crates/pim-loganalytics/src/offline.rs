//! What the offline sources share.
//!
//! Offline sources do not run KQL: they answer a scan query with the table it reads, in the
//! export's own row order. Handed a [`RowScope`], an export keeps only the rows that can matter
//! while it reads the file ([`Scope`] applies one), and says where each kept row stands in the
//! whole table ([`ScopedRows`]): a [`pim_domain::DataProblem`] names a row by its position in
//! the file, so "row 17" must keep pointing at the same line. The shared parser re-checks every
//! row against its window and identity exactly as it does for live results.

use std::borrow::Cow;
use std::collections::HashSet;

use pim_domain::cells::{CellRef, RowCells};
use pim_domain::timestamp::parse_timestamp;
use pim_domain::{Column, Table};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{Error, IdentityField, LogQuery, LogTable, Result, RowScope, ScopedRows};

/// The table an offline source must read for `query`, or [`Error::Unsupported`] for free-form
/// KQL.
pub(crate) fn wanted_table(query: &LogQuery, source: &str) -> Result<LogTable> {
    query.table.ok_or_else(|| Error::Unsupported {
        message: format!(
            "the {source} can only answer the built-in scan queries on AuditLogs and AzureActivity; free-form KQL (query {:?}) needs a Log Analytics workspace",
            query.label
        ),
    })
}

/// One cell as a scope test sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    /// No such column, or a short row.
    Absent,
    /// JSON null (CSV: an empty field).
    Null,
    /// A string.
    Str(&'a str),
    /// Any other JSON value.
    Other(&'a Value),
}

impl<'a> From<Option<CellRef<'a>>> for Cell<'a> {
    fn from(cell: Option<CellRef<'a>>) -> Self {
        match cell {
            None => Cell::Absent,
            Some(CellRef::Null) => Cell::Null,
            Some(CellRef::Str(s)) => Cell::Str(s),
            Some(CellRef::Other(v)) => Cell::Other(v),
        }
    }
}

impl<'a> Cell<'a> {
    pub(crate) fn of(value: Option<&'a Value>) -> Self {
        match value {
            None => Cell::Absent,
            Some(Value::Null) => Cell::Null,
            Some(Value::String(s)) => Cell::Str(s),
            Some(other) => Cell::Other(other),
        }
    }

    /// Scalar text as the parsers read it: strings trimmed (blank is none), numbers and
    /// booleans as text.
    fn scalar_text(self) -> Option<Cow<'a, str>> {
        match self {
            Cell::Str(s) => {
                let t = s.trim();
                (!t.is_empty()).then_some(Cow::Borrowed(t))
            }
            Cell::Other(v) => scalar_text(v),
            Cell::Absent | Cell::Null => None,
        }
    }
}

fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then_some(Cow::Borrowed(t))
        }
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// An object member, by exact key first, then case-insensitively (as the parsers look keys up).
fn get_ci<'v>(obj: &'v Value, key: &str) -> Option<&'v Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A [`RowScope`] ready to test rows: the identity values in a set, and (once [`Scope::bind`]
/// has seen the table's columns) the column indexes.
#[derive(Debug)]
pub(crate) struct Scope {
    scope: RowScope,
    /// The wanted identities, lower-cased. Every row's caller and claims are looked up here:
    /// hashed with foldhash (seeded at random per run), which costs less than the default
    /// hasher on these short keys.
    identities: Option<HashSet<String, foldhash::fast::RandomState>>,
    time: Option<(Vec<usize>, pim_domain::TimeRange)>,
    operations: Option<(Vec<usize>, Vec<String>)>,
    /// Identity fields grouped by column: a string column (`None`) or key paths in a dynamic
    /// column.
    identity_fields: Vec<(usize, Option<DynamicPaths>)>,
    /// The scope tests nothing (or the table lacks a required column): every row is kept.
    inert: bool,
    /// The earliest readable time of every row tested, kept or not
    /// ([`ScopedRows::earliest`]).
    earliest: std::cell::Cell<Option<OffsetDateTime>>,
    /// A buffer for lower-casing identity values.
    lower: std::cell::RefCell<String>,
    /// The identity value last looked up (as the row gave it, trimmed) and whether it is
    /// wanted: an operation's rows come together, by one caller, so most rows repeat the
    /// row before's.
    last: std::cell::RefCell<(String, bool)>,
}

impl Scope {
    /// Prepares `scope`; every row is kept until [`Scope::bind`] is called.
    pub(crate) fn new(scope: &RowScope) -> Self {
        let identities = scope.identities.as_ref().map(|ids| {
            ids.values
                .iter()
                .map(|v| v.trim().to_lowercase())
                .filter(|v| !v.is_empty())
                .collect()
        });
        Self {
            scope: scope.clone(),
            identities,
            time: None,
            operations: None,
            identity_fields: Vec::new(),
            inert: true,
            earliest: std::cell::Cell::new(None),
            lower: std::cell::RefCell::new(String::new()),
            last: std::cell::RefCell::new((String::new(), false)),
        }
    }

    /// Looks the scope's columns up in `columns`, case-insensitively (first match wins, as
    /// [`Table::column_index`] does).
    pub(crate) fn bind(&mut self, columns: &[Column]) {
        let index = |name: &str| {
            columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
        };
        let indexes = |names: &[String]| names.iter().filter_map(|n| index(n)).collect::<Vec<_>>();
        let scope = &self.scope;
        let required = scope
            .required_columns
            .iter()
            .all(|group| group.iter().any(|n| index(n).is_some()));
        self.time = scope.time.as_ref().map(|t| (indexes(&t.columns), t.span));
        self.operations = scope.operations.as_ref().map(|o| {
            (
                indexes(&o.columns),
                o.names.iter().map(|n| n.trim().to_owned()).collect(),
            )
        });
        let mut fields: Vec<(usize, Option<DynamicPaths>)> = Vec::new();
        for field in scope.identities.iter().flat_map(|ids| &ids.fields) {
            match field {
                IdentityField::Column(name) => {
                    if let Some(i) = index(name) {
                        fields.push((i, None));
                    }
                }
                IdentityField::Dynamic { column, path } => {
                    let Some(i) = index(column) else { continue };
                    match fields
                        .iter_mut()
                        .find(|(c, paths)| *c == i && paths.is_some())
                    {
                        Some((_, Some(paths))) => paths.push(path.clone()),
                        _ => {
                            let mut paths = DynamicPaths::default();
                            paths.push(path.clone());
                            fields.push((i, Some(paths)));
                        }
                    }
                }
            }
        }
        self.identity_fields = fields;
        self.inert = !required
            || (self.time.is_none() && self.operations.is_none() && self.identities.is_none());
    }

    /// The earliest readable time among the rows tested so far (kept or left out), when the
    /// scope reads a time.
    pub(crate) fn earliest(&self) -> Option<OffsetDateTime> {
        self.earliest.get()
    }

    /// Whether every row is kept.
    pub(crate) fn is_inert(&self) -> bool {
        self.inert
    }

    /// Whether the row whose cells `cell` reads can matter. A row is left out only when every
    /// test the scope makes can be read: a readable operation that is not wanted, or a readable
    /// time and identity of which one is out of scope. A row whose time or identity cannot be
    /// read is kept, so that the parser reports it as it always has.
    pub(crate) fn keep<'a>(&self, cell: impl Fn(usize) -> Cell<'a>) -> bool {
        self.keep_with(&cell, |c| time_of(cell(c)))
    }

    /// As [`Scope::keep`], for a row read through [`RowCells`]: its times are parsed by the
    /// row, which a streamed row does once for all its readers.
    pub(crate) fn keep_row<R: RowCells + ?Sized>(&self, row: &R) -> bool {
        self.keep_with(
            |c| Cell::from(row.cell(c)),
            |c| {
                row.timestamp(c)
                    .and_then(Result::ok)
                    .filter(|t| t.year() >= 2000)
            },
        )
    }

    fn keep_with<'a>(
        &self,
        cell: impl Fn(usize) -> Cell<'a>,
        time: impl Fn(usize) -> Option<OffsetDateTime>,
    ) -> bool {
        if self.inert {
            return true;
        }
        if let Some((cols, names)) = &self.operations
            && let Some(op) = cols.iter().find_map(|&c| cell(c).scalar_text())
            && !names.iter().any(|n| n.eq_ignore_ascii_case(&op))
        {
            return false;
        }
        // `Some(in scope)`, or `None` when the row's value cannot be read.
        let in_span = match &self.time {
            None => Some(true),
            Some((cols, span)) => cols.iter().find_map(|&c| time(c)).map(|t| {
                if self.earliest.get().is_none_or(|e| t < e) {
                    self.earliest.set(Some(t));
                }
                span.contains(t)
            }),
        };
        if in_span.is_none() {
            return true;
        }
        // Out of the span, the row is left out if it names an identity at all (and kept if it
        // names none): which one it names need not be looked up. A history scope, whose span
        // ends where the scan begins, sees most rows so.
        let out_of_span = in_span == Some(false);
        let known = match &self.identities {
            None => Some(true),
            Some(wanted) => {
                let mut named = false;
                let mut lower = self.lower.borrow_mut();
                let mut last = self.last.borrow_mut();
                let mut seen = |value: &str| {
                    named = true;
                    if out_of_span {
                        // Stops at the first identity; the answer is `false` whatever it is.
                        return true;
                    }
                    let value = value.trim();
                    if last.0 == value {
                        return last.1;
                    }
                    // Lower-cased into one reused buffer: this runs for most rows of an export.
                    let found = if !value
                        .bytes()
                        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
                    {
                        // Already lower-case ASCII (most identities are): as it is.
                        wanted.contains(value)
                    } else {
                        lower.clear();
                        if value.is_ascii() {
                            lower.push_str(value);
                            lower.make_ascii_lowercase();
                        } else {
                            lower.push_str(&value.to_lowercase());
                        }
                        wanted.contains(lower.as_str())
                    };
                    last.0.clear();
                    last.0.push_str(value);
                    last.1 = found;
                    found
                };
                let mut found = false;
                for (col, paths) in &self.identity_fields {
                    found = match paths {
                        None => match cell(*col) {
                            Cell::Str(s) if !s.trim().is_empty() => seen(s),
                            _ => false,
                        },
                        Some(paths) => dynamic_values(cell(*col), paths, &mut seen),
                    };
                    if found {
                        break;
                    }
                }
                named.then_some(found)
            }
        };
        match (in_span, known) {
            (Some(a), Some(b)) => a && b,
            _ => true,
        }
    }
}

/// A readable time, as the parsers read one: a non-blank timestamp string of the year 2000 or
/// later (earlier ones are placeholders).
fn time_of(cell: Cell<'_>) -> Option<OffsetDateTime> {
    match cell {
        Cell::Str(s) if !s.trim().is_empty() => {
            parse_timestamp(s).ok().filter(|t| t.year() >= 2000)
        }
        _ => None,
    }
}

/// Calls `seen` with every value the key `paths` find in a dynamic cell (nested JSON, or JSON
/// text, possibly encoded twice); true as soon as `seen` does.
fn dynamic_values(
    cell: Cell<'_>,
    dynamic: &DynamicPaths,
    seen: &mut impl FnMut(&str) -> bool,
) -> bool {
    let paths = dynamic.paths.as_slice();
    let parsed;
    let value = match cell {
        Cell::Other(v) => v,
        Cell::Str(text) => {
            // Claims are kilobytes of JSON text holding one wanted key: find `"key":` and read
            // the value after it before parsing the whole text.
            let mut quick = false;
            for (path, finder) in paths.iter().zip(&dynamic.finders) {
                if let ([key], Some(finder)) = (path.as_slice(), finder)
                    && let Some(v) = quoted_member(text, key, finder)
                {
                    quick = true;
                    if let Some(v) = v
                        && seen(&v)
                    {
                        return true;
                    }
                }
            }
            if quick {
                return false;
            }
            let t = text.trim();
            if t.is_empty() || t == "null" {
                return false;
            }
            let lower = t.to_ascii_lowercase();
            let mentioned = paths.iter().any(|p| {
                p.last()
                    .is_some_and(|k| lower.contains(&k.to_ascii_lowercase()))
            });
            if !mentioned {
                return false;
            }
            parsed = match serde_json::from_str::<Value>(t) {
                Ok(Value::String(inner)) => match serde_json::from_str::<Value>(&inner) {
                    Ok(v) => v,
                    Err(_) => return false,
                },
                Ok(v) => v,
                Err(_) => return false,
            };
            &parsed
        }
        Cell::Absent | Cell::Null => return false,
    };
    for path in paths {
        let mut at = Some(value);
        for key in path {
            at = at.and_then(|v| get_ci(v, key));
        }
        if let Some(v) = at.and_then(scalar_text)
            && seen(&v)
        {
            return true;
        }
    }
    false
}

/// Key paths into a dynamic column, with a searcher for each one-key path built once (building
/// one costs more than searching a claims text).
#[derive(Debug, Default)]
pub(crate) struct DynamicPaths {
    paths: Vec<Vec<String>>,
    finders: Vec<Option<memchr::memmem::Finder<'static>>>,
}

impl DynamicPaths {
    fn push(&mut self, path: Vec<String>) {
        self.finders.push(match path.as_slice() {
            [key] => Some(memchr::memmem::Finder::new(key.as_bytes()).into_owned()),
            _ => None,
        });
        self.paths.push(path);
    }
}

/// The member `"key": value` found by a text search in JSON text, when the key is quoted
/// exactly so and a JSON value follows the colon: `Some` of the value's scalar text (as
/// [`scalar_text`] reads it; `None` for a value that is not a scalar).
fn quoted_member<'t>(
    text: &'t str,
    key: &str,
    finder: &memchr::memmem::Finder<'_>,
) -> Option<Option<Cow<'t, str>>> {
    let mut from = 0;
    while let Some(pos) = finder.find(text.get(from..)?.as_bytes()) {
        let at = from + pos;
        from = at + key.len();
        let quoted = at > 0
            && text.as_bytes()[at - 1] == b'"'
            && text.as_bytes().get(at + key.len()) == Some(&b'"');
        if !quoted {
            continue;
        }
        let rest = text.get(at + key.len() + 1..)?.trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let rest = rest.trim_start();
        // A string without escapes or control characters (as claims values are) is read in
        // place: it is exactly what serde_json would read.
        if let Some(body) = rest.strip_prefix('"')
            && let Some(end) = body.find(|c: char| c == '"' || c == '\\' || c < ' ')
            && body.as_bytes().get(end) == Some(&b'"')
        {
            let t = body[..end].trim();
            return Some((!t.is_empty()).then_some(Cow::Borrowed(t)));
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        if let Some(Ok(v)) = values.next() {
            return Some(scalar_text(&v).map(|t| Cow::Owned(t.into_owned())));
        }
    }
    None
}

/// Applies `scope` to a table already in memory: the rows kept and where they stood. `None`
/// when every row is kept.
pub(crate) fn scope_table(table: &mut Table, scope: &RowScope) -> Option<ScopedRows> {
    let mut resolved = Scope::new(scope);
    resolved.bind(&table.columns);
    if resolved.is_inert() {
        return None;
    }
    let mut positions = Vec::new();
    let rows = std::mem::take(&mut table.rows);
    let total = rows.len();
    for (i, row) in rows.into_iter().enumerate() {
        if resolved.keep(|c| Cell::of(row.get(c))) {
            positions.push(i);
            table.rows.push(row);
        }
    }
    let left_out = total - positions.len();
    (left_out > 0).then_some(ScopedRows {
        positions,
        left_out,
        earliest: resolved.earliest(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_domain::TimeRange;
    use pim_domain::timestamp::parse_timestamp;

    fn range() -> TimeRange {
        TimeRange::new(
            parse_timestamp("2026-11-20T09:00:00Z").unwrap(),
            parse_timestamp("2026-11-20T13:00:00Z").unwrap(),
        )
    }

    #[test]
    fn free_form_kql_is_unsupported() {
        let q = LogQuery {
            label: "ask".into(),
            table: None,
            kql: "SigninLogs | take 1".into(),
            timespan: range(),
            scope: None,
        };
        let e = wanted_table(&q, "export directory").unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }));
        assert!(
            e.to_string().contains("needs a Log Analytics workspace"),
            "{e}"
        );
        assert!(!e.is_retryable());
    }
}
