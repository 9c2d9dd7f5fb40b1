//! Reading exported query results.
//!
//! Two shapes are accepted, detected from the document:
//!
//! 1. a Log Analytics query API response, `{"tables":[{"name":..,"columns":[..],"rows":[[..]]}]}`,
//!    possibly with an `"error"` object (a `PartialError` next to the tables);
//! 2. an array of row objects as `az monitor log-analytics query -o json` prints them,
//!    `[{"TimeGenerated":"…","Caller":"…"},…]`: the columns are the union of the keys in
//!    first-seen order (type `""`), missing keys read as null.
//!
//! Cells are kept raw (`dynamic` columns stay JSON strings or objects, as exported).
//!
//! The document is deserialized straight into rows with serde visitors, never into one
//! `serde_json::Value` tree first, and row objects are placed into columns as their keys are
//! read, so a 500,000-row export costs little more than its cells. A row of the wrong type
//! (not an array, or not an object) becomes a [`DataProblem`] and the other rows are kept.
//!
//! [`read_export`] streams a file instead (a sliding buffer cut into rows, each decoded by the
//! same visitors) and keeps only the rows a [`RowScope`] keeps; any document it does not expect
//! is handed to [`parse_export`], so both give the same result.
//!
//! One bad cell stays one bad cell: when the document does not parse, a structural scan (strings
//! and brackets only, nothing decoded) finds the rows serde_json cannot read (an out-of-range
//! number such as `1e999`, a lone surrogate escape, a stray byte), and the file is read again
//! without them, each reported as a problem naming its row. Only a broken structure (unbalanced
//! brackets, text that is not JSON) fails the whole file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use pim_domain::{Column, DataProblem, Table};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::{Error, LogTable, Result, RowScope, ScopedRows};

mod row;
pub(crate) mod stream;

pub use row::StreamedRow;

/// At most this many per-row problems are listed per file; the rest are counted in one summary
/// problem, so a thoroughly broken file cannot flood the report.
const MAX_ROW_PROBLEMS: usize = 100;

/// An export, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedExport {
    /// The rows; the table is named after the [`LogTable`] it was read for.
    pub table: Table,
    /// The export's `PartialError` (code and innermost message), when it recorded one: the rows
    /// are then incomplete.
    pub partial_error: Option<String>,
    /// Rows that were skipped and other things worth reporting (extra tables). Every row that
    /// cannot be read is here, whatever the scope.
    pub problems: Vec<DataProblem>,
    /// Set when a [`RowScope`] left rows out: where the rows kept stand in the whole table.
    pub scoped: Option<ScopedRows>,
}

/// Reads the export file at `path` as a stream, keeping only the rows `scope` keeps (all rows
/// without one), so memory follows the rows kept, not the file's size. The result is the one
/// [`parse_export`] gives for the whole file, filtered: the same columns, cells, problems (row
/// numbers included) and partial error, the kept rows in file order with their positions in
/// [`ParsedExport::scoped`].
///
/// A file that is not a plain valid export (an unreadable cell, an odd layout, a truncated
/// document) is read whole with [`parse_export`] instead, which repairs bad cells and words
/// every error exactly; only such files cost memory in proportion to their size.
///
/// # Errors
///
/// [`Error::Io`] naming `path` when it cannot be read; otherwise as [`parse_export`].
pub fn read_export(
    path: &Path,
    source_name: &str,
    table: LogTable,
    scope: Option<&RowScope>,
) -> Result<ParsedExport> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    match stream::stream_export(file, source_name, table, scope).map_err(io)? {
        stream::Streamed::Done(parsed) => Ok(parsed),
        stream::Streamed::Unusual => {
            tracing::debug!(
                file = %path.display(),
                "export is not a plain valid document: reading it whole"
            );
            let bytes = std::fs::read(path).map_err(io)?;
            let mut parsed = parse_export(&bytes, source_name, table)?;
            drop(bytes);
            if let Some(scope) = scope {
                parsed.scoped = crate::offline::scope_table(&mut parsed.table, scope);
            }
            Ok(parsed)
        }
    }
}

/// Streams the export file at `path` to every one of `consumers` in one pass: each gets the
/// rows its scope keeps (every row without one), with their positions in the whole table, and
/// never a table of them (issue 12). What [`read_export`] gives for the same file and scope is
/// exactly the rows a consumer receives; the answer carries its problems and partial error, and
/// each consumer's counts.
///
/// A file that is not a plain valid export is read whole with [`parse_export`] instead (as
/// [`read_export`] does): the consumers are then told to [`restart`](crate::RowSink::restart)
/// and are fed the rows of that reading.
///
/// # Errors
///
/// [`Error::Io`] naming `path` when it cannot be read; otherwise as [`parse_export`].
pub fn stream_export_rows(
    path: &Path,
    source_name: &str,
    table: LogTable,
    consumers: &mut [crate::RowConsumer<'_>],
) -> Result<crate::StreamedAnswer> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = {
        let mut readers: Vec<stream::Reader<'_>> = consumers
            .iter_mut()
            .map(|c| stream::Reader::new(c.scope.as_ref(), stream::Target::Sink(&mut *c.sink)))
            .collect();
        let meta = stream::stream_rows(file, source_name, &mut readers).map_err(io)?;
        let stats: Vec<_> = readers.iter().map(stream::Reader::stats).collect();
        meta.map(|m| (m, stats))
    };
    if let Some((meta, stats)) = meta {
        return Ok(crate::StreamedAnswer {
            columns: meta.columns,
            partial_error: meta.partial_error,
            problems: meta.problems,
            stats,
        });
    }
    tracing::debug!(
        file = %path.display(),
        "export is not a plain valid document: reading it whole"
    );
    for c in consumers.iter_mut() {
        c.sink.restart();
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let parsed = parse_export(&bytes, source_name, table)?;
    drop(bytes);
    Ok(feed_table(parsed, consumers))
}

/// Hands the rows of a table read whole to `consumers`, as a stream would.
pub(crate) fn feed_table(
    parsed: ParsedExport,
    consumers: &mut [crate::RowConsumer<'_>],
) -> crate::StreamedAnswer {
    let ParsedExport {
        table,
        partial_error,
        problems,
        ..
    } = parsed;
    let mut readers: Vec<stream::Reader<'_>> = consumers
        .iter_mut()
        .map(|c| stream::Reader::new(c.scope.as_ref(), stream::Target::Sink(&mut *c.sink)))
        .collect();
    stream::feed_rows(&mut readers, &table.columns, table.rows);
    let stats = readers.iter().map(stream::Reader::stats).collect();
    crate::StreamedAnswer {
        columns: table.columns,
        partial_error,
        problems,
        stats,
    }
}

/// Parses an export of `table` read from `source_name` (used in messages, e.g.
/// `AuditLogs.json`). A UTF-8 byte-order mark is ignored; an empty array or a zero-row table is
/// valid.
///
/// ```
/// use pim_loganalytics::{format::parse_export, LogTable};
///
/// let az = br#"[{"TimeGenerated":"2026-11-20T09:00:00Z","Caller":"jane@contoso.com"},
///              {"Caller":"bob@contoso.com","Extra":1}]"#;
/// let parsed = parse_export(az, "AzureActivity.json", LogTable::AzureActivity).unwrap();
/// assert_eq!(parsed.table.columns.len(), 3);
/// assert!(parsed.table.rows[1][0].is_null());
/// ```
///
/// # Errors
///
/// [`Error::Format`] naming `source_name` when the file is empty, not JSON (with line and
/// column), truncated, or not one of the two shapes (e.g. an object without `tables`, a table
/// without `columns` or `rows`).
pub fn parse_export(bytes: &[u8], source_name: &str, table: LogTable) -> Result<ParsedExport> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::format(source_name, "the file is empty"));
    }
    let (doc, repaired) = match parse_document(bytes) {
        Ok(doc) => (doc, Vec::new()),
        // One bad cell (an out-of-range number, a lone surrogate, a stray byte) must not cost
        // the whole file: find the rows that hold one, read the file without them, and report
        // each as a problem. A file that is not JSON at all still fails, naming the file.
        Err(e) if e.classify() == serde_json::error::Category::Syntax => {
            match repair::without_bad_rows(bytes) {
                Some((fixed, bad)) if !bad.is_empty() => match parse_document(&fixed) {
                    Ok(doc) => (doc, bad),
                    Err(_) => return Err(json_error(source_name, &e)),
                },
                _ => return Err(json_error(source_name, &e)),
            }
        }
        Err(e) => return Err(json_error(source_name, &e)),
    };
    let mut problems = Vec::new();
    let (columns, rows, partial_error) = match doc {
        Document::Rows(rows) => {
            let columns: Vec<Column> = rows
                .columns
                .names
                .into_iter()
                .map(|name| Column {
                    name,
                    kind: String::new(),
                })
                .collect();
            let mut cells = rows.rows;
            row_problems(source_name, rows.bad, &mut problems);
            pad_rows(&mut cells, &columns);
            (columns, cells, None)
        }
        Document::Response { tables, error } => {
            let error = error.as_ref().map(ApiError::from_value);
            let Some(tables) = tables else {
                let detail = error
                    .map(|e| format!(": it holds an API error instead ({})", e.summary()))
                    .unwrap_or_default();
                return Err(Error::format(
                    source_name,
                    format!(
                        "expected a Log Analytics query response with \"tables\" or an array of row objects, found an object without \"tables\"{detail}"
                    ),
                ));
            };
            let mut tables = tables.into_iter();
            let Some(first) = tables.next() else {
                return Err(Error::format(source_name, "\"tables\" is an empty list"));
            };
            let extra: Vec<String> = tables.map(|t| display_name(&t.name)).collect();
            if !extra.is_empty() {
                problems.push(DataProblem::source(
                    source_name,
                    format!(
                        "the export holds {} tables; only the first ({}) was read, ignored: {}",
                        extra.len() + 1,
                        display_name(&first.name),
                        extra.join(", ")
                    ),
                ));
            }
            let Some(columns) = first.columns else {
                return Err(Error::format(
                    source_name,
                    format!("table {} has no \"columns\"", display_name(&first.name)),
                ));
            };
            let Some(rows) = first.rows else {
                return Err(Error::format(
                    source_name,
                    format!("table {} has no \"rows\"", display_name(&first.name)),
                ));
            };
            row_problems(source_name, rows.bad, &mut problems);
            let mut cells = rows.rows;
            long_rows(source_name, &mut cells, columns.len(), &mut problems);
            (columns, cells, error.map(|e| e.summary()))
        }
    };
    if !repaired.is_empty() {
        // The repaired rows read as `null` rows; say what was really wrong with them instead.
        let rows_fixed: std::collections::HashSet<usize> =
            repaired.iter().map(|(r, _)| *r).collect();
        problems.retain(|p| !p.row.is_some_and(|r| rows_fixed.contains(&r)));
        row_problems(source_name, repaired, &mut problems);
        problems.sort_by_key(|p| p.row.unwrap_or(usize::MAX));
    }
    Ok(ParsedExport {
        table: Table {
            name: table.name().to_owned(),
            columns,
            rows,
        },
        partial_error,
        problems,
        scoped: None,
    })
}

fn parse_document(bytes: &[u8]) -> serde_json::Result<Document> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_any(DocumentVisitor)
        .and_then(|doc| de.end().map(|()| doc))
}

/// Finding the rows of a document that serde_json cannot read, without reading them.
mod repair {
    use std::ops::Range;

    /// Unreadable rows of the first table: index and what is wrong.
    pub(super) type BadRows = Vec<(usize, String)>;

    /// A structural scan of JSON text: strings, brackets and scalar tokens, nothing decoded.
    /// Out-of-range numbers and lone surrogates are well-formed at this level, so the scan
    /// walks past them and finds the row that holds them.
    struct Scan<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl Scan<'_> {
        fn ws(&mut self) {
            while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        fn string(&mut self) -> Option<Range<usize>> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match *self.b.get(self.i)? {
                    b'\\' => self.i += 2,
                    b'"' => {
                        self.i += 1;
                        return Some(start..self.i - 1);
                    }
                    _ => self.i += 1,
                }
            }
        }

        fn value(&mut self) -> Option<()> {
            match self.peek()? {
                b'"' => self.string().map(drop),
                b'[' => self.elements().map(drop),
                b'{' => self.members(|_, _| {}),
                _ => {
                    let start = self.i;
                    while self.b.get(self.i).is_some_and(|c| {
                        !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace()
                    }) {
                        self.i += 1;
                    }
                    (self.i > start).then_some(())
                }
            }
        }

        /// The byte ranges of an array's elements.
        fn elements(&mut self) -> Option<Vec<Range<usize>>> {
            self.eat(b'[')?;
            let mut out = Vec::new();
            if self.peek()? == b']' {
                self.i += 1;
                return Some(out);
            }
            loop {
                self.ws();
                let start = self.i;
                self.value()?;
                out.push(start..self.i);
                match self.peek()? {
                    b',' => self.i += 1,
                    b']' => {
                        self.i += 1;
                        return Some(out);
                    }
                    _ => return None,
                }
            }
        }

        /// Walks an object's members; `each(scan, key)` is called positioned at each value and
        /// must leave the scan after it (or not move, and the value is skipped).
        fn members(&mut self, mut each: impl FnMut(&mut Self, &[u8])) -> Option<()> {
            self.eat(b'{')?;
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(());
            }
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                self.ws();
                let before = self.i;
                let b = self.b;
                each(self, &b[key]);
                if self.i == before {
                    self.value()?;
                }
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }
    }

    /// The document with every unreadable row replaced by `null`, and for each such row of the
    /// first table (or of the top-level array), its index and what is wrong. `None` when the
    /// structure itself is broken (then no row can be trusted).
    pub(super) fn without_bad_rows(bytes: &[u8]) -> Option<(Vec<u8>, BadRows)> {
        let mut scan = Scan { b: bytes, i: 0 };
        let mut tables: Vec<Vec<Range<usize>>> = Vec::new();
        match scan.peek()? {
            b'[' => tables.push(scan.elements()?),
            b'{' => {
                let mut ok = true;
                scan.members(|s, key| {
                    if key != b"tables" || s.peek() != Some(b'[') {
                        return;
                    }
                    ok &= s.eat(b'[').is_some();
                    loop {
                        if s.peek() == Some(b']') {
                            s.i += 1;
                            break;
                        }
                        let mut rows = None;
                        let walked = s.members(|s, key| {
                            if key == b"rows" && s.peek() == Some(b'[') {
                                rows = s.elements();
                            }
                        });
                        if walked.is_none() {
                            ok = false;
                            return;
                        }
                        tables.push(rows.unwrap_or_default());
                        match s.peek() {
                            Some(b',') => s.i += 1,
                            Some(b']') => {
                                s.i += 1;
                                break;
                            }
                            _ => {
                                ok = false;
                                return;
                            }
                        }
                    }
                })?;
                if !ok {
                    return None;
                }
            }
            _ => return None,
        }
        let mut bad_ranges: Vec<Range<usize>> = Vec::new();
        let mut report = Vec::new();
        for (t, rows) in tables.iter().enumerate() {
            for (index, range) in rows.iter().enumerate() {
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes[range.clone()]) {
                    bad_ranges.push(range.clone());
                    if t == 0 {
                        report.push((
                            index,
                            format!("not valid JSON in this row ({e}); the row is skipped and the other rows are read"),
                        ));
                    }
                }
            }
        }
        bad_ranges.sort_by_key(|r| r.start);
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        for r in bad_ranges {
            out.extend_from_slice(bytes.get(at..r.start)?);
            out.extend_from_slice(b"null");
            at = r.end;
        }
        out.extend_from_slice(bytes.get(at..)?);
        Some((out, report))
    }
}

fn display_name(name: &str) -> String {
    if name.is_empty() {
        "(unnamed)".to_owned()
    } else {
        format!("{name:?}")
    }
}

fn json_error(source_name: &str, e: &serde_json::Error) -> Error {
    use serde_json::error::Category;
    let message = match e.classify() {
        Category::Eof => format!(
            "truncated JSON: the document ends early (line {}, column {})",
            e.line(),
            e.column()
        ),
        Category::Syntax => format!("not valid JSON: {e}"),
        Category::Data | Category::Io => e.to_string(),
    };
    Error::format(source_name, message)
}

fn row_problems(source_name: &str, bad: Vec<(usize, String)>, problems: &mut Vec<DataProblem>) {
    let total = bad.len();
    for (row, message) in bad.into_iter().take(MAX_ROW_PROBLEMS) {
        problems.push(DataProblem::row(source_name, row, message));
    }
    if total > MAX_ROW_PROBLEMS {
        problems.push(DataProblem::source(
            source_name,
            format!(
                "{} more malformed rows were skipped",
                total - MAX_ROW_PROBLEMS
            ),
        ));
    }
}

/// Rows longer than the column list: the extra cells have no column name, so they are dropped
/// and reported.
fn long_rows(
    source_name: &str,
    rows: &mut [Vec<Value>],
    columns: usize,
    problems: &mut Vec<DataProblem>,
) {
    let mut bad = Vec::new();
    for (i, row) in rows.iter_mut().enumerate() {
        if row.len() > columns {
            bad.push((
                i,
                format!(
                    "row has {} cells but the table has {columns} columns; the extra cells were ignored",
                    row.len()
                ),
            ));
            row.truncate(columns);
        }
    }
    row_problems(source_name, bad, problems);
}

fn pad_rows(rows: &mut [Vec<Value>], columns: &[Column]) {
    for row in rows {
        if row.len() < columns.len() {
            row.resize(columns.len(), Value::Null);
        }
    }
}

/// The parts of an API `error` object a caller needs: the top code and the innermost message of
/// the `innererror` chain (or of the first `details` entry), with its line and position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The top-level code, e.g. `PartialError` or `BadArgumentError`.
    pub code: Option<String>,
    /// The innermost code, e.g. `SYN0002`.
    pub innermost_code: Option<String>,
    /// The innermost message (falls back to the top-level one).
    pub message: String,
    /// Line of a query error, when given.
    pub line: Option<u32>,
    /// Position of a query error, when given.
    pub pos: Option<u32>,
}

impl ApiError {
    /// Reads an error object defensively: any field may be missing or of the wrong type.
    pub(crate) fn from_value(error: &Value) -> Self {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let number = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let mut out = ApiError {
            code: text(error, "code"),
            message: text(error, "message").unwrap_or_default(),
            ..ApiError::default()
        };
        let mut current = error;
        // A PartialError usually puts the cause in `details`; other errors nest `innererror`.
        // The depth cap keeps a hostile document from looping us for long.
        for _ in 0..32 {
            let next = current
                .get("innererror")
                .or_else(|| current.get("innerError"))
                .or_else(|| current.get("details").and_then(|d| d.get(0)));
            match next {
                Some(inner) if inner.is_object() => {
                    if let Some(m) = text(inner, "message") {
                        out.message = m;
                    }
                    if let Some(c) = text(inner, "code") {
                        out.innermost_code = Some(c);
                    }
                    out.line = number(inner, "line").or(out.line);
                    out.pos = number(inner, "pos").or(out.pos);
                    current = inner;
                }
                _ => break,
            }
        }
        if out.message.is_empty() && !error.is_object() {
            out.message = pim_domain::text::clip(&error.to_string(), 500);
        }
        out
    }

    /// `CODE: innermost message`.
    pub(crate) fn summary(&self) -> String {
        match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

enum Document {
    Rows(ObjectRows),
    Response {
        tables: Option<Vec<ApiTable>>,
        error: Option<Value>,
    },
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a Log Analytics query response ({\"tables\": [...]}) or an array of row objects",
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Document, A::Error> {
        let mut out = ObjectRows {
            columns: ColumnIndex::default(),
            rows: Vec::new(),
            bad: Vec::new(),
        };
        let mut index = 0usize;
        while let Some(row) = seq.next_element_seed(ObjectRowSeed {
            columns: &mut out.columns,
        })? {
            match row {
                RowResult::Row(cells) => out.rows.push(cells),
                RowResult::Bad(what) => out
                    .bad
                    .push((index, format!("row is {what}, expected an object"))),
            }
            index += 1;
        }
        Ok(Document::Rows(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut tables = None;
        let mut error = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "tables" => {
                    tables = Some(map.next_value_seed(TablesSeed)?);
                }
                "error" => error = Some(map.next_value::<Value>()?).filter(|v| !v.is_null()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Document::Response { tables, error })
    }
}

struct TablesSeed;

impl<'de> DeserializeSeed<'de> for TablesSeed {
    type Value = Vec<ApiTable>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TablesSeed {
    type Value = Vec<ApiTable>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"tables\" to be a list of tables")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element_seed(TableSeed)? {
            out.push(t);
        }
        Ok(out)
    }
}

struct ApiTable {
    name: String,
    columns: Option<Vec<Column>>,
    rows: Option<ArrayRows>,
}

struct ArrayRows {
    rows: Vec<Vec<Value>>,
    bad: Vec<(usize, String)>,
}

struct TableSeed;

impl<'de> DeserializeSeed<'de> for TableSeed {
    type Value = ApiTable;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TableSeed {
    type Value = ApiTable;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table object with \"columns\" and \"rows\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut table = ApiTable {
            name: String::new(),
            columns: None,
            rows: None,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" | "TableName" => {
                    table.name = map.next_value::<Option<String>>()?.unwrap_or_default();
                }
                "columns" | "Columns" => table.columns = map.next_value()?,
                "rows" | "Rows" => {
                    let width = table.columns.as_ref().map_or(0, Vec::len);
                    table.rows = Some(map.next_value_seed(ArrayRowsSeed { width })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(table)
    }
}

/// The `rows` list of one table; `width` (the column count, when the columns came first) only
/// pre-sizes each row.
struct ArrayRowsSeed {
    width: usize,
}

impl<'de> DeserializeSeed<'de> for ArrayRowsSeed {
    type Value = ArrayRows;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ArrayRowsSeed {
    type Value = ArrayRows;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"rows\" to be a list of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = ArrayRows {
            rows: Vec::new(),
            bad: Vec::new(),
        };
        let mut index = 0usize;
        while let Some(row) = seq.next_element_seed(ArrayRowSeed { width: self.width })? {
            match row {
                RowResult::Row(cells) => out.rows.push(cells),
                RowResult::Bad(what) => out
                    .bad
                    .push((index, format!("row is {what}, expected an array of cells"))),
            }
            index += 1;
        }
        Ok(out)
    }
}

/// One row, or a description of what stood where a row should be.
enum RowResult {
    Row(Vec<Value>),
    Bad(&'static str),
}

/// Visitor methods for values that are not rows: they describe the value and consume it, so
/// the surrounding list keeps parsing.
macro_rules! not_a_row {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<RowResult, E> {
            Ok(RowResult::Bad("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<RowResult, E> {
            Ok(RowResult::Bad("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<RowResult, E> {
            Ok(RowResult::Bad("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<RowResult, E> {
            Ok(RowResult::Bad("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<RowResult, E> {
            Ok(RowResult::Bad("a string"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<RowResult, E> {
            Ok(RowResult::Bad("null"))
        }
        fn visit_none<E: de::Error>(self) -> Result<RowResult, E> {
            Ok(RowResult::Bad("null"))
        }
    };
}

struct ArrayRowSeed {
    width: usize,
}

impl<'de> DeserializeSeed<'de> for ArrayRowSeed {
    type Value = RowResult;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArrayRowSeed {
    type Value = RowResult;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row (an array of cells)")
    }

    not_a_row!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RowResult, A::Error> {
        let mut cells = Vec::with_capacity(self.width);
        while let Some(cell) = seq.next_element::<Value>()? {
            cells.push(cell);
        }
        Ok(RowResult::Row(cells))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RowResult, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RowResult::Bad("an object"))
    }
}

/// Column names seen so far in a row-objects export, with a name → index map.
#[derive(Default)]
struct ColumnIndex {
    names: Vec<String>,
    by_name: HashMap<String, usize>,
}

impl ColumnIndex {
    /// The column of `key`, which is the `nth` key of its row; added if new. Exports print the
    /// keys of every row in the same order, so checking the `nth` column first avoids hashing.
    fn index_of(&mut self, key: &str, nth: usize) -> usize {
        if self.names.get(nth).is_some_and(|n| n == key) {
            return nth;
        }
        if let Some(&i) = self.by_name.get(key) {
            return i;
        }
        let i = self.names.len();
        self.names.push(key.to_owned());
        self.by_name.insert(key.to_owned(), i);
        i
    }
}

struct ObjectRows {
    columns: ColumnIndex,
    rows: Vec<Vec<Value>>,
    bad: Vec<(usize, String)>,
}

struct ObjectRowSeed<'a> {
    columns: &'a mut ColumnIndex,
}

impl<'de> DeserializeSeed<'de> for ObjectRowSeed<'_> {
    type Value = RowResult;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectRowSeed<'_> {
    type Value = RowResult;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row object")
    }

    not_a_row!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RowResult, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RowResult::Bad("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RowResult, A::Error> {
        let mut cells: Vec<Value> = Vec::with_capacity(self.columns.names.len());
        let mut nth = 0usize;
        while let Some(i) = map.next_key_seed(KeySeed {
            columns: &mut *self.columns,
            nth,
        })? {
            let value = map.next_value::<Value>()?;
            if i >= cells.len() {
                cells.resize(i + 1, Value::Null);
            }
            cells[i] = value;
            nth += 1;
        }
        Ok(RowResult::Row(cells))
    }
}

/// Reads one key of a row object and returns its column index.
struct KeySeed<'a> {
    columns: &'a mut ColumnIndex,
    nth: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        Ok(self.columns.index_of(key, self.nth))
    }
}

#[cfg(test)]
mod bad_cell_tests {
    use super::*;

    #[test]
    fn one_bad_cell_costs_one_row_in_either_shape() {
        let objects = br#"[{"TimeGenerated":"2026-11-20T09:00:00Z","N":1},
            {"TimeGenerated":"2026-11-20T09:01:00Z","N":1e999},
            {"TimeGenerated":"2026-11-20T09:02:00Z","Caller":"\ud800 lone"},
            {"TimeGenerated":"2026-11-20T09:03:00Z","Caller":"ok \" [{ still a string"}]"#;
        let p = parse_export(objects, "AzureActivity.json", LogTable::AzureActivity).unwrap();
        assert_eq!(p.table.rows.len(), 2);
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        assert_eq!(p.problems[0].row, Some(1));
        assert!(
            p.problems[0].message.contains("number out of range"),
            "{}",
            p.problems[0]
        );
        assert_eq!(p.problems[1].row, Some(2));
        assert!(
            p.problems[1].message.contains("hex escape"),
            "{}",
            p.problems[1]
        );
        assert!(p.problems.iter().all(|x| x.source == "AzureActivity.json"));
        let caller = p.table.column_index("Caller").unwrap();
        assert_eq!(p.table.rows[1][caller], "ok \" [{ still a string");

        let response =
            br#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"A","type":"long"}],
            "rows":[[1],[-1e400],[3]]}]}"#;
        let p = parse_export(response, "AuditLogs.json", LogTable::AuditLogs).unwrap();
        assert_eq!(
            p.table.rows,
            vec![vec![serde_json::json!(1)], vec![serde_json::json!(3)]]
        );
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].row, Some(1));
    }

    #[test]
    fn broken_structure_is_still_a_whole_file_error() {
        for bad in [
            &br#"[{"a":1},{"a":2"#[..],
            br#"[{"a":1} {"a":2}]"#,
            br#"{"tables":[{"rows":[[1e999]"#,
            b"hello",
        ] {
            let e = parse_export(bad, "AuditLogs.json", LogTable::AuditLogs).unwrap_err();
            assert!(e.to_string().contains("AuditLogs.json"), "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<ParsedExport> {
        parse_export(text.as_bytes(), "AuditLogs.json", LogTable::AuditLogs)
    }

    fn format_message(text: &str) -> String {
        match parse(text) {
            Err(Error::Format {
                source_name,
                message,
                ..
            }) => {
                assert_eq!(source_name, "AuditLogs.json");
                message
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    const API: &str = r#"{"tables":[{"name":"PrimaryResult",
        "columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"Caller","type":"string"},
                   {"name":"Claims_d","type":"dynamic"}],
        "rows":[["2026-11-20T09:00:00Z","jane@contoso.com","{\"a\":1}"],
                ["2026-11-20T09:01:00Z","bob@contoso.com",{"a":2}]]}]}"#;

    #[test]
    fn api_response_shape() {
        let p = parse(API).unwrap();
        assert_eq!(p.table.name, "AuditLogs");
        assert_eq!(p.table.columns[2].name, "Claims_d");
        assert_eq!(p.table.columns[2].kind, "dynamic");
        assert_eq!(p.table.rows.len(), 2);
        assert_eq!(p.table.rows[0][2], json!("{\"a\":1}"));
        assert_eq!(p.table.rows[1][2], json!({"a": 2}));
        assert!(p.partial_error.is_none() && p.problems.is_empty());
    }

    #[test]
    fn row_objects_shape_unions_keys_in_first_seen_order() {
        let p = parse(
            r#"[{"TimeGenerated":"t1","Caller":"a","Claims_d":{"x":1}},
                {"Caller":"b","Extra":"e"},
                {"Extra":"f","TimeGenerated":"t3"}]"#,
        )
        .unwrap();
        let names: Vec<_> = p.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["TimeGenerated", "Caller", "Claims_d", "Extra"]);
        assert!(p.table.columns.iter().all(|c| c.kind.is_empty()));
        assert_eq!(
            p.table.rows[0],
            [json!("t1"), json!("a"), json!({"x":1}), Value::Null]
        );
        assert_eq!(
            p.table.rows[1],
            [Value::Null, json!("b"), Value::Null, json!("e")]
        );
        assert_eq!(
            p.table.rows[2],
            [json!("t3"), Value::Null, Value::Null, json!("f")]
        );
    }

    #[test]
    fn bom_empty_array_and_zero_row_table_are_valid() {
        let p = parse_export(
            b"\xEF\xBB\xBF[]",
            "AzureActivity.json",
            LogTable::AzureActivity,
        )
        .unwrap();
        assert_eq!(p.table.name, "AzureActivity");
        assert!(p.table.rows.is_empty() && p.table.columns.is_empty());
        let p = parse("\u{FEFF}{\"tables\":[{\"name\":\"PrimaryResult\",\"columns\":[{\"name\":\"A\",\"type\":\"string\"}],\"rows\":[]}]}").unwrap();
        assert_eq!(p.table.columns.len(), 1);
        assert!(p.table.rows.is_empty());
    }

    #[test]
    fn partial_error_keeps_rows_and_reports_innermost_message() {
        let text = r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"A","type":"string"}],
            "rows":[["x"]]}],
            "error":{"code":"PartialError","message":"There were some errors when processing your query.",
              "details":[{"code":"EngineError","message":"Something went wrong",
                "innererror":{"code":"LimitsExceeded","message":"Query result set has exceeded the internal record count limit"}}]}}"#;
        let p = parse(text).unwrap();
        assert_eq!(p.table.rows.len(), 1);
        assert_eq!(
            p.partial_error.as_deref(),
            Some("PartialError: Query result set has exceeded the internal record count limit")
        );
    }

    #[test]
    fn api_error_reads_the_innermost_query_error() {
        let e = ApiError::from_value(
            &json!({"error":{"message":"The request had some invalid properties",
            "code":"BadArgumentError","innererror":{"code":"SyntaxError","message":"A recognition error occurred in the query.",
            "innererror":{"code":"SYN0002","message":"Query could not be parsed at 'string' on line [1,4]","line":1,"pos":4,"token":"string"}}}})
                ["error"],
        );
        assert_eq!(e.code.as_deref(), Some("BadArgumentError"));
        assert_eq!(e.innermost_code.as_deref(), Some("SYN0002"));
        assert_eq!((e.line, e.pos), (Some(1), Some(4)));
        assert!(e.message.starts_with("Query could not be parsed"));
        // Wrong types never panic.
        let e = ApiError::from_value(&json!({"code": 5, "innererror": "x"}));
        assert_eq!(e.code, None);
    }

    #[test]
    fn extra_tables_are_mentioned() {
        let text = r#"{"tables":[{"name":"PrimaryResult","columns":[],"rows":[]},
            {"name":"Second","columns":[],"rows":[]}]}"#;
        let p = parse(text).unwrap();
        assert_eq!(p.problems.len(), 1);
        assert!(
            p.problems[0].message.contains("\"Second\""),
            "{}",
            p.problems[0]
        );
    }

    #[test]
    fn bad_rows_become_problems_and_good_rows_stay() {
        let p = parse(
            r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"A","type":"string"}],
            "rows":[["ok1"], 5, {"A":"x"}, null, ["ok2"], ["x","extra"]]}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.table.rows,
            [vec![json!("ok1")], vec![json!("ok2")], vec![json!("x")]]
        );
        let rows: Vec<_> = p.problems.iter().map(|d| d.row).collect();
        assert_eq!(rows, [Some(1), Some(2), Some(3), Some(2)]);
        assert_eq!(
            p.problems[0].to_string(),
            "AuditLogs.json row 1: row is a number, expected an array of cells"
        );
        assert!(
            p.problems[3].message.contains("2 cells"),
            "{}",
            p.problems[3]
        );

        let p = parse(r#"[{"A":1}, "nope", [1,2], {"A":2}]"#).unwrap();
        assert_eq!(p.table.rows.len(), 2);
        assert_eq!(p.problems.len(), 2);
        assert_eq!(p.problems[0].row, Some(1));
        assert!(p.problems[1].message.contains("an array"));
    }

    #[test]
    fn too_many_bad_rows_are_summarised() {
        let mut text = String::from("[");
        for _ in 0..150 {
            text.push_str("1,");
        }
        text.push_str("{\"A\":1}]");
        let p = parse(&text).unwrap();
        assert_eq!(p.table.rows.len(), 1);
        assert_eq!(p.problems.len(), MAX_ROW_PROBLEMS + 1);
        assert!(p.problems[MAX_ROW_PROBLEMS].message.starts_with("50 more"));
    }

    #[test]
    fn empty_file() {
        assert_eq!(format_message(""), "the file is empty");
        assert_eq!(format_message("\u{FEFF} \n\t"), "the file is empty");
    }

    #[test]
    fn not_json_has_line_and_column() {
        let m = format_message("TimeGenerated,Caller\n2026,x");
        assert!(
            m.starts_with("not valid JSON") && m.contains("line 1 column 1"),
            "{m}"
        );
        let m = format_message("{\"tables\": [}\n");
        assert!(m.contains("line 1"), "{m}");
    }

    #[test]
    fn truncated_json() {
        let cut = &API[..API.len() / 2];
        let m = format_message(cut);
        assert!(m.starts_with("truncated JSON"), "{m}");
    }

    #[test]
    fn trailing_garbage() {
        let m = format_message("[] []");
        assert!(m.contains("trailing"), "{m}");
    }

    #[test]
    fn wrong_shapes() {
        let m = format_message(r#"{"value":[]}"#);
        assert!(m.contains("without \"tables\""), "{m}");
        let m = format_message(r#"{"error":{"code":"InsufficientAccessError","message":"no"}}"#);
        assert!(m.contains("InsufficientAccessError: no"), "{m}");
        let m = format_message(r#"{"tables":[{"name":"PrimaryResult","rows":[]}]}"#);
        assert!(m.contains("has no \"columns\""), "{m}");
        let m = format_message(r#"{"tables":[{"name":"T","columns":[]}]}"#);
        assert!(m.contains("has no \"rows\""), "{m}");
        let m = format_message(r#"{"tables":[]}"#);
        assert!(m.contains("empty list"), "{m}");
        let m = format_message(r#""just a string""#);
        assert!(m.contains("array of row objects"), "{m}");
        let m = format_message(r#"{"tables":{"a":1}}"#);
        assert!(m.contains("list of tables"), "{m}");
        let m = format_message(r#"{"tables":[{"columns":[{"type":"string"}],"rows":[]}]}"#);
        assert!(m.contains("name"), "{m}");
    }

    /// Correctness at the benchmark's scale: a 500,000-row, ~150 MB AzureActivity export in
    /// both shapes. The timing is measured by `examples/bench_pipeline.rs`, not here. Run with
    /// `cargo test --release -p pim-loganalytics -- --ignored large_exports`.
    #[test]
    #[ignore = "slow in debug builds; a scale check, run in release"]
    fn large_exports_load_completely() {
        let claims = r#"{\"http://schemas.microsoft.com/identity/claims/objectidentifier\":\"3f1e0000-0000-4000-8000-000000000001\"}"#;
        let row = |i: usize| {
            format!(
                r#""2026-11-20T09:{:02}:{:02}.{i:07}Z","jane@contoso.com","203.0.113.7","MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE","Success","OK","Administrative","MICROSOFT.COMPUTE","RG-PROD-WEB","00000000-0000-0000-0000-000000000000","/subscriptions/00000000/resourcegroups/rg-prod-web/providers/microsoft.compute/virtualmachines/web{i}","c1000000-0000-4000-8000-{i:012}","{claims}""#,
                (i / 60) % 60,
                i % 60
            )
        };
        let names = [
            "TimeGenerated",
            "Caller",
            "CallerIpAddress",
            "OperationNameValue",
            "ActivityStatusValue",
            "ActivitySubstatusValue",
            "CategoryValue",
            "ResourceProviderValue",
            "ResourceGroup",
            "SubscriptionId",
            "_ResourceId",
            "CorrelationId",
            "Claims_d",
        ];
        let n = 500_000;
        let mut api = String::from(r#"{"tables":[{"name":"PrimaryResult","columns":["#);
        api.push_str(
            &names
                .iter()
                .map(|c| format!(r#"{{"name":"{c}","type":"string"}}"#))
                .collect::<Vec<_>>()
                .join(","),
        );
        api.push_str(r#"],"rows":["#);
        let mut objects = String::from("[");
        for i in 0..n {
            let sep = if i > 0 { "," } else { "" };
            let cells = row(i);
            api.push_str(&format!("{sep}[{cells}]"));
            objects.push_str(sep);
            objects.push('{');
            // Rebuild as an object: cell k gets names[k]. Cells never contain `","` except
            // between cells (the claims JSON uses escaped quotes).
            for (k, v) in cells.split(r#"",""#).enumerate() {
                let v = v.trim_matches('"');
                if k > 0 {
                    objects.push(',');
                }
                objects.push_str(&format!(r#""{}":"{v}""#, names[k]));
            }
            objects.push('}');
        }
        api.push_str("]}]}");
        objects.push(']');
        for (shape, text) in [("api", &api), ("objects", &objects)] {
            let p = parse_export(
                text.as_bytes(),
                "AzureActivity.json",
                LogTable::AzureActivity,
            )
            .unwrap();
            assert_eq!(p.table.rows.len(), n, "{shape}");
            assert_eq!(p.table.columns.len(), names.len(), "{shape}");
            assert!(p.problems.is_empty(), "{shape}");
        }
    }

    #[test]
    fn hostile_content_never_panics() {
        for text in [
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            "{\"tables\":[{\"columns\":null,\"rows\":null}]}",
            "[{\"\\u0000\":\"\\ud800\"}]",
            "[{\"a\":1e999}]",
            "\u{0}\u{1}",
            &format!("[{{\"a\":\"{}\"}}]", "x".repeat(1 << 20)),
        ] {
            let _ = parse(text);
        }
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
    }
}
