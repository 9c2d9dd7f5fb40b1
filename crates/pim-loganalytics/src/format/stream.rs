//! Streaming an export file: rows are read one at a time from a buffered reader, and only the
//! rows a [`RowScope`] keeps are held (issue 12).
//!
//! A small structural scanner (strings and brackets, nothing decoded) cuts the document into
//! rows in a buffer of about a megabyte that slides over the file; each row is then read with
//! serde_json from a slice, so it is checked exactly as the in-memory reader
//! ([`parse_export`](super::parse_export)) checks it. An array row is read once into borrowed
//! cells ([`StreamedRow`]: no `serde_json::Value` per string), which the scopes test and the
//! readers that keep the row read in place; every cell is decoded whether or not a scope keeps
//! the row, so a bad cell is noticed wherever it is.
//!
//! Only documents in the expected shape are streamed. Anything unusual (a row that does not
//! decode, `rows` before `columns`, a repeated key, trailing text, a truncated file, very deep
//! nesting) makes the reader give up and return [`Streamed::Unusual`]; the caller then reads the
//! file the old way, whole, which gives today's exact result or error: the repair of bad cells
//! (`1e999`, lone surrogates), the messages naming line and column. Those files cost memory in
//! proportion to their size; valid exports never do.

use std::io::Read;
use std::ops::Range;

use pim_domain::{Column, Table};
use serde::de::{DeserializeSeed, IgnoredAny};
use serde_json::Value;

use super::row::RowDecoder;
use super::{
    ApiError, ArrayRowSeed, ColumnIndex, ObjectRowSeed, ParsedExport, RowResult, display_name,
    pad_rows, row_problems,
};
use crate::StreamedRow;
use crate::offline::{Cell, Scope};
use crate::{LogTable, RowScope, RowSink, ScopedRows};

/// How much of the file is read at a time.
const BLOCK: usize = 1 << 20;

/// Rows nested deeper than this are left to the in-memory reader, whose recursion limit counts
/// the whole document's depth, not the row's.
const MAX_ROW_DEPTH: usize = 100;

/// The outcome of streaming a file.
pub(crate) enum Streamed {
    /// The file was read.
    Done(ParsedExport),
    /// The file is not a plain, valid export: read it whole instead.
    Unusual,
}

/// Streams an export of `table` from `reader`, keeping the rows `scope` keeps.
///
/// # Errors
///
/// Only I/O errors of `reader`; every problem with the content is [`Streamed::Unusual`].
pub(crate) fn stream_export<R: Read>(
    reader: R,
    source_name: &str,
    table: LogTable,
    scope: Option<&RowScope>,
) -> std::io::Result<Streamed> {
    let mut readers = [Reader::new(
        scope,
        Target::Collect {
            rows: Vec::new(),
            positions: Vec::new(),
        },
    )];
    let Some(meta) = stream_rows(reader, source_name, &mut readers)? else {
        return Ok(Streamed::Unusual);
    };
    let [mut only] = readers;
    let scoped = only.scoped();
    let Target::Collect { mut rows, .. } = only.target else {
        return Ok(Streamed::Unusual);
    };
    pad_rows(&mut rows, &meta.columns);
    Ok(Streamed::Done(ParsedExport {
        table: Table {
            name: table.name().to_owned(),
            columns: meta.columns,
            rows,
        },
        partial_error: meta.partial_error,
        problems: meta.problems,
        scoped,
    }))
}

/// Streams the rows of an export from `reader` to every one of `readers` whose scope keeps
/// them, in one pass. `None` when the document is not a plain, valid export (the readers may
/// then have seen some rows: the caller starts them again on the whole-file reading).
///
/// # Errors
///
/// Only I/O errors of `reader`.
pub(crate) fn stream_rows<R: Read>(
    reader: R,
    source_name: &str,
    readers: &mut [Reader<'_>],
) -> std::io::Result<Option<Meta>> {
    let mut s = Scanner {
        r: reader,
        buf: vec![0; BLOCK],
        pos: 0,
        end: 0,
        eof: false,
    };
    match s.document(source_name, readers) {
        Ok(meta) => Ok(meta),
        Err(Stop::Io(e)) => Err(e),
        Err(Stop::Unusual) => Ok(None),
    }
}

/// Why streaming stopped early.
enum Stop {
    Io(std::io::Error),
    Unusual,
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Io(e)
    }
}

type Step<T> = Result<T, Stop>;

/// A window over the file: `buf[pos..end]` is read but not yet consumed.
struct Scanner<R> {
    r: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

/// Where the rows one reader keeps go.
pub(crate) enum Target<'s> {
    /// Into a table, with their positions (the [`ParsedExport`] of [`stream_export`]).
    Collect {
        rows: Vec<Vec<Value>>,
        positions: Vec<usize>,
    },
    /// Straight to a sink, one at a time.
    Sink(&'s mut dyn RowSink),
}

/// One reader of a streamed table: its scope (prepared), where its rows go, and its counts.
pub(crate) struct Reader<'s> {
    pub(crate) scope: Option<Scope>,
    pub(crate) target: Target<'s>,
    pub(crate) kept: usize,
    pub(crate) left_out: usize,
    /// Columns the sink was last told of (row objects add columns as they go).
    told: Option<usize>,
}

impl<'s> Reader<'s> {
    pub(crate) fn new(scope: Option<&RowScope>, target: Target<'s>) -> Self {
        Self {
            scope: scope.map(Scope::new),
            target,
            kept: 0,
            left_out: 0,
            told: None,
        }
    }

    /// The scope, when it tests anything.
    pub(crate) fn active(&self) -> Option<&Scope> {
        self.scope.as_ref().filter(|s| !s.is_inert())
    }

    pub(crate) fn bind(&mut self, columns: &[Column]) {
        if let Some(scope) = self.scope.as_mut() {
            scope.bind(columns);
        }
    }

    /// Tells a sink the columns when they changed.
    pub(crate) fn tell(&mut self, columns: &[Column]) {
        if self.told != Some(columns.len())
            && let Target::Sink(sink) = &mut self.target
        {
            sink.columns(columns);
        }
        self.told = Some(columns.len());
    }

    fn earliest(&self) -> Option<time::OffsetDateTime> {
        self.scope.as_ref().and_then(Scope::earliest)
    }

    /// What a scoped collection says about the rows it kept.
    pub(crate) fn scoped(&mut self) -> Option<ScopedRows> {
        let earliest = self.earliest();
        match &mut self.target {
            Target::Collect { positions, .. } if self.left_out > 0 => Some(ScopedRows {
                positions: std::mem::take(positions),
                left_out: self.left_out,
                earliest,
            }),
            _ => None,
        }
    }

    /// The stats of a sink's read.
    pub(crate) fn stats(&self) -> crate::StreamStats {
        crate::StreamStats {
            kept: self.kept,
            left_out: self.left_out,
            earliest: self.earliest(),
        }
    }
}

/// The rows of one table as they are read.
struct RowsState {
    /// Rows of the wrong type: file index and what was wrong.
    bad: Vec<(usize, String)>,
    /// Rows longer than the column list: table index and the message.
    long: Vec<(usize, String)>,
    /// Rows read that are rows (the table index of the next one).
    good: usize,
    /// Elements read (the file index of the next one).
    index: usize,
}

impl RowsState {
    fn new() -> Self {
        Self {
            bad: Vec::new(),
            long: Vec::new(),
            good: 0,
            index: 0,
        }
    }
}

/// Hands a decoded row to every reader that keeps it (`keeps[i]` for reader `i`), and counts
/// it as left out by the others. The row is the next good row of the table.
fn deliver(readers: &mut [Reader<'_>], st: &mut RowsState, cells: Vec<Value>, keeps: &[bool]) {
    let position = st.good;
    st.good += 1;
    deliver_at(readers, position, cells, keeps);
}

/// Hands a streamed row to every reader that keeps it (`keeps[i]` for reader `i`), and counts
/// it as left out by the others. The row is the next good row of the table.
fn deliver_row(
    readers: &mut [Reader<'_>],
    st: &mut RowsState,
    row: &StreamedRow<'_>,
    keeps: &[bool],
) {
    let position = st.good;
    st.good += 1;
    for (reader, &keep) in readers.iter_mut().zip(keeps) {
        if !keep {
            reader.left_out += 1;
            continue;
        }
        reader.kept += 1;
        match &mut reader.target {
            Target::Sink(sink) => sink.row_cells(position, row),
            Target::Collect { rows, positions } => {
                positions.push(position);
                rows.push(row.to_values());
            }
        }
    }
}

/// Hands a row at `position` to every reader that keeps it, and counts it as left out by the
/// others.
pub(crate) fn deliver_at(
    readers: &mut [Reader<'_>],
    position: usize,
    mut cells: Vec<Value>,
    keeps: &[bool],
) {
    // The last reader to keep the row is handed the cells; the others see or copy them.
    let mut remaining = keeps.iter().filter(|k| **k).count();
    for (reader, &keep) in readers.iter_mut().zip(keeps) {
        if !keep {
            reader.left_out += 1;
            continue;
        }
        reader.kept += 1;
        remaining -= 1;
        let last = remaining == 0;
        match &mut reader.target {
            Target::Sink(sink) if last => sink.row_owned(position, std::mem::take(&mut cells)),
            Target::Sink(sink) => sink.row(position, &cells),
            Target::Collect { rows, positions } => {
                positions.push(position);
                rows.push(if last {
                    std::mem::take(&mut cells)
                } else {
                    cells.clone()
                });
            }
        }
    }
}

/// Hands rows already read (a whole table, in order) to `readers` as the stream would.
pub(crate) fn feed_rows(readers: &mut [Reader<'_>], columns: &[Column], rows: Vec<Vec<Value>>) {
    for r in readers.iter_mut() {
        r.bind(columns);
        r.tell(columns);
    }
    let mut st = RowsState::new();
    let mut keeps = vec![true; readers.len()];
    for cells in rows {
        for (keep, r) in keeps.iter_mut().zip(readers.iter()) {
            *keep = r
                .active()
                .is_none_or(|s| s.keep(|c| Cell::of(cells.get(c))));
        }
        deliver(readers, &mut st, cells, &keeps);
    }
}

/// What a streamed document says besides its rows.
pub(crate) struct Meta {
    pub(crate) columns: Vec<Column>,
    pub(crate) partial_error: Option<String>,
    pub(crate) problems: Vec<pim_domain::DataProblem>,
}

impl<R: Read> Scanner<R> {
    /// Makes room and reads more, keeping `buf[keep..]`; `keep` and `pos` move with the data.
    /// False at the end of the file.
    fn more(&mut self, keep: &mut usize) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if *keep > 0 {
            self.buf.copy_within(*keep..self.end, 0);
            self.end -= *keep;
            self.pos -= *keep;
            *keep = 0;
        }
        if self.end == self.buf.len() {
            // One value longer than the buffer: grow it (a huge row costs its own size).
            let len = self.buf.len();
            self.buf.resize(len * 2, 0);
        }
        loop {
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Skips whitespace; the next byte, not consumed, or `None` at the end of the file.
    fn peek(&mut self) -> Step<Option<u8>> {
        loop {
            while self.pos < self.end {
                let b = self.buf[self.pos];
                if !b.is_ascii_whitespace() {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            let mut keep = self.pos;
            if !self.more(&mut keep)? {
                return Ok(None);
            }
        }
    }

    /// Consumes `c` (after whitespace) or stops as unusual.
    fn eat(&mut self, c: u8) -> Step<()> {
        if self.peek()? == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Stop::Unusual)
        }
    }

    /// Scans one complete value at the cursor (after whitespace) and returns its bytes' range in
    /// `buf`, valid until the next call. Nothing is decoded: serde checks the slice afterwards.
    fn value(&mut self) -> Step<Range<usize>> {
        self.peek()?.ok_or(Stop::Unusual)?;
        let mut start = self.pos;
        let mut i = self.pos;
        let mut depth = 0usize;
        let mut in_string = false;
        let first = self.buf[i];
        if first == b'"' {
            in_string = true;
            i += 1;
        }
        if !matches!(first, b'[' | b'{' | b'"') {
            // A scalar: up to the next delimiter. A number can end the file only at the top
            // level, which the export shapes never have.
            loop {
                while i < self.end {
                    let b = self.buf[i];
                    if matches!(b, b',' | b']' | b'}' | b':') || b.is_ascii_whitespace() {
                        self.pos = i;
                        return Ok(start..i);
                    }
                    i += 1;
                }
                let before = start;
                if !self.more(&mut start)? {
                    return Err(Stop::Unusual);
                }
                i -= before - start;
            }
        }
        loop {
            while i < self.end {
                if in_string {
                    match memchr::memchr2(b'"', b'\\', &self.buf[i..self.end]) {
                        None => i = self.end,
                        Some(at) => {
                            i += at;
                            if self.buf[i] == b'\\' {
                                // The escaped byte may be in the next block.
                                if i + 1 >= self.end {
                                    break;
                                }
                                i += 2;
                            } else {
                                i += 1;
                                in_string = false;
                                if depth == 0 {
                                    self.pos = i;
                                    return Ok(start..i);
                                }
                            }
                        }
                    }
                    continue;
                }
                let b = self.buf[i];
                i += 1;
                match b {
                    b'"' => in_string = true,
                    b'[' | b'{' => {
                        depth += 1;
                        if depth > MAX_ROW_DEPTH {
                            return Err(Stop::Unusual);
                        }
                    }
                    b']' | b'}' => {
                        depth = depth.checked_sub(1).ok_or(Stop::Unusual)?;
                        if depth == 0 {
                            self.pos = i;
                            return Ok(start..i);
                        }
                    }
                    _ => {}
                }
            }
            let before = start;
            if !self.more(&mut start)? {
                return Err(Stop::Unusual);
            }
            i -= before - start;
        }
    }

    /// Decodes the value at the cursor.
    fn decode<T: serde::de::DeserializeOwned>(&mut self) -> Step<T> {
        let range = self.value()?;
        serde_json::from_slice(&self.buf[range]).map_err(|_| Stop::Unusual)
    }

    /// An object key and its colon.
    fn key(&mut self) -> Step<String> {
        if self.peek()? != Some(b'"') {
            return Err(Stop::Unusual);
        }
        let key = self.decode::<String>()?;
        self.eat(b':')?;
        Ok(key)
    }

    /// After a member or element: true for `,`, false for `close`.
    fn next_or_close(&mut self, close: u8) -> Step<bool> {
        match self.peek()? {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Stop::Unusual),
        }
    }

    /// Opens a list; false when it is empty (and then closed).
    fn open_list(&mut self) -> Step<bool> {
        self.eat(b'[')?;
        if self.peek()? == Some(b']') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    fn document(&mut self, source_name: &str, readers: &mut [Reader<'_>]) -> Step<Option<Meta>> {
        // A UTF-8 byte-order mark is ignored.
        while self.end < 3 {
            let mut keep = 0;
            if !self.more(&mut keep)? {
                break;
            }
        }
        if self.buf[..self.end].starts_with(b"\xEF\xBB\xBF") {
            self.pos = 3;
        }
        let meta = match self.peek()? {
            Some(b'[') => self.objects(source_name, readers)?,
            Some(b'{') => self.response(source_name, readers)?,
            // Empty, or not one of the shapes: the in-memory reader says which.
            _ => return Ok(None),
        };
        if self.peek()?.is_some() {
            return Ok(None);
        }
        Ok(Some(meta))
    }

    /// `[{...}, ...]`: row objects, columns in first-seen key order.
    fn objects(&mut self, source_name: &str, readers: &mut [Reader<'_>]) -> Step<Meta> {
        let mut columns = ColumnIndex::default();
        let mut bound = usize::MAX;
        let mut st = RowsState::new();
        let mut keeps = vec![true; readers.len()];
        let mut listed: Vec<Column> = Vec::new();
        for r in readers.iter_mut() {
            r.tell(&listed);
        }
        if self.open_list()? {
            loop {
                let range = self.value()?;
                let mut de = serde_json::Deserializer::from_slice(&self.buf[range]);
                let row = ObjectRowSeed {
                    columns: &mut columns,
                }
                .deserialize(&mut de)
                .and_then(|r| de.end().map(|()| r))
                .map_err(|_| Stop::Unusual)?;
                match row {
                    RowResult::Row(cells) => {
                        // Columns only grow, and a row holds only columns already seen, so
                        // binding to the columns so far decides as the final columns would.
                        if bound != columns.names.len() {
                            bound = columns.names.len();
                            listed = column_list(&columns.names);
                            for r in readers.iter_mut() {
                                r.bind(&listed);
                                r.tell(&listed);
                            }
                        }
                        for (keep, r) in keeps.iter_mut().zip(readers.iter()) {
                            *keep = r
                                .scope
                                .as_ref()
                                .is_none_or(|s| s.keep(|c| Cell::of(cells.get(c))));
                        }
                        deliver(readers, &mut st, cells, &keeps);
                    }
                    RowResult::Bad(what) => st
                        .bad
                        .push((st.index, format!("row is {what}, expected an object"))),
                }
                st.index += 1;
                if !self.next_or_close(b']')? {
                    break;
                }
            }
        }
        let columns = column_list(&columns.names);
        for r in readers.iter_mut() {
            r.tell(&columns);
        }
        let mut problems = Vec::new();
        row_problems(source_name, std::mem::take(&mut st.bad), &mut problems);
        Ok(Meta {
            columns,
            partial_error: None,
            problems,
        })
    }

    /// `{"tables":[{"name":..,"columns":[..],"rows":[[..]]}], "error":{..}}`.
    fn response(&mut self, source_name: &str, readers: &mut [Reader<'_>]) -> Step<Meta> {
        self.eat(b'{')?;
        let mut error: Option<Value> = None;
        let mut tables: Option<Tables> = None;
        if self.peek()? == Some(b'}') {
            return Err(Stop::Unusual);
        }
        loop {
            match self.key()?.as_str() {
                "tables" => {
                    if tables.is_some() {
                        return Err(Stop::Unusual);
                    }
                    tables = Some(self.tables(readers)?);
                }
                "error" => {
                    error = Some(self.decode::<Value>()?).filter(|v| !v.is_null());
                }
                _ => {
                    self.decode::<IgnoredAny>()?;
                }
            }
            if !self.next_or_close(b'}')? {
                break;
            }
        }
        // The in-memory reader words every error of shape (no tables, no columns, ...).
        let tables = tables.ok_or(Stop::Unusual)?;
        let first = tables.first.ok_or(Stop::Unusual)?;
        let mut problems = Vec::new();
        if !tables.extra.is_empty() {
            problems.push(pim_domain::DataProblem::source(
                source_name,
                format!(
                    "the export holds {} tables; only the first ({}) was read, ignored: {}",
                    tables.extra.len() + 1,
                    display_name(&first.name),
                    tables.extra.join(", ")
                ),
            ));
        }
        row_problems(source_name, first.bad, &mut problems);
        row_problems(source_name, first.long, &mut problems);
        Ok(Meta {
            columns: first.columns,
            partial_error: error.as_ref().map(|e| ApiError::from_value(e).summary()),
            problems,
        })
    }

    fn tables(&mut self, readers: &mut [Reader<'_>]) -> Step<Tables> {
        let mut out = Tables {
            first: None,
            extra: Vec::new(),
        };
        if !self.open_list()? {
            return Ok(out);
        }
        loop {
            let first = out.first.is_none();
            let t = self.table(readers, first)?;
            if first {
                out.first = Some(t);
            } else {
                out.extra.push(display_name(&t.name));
            }
            if !self.next_or_close(b']')? {
                break;
            }
        }
        Ok(out)
    }

    /// One table object; only the first table's rows are kept (the others are checked).
    fn table(&mut self, readers: &mut [Reader<'_>], keep_rows: bool) -> Step<StreamedTable> {
        self.eat(b'{')?;
        let mut name = String::new();
        let mut columns: Option<Vec<Column>> = None;
        let mut rows: Option<RowsOut> = None;
        if self.peek()? == Some(b'}') {
            self.pos += 1;
            return Err(Stop::Unusual);
        }
        loop {
            match self.key()?.as_str() {
                "name" | "TableName" => {
                    name = self.decode::<Option<String>>()?.unwrap_or_default();
                }
                "columns" | "Columns" => {
                    if rows.is_some() {
                        return Err(Stop::Unusual);
                    }
                    columns = self.decode::<Option<Vec<Column>>>()?;
                }
                "rows" | "Rows" => {
                    // Rows before columns cannot be scoped as they are read; a repeated `rows`
                    // is read differently by serde. Both are left to the in-memory reader.
                    let Some(cols) = columns.as_ref() else {
                        return Err(Stop::Unusual);
                    };
                    if rows.is_some() {
                        return Err(Stop::Unusual);
                    }
                    if keep_rows {
                        for r in readers.iter_mut() {
                            r.bind(cols);
                            r.tell(cols);
                        }
                    }
                    let readers: &mut [Reader<'_>] = if keep_rows { readers } else { &mut [] };
                    rows = Some(self.array_rows(cols.len(), readers, keep_rows)?);
                }
                _ => {
                    self.decode::<IgnoredAny>()?;
                }
            }
            if !self.next_or_close(b'}')? {
                break;
            }
        }
        let columns = columns.ok_or(Stop::Unusual)?;
        let rows = rows.ok_or(Stop::Unusual)?;
        Ok(StreamedTable {
            name,
            columns,
            bad: rows.bad,
            long: rows.long,
        })
    }

    /// The `rows` list of a table with `width` columns.
    fn array_rows(
        &mut self,
        width: usize,
        readers: &mut [Reader<'_>],
        keep_rows: bool,
    ) -> Step<RowsOut> {
        let mut keeps = vec![true; readers.len()];
        let mut st = RowsState::new();
        let mut decoder = RowDecoder::default();
        if self.open_list()? {
            loop {
                // A plain row wholly in the buffer is split where it is found, in the one walk
                // that also finds its end; any other is scanned first, then decoded.
                let split = if keep_rows && self.peek()? == Some(b'[') {
                    decoder.split(self.buf.get(self.pos..self.end).unwrap_or_default())
                } else {
                    None
                };
                let range = match split {
                    Some(len) => {
                        let range = self.pos..self.pos + len;
                        self.pos += len;
                        range
                    }
                    None => self.value()?,
                };
                let bytes = &self.buf[range];
                if keep_rows && bytes.first() == Some(&b'[') {
                    // Decoded once, the strings borrowed from the buffer: the scopes test the
                    // cells and the readers that keep the row read them in place.
                    st.index += 1;
                    decoder
                        .decode(bytes, width, |row, cells| {
                            for (keep, r) in keeps.iter_mut().zip(readers.iter()) {
                                *keep = r.active().is_none_or(|s| s.keep_row(row));
                            }
                            if cells > width {
                                st.long.push((st.good, long_message(cells, width)));
                            }
                            deliver_row(readers, &mut st, row, &keeps);
                        })
                        .map_err(|_| Stop::Unusual)?;
                } else {
                    let row = decode_array_row(bytes, width)?;
                    let index = st.index;
                    st.index += 1;
                    match row {
                        RowResult::Row(mut cells) if keep_rows => {
                            for (keep, r) in keeps.iter_mut().zip(readers.iter()) {
                                *keep = r
                                    .active()
                                    .is_none_or(|s| s.keep(|c| Cell::of(cells.get(c))));
                            }
                            if cells.len() > width {
                                st.long.push((st.good, long_message(cells.len(), width)));
                                cells.truncate(width);
                            }
                            deliver(readers, &mut st, cells, &keeps);
                        }
                        RowResult::Row(_) => st.good += 1,
                        RowResult::Bad(what) => st
                            .bad
                            .push((index, format!("row is {what}, expected an array of cells"))),
                    }
                }
                if !self.next_or_close(b']')? {
                    break;
                }
            }
        }
        Ok(RowsOut {
            bad: st.bad,
            long: st.long,
        })
    }
}

fn long_message(cells: usize, width: usize) -> String {
    format!("row has {cells} cells but the table has {width} columns; the extra cells were ignored")
}

fn decode_array_row(bytes: &[u8], width: usize) -> Step<RowResult> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    ArrayRowSeed { width }
        .deserialize(&mut de)
        .and_then(|r| de.end().map(|()| r))
        .map_err(|_| Stop::Unusual)
}

fn column_list(names: &[String]) -> Vec<Column> {
    names
        .iter()
        .map(|name| Column {
            name: name.clone(),
            kind: String::new(),
        })
        .collect()
}

struct Tables {
    first: Option<StreamedTable>,
    extra: Vec<String>,
}

struct StreamedTable {
    name: String,
    columns: Vec<Column>,
    bad: Vec<(usize, String)>,
    long: Vec<(usize, String)>,
}

struct RowsOut {
    bad: Vec<(usize, String)>,
    long: Vec<(usize, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_export;
    use crate::offline::scope_table;
    use crate::{IdentityScope, OperationScope, TimeScope};
    use pim_domain::TimeRange;
    use pim_domain::timestamp::parse_timestamp;

    /// A reader that hands out `n` bytes at a time, so that every token straddles a refill.
    struct Trickle<'a> {
        bytes: &'a [u8],
        n: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.n.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn streamed(text: &[u8], n: usize, scope: Option<&RowScope>) -> Option<ParsedExport> {
        let reader = Trickle { bytes: text, n };
        match stream_export(reader, "AzureActivity.json", LogTable::AzureActivity, scope).unwrap() {
            Streamed::Done(p) => Some(p),
            Streamed::Unusual => None,
        }
    }

    /// What the in-memory reader gives, with the scope applied afterwards.
    fn whole(text: &[u8], scope: Option<&RowScope>) -> ParsedExport {
        let mut p = parse_export(text, "AzureActivity.json", LogTable::AzureActivity).unwrap();
        if let Some(scope) = scope {
            p.scoped = scope_table(&mut p.table, scope);
        }
        p
    }

    fn scope() -> RowScope {
        RowScope {
            time: Some(TimeScope {
                columns: vec!["TimeGenerated".into()],
                span: TimeRange::new(
                    parse_timestamp("2026-11-20T10:00:00Z").unwrap(),
                    parse_timestamp("2026-11-20T11:00:00Z").unwrap(),
                ),
            }),
            identities: Some(IdentityScope {
                fields: vec![
                    IdentityField::Column("Caller".into()),
                    IdentityField::Dynamic {
                        column: "Claims_d".into(),
                        path: vec!["oid".into()],
                    },
                ],
                values: vec!["Jane@Contoso.com".into(), "OID-J".into()],
            }),
            operations: None,
            required_columns: vec![vec!["TimeGenerated".into()]],
        }
    }

    use crate::IdentityField;

    const API: &str = r#"{"tables":[{"name":"PrimaryResult","columns":[
        {"name":"TimeGenerated","type":"datetime"},{"name":"Caller","type":"string"},
        {"name":"Claims_d","type":"dynamic"},{"name":"N","type":"long"}],
      "rows":[
        ["2026-11-20T10:05:00Z","jane@contoso.com","{\"oid\":\"x\"}",1],
        ["2026-11-20T12:05:00Z","jane@contoso.com",null,2],
        ["2026-11-20T10:06:00Z","bob@contoso.com","{\"oid\":\"oid-b\"}",3],
        ["2026-11-20T10:07:00Z","svc@contoso.com","{\"oid\":\"oid-j\"}",4],
        [null,"bob@contoso.com",null,5],
        ["not a time","bob@contoso.com",null,6],
        ["2026-11-20T10:08:00Z",null,"{\"x\":\"\\u00e9 [\\\"]\"}",7],
        5,
        ["2026-11-20T10:09:00Z","JANE@contoso.com ",{"oid":"z"},8,"extra"],
        ["2026-11-20T23:00:00Z","bob@contoso.com",null,9,"extra"]
      ]},{"name":"Second","columns":[],"rows":[[1]]}],
      "error":{"code":"PartialError","message":"some"}}"#;

    const OBJECTS: &str = r#"[
        {"TimeGenerated":"2026-11-20T10:05:00Z","Caller":"jane@contoso.com"},
        {"TimeGenerated":"2026-11-20T12:05:00Z","Caller":"jane@contoso.com","Extra":"e"},
        "nope",
        {"Caller":"bob@contoso.com","N":1},
        {"TimeGenerated":"2026-11-20T10:06:00Z","Caller":"bob@contoso.com","Late":true},
        {"TimeGenerated":"2026-11-20T10:07:00Z","Claims_d":{"oid":"OID-J"}}
    ]"#;

    #[test]
    fn streaming_gives_what_the_whole_file_gives_in_any_block_size() {
        let sc = scope();
        for text in [API, OBJECTS, "[]", "\u{FEFF}[]", "[{}]"] {
            for s in [None, Some(&sc)] {
                let expected = whole(text.as_bytes(), s);
                for n in [1, 2, 7, 64, BLOCK] {
                    let got = streamed(text.as_bytes(), n, s)
                        .unwrap_or_else(|| panic!("{text} streamed as unusual"));
                    assert_eq!(got, expected, "{text} n={n} scoped={}", s.is_some());
                }
            }
        }
    }

    /// A sink that keeps what it is told, padded as a table would be.
    #[derive(Default)]
    struct Keep {
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
        positions: Vec<usize>,
    }

    impl RowSink for Keep {
        fn columns(&mut self, columns: &[Column]) {
            self.columns = columns.to_vec();
        }
        fn row(&mut self, position: usize, cells: &[Value]) {
            self.positions.push(position);
            self.rows.push(cells.to_vec());
        }
        fn restart(&mut self) {
            *self = Self::default();
        }
    }

    /// Several scoped readers of one pass each get what a read of their own scope gives: the
    /// same rows, positions, counts and problems.
    #[test]
    fn readers_of_one_pass_get_what_their_own_reads_give() {
        let sc = scope();
        let ops = RowScope {
            operations: Some(OperationScope {
                columns: vec!["Caller".into()],
                names: vec!["bob@contoso.com".into()],
            }),
            ..RowScope::default()
        };
        for text in [API, OBJECTS, "[]"] {
            for n in [3, 64, BLOCK] {
                let mut sinks = [Keep::default(), Keep::default(), Keep::default()];
                let [a, b, c] = &mut sinks;
                let mut consumers = [
                    crate::RowConsumer {
                        scope: Some(sc.clone()),
                        sink: a,
                    },
                    crate::RowConsumer {
                        scope: None,
                        sink: b,
                    },
                    crate::RowConsumer {
                        scope: Some(ops.clone()),
                        sink: c,
                    },
                ];
                let reader = Trickle {
                    bytes: text.as_bytes(),
                    n,
                };
                let (meta, stats) = {
                    let mut readers: Vec<Reader<'_>> = consumers
                        .iter_mut()
                        .map(|c| Reader::new(c.scope.as_ref(), Target::Sink(&mut *c.sink)))
                        .collect();
                    let meta = stream_rows(reader, "AzureActivity.json", &mut readers)
                        .unwrap()
                        .unwrap();
                    (meta, readers.iter().map(Reader::stats).collect::<Vec<_>>())
                };
                for (sink, (scope, stat)) in sinks
                    .iter()
                    .zip([Some(&sc), None, Some(&ops)].into_iter().zip(&stats))
                {
                    let expected = whole(text.as_bytes(), scope);
                    let mut rows = sink.rows.clone();
                    pad_rows(&mut rows, &meta.columns);
                    assert_eq!(rows, expected.table.rows, "{text} n={n}");
                    assert_eq!(sink.columns, expected.table.columns);
                    assert_eq!(meta.problems, expected.problems);
                    assert_eq!(stat.kept, rows.len());
                    match expected.scoped {
                        Some(scoped) => {
                            assert_eq!(sink.positions, scoped.positions);
                            assert_eq!(stat.left_out, scoped.left_out);
                            assert_eq!(stat.earliest, scoped.earliest);
                        }
                        None => {
                            assert_eq!(stat.left_out, 0);
                            assert_eq!(sink.positions, (0..rows.len()).collect::<Vec<_>>());
                        }
                    }
                }
            }
        }
    }

    /// The `N` (fourth) cell of each row kept.
    fn kept_ns(p: &ParsedExport) -> Vec<i64> {
        p.table
            .rows
            .iter()
            .map(|r| r[3].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn the_scope_drops_rows_it_can_read_and_keeps_the_unreadable() {
        let p = streamed(API.as_bytes(), BLOCK, Some(&scope())).unwrap();
        let n = kept_ns(&p);
        // 1 jane in span; 4 named by its object-id claim; 5 and 6 have no readable time; 7
        // names no one; 8 is jane again (trimmed, any case). 2 is out of the span; 3 and 9 are
        // bob's.
        assert_eq!(n, [1, 4, 5, 6, 7, 8]);
        let scoped = p.scoped.unwrap();
        // Positions count rows of the whole table: the bad row `5` is not one of them.
        assert_eq!(scoped.positions, [0, 3, 4, 5, 6, 7]);
        assert_eq!(scoped.left_out, 3);
        // Problems are the whole file's: the bad row, and both long rows even though one was
        // left out.
        let rows: Vec<_> = p.problems.iter().map(|x| x.row).collect();
        assert_eq!(rows, [None, Some(7), Some(7), Some(8)], "{:?}", p.problems);
        assert_eq!(p.partial_error.as_deref(), Some("PartialError: some"));
    }

    #[test]
    fn out_of_span_rows_are_left_out_when_they_name_anyone_and_kept_when_no_one() {
        let text = r#"{"tables":[{"name":"PrimaryResult","columns":[
            {"name":"TimeGenerated","type":"datetime"},{"name":"Caller","type":"string"},
            {"name":"Claims_d","type":"dynamic"},{"name":"N","type":"long"}],
          "rows":[
            ["2026-11-20T23:00:00Z","jane@contoso.com",null,1],
            ["2026-11-20T23:00:00Z","bob@contoso.com",null,2],
            ["2026-11-20T23:00:00Z",null,"{\"oid\":\"oid-b\"}",3],
            ["2026-11-20T23:00:00Z","  ",null,4],
            ["2026-11-20T23:00:00Z",null,{"other":"x"},5],
            ["2026-11-20T10:30:00Z","bob@contoso.com","{\"oid\":\"OID-J\"}",6]
          ]}]}"#;
        let p = streamed(text.as_bytes(), BLOCK, Some(&scope())).unwrap();
        let n = kept_ns(&p);
        // 1-3 name someone (wanted or not) and are out of the span; 4 and 5 name no one, so the
        // parser sees and reports them; 6 is in the span and named by its claim.
        assert_eq!(n, [4, 5, 6]);
    }

    #[test]
    fn unusual_documents_are_left_to_the_whole_file_reader() {
        for text in [
            "",
            "  ",
            r#"[{"a":1e999}]"#,
            r#"[{"a":"\ud800"}]"#,
            r#"{"tables":[{"rows":[[1]],"columns":[{"name":"A"}]}]}"#,
            r#"{"tables":[{"name":"T","columns":[],"rows":[],"rows":[]}]}"#,
            r#"{"tables":[]}"#,
            r#"{"value":[]}"#,
            "[] []",
            r#"[{"a":1},{"a":2"#,
            "hello",
            &format!("[{}1{}]", "[".repeat(200), "]".repeat(200)),
        ] {
            assert!(streamed(text.as_bytes(), 3, None).is_none(), "{text}");
        }
    }

    #[test]
    fn operations_scope_keeps_named_operations_and_rows_without_one() {
        let text = r#"[{"OperationNameValue":"Microsoft.Compute/virtualMachines/write"},
            {"OperationNameValue":" add member to role completed (pim activation) "},
            {"OperationNameValue":"","OperationName":"Other"},
            {"OperationNameValue":null}]"#;
        let sc = RowScope {
            operations: Some(OperationScope {
                columns: vec!["OperationNameValue".into(), "OperationName".into()],
                names: vec!["Add member to role completed (PIM activation)".into()],
            }),
            ..RowScope::default()
        };
        let p = streamed(text.as_bytes(), BLOCK, Some(&sc)).unwrap();
        assert_eq!(p.scoped.unwrap().positions, [1, 3]);
    }

    /// When most rows are kept the reader decodes rows once and tests the decoded cells: the
    /// result is the same.
    #[test]
    fn mostly_kept_rows_are_decided_alike() {
        let mut text = String::from(
            r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"Caller","type":"string"},{"name":"Claims_d","type":"dynamic"}],"rows":["#,
        );
        for i in 0..5000 {
            if i > 0 {
                text.push(',');
            }
            let who = if i % 10 == 0 { "bob" } else { "jane" };
            let extra = if i % 7 == 0 { ",1" } else { "" };
            let time = if i % 13 == 0 {
                "null".to_owned()
            } else {
                format!("\"2026-11-20T10:{:02}:00Z\"", i % 60)
            };
            text.push_str(&format!(r#"[{time},"{who}@contoso.com",null{extra}]"#));
            if i % 500 == 0 {
                text.push_str(",7");
            }
        }
        text.push_str("]}]}");
        let sc = scope();
        let got = streamed(text.as_bytes(), 4096, Some(&sc)).unwrap();
        assert_eq!(got, whole(text.as_bytes(), Some(&sc)));
        assert!(got.scoped.unwrap().left_out > 400);
    }

    /// A large export is held only as far as its scope keeps rows: 60,000 rows of which 60
    /// matter come back as 60 rows (counts, never times).
    #[test]
    fn a_big_export_keeps_only_the_rows_in_scope() {
        let mut text = String::from(
            r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"TimeGenerated","type":"datetime"},{"name":"Caller","type":"string"},{"name":"Claims_d","type":"dynamic"}],"rows":["#,
        );
        let total = 60_000;
        for i in 0..total {
            if i > 0 {
                text.push(',');
            }
            let (who, minute) = if i % 1000 == 0 {
                ("jane@contoso.com", 10)
            } else if i % 2 == 0 {
                ("jane@contoso.com", 14)
            } else {
                ("bob@contoso.com", 10)
            };
            text.push_str(&format!(
                r#"["2026-11-20T{minute}:{:02}:00Z","{who}","{{\"oid\":\"{i}\",\"pad\":\"{}\"}}"]"#,
                i % 60,
                "x".repeat(200)
            ));
        }
        text.push_str("]}]}");
        let p = streamed(text.as_bytes(), BLOCK, Some(&scope())).unwrap();
        assert_eq!(p.table.rows.len(), total / 1000);
        let scoped = p.scoped.unwrap();
        assert_eq!(scoped.left_out, total - total / 1000);
        assert!(scoped.positions.iter().all(|i| i % 1000 == 0));
        assert!(p.problems.is_empty());
    }
}
