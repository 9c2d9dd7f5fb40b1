//! `AzureActivity` rows: one [`Activity`] per Azure Resource Manager operation.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;

use hashbrown::HashTable;
use pim_domain::cells::{CellRef, RowCells};
use pim_domain::timestamp::TimestampError;
use pim_domain::{Activity, ActivitySource, ActivityStatus, DataProblem, SharedText, Table};
use serde_json::Value;
use time::OffsetDateTime;

use crate::cells::{Problems, get_ci, json_kind, owned_text, parse_time_cell, scalar_text};
use crate::evidence::{UnreadableRow, identity_keys};

/// Builds the hashers of maps and sets keyed by text from the rows (here and in
/// [`crate::correlate`]): foldhash, seeded at random per process and per map.
pub(crate) type KeyHasher = foldhash::fast::RandomState;

/// The claim that carries the caller's object id in `Claims_d`.
pub const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

/// The column in which the live activity query returns that claim, extracted on the server
/// (`pim_kql::CALLER_OBJECT_ID`; issue 12), so that the whole claims column never crosses the
/// wire. Exports keep the raw `Claims_d` / `Claims` columns, which are read when it is absent
/// or empty.
pub const CALLER_OBJECT_ID_COLUMN: &str = "CallerObjectId";

/// Activities parsed from one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedActivities {
    /// The activities kept, sorted by time.
    pub activities: Vec<Activity>,
    /// Rows in the input table.
    pub rows_read: usize,
    /// Rows that could not be used (capped; a summary counts the rest).
    pub problems: Vec<DataProblem>,
    /// Every row that could be someone's operation but could not be read (no readable time,
    /// operation name or status), with what could be read of its identity and time, so that the
    /// activations it could belong to can say their evidence is incomplete (uncapped).
    pub unreadable: Vec<UnreadableRow>,
    /// Set when the table as a whole cannot be read (a required column is missing): no row of it
    /// is evidence of anything, and every activation that needs it cannot be judged.
    pub failure: Option<String>,
}

/// Column indexes, looked up once by name. Each pair is (current column, deprecated column).
#[derive(Debug)]
struct Cols {
    time: Option<usize>,
    caller: Option<usize>,
    operation: [Option<usize>; 2],
    status: [Option<usize>; 2],
    category: [Option<usize>; 2],
    provider: [Option<usize>; 2],
    resource_group: Option<usize>,
    subscription: [Option<usize>; 2],
    resource: [Option<usize>; 2],
    correlation: Option<usize>,
    operation_id: Option<usize>,
    /// [`CALLER_OBJECT_ID_COLUMN`], the claim extracted on the server.
    object_id: Option<usize>,
    claims: [Option<usize>; 2],
}

impl Cols {
    fn new(columns: &[pim_domain::Column]) -> Self {
        let c = |n: &str| columns.iter().position(|c| c.name.eq_ignore_ascii_case(n));
        Self {
            time: c("TimeGenerated"),
            caller: c("Caller"),
            operation: [c("OperationNameValue"), c("OperationName")],
            status: [c("ActivityStatusValue"), c("ActivityStatus")],
            category: [c("CategoryValue"), c("Category")],
            provider: [c("ResourceProviderValue"), c("ResourceProvider")],
            resource_group: c("ResourceGroup"),
            subscription: [c("SubscriptionId"), c("_SubscriptionId")],
            resource: [c("_ResourceId"), c("ResourceId")],
            correlation: c("CorrelationId"),
            operation_id: c("OperationId"),
            object_id: c(CALLER_OBJECT_ID_COLUMN),
            claims: [c("Claims_d"), c("Claims")],
        }
    }

    /// Which of `width` columns are read.
    fn read(&self, width: usize) -> Vec<bool> {
        let mut read = vec![false; width];
        let one = [
            self.time,
            self.caller,
            self.resource_group,
            self.correlation,
            self.operation_id,
            self.object_id,
        ];
        let pairs = [
            self.operation,
            self.status,
            self.category,
            self.provider,
            self.subscription,
            self.resource,
            self.claims,
        ];
        for c in one.into_iter().chain(pairs.into_iter().flatten()).flatten() {
            if let Some(r) = read.get_mut(c) {
                *r = true;
            }
        }
        read
    }

    /// Why no row of a table with these columns and `rows` rows can be read: a missing time,
    /// operation or status column. `None` when the columns are there, or there are no rows.
    fn missing_message(&self, columns: &[pim_domain::Column], rows: usize) -> Option<String> {
        let missing: Vec<&str> = [
            ("TimeGenerated", self.time.is_some()),
            (
                "OperationNameValue",
                self.operation.iter().any(Option::is_some),
            ),
            (
                "ActivityStatusValue",
                self.status.iter().any(Option::is_some),
            ),
        ]
        .iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| *name)
        .collect();
        (!missing.is_empty() && rows > 0).then(|| {
            format!(
                "no {} column: none of the {} rows can be read (columns found: {})",
                missing.join(" or "),
                rows,
                column_names(columns)
            )
        })
    }
}

/// One row's cells as the parser reads them: a table's `&[Value]`, or a streamed row's borrowed
/// cells. A missing cell (a short row, or a column the row object did not name) reads as null,
/// as in a padded [`Table`].
struct Row<'r, C: ?Sized> {
    cells: &'r C,
}

impl<C: ?Sized> Clone for Row<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: ?Sized> Copy for Row<'_, C> {}

impl<'r, C: RowCells + ?Sized> Row<'r, C> {
    /// A cell by index; `None` when absent or JSON null (as [`Table::cell`]).
    fn cell(self, col: Option<usize>) -> Option<CellRef<'r>> {
        col.and_then(|c| self.cells.cell(c))
            .filter(|v| !matches!(v, CellRef::Null))
    }

    /// The timestamp of a string cell, as the row knows it ([`RowCells::timestamp`]).
    fn stamp(self, col: Option<usize>) -> Option<Result<OffsetDateTime, TimestampError>> {
        col.and_then(|c| self.cells.timestamp(c))
    }

    /// A string cell, trimmed; other JSON types read as absent.
    fn str(self, col: Option<usize>) -> Option<&'r str> {
        match self.cell(col)? {
            CellRef::Str(s) => {
                let s = s.trim();
                (!s.is_empty()).then_some(s)
            }
            _ => None,
        }
    }

    /// The current column's string, else the deprecated column's (the new schema leaves the old
    /// columns empty, and old exports lack the new ones).
    fn str2(self, cols: [Option<usize>; 2]) -> Option<&'r str> {
        self.str(cols[0]).or_else(|| self.str(cols[1]))
    }
}

/// What is known about one operation while its rows are read.
#[derive(Debug, Clone, Copy)]
struct OpState {
    first_time: OffsetDateTime,
    status_time: OffsetDateTime,
    status: ActivityStatus,
}

/// The text of the operations' snapshots, in blocks filled one after the other and never moved:
/// a snapshot is a place in a block rather than an allocation of its own (half a million small
/// allocations, and their frees, cost more than the copying), and a block is freed whole once
/// every operation whose text it holds is built.
#[derive(Debug, Default)]
struct Arena {
    blocks: Vec<Vec<u8>>,
}

/// Bytes in a full-grown arena block (a snapshot longer than this gets a block of its own
/// size).
const ARENA_BLOCK: usize = 1 << 20;

/// Where a snapshot's text is: `room` bytes at `start` in block `block` (32 bits each, as a
/// snapshot's field ends are: hundreds of thousands of operations hold two places each).
#[derive(Debug, Clone, Copy)]
struct Place {
    block: u32,
    start: u32,
    room: u32,
}

impl Place {
    fn block(self) -> usize {
        self.block as usize
    }

    /// The byte range in the block.
    fn bytes(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.room as usize
    }
}

/// `n` in 32 bits (an index or length no real export reaches past).
fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Arena {
    /// Writes `fields`, one after the other, at `place` when they fit in its room, else at a
    /// new place at the end (the last block, or a new one). Places only ever go to the end, so
    /// an operation's text is never in a block before the one its first row went to.
    fn write(&mut self, place: Option<Place>, fields: &[Option<&str>]) -> Place {
        let total: usize = fields.iter().flatten().map(|f| f.len()).sum();
        self.put(place, total, fields.iter().flatten().map(|f| f.as_bytes()))
    }

    /// Writes `bytes` at a new place at the end.
    fn write_bytes(&mut self, bytes: &[u8]) -> Place {
        self.put(None, bytes.len(), std::iter::once(bytes))
    }

    /// [`Arena::write`] of `parts`, `total` bytes in all.
    fn put<'p>(
        &mut self,
        place: Option<Place>,
        total: usize,
        parts: impl Iterator<Item = &'p [u8]>,
    ) -> Place {
        if let Some(p) = place
            && p.room as usize >= total
            && let Some(block) = self.blocks.get_mut(p.block())
            && let Some(bytes) = block.get_mut(p.start as usize..p.start as usize + total)
        {
            let mut at = 0;
            for f in parts {
                bytes[at..at + f.len()].copy_from_slice(f);
                at += f.len();
            }
            return p;
        }
        let fits = self
            .blocks
            .last()
            .is_some_and(|b| b.capacity() - b.len() >= total);
        if !fits {
            // Small at first (a parser may read a handful of rows), doubling up to
            // `ARENA_BLOCK`.
            let room = self
                .blocks
                .last()
                .map_or(4096, |b| b.capacity().saturating_mul(2).min(ARENA_BLOCK));
            self.blocks.push(Vec::with_capacity(room.max(total)));
        }
        let block = self.blocks.len() - 1;
        let bytes = &mut self.blocks[block];
        let start = bytes.len();
        for f in parts {
            bytes.extend_from_slice(f);
        }
        Place {
            block: small(block),
            start: small(start),
            room: small(total),
        }
    }

    /// The bytes at `range` of `place`.
    fn range(&self, place: Place, range: std::ops::Range<usize>) -> Option<&[u8]> {
        self.blocks
            .get(place.block())?
            .get(place.start as usize + range.start..place.start as usize + range.end)
    }

    /// All the bytes at `place`.
    fn bytes(&self, place: Place) -> Option<&[u8]> {
        self.blocks.get(place.block())?.get(place.bytes())
    }

    /// The index of the last block, the one the latest place went to (later places go there
    /// or to a new one after it).
    fn last_block(&self) -> usize {
        self.blocks.len().saturating_sub(1)
    }

    /// Frees the blocks before `block`.
    fn free_before(&mut self, block: usize) {
        for b in self.blocks.iter_mut().take(block) {
            if b.capacity() > 0 {
                *b = Vec::new();
            }
        }
    }
}

/// The fields an [`Activity`] takes from one of its operation's rows, copied out of the row
/// (which is not kept) into the parser's [`Arena`].
#[derive(Debug, Default)]
struct Snapshot {
    /// Where the text is; `None` until filled.
    place: Option<Place>,
    /// Where each field ends in the text, in [`Snapshot::FIELDS`] order, and which are present.
    ends: [u32; Snapshot::FIELDS],
    present: u8,
    /// The problems reading the caller's object id gave (reported only when the activity is
    /// built from this row, as the claims were read before rows were streamed). Nearly always
    /// none: a boxed slice, so that a snapshot without any holds no vector's room.
    object_id_problems: Option<Box<[DataProblem]>>,
}

impl Snapshot {
    const FIELDS: usize = 8;
    const OPERATION: usize = 0;
    const RESOURCE: usize = 1;
    const RESOURCE_GROUP: usize = 2;
    const SUBSCRIPTION: usize = 3;
    const PROVIDER: usize = 4;
    const CALLER: usize = 5;
    const CORRELATION: usize = 6;
    /// The caller's object id read from the row.
    const OBJECT_ID: usize = 7;

    /// A snapshot of `fields`, written to the arena.
    fn of(arena: &mut Arena, fields: RowFields<'_>) -> Self {
        let mut s = Self::default();
        s.write(arena, fields);
        s
    }

    /// Copies `fields` in, reusing the snapshot's place when they fit (an operation's later
    /// rows replace its status row's snapshot).
    fn write(&mut self, arena: &mut Arena, fields: RowFields<'_>) {
        let texts = fields.texts();
        self.place = Some(arena.write(self.place, &texts));
        self.present = 0;
        let mut end = 0usize;
        for (i, field) in texts.iter().enumerate() {
            if let Some(f) = field {
                end += f.len();
                self.present |= 1 << i;
            }
            self.ends[i] = u32::try_from(end).unwrap_or(u32::MAX);
        }
        self.object_id_problems =
            (!fields.problems.is_empty()).then(|| fields.problems.into_boxed_slice());
    }

    /// The object id problems, taken out.
    fn take_object_id_problems(&mut self) -> Vec<DataProblem> {
        self.object_id_problems
            .take()
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// Whether the row had `field`.
    fn has(&self, field: usize) -> bool {
        self.present & (1 << field) != 0
    }

    fn get<'a>(&self, arena: &'a Arena, field: usize) -> Option<&'a str> {
        // Always valid: whole strings were written there.
        std::str::from_utf8(self.get_bytes(arena, field)?).ok()
    }

    /// [`Snapshot::get`] as bytes, unchecked (to compare with).
    fn get_bytes<'a>(&self, arena: &'a Arena, field: usize) -> Option<&'a [u8]> {
        if !self.has(field) {
            return None;
        }
        let start = if field == 0 { 0 } else { self.ends[field - 1] } as usize;
        arena.range(self.place?, start..self.ends[field] as usize)
    }
}

/// The fields of one row that a [`Snapshot`] keeps, read in place.
struct RowFields<'r> {
    cells: [Option<&'r str>; Snapshot::FIELDS - 1],
    object_id: Option<Cow<'r, str>>,
    /// The problems reading the object id gave.
    problems: Vec<DataProblem>,
}

impl<'r> RowFields<'r> {
    fn of<C: RowCells + ?Sized>(
        row: Row<'r, C>,
        cols: &Cols,
        position: usize,
        source: &str,
    ) -> Self {
        let mut problems = Vec::new();
        let object_id = claims_object_id(row, cols, position, source, &mut problems);
        Self {
            cells: [
                row.str2(cols.operation),
                row.str2(cols.resource),
                row.str(cols.resource_group),
                row.str2(cols.subscription),
                row.str2(cols.provider),
                row.str(cols.caller),
                row.str(cols.correlation),
            ],
            object_id,
            problems,
        }
    }

    /// The fields in [`Snapshot::FIELDS`] order.
    fn texts(&self) -> [Option<&str>; Snapshot::FIELDS] {
        let c = self.cells;
        [
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            c[6],
            self.object_id.as_deref(),
        ]
    }

    /// When these fields add nothing to `first`'s (each one the row has, `first` has with the
    /// same text, and reading the object id gave no problem): which fields the row has.
    fn same_as(&self, arena: &Arena, first: &Snapshot) -> Option<u8> {
        if !self.problems.is_empty() {
            return None;
        }
        let mut present = 0u8;
        for (i, field) in self.texts().iter().enumerate() {
            if let Some(f) = field {
                if first.get_bytes(arena, i) != Some(f.as_bytes()) {
                    return None;
                }
                present |= 1 << i;
            }
        }
        Some(present)
    }
}

/// The row that set an operation's status, when it is not its first row.
#[derive(Debug, Default)]
enum StatusRow {
    #[default]
    None,
    /// A row whose fields (these, as [`Snapshot::present`] bits) are the first row's, with the
    /// same text: nothing is copied, as the activity would take nothing from it. (Most
    /// operations log a Start and an end row alike.)
    SameAsFirst(u8),
    Row(Snapshot),
}

impl StatusRow {
    /// The snapshot the activity may take fields from.
    fn row(&self) -> Option<&Snapshot> {
        match self {
            Self::Row(s) => Some(s),
            _ => None,
        }
    }
}

/// What a row of an operation already seen is copied for.
enum Need {
    Nothing,
    First,
    Status,
}

/// One operation: its state, and the rows its activity's fields come from.
#[derive(Debug)]
struct Group {
    state: OpState,
    /// The arena block its first row went to: none of its text is in an earlier one.
    born: u32,
    /// The earliest row.
    first: Snapshot,
    /// The row that set the status, when it is not `first`.
    status: StatusRow,
}

/// Operations in the order they were first seen, in chunks that are never moved or copied
/// as they grow (one vector of a few hundred thousand operations would be, at each doubling).
#[derive(Debug, Default)]
struct Groups {
    chunks: Vec<Vec<Group>>,
    len: usize,
}

/// Operations in a [`Groups`] chunk.
const GROUP_CHUNK: usize = 4096;

impl Groups {
    fn push(&mut self, group: Group) -> usize {
        if self.chunks.last().is_none_or(|c| c.len() == GROUP_CHUNK) {
            // The first chunk grows as a vector does (a parser may read a handful of rows);
            // the others are made full-size.
            let room = if self.chunks.is_empty() {
                0
            } else {
                GROUP_CHUNK
            };
            self.chunks.push(Vec::with_capacity(room));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(group);
        }
        self.len += 1;
        self.len - 1
    }

    fn get(&self, i: usize) -> Option<&Group> {
        self.chunks.get(i / GROUP_CHUNK)?.get(i % GROUP_CHUNK)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Group> {
        self.chunks
            .get_mut(i / GROUP_CHUNK)?
            .get_mut(i % GROUP_CHUNK)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        self.chunks.iter_mut().flatten()
    }

    /// Frees the operations before `i`.
    fn free_before(&mut self, i: usize) {
        for chunk in self.chunks.iter_mut().take(i / GROUP_CHUNK) {
            if chunk.capacity() > 0 {
                *chunk = Vec::new();
            }
        }
    }
}

impl Group {
    /// Takes in one more row of the operation, and says what the row is to be copied into.
    fn take_row(&mut self, time: OffsetDateTime, status: ActivityStatus) -> Need {
        let s = &mut self.state;
        let new_first = time < s.first_time;
        // A terminal row beats any non-terminal one; among equals the latest row wins, so a
        // retried operation that failed and then succeeded reports its final outcome.
        let replaces = match (status.is_terminal(), s.status.is_terminal()) {
            (true, false) => true,
            (false, true) => false,
            _ => time >= s.status_time,
        };
        if new_first {
            s.first_time = time;
        }
        if replaces {
            s.status_time = time;
            s.status = status;
        }
        // A snapshot no longer needed is refilled in place rather than dropped for a new one.
        match (new_first, replaces) {
            (false, false) => Need::Nothing,
            (true, true) => {
                self.status = StatusRow::None;
                Need::First
            }
            (true, false) => {
                // The old first row stays as the status row when there was none, or when the
                // status row was a copy of it (then only the fields that row had).
                match std::mem::take(&mut self.status) {
                    StatusRow::None => {
                        self.status = StatusRow::Row(std::mem::take(&mut self.first));
                    }
                    StatusRow::SameAsFirst(present) => {
                        let mut old = std::mem::take(&mut self.first);
                        old.present &= present;
                        old.object_id_problems = None;
                        self.status = StatusRow::Row(old);
                    }
                    row @ StatusRow::Row(_) => self.status = row,
                }
                Need::First
            }
            (false, true) => Need::Status,
        }
    }

    /// Copies `fields` where [`Group::take_row`] said.
    fn put(&mut self, need: Need, arena: &mut Arena, fields: RowFields<'_>) {
        match need {
            Need::Nothing => {}
            Need::First => self.first.write(arena, fields),
            Need::Status => {
                if let Some(present) = fields.same_as(arena, &self.first) {
                    self.status = StatusRow::SameAsFirst(present);
                } else if let StatusRow::Row(s) = &mut self.status {
                    s.write(arena, fields);
                } else {
                    self.status = StatusRow::Row(Snapshot::of(arena, fields));
                }
            }
        }
    }
}

/// Reads `AzureActivity` rows into one activity per operation.
///
/// - Only the `Administrative` category is read (any case; rows with no category are kept);
///   other categories (Policy, ServiceHealth, ...) are not actions of a person.
/// - Rows of one operation (same `CorrelationId`, operation name and resource id, names compared
///   case-insensitively) collapse into one activity: its time is the earliest row's, its status
///   the latest terminal row's (Success/Failure), else the latest row's. Rows with neither a
///   correlation nor an operation id are never merged.
/// - Succeeded operations are kept, and so are operations never seen finishing (Start/Accept
///   rows only), with status `in_progress`: an operation still running is something the person
///   set in motion. Failed operations are kept only with `include_failed` (the pipeline asks for
///   them all and keeps the high-risk attempts itself).
/// - A row with a missing or unreadable time, operation name or status is a problem (row and
///   field), is skipped, and is listed in [`ParsedActivities::unreadable`] with whatever could be
///   read of its identity and time.
/// - A table without a time, operation or status column cannot be read at all:
///   [`ParsedActivities::failure`] says so.
///
/// The rows go through [`AzureActivityParser`] one at a time, as an export streams them.
pub fn parse_azure_activity(table: &Table, source: &str, include_failed: bool) -> ParsedActivities {
    let mut parser = AzureActivityParser::new(&table.columns, source, include_failed);
    parser.reserve(table.len());
    for (i, row) in table.rows.iter().enumerate() {
        parser.row(i, row);
    }
    parser.finish()
}

/// [`parse_azure_activity`] fed one row at a time, so that the rows need never be held: only
/// the operations they collapse into are (issue 12). An export streams its rows straight into
/// it.
///
/// Each row is given with its position in the whole table, which problems name. The result of
/// [`finish`](Self::finish) is the one [`parse_azure_activity`] gives for a table of the same
/// rows (positions as its row numbers).
///
/// ```
/// use pim_correlate::AzureActivityParser;
/// use pim_domain::Column;
/// use serde_json::json;
///
/// let columns: Vec<Column> = ["TimeGenerated", "OperationNameValue", "ActivityStatusValue", "CorrelationId"]
///     .iter()
///     .map(|n| Column { name: (*n).into(), kind: String::new() })
///     .collect();
/// let mut parser = AzureActivityParser::new(&columns, "AzureActivity.json", false);
/// parser.row(0, &[json!("2026-11-20T09:00:00Z"), json!("Microsoft.Web/sites/write"), json!("Start"), json!("c1")]);
/// parser.row(1, &[json!("2026-11-20T09:00:07Z"), json!("Microsoft.Web/sites/write"), json!("Success"), json!("c1")]);
/// let parsed = parser.finish();
/// assert_eq!(parsed.activities.len(), 1);
/// assert_eq!(parsed.rows_read, 2);
/// ```
#[derive(Debug)]
pub struct AzureActivityParser {
    source: String,
    include_failed: bool,
    columns: Vec<pim_domain::Column>,
    cols: Cols,
    rows: usize,
    problems: Problems,
    row_problems: Vec<DataProblem>,
    groups: Groups,
    /// The text of the groups' snapshots.
    arena: Arena,
    /// Operation key (lower-cased, length-prefixed parts) → index in `groups`.
    index: KeyIndex,
    key: Vec<u8>,
    unreadable: Vec<UnreadableRow>,
}

impl AzureActivityParser {
    /// A parser for rows with these columns, problems naming `source`.
    pub fn new(columns: &[pim_domain::Column], source: &str, include_failed: bool) -> Self {
        Self {
            source: source.to_owned(),
            include_failed,
            columns: columns.to_vec(),
            cols: Cols::new(columns),
            rows: 0,
            problems: Problems::new(source),
            row_problems: Vec::new(),
            groups: Groups::default(),
            arena: Arena::default(),
            index: KeyIndex::default(),
            key: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    /// Which of `columns` a parser reads (`true` at their positions): a row whose other cells
    /// are given as null parses the same. (A streamed export hands only these cells to the
    /// parser's thread, not the wide columns it never reads.)
    pub fn columns_read(columns: &[pim_domain::Column]) -> Vec<bool> {
        Cols::new(columns).read(columns.len())
    }

    /// The columns grew (an export of row objects names new keys as it goes): later rows have
    /// these. Columns are only ever added at the end.
    pub fn columns(&mut self, columns: &[pim_domain::Column]) {
        self.columns = columns.to_vec();
        self.cols = Cols::new(columns);
    }

    /// Room for about `rows` more rows. Most operations log a Start and an end row: sizing once
    /// saves rehashing a growing map half a million times.
    pub fn reserve(&mut self, rows: usize) {
        self.index.reserve(rows / 2 + 1);
    }

    /// Reads one row, `position` being its row number in the whole table.
    pub fn row(&mut self, position: usize, cells: &[Value]) {
        self.row_cells(position, cells);
    }

    /// As [`row`](Self::row), for cells read in place (a streamed export's borrowed row).
    pub fn row_cells<C: RowCells + ?Sized>(&mut self, position: usize, cells: &C) {
        self.rows += 1;
        let row = Row { cells };
        let cols = &self.cols;
        let source = self.source.as_str();
        let row_problems = &mut self.row_problems;
        if let Some(category) = row.str2(cols.category)
            && !category.eq_ignore_ascii_case("Administrative")
        {
            return;
        }
        let time = match row.cell(cols.time) {
            Some(v) => parse_time_cell(
                v,
                row.stamp(cols.time),
                position,
                "TimeGenerated",
                source,
                row_problems,
            ),
            None => {
                row_problems.push(DataProblem::field(
                    source,
                    position,
                    "TimeGenerated",
                    "missing: the row is skipped",
                ));
                None
            }
        };
        let operation = row.str2(cols.operation);
        if operation.is_none() {
            row_problems.push(DataProblem::field(
                source,
                position,
                "OperationNameValue",
                "missing: the row is skipped",
            ));
        }
        // PIM's own steps in the Activity Log are read by `parse_activity_pim_events`: they
        // are the elevation, not something done with it.
        if operation.is_some_and(crate::pim::is_pim_window_operation) {
            // (Problems noted so far stay pending and are reported with the next row's, as
            // before rows were streamed.)
            return;
        }
        let raw_status = row.str2(cols.status);
        let status = raw_status.map(ActivityStatus::normalise);
        match raw_status {
            None => row_problems.push(DataProblem::field(
                source,
                position,
                "ActivityStatusValue",
                "missing: whether the operation happened is unknown; the row is skipped",
            )),
            Some(raw) if status == Some(ActivityStatus::Other) => {
                row_problems.push(DataProblem::field(
                    source,
                    position,
                    "ActivityStatusValue",
                    format!(
                        "unknown status {:?} (expected Start, Accept, Success or Failure): the row is skipped",
                        crate::cells::shorten(raw)
                    ),
                ));
            }
            Some(_) => {}
        }
        let (Some(time), Some(operation), Some(status)) = (
            time,
            operation,
            status.filter(|s| *s != ActivityStatus::Other),
        ) else {
            let mut drained = row_problems.drain(..);
            if let Some(first) = drained.next() {
                self.unreadable.push(UnreadableRow {
                    time,
                    identities: row_identities(row, cols),
                    problem: first.clone(),
                });
                self.problems.push(first);
            }
            for p in drained {
                self.problems.push(p);
            }
            return;
        };
        for p in row_problems.drain(..) {
            self.problems.push(p);
        }
        // Rows of one operation: same correlation (else operation) id, operation name and
        // resource id, compared case-insensitively. Rows with neither id are never merged.
        let by_correlation = row.str(cols.correlation);
        let correlation = by_correlation.or_else(|| row.str(cols.operation_id));
        let key = &mut self.key;
        key.clear();
        for part in [
            correlation.unwrap_or(""),
            operation,
            row.str2(cols.resource).unwrap_or(""),
        ] {
            push_op_key_part(key, part);
        }
        if correlation.is_none() {
            key.push(b'#');
            key.extend_from_slice(&(position as u64).to_le_bytes());
        }
        // A key whose parts are its operation's first row's correlation id, operation name
        // and resource id is read back from that row's snapshot rather than stored.
        let derived = by_correlation.is_some();
        let arena = &mut self.arena;
        let groups = &mut self.groups;
        let (hash, found) = self.index.find(key, |g| {
            groups.get(g).is_some_and(|g| {
                let part = |field| g.first.get_bytes(arena, field).unwrap_or_default();
                key_is(
                    key,
                    [
                        part(Snapshot::CORRELATION),
                        part(Snapshot::OPERATION),
                        part(Snapshot::RESOURCE),
                    ],
                )
            })
        });
        match found {
            Some(g) => {
                if let Some(group) = groups.get_mut(g) {
                    let need = group.take_row(time, status);
                    if matches!(need, Need::First) && !derived {
                        // The first row is about to be one the key cannot be read back from.
                        self.index.keep_text(hash, g, key);
                    }
                    if !matches!(need, Need::Nothing) {
                        group.put(need, arena, RowFields::of(row, cols, position, source));
                    }
                }
            }
            None => {
                let first = Snapshot::of(arena, RowFields::of(row, cols, position, source));
                let g = self.groups.push(Group {
                    state: OpState {
                        first_time: time,
                        status_time: time,
                        status,
                    },
                    born: small(arena.last_block()),
                    first,
                    status: StatusRow::None,
                });
                self.index
                    .insert(hash, (!derived).then_some(key.as_slice()), g);
            }
        }
    }

    /// The activities, sorted by time, and everything the rows said.
    pub fn finish(self) -> ParsedActivities {
        let Self {
            source,
            include_failed,
            columns,
            cols,
            rows,
            mut problems,
            mut groups,
            mut arena,
            index,
            unreadable,
            ..
        } = self;
        if let Some(message) = cols.missing_message(&columns, rows) {
            let mut problems = Problems::new(&source);
            problems.push(DataProblem::source(&source, message.clone()));
            return ParsedActivities {
                activities: Vec::new(),
                rows_read: rows,
                problems: problems.finish(),
                unreadable: Vec::new(),
                failure: Some(format!("{source}: {message}")),
            };
        }
        drop(index);
        // The operations kept, in the order they were first seen; problems are taken in that
        // order.
        let kept: Vec<usize> = groups
            .iter_mut()
            .enumerate()
            .filter(|(_, g)| include_failed || g.state.status != ActivityStatus::Failed)
            .map(|(i, g)| {
                g.take_problems(&mut problems);
                i
            })
            .collect();
        // The activities are built in that order, a chunk at a time, on two cores when there
        // are; after each chunk, the arena blocks and the operations no later one needs are
        // freed, so the activities take the room the operations leave.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let mut activities: Vec<Activity> = Vec::with_capacity(kept.len());
        // Each side keeps its own shared texts from chunk to chunk.
        let mut texts = [Interner::default(), Interner::default()];
        for part in kept.chunks(BUILD_CHUNK) {
            let [left_texts, right_texts] = &mut texts;
            if cores > 1 && part.len() >= BUILD_CHUNK / 4 {
                let (left, right) = part.split_at(part.len() / 2);
                let (groups, arena) = (&groups, &arena);
                let right = std::thread::scope(|threads| {
                    let right =
                        threads.spawn(move || build_activities(groups, arena, right, right_texts));
                    activities.extend(build_activities(groups, arena, left, left_texts));
                    right.join()
                });
                match right {
                    Ok(right) => activities.extend(right),
                    // A panic here is a bug: it goes on as it would have on this thread.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            } else {
                activities.extend(build_activities(&groups, &arena, part, left_texts));
            }
            let next = part.last().map_or(0, |&i| i + 1);
            match groups.get(next) {
                Some(g) => arena.free_before(g.born as usize),
                None => arena = Arena::default(),
            }
            groups.free_before(next);
        }
        drop(arena);
        drop(groups);
        // By time, and then in the order first seen (what a stable sort gives): the order is
        // worked out on small pairs and the activities then moved into it in place.
        let mut order: Vec<(OffsetDateTime, usize)> = activities
            .iter()
            .enumerate()
            .map(|(i, a)| (a.time, i))
            .collect();
        order.sort_unstable();
        permute(&mut activities, order.into_iter().map(|(_, i)| i).collect());
        ParsedActivities {
            activities,
            rows_read: rows,
            problems: problems.finish(),
            unreadable,
            failure: None,
        }
    }
}

fn activity_time_column(columns: &[pim_domain::Column]) -> Option<usize> {
    columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case("ActivityDateTime"))
}

/// Appends one part of a key, lower-cased as `str::to_lowercase` does (ASCII in place), with
/// its length first.
fn push_lower_part(key: &mut String, part: &str) {
    use std::fmt::Write as _;
    if part.is_ascii() {
        push_key_part(key, part);
    } else {
        let lower = part.to_lowercase();
        let _ = write!(key, "{}:", lower.len());
        key.push_str(&lower);
    }
}

/// Appends one part of a history key: its length, then its ASCII-lower-cased text, so that
/// ("ab","c") and ("a","bc") differ and names compare case-insensitively.
fn push_key_part(key: &mut String, part: &str) {
    use std::fmt::Write as _;
    let _ = write!(key, "{}:", part.len());
    let start = key.len();
    key.push_str(part);
    // Safe on a str: ASCII bytes are lower-cased in place and UTF-8 sequences are untouched.
    if let Some(tail) = key.get_mut(start..) {
        tail.make_ascii_lowercase();
    }
}

/// Appends one part of an operation key: its length (four bytes), then its ASCII-lower-cased
/// bytes, so that ("ab","c") and ("a","bc") differ and names compare case-insensitively.
fn push_op_key_part(key: &mut Vec<u8>, part: &str) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    key.extend_from_slice(&len.to_le_bytes());
    let start = key.len();
    key.extend_from_slice(part.as_bytes());
    if let Some(tail) = key.get_mut(start..) {
        tail.make_ascii_lowercase();
    }
}

/// Whether `key` (made by [`push_op_key_part`], with no position) is the key of `parts`.
fn key_is(key: &[u8], parts: [&[u8]; 3]) -> bool {
    let mut rest = key;
    for part in parts {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let len = u32::from_le_bytes(*len) as usize;
        match tail.split_at_checked(len) {
            Some((text, after)) if len == part.len() && text.eq_ignore_ascii_case(part) => {
                rest = after;
            }
            _ => return false,
        }
    }
    rest.is_empty()
}

/// The operations' keys, found by their hash: no allocation per operation, which at hundreds
/// of thousands of operations cost more than the hashing (issue 12). Nearly every key is its
/// operation's correlation id, name and resource id, which the operation's first snapshot
/// holds: such a key is compared with those fields and its text is not kept. The others (a
/// row with no correlation id) are stored once, in an [`Arena`]. The hash is foldhash seeded
/// at random per parser (fast on keys of a few hundred bytes, and a file cannot be crafted to
/// collide without knowing the seed); a key is found only when its text is equal, so a
/// collision costs a comparison, never a merge.
#[derive(Debug, Default)]
struct KeyIndex {
    hasher: KeyHasher,
    table: HashTable<KeyEntry>,
    /// The text of the stored keys.
    keys: Arena,
    places: Vec<Place>,
}

/// One key: its hash, its group, and where its text is when it is stored (an index in
/// [`KeyIndex::places`]; [`KeyEntry::DERIVED`] when it is read back from the group).
#[derive(Debug, Clone, Copy)]
struct KeyEntry {
    hash: u64,
    group: usize,
    text: usize,
}

impl KeyEntry {
    const DERIVED: usize = usize::MAX;
}

impl KeyIndex {
    fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |e| e.hash);
    }

    /// The key's hash, and the group of the key equal to it, if any. `derived(group)` says
    /// whether `key` is the key the group's first snapshot gives (for entries not stored).
    fn find(&self, key: &[u8], derived: impl Fn(usize) -> bool) -> (u64, Option<usize>) {
        let hash = self.hasher.hash_one(key);
        let found = self
            .table
            .find(hash, |e| {
                e.hash == hash
                    && match self.places.get(e.text) {
                        Some(&place) => self.keys.bytes(place) == Some(key),
                        None => derived(e.group),
                    }
            })
            .map(|e| e.group);
        (hash, found)
    }

    /// Adds the key hashed to `hash` by [`KeyIndex::find`] (not yet in the index) for `group`:
    /// `text` is the key to store, or `None` when it is read back from the group.
    fn insert(&mut self, hash: u64, text: Option<&[u8]>, group: usize) {
        let text = match text {
            Some(key) => store(&mut self.keys, &mut self.places, key),
            None => KeyEntry::DERIVED,
        };
        self.table
            .insert_unique(hash, KeyEntry { hash, group, text }, |e| e.hash);
    }

    /// Stores the text of `group`'s key (`key`, hashed to `hash`) if it is read back from the
    /// group: the group's first snapshot is about to change to a row it cannot be read from.
    fn keep_text(&mut self, hash: u64, group: usize, key: &[u8]) {
        if let Some(entry) = self.table.find_mut(hash, |e| e.group == group)
            && entry.text == KeyEntry::DERIVED
        {
            entry.text = store(&mut self.keys, &mut self.places, key);
        }
    }
}

/// Stores a key's text, giving its index in `places`.
fn store(keys: &mut Arena, places: &mut Vec<Place>, key: &[u8]) -> usize {
    places.push(keys.write_bytes(key));
    places.len() - 1
}

/// The operations identities performed in a period, read row by row for the behaviour baseline
/// of an export (issue 14), keeping one entry per identity and operation rather than the rows.
///
/// A row counts when [`parse_azure_activity`] would read it (the `Administrative` category, a
/// readable time, operation and status, not a PIM step) and its time is in `[start, end)`; its
/// identity is its caller and the object id its claims name. As the live baseline query counts
/// rows, an operation is counted from each of its rows in the period.
#[derive(Debug)]
pub struct AzureActivityHistory {
    source: String,
    columns: Vec<pim_domain::Column>,
    cols: Cols,
    start: OffsetDateTime,
    end: OffsetDateTime,
    rows: usize,
    /// `ActivityDateTime`, read for [`ActivityHistory::earliest`] when there is no readable
    /// `TimeGenerated`.
    activity_time: Option<usize>,
    earliest: Option<OffsetDateTime>,
    key: String,
    resource_type: String,
    seen: HashMap<Box<str>, (String, String, pim_domain::baseline::OperationKey), KeyHasher>,
}

/// What [`AzureActivityHistory::finish`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityHistory {
    /// `(upn, object id, operation)`, identities trimmed and lower-cased (empty when none),
    /// each once.
    pub entries: Vec<(String, String, pim_domain::baseline::OperationKey)>,
    /// Rows read.
    pub rows_read: usize,
    /// The earliest time of any row read, whatever its identity: the first non-blank
    /// `TimeGenerated` (else `ActivityDateTime`) that is a timestamp.
    pub earliest: Option<OffsetDateTime>,
    /// Set when the table cannot be read at all (as [`ParsedActivities::failure`]).
    pub failure: Option<String>,
}

impl AzureActivityHistory {
    /// A collector of the operations of `[start, end)`, for rows with these columns.
    pub fn new(
        columns: &[pim_domain::Column],
        source: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Self {
        Self {
            source: source.to_owned(),
            columns: columns.to_vec(),
            cols: Cols::new(columns),
            start,
            end,
            rows: 0,
            activity_time: activity_time_column(columns),
            earliest: None,
            key: String::new(),
            resource_type: String::new(),
            seen: HashMap::default(),
        }
    }

    /// The columns grew (see [`AzureActivityParser::columns`]).
    pub fn columns(&mut self, columns: &[pim_domain::Column]) {
        self.columns = columns.to_vec();
        self.cols = Cols::new(columns);
        self.activity_time = activity_time_column(columns);
    }

    /// Reads one row.
    pub fn row(&mut self, cells: &[Value]) {
        self.row_cells(cells);
    }

    /// As [`row`](Self::row), for cells read in place (a streamed export's borrowed row).
    pub fn row_cells<C: RowCells + ?Sized>(&mut self, cells: &C) {
        self.rows += 1;
        let row = Row { cells };
        let cols = &self.cols;
        let stamp = [cols.time, self.activity_time]
            .into_iter()
            .find_map(|c| row.stamp(c)?.ok());
        if let Some(t) = stamp
            && self.earliest.is_none_or(|e| t < e)
        {
            self.earliest = Some(t);
        }
        if let Some(category) = row.str2(cols.category)
            && !category.eq_ignore_ascii_case("Administrative")
        {
            return;
        }
        let mut ignored = Vec::new();
        let Some(time) = row
            .cell(cols.time)
            .and_then(|v| parse_time_cell(v, row.stamp(cols.time), 0, "", "", &mut ignored))
        else {
            return;
        };
        if time < self.start || time >= self.end {
            return;
        }
        let Some(operation) = row.str2(cols.operation) else {
            return;
        };
        if crate::pim::is_pim_window_operation(operation) {
            return;
        }
        let readable = row
            .str2(cols.status)
            .map(ActivityStatus::normalise)
            .is_some_and(|s| s != ActivityStatus::Other);
        if !readable {
            return;
        }
        let oid = claims_object_id(row, cols, 0, "", &mut ignored);
        let caller = row.str(cols.caller);
        let resource = row.str2(cols.resource);
        // The resource type as `arm_resource_type` gives it, lower-cased into a reused buffer
        // when the id is ASCII (where lower-casing keeps every byte's place); else its own.
        let resource_type = &mut self.resource_type;
        resource_type.clear();
        match resource {
            Some(id) if id.is_ascii() => ascii_resource_type(id, resource_type),
            Some(id) => resource_type.push_str(&pim_domain::baseline::arm_resource_type(id)),
            None => {}
        }
        let resource_type = resource_type.as_str();
        // Most rows repeat an entry already seen: look it up by a key built in a reused
        // buffer, and make the entry only when it is new.
        let key = &mut self.key;
        key.clear();
        for part in [
            caller.unwrap_or(""),
            oid.as_deref().unwrap_or(""),
            operation,
        ] {
            push_lower_part(key, part.trim());
        }
        // The resource type, not the resource: a month holds a great many resources of a few
        // types, and the entry is per type.
        push_lower_part(key, resource_type.trim());
        if !self.seen.contains_key(key.as_str()) {
            let lower = |v: Option<&str>| v.map(|v| v.trim().to_lowercase()).unwrap_or_default();
            let entry = (
                lower(caller),
                lower(oid.as_deref()),
                pim_domain::baseline::OperationKey::new(operation, resource_type),
            );
            self.seen.insert(key.as_str().into(), entry);
        }
    }

    /// The entries, sorted.
    pub fn finish(self) -> ActivityHistory {
        if let Some(message) = self.cols.missing_message(&self.columns, self.rows) {
            return ActivityHistory {
                entries: Vec::new(),
                rows_read: self.rows,
                earliest: self.earliest,
                failure: Some(format!("{}: {message}", self.source)),
            };
        }
        let mut entries: Vec<_> = self.seen.into_values().collect();
        entries.sort();
        entries.dedup();
        ActivityHistory {
            entries,
            rows_read: self.rows,
            earliest: self.earliest,
            failure: None,
        }
    }
}

/// [`pim_domain::baseline::arm_resource_type`] of an ASCII resource id, written into `out`.
fn ascii_resource_type(id: &str, out: &mut String) {
    const PROVIDERS: &[u8] = b"/providers/";
    let id = id.trim();
    let bytes = id.as_bytes();
    let Some(at) = memchr::memchr_iter(b'/', bytes).find(|&i| {
        bytes
            .get(i..i + PROVIDERS.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(PROVIDERS))
    }) else {
        return;
    };
    let mut parts = id[at + PROVIDERS.len()..].split('/');
    if let (Some(ns), Some(ty)) = (parts.next(), parts.next())
        && !ns.is_empty()
        && !ty.is_empty()
    {
        out.push_str(ns);
        out.push('/');
        out.push_str(ty);
        out.make_ascii_lowercase();
    }
}

/// The column names of a table, for messages that say what was found instead.
pub(crate) fn column_list(table: &Table) -> String {
    column_names(&table.columns)
}

/// The names of `columns`, for messages that say what was found instead.
pub(crate) fn column_names(columns: &[pim_domain::Column]) -> String {
    const MAX: usize = 12;
    let mut names: Vec<String> = columns
        .iter()
        .take(MAX)
        .map(|c| format!("{:?}", crate::cells::shorten(&c.name)))
        .collect();
    if columns.len() > MAX {
        names.push(format!("and {} more", columns.len() - MAX));
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// What can be read of an unreadable row's identity: the caller and the claims' object id.
fn row_identities<C: RowCells + ?Sized>(row: Row<'_, C>, cols: &Cols) -> Vec<String> {
    let mut ignored = Vec::new();
    let oid = claims_object_id(row, cols, 0, "", &mut ignored);
    identity_keys([row.str(cols.caller), oid.as_deref()])
}

impl Group {
    /// The problems reading the object id gave on the rows the activity's object id is taken
    /// from (see [`build_activity`]).
    fn take_problems(&mut self, problems: &mut Problems) {
        for p in self.first.take_object_id_problems() {
            problems.push(p);
        }
        if !self.first.has(Snapshot::OBJECT_ID)
            && let StatusRow::Row(s) = &mut self.status
        {
            for p in s.take_object_id_problems() {
                problems.push(p);
            }
        }
    }
}

/// Operations whose activities are built together in [`AzureActivityParser::finish`]: enough
/// to be worth a second thread, few enough that the snapshots and the activities built from
/// them are not both held for long.
const BUILD_CHUNK: usize = 16_384;

/// The activities of `groups.get(i)` for each `i` of `which`, in that order.
fn build_activities(
    groups: &Groups,
    arena: &Arena,
    which: &[usize],
    texts: &mut Interner,
) -> Vec<Activity> {
    which
        .iter()
        .filter_map(|&i| groups.get(i).map(|g| build_activity(g, arena, texts)))
        .collect()
}

/// One shared copy of each distinct text of the fields that repeat across operations (the
/// operation name, the caller and its object id, the subscription, resource group and
/// provider): a day's operations hold a few thousand of them, not one each. Resource and
/// correlation ids, nearly all distinct, are not looked up.
#[derive(Default)]
struct Interner {
    texts: HashSet<SharedText, KeyHasher>,
}

impl Interner {
    fn get(&mut self, text: &str) -> SharedText {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        let shared = SharedText::from(text);
        self.texts.insert(shared.clone());
        shared
    }
}

/// Reorders `items` so that `items[k]` is what `items[from[k]]` was, `from` being a
/// permutation of the positions, in place: each cycle of the permutation is followed with
/// swaps. (`from` is used up as it goes.)
fn permute<T>(items: &mut [T], mut from: Vec<usize>) {
    if from.len() != items.len() {
        return;
    }
    for start in 0..items.len() {
        let mut k = start;
        // `from[k] == k` marks a position already done (or in place from the start).
        while from[k] != k {
            let src = from[k];
            from[k] = k;
            if src == start {
                break;
            }
            items.swap(k, src);
            k = src;
        }
    }
}

fn build_activity(g: &Group, arena: &Arena, texts: &mut Interner) -> Activity {
    let Group {
        state,
        first,
        status: status_row,
        ..
    } = g;
    // An operation never seen ending is in progress, whatever its last row said.
    let status = if state.status.is_in_progress() {
        ActivityStatus::InProgress
    } else {
        state.status
    };
    // Fields come from the first row, else from the row that set the status: some columns
    // (claims, resource group) are only filled on some of an operation's rows.
    let pick = |field: usize| {
        first
            .get(arena, field)
            .or_else(|| status_row.row().and_then(|s| s.get(arena, field)))
    };
    let mut shared = |field: usize| pick(field).map(|text| texts.get(text));
    Activity {
        time: state.first_time,
        operation: shared(Snapshot::OPERATION).unwrap_or_default(),
        status,
        resource_id: pick(Snapshot::RESOURCE).map(SharedText::from),
        resource_group: shared(Snapshot::RESOURCE_GROUP),
        subscription_id: shared(Snapshot::SUBSCRIPTION),
        provider: shared(Snapshot::PROVIDER),
        source: ActivitySource::AzureActivity,
        caller: shared(Snapshot::CALLER),
        caller_object_id: shared(Snapshot::OBJECT_ID),
        correlation_id: pick(Snapshot::CORRELATION).map(SharedText::from),
        targets: Vec::new(),
    }
}

/// The caller's object id: the server-extracted [`CALLER_OBJECT_ID_COLUMN`] when the query
/// returned it, else from `Claims_d` (or legacy `Claims`): the `objectidentifier` claim, else
/// `oid`.
fn claims_object_id<'r, C: RowCells + ?Sized>(
    row: Row<'r, C>,
    cols: &Cols,
    position: usize,
    source: &str,
    problems: &mut Vec<DataProblem>,
) -> Option<Cow<'r, str>> {
    if let Some(oid) = row.str(cols.object_id) {
        return Some(Cow::Borrowed(oid));
    }
    for (col, field) in cols.claims.iter().zip(["Claims_d", "Claims"]) {
        let Some(v) = row.cell(*col) else {
            continue;
        };
        let found = match v {
            CellRef::Other(v @ Value::Object(_)) => oid_from_object(v),
            CellRef::Str(s) => oid_from_text(s).or_else(|| {
                // The quick scan missed (escaped slashes, odd spacing): parse fully, but only
                // when the text could hold the claim at all.
                if !(s.contains("objectidentifier") || s.contains("oid")) {
                    return None;
                }
                match serde_json::from_str::<Value>(s) {
                    Ok(parsed) => oid_from_object(&parsed).map(|o| Cow::Owned(o.into_owned())),
                    Err(e) => {
                        problems.push(DataProblem::field(
                            source,
                            position,
                            field,
                            format!("not valid JSON ({e})"),
                        ));
                        None
                    }
                }
            }),
            CellRef::Null => None,
            CellRef::Other(other) => {
                problems.push(DataProblem::field(
                    source,
                    position,
                    field,
                    format!("expected claims as JSON, found {}", json_kind(other)),
                ));
                None
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn oid_from_object(claims: &Value) -> Option<Cow<'_, str>> {
    get_ci(claims, OBJECT_ID_CLAIM)
        .or_else(|| get_ci(claims, "oid"))
        .and_then(scalar_text)
}

/// Finds `"<claim>": "<value>"` in JSON text without parsing the whole (often kilobytes long)
/// claims object.
fn oid_from_text(text: &str) -> Option<Cow<'_, str>> {
    // The searchers are built once: building one costs more than searching a claims text.
    static FINDERS: std::sync::OnceLock<[memchr::memmem::Finder<'static>; 2]> =
        std::sync::OnceLock::new();
    let finders = FINDERS.get_or_init(|| {
        [
            memchr::memmem::Finder::new(OBJECT_ID_CLAIM),
            memchr::memmem::Finder::new("oid"),
        ]
    });
    for (claim, finder) in [OBJECT_ID_CLAIM, "oid"].into_iter().zip(finders) {
        let needle_len = claim.len() + 2;
        let mut from = 0;
        while let Some(pos) = finder.find(&text.as_bytes()[from..]) {
            let at = from + pos;
            from = at + claim.len();
            let quoted = at > 0
                && text.as_bytes()[at - 1] == b'"'
                && text.as_bytes().get(at + claim.len()) == Some(&b'"');
            if !quoted {
                continue;
            }
            let rest = text[at - 1 + needle_len..].trim_start();
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
                let value = body[..end].trim();
                if value.is_empty() {
                    continue;
                }
                return Some(Cow::Borrowed(value));
            }
            let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
            if let Some(Ok(v)) = values.next()
                && let Some(s) = owned_text(&v)
            {
                return Some(Cow::Owned(s));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::audit_table;
    use serde_json::json;

    fn row(t: &str, op: &str, status: &str, corr: &str) -> Value {
        json!({
            "TimeGenerated": t, "Caller": "jane@contoso.com", "OperationNameValue": op,
            "ActivityStatusValue": status, "CategoryValue": "Administrative",
            "_ResourceId": "/subscriptions/s/resourcegroups/rg-prod-web/providers/microsoft.compute/virtualmachines/web01",
            "ResourceGroup": "RG-PROD-WEB", "SubscriptionId": "s", "CorrelationId": corr,
            "ResourceProviderValue": "Microsoft.Compute",
        })
    }

    const RESTART: &str = "MICROSOFT.COMPUTE/VIRTUALMACHINES/RESTART/ACTION";

    #[test]
    fn the_reference_sample_collapses_into_one_success() {
        let mut success = row(
            "2026-11-20T09:21:40Z",
            "Microsoft.Compute/virtualMachines/restart/action",
            "Success",
            "c1",
        );
        success["Claims_d"] = json!({OBJECT_ID_CLAIM: "3f1e-oid"});
        let rows = vec![
            row("2026-11-20T09:20:12Z", RESTART, "Accept", "c1"),
            success,
            row("2026-11-20T09:20:11Z", RESTART, "Start", "c1"),
            json!({"TimeGenerated": "2026-11-20T09:25:02Z", "Caller": "8c9071-spn-oid",
                   "OperationNameValue": "Microsoft.Storage/storageAccounts/listKeys/action",
                   "ActivityStatusValue": "Success", "CategoryValue": "Administrative",
                   "CorrelationId": "d7"}),
        ];
        let p = parse_azure_activity(&audit_table(rows), "AzureActivity", false);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.rows_read, 4);
        assert_eq!(p.activities.len(), 2);
        let a = &p.activities[0];
        assert_eq!(a.time, time::macros::datetime!(2026-11-20 09:20:11 UTC));
        assert_eq!(a.status, ActivityStatus::Succeeded);
        assert_eq!(a.operation, RESTART);
        assert_eq!(a.caller_object_id.as_deref(), Some("3f1e-oid"));
        assert_eq!(a.resource_name(), Some("web01"));
        assert_eq!(a.provider.as_deref(), Some("Microsoft.Compute"));
        assert_eq!(p.activities[1].caller.as_deref(), Some("8c9071-spn-oid"));
    }

    #[test]
    fn every_status_spelling() {
        // An operation that only started or was accepted is in progress at the end of the scan.
        for (raw, want) in [
            ("Start", ActivityStatus::InProgress),
            ("started", ActivityStatus::InProgress),
            ("ACCEPT", ActivityStatus::InProgress),
            ("Accepted", ActivityStatus::InProgress),
            ("success", ActivityStatus::Succeeded),
            ("Succeeded", ActivityStatus::Succeeded),
            ("Failure", ActivityStatus::Failed),
            ("FAILED", ActivityStatus::Failed),
        ] {
            let all = parse_azure_activity(
                &audit_table(vec![row("2026-11-20T09:00:00Z", "op", raw, "c")]),
                "S",
                true,
            );
            assert_eq!(all.activities[0].status, want, "{raw}");
            let default = parse_azure_activity(
                &audit_table(vec![row("2026-11-20T09:00:00Z", "op", raw, "c")]),
                "S",
                false,
            );
            // In-progress operations are kept whatever include_failed says; failures are not.
            assert_eq!(
                default.activities.len(),
                usize::from(want != ActivityStatus::Failed),
                "{raw}"
            );
        }
    }

    #[test]
    fn unknown_or_missing_status_is_unreadable_evidence_with_its_identity_and_time() {
        let mut unknown = row("2026-11-20T09:00:00Z", "op", "Resolved", "a");
        unknown["Caller"] = json!("Jane@Contoso.com");
        let mut missing = row("2026-11-20T09:05:00Z", "op", "Success", "b");
        missing["ActivityStatusValue"] = json!(null);
        let mut no_time = row("4/28/2021 2:32 PM-ish", "op", "Success", "c");
        no_time["Caller"] = json!(null);
        let mut no_op = row("2026-11-20T09:07:00Z", "op", "Success", "d");
        no_op["OperationNameValue"] = json!(null);
        let good = row("2026-11-20T09:08:00Z", "op", "Success", "e");
        let p = parse_azure_activity(
            &audit_table(vec![unknown, missing, no_time, no_op, good]),
            "AzureActivity.json",
            true,
        );
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.failure, None);
        assert_eq!(p.unreadable.len(), 4);
        let u = &p.unreadable;
        assert_eq!(u[0].identities, ["jane@contoso.com"]);
        assert_eq!(
            u[0].time,
            Some(time::macros::datetime!(2026-11-20 09:00 UTC))
        );
        assert!(
            u[0].problem.message.contains("\"Resolved\""),
            "{}",
            u[0].problem
        );
        assert_eq!(u[1].problem.field.as_deref(), Some("ActivityStatusValue"));
        assert_eq!(u[2].time, None);
        assert!(u[2].identities.is_empty());
        assert_eq!(u[2].problem.field.as_deref(), Some("TimeGenerated"));
        assert_eq!(u[3].problem.field.as_deref(), Some("OperationNameValue"));
        assert_eq!(
            u.iter().map(|r| r.problem.row).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), Some(3)]
        );
        // Every unreadable row is also a problem.
        assert!(u.iter().all(|r| p.problems.contains(&r.problem)));
    }

    #[test]
    fn a_renamed_column_makes_the_table_unreadable() {
        let r = json!({"TimeGenerated [UTC]": "2026-11-20T09:00:00Z", "OperationNameValue": "op",
                       "ActivityStatusValue": "Success"});
        let p = parse_azure_activity(&audit_table(vec![r]), "AzureActivity.json", true);
        assert!(p.activities.is_empty());
        let failure = p.failure.unwrap();
        assert!(
            failure.starts_with("AzureActivity.json: no TimeGenerated column"),
            "{failure}"
        );
        assert!(failure.contains("\"TimeGenerated [UTC]\""), "{failure}");
    }

    #[test]
    fn legacy_columns_are_used_when_the_new_ones_are_empty() {
        let r = json!({"TimeGenerated": "2026-11-20T09:00:00Z", "OperationNameValue": "",
                       "OperationName": "Microsoft.Web/sites/write", "ActivityStatus": "Succeeded",
                       "Category": "administrative", "ResourceId": "/subscriptions/s/x",
                       "Claims": "{\"oid\": \"o1\"}"});
        let p = parse_azure_activity(&audit_table(vec![r]), "S", false);
        let a = &p.activities[0];
        assert_eq!(a.operation, "Microsoft.Web/sites/write");
        assert_eq!(a.resource_id.as_deref(), Some("/subscriptions/s/x"));
        assert_eq!(a.caller_object_id.as_deref(), Some("o1"));
    }

    #[test]
    fn the_server_extracted_object_id_and_the_raw_claims_read_the_same() {
        // The live query's projection: CallerObjectId, no claims column at all.
        let projected = json!({"TimeGenerated": "2026-11-20T09:00:00Z", "Caller": "jane@contoso.com",
                               "OperationNameValue": "Microsoft.Web/sites/write",
                               "ActivityStatusValue": "Success", "CategoryValue": "Administrative",
                               "CorrelationId": "c", CALLER_OBJECT_ID_COLUMN: "3f1e-oid"});
        // An export's raw row: the whole claims, as Claims_d and as the legacy string.
        let mut raw = projected.clone();
        raw.as_object_mut().unwrap().remove(CALLER_OBJECT_ID_COLUMN);
        raw["Claims_d"] = json!({OBJECT_ID_CLAIM: "3f1e-oid", "name": "Jane"});
        let mut legacy = raw.clone();
        legacy.as_object_mut().unwrap().remove("Claims_d");
        legacy["Claims"] = json!(format!("{{\"{OBJECT_ID_CLAIM}\": \"3f1e-oid\"}}"));
        // An empty extracted value (no claim on the row) falls back to the raw claims.
        let mut empty = raw.clone();
        empty[CALLER_OBJECT_ID_COLUMN] = json!("");
        let parsed: Vec<Activity> = [projected, raw, legacy, empty]
            .into_iter()
            .map(|r| {
                let p = parse_azure_activity(&audit_table(vec![r]), "S", false);
                assert!(p.problems.is_empty(), "{:?}", p.problems);
                p.activities.into_iter().next().unwrap()
            })
            .collect();
        for a in &parsed {
            assert_eq!(a.caller_object_id.as_deref(), Some("3f1e-oid"));
            assert_eq!(a, &parsed[0]);
        }
    }

    #[test]
    fn the_key_index_finds_equal_keys_only() {
        let mut index = KeyIndex::default();
        index.reserve(4);
        let long = "x".repeat(ARENA_BLOCK + 7);
        let key = |parts: [&str; 3]| {
            let mut key = Vec::new();
            for part in parts {
                push_op_key_part(&mut key, part);
            }
            key
        };
        // Stored keys, and keys read back from their groups (here, from `parts`).
        let mut parts: Vec<[String; 3]> = (0..40_000)
            .map(|i| [format!("c{i}"), format!("Op{i}"), "res".to_owned()])
            .collect();
        parts.insert(17, [long.clone(), String::new(), String::new()]);
        parts.push([String::new(), String::new(), String::new()]);
        let of = |g: usize| parts[g].each_ref().map(String::as_str);
        // Odd groups' keys are read back.
        fn read_back<'a>(parts: &'a [[String; 3]], probe: &'a [u8]) -> impl Fn(usize) -> bool + 'a {
            move |g| g % 2 == 1 && key_is(probe, parts[g].each_ref().map(String::as_bytes))
        }
        for g in 0..parts.len() {
            let k = key(of(g));
            let (hash, found) = index.find(&k, read_back(&parts, &k));
            assert_eq!(found, None, "{g}");
            index.insert(hash, (g % 2 == 0).then_some(k.as_slice()), g);
        }
        // Several blocks, one of them the long key's own.
        assert!(index.keys.blocks.len() >= 2, "{}", index.keys.blocks.len());
        for g in 0..parts.len() {
            let k = key(of(g));
            assert_eq!(index.find(&k, read_back(&parts, &k)).1, Some(g), "{g}");
            // Names compare case-insensitively.
            let upper = key(of(g).map(str::to_uppercase).each_ref().map(String::as_str));
            assert_eq!(
                index.find(&upper, read_back(&parts, &upper)).1,
                Some(g),
                "{g}"
            );
        }
        let near = key([&long[1..], "", ""]);
        assert_eq!(index.find(&near, read_back(&parts, &near)).1, None);
        let near = key(["c1", "op1", "re"]);
        assert_eq!(index.find(&near, read_back(&parts, &near)).1, None);
        let moved = key(["c1o", "p1", "res"]);
        assert_eq!(index.find(&moved, read_back(&parts, &moved)).1, None);
        // A key read back from its group is stored once the group can no longer give it.
        let k = key(of(1));
        let (hash, _) = index.find(&k, read_back(&parts, &k));
        index.keep_text(hash, 1, &k);
        assert_eq!(index.find(&k, |_| false).1, Some(1));
        // Two keys with one hash (as a collision would give): each is found by its own text.
        let (a, b) = (key(["a", "", ""]), key(["b", "", ""]));
        let (hash, _) = index.find(&a, |_| false);
        index.insert(hash, Some(&b), 1_000_000);
        assert_eq!(index.find(&a, |_| false).1, None);
        index.insert(hash, Some(&a), 1_000_001);
        assert_eq!(index.find(&a, |_| false).1, Some(1_000_001));
    }

    #[test]
    fn permute_moves_items_where_a_stable_sort_puts_them() {
        let items: Vec<(u32, usize)> = (0..1000).map(|i| ((i * 7919 % 101) as u32, i)).collect();
        let mut order: Vec<(u32, usize)> = items.iter().map(|&(t, i)| (t, i)).collect();
        order.sort_unstable();
        let mut permuted = items.clone();
        permute(&mut permuted, order.iter().map(|&(_, i)| i).collect());
        let mut sorted = items;
        sorted.sort_by_key(|&(t, _)| t);
        assert_eq!(permuted, sorted);
        let mut one = vec!["a"];
        permute(&mut one, vec![0]);
        assert_eq!(one, ["a"]);
    }

    /// Enough operations for several arena blocks, operation chunks and build chunks, with
    /// later rows longer and shorter than the ones they replace, an earlier row arriving last,
    /// fields missing from the first row, ties in time and one field larger than a block: the
    /// activities are the ones each operation's rows give on their own, in a stable time order.
    #[test]
    fn many_operations_build_as_each_alone_would() {
        let n = BUILD_CHUNK + 5_000;
        let at = |k: usize, extra: i64| {
            let t = time::macros::datetime!(2026-11-20 00:00 UTC)
                + time::Duration::seconds((k * 7919 % 20_000) as i64 + extra);
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let op_row = |k: usize, extra: i64, status: &str, caller: String, rg: bool| {
            let resource = if k == 12_345 {
                format!("/r/{}", "x".repeat(ARENA_BLOCK + ARENA_BLOCK / 2))
            } else {
                format!("/subscriptions/s/r/{k}/{}", "p".repeat(k % 300))
            };
            let mut r = json!({
                "TimeGenerated": at(k, extra), "Caller": caller,
                "OperationNameValue": format!("Microsoft.Op{}/write", k % 7),
                "ActivityStatusValue": status, "CategoryValue": "Administrative",
                "_ResourceId": resource, "CorrelationId": format!("c{k}"),
                "Claims_d": {OBJECT_ID_CLAIM: format!("oid-{k}")},
            });
            if rg {
                r["ResourceGroup"] = json!(format!("rg-{}", k % 13));
            }
            r
        };
        let mut per_op: Vec<Vec<Value>> = (0..n)
            .map(|k| {
                vec![op_row(
                    k,
                    0,
                    "Start",
                    format!("u{k}@contoso.com"),
                    k % 2 == 1,
                )]
            })
            .collect();
        for (k, rows) in per_op.iter_mut().enumerate() {
            // The end row repeats the first row's fields (k % 3 == 1, odd k), or differs from it.
            let caller = match k % 3 {
                0 => format!("a-much-longer-caller-name-{k}@contoso.com"),
                1 => format!("u{k}@contoso.com"),
                _ => format!("u{k}@c.com"),
            };
            rows.push(op_row(k, 5, "Success", caller, k % 2 == 1 || k % 3 != 1));
            if k % 5 == 0 {
                let caller = if k % 10 == 0 {
                    format!("{}{k}@contoso.com", "l".repeat(k % 200 + 60))
                } else {
                    format!("{k}@c")
                };
                rows.push(op_row(k, 9, "Success", caller, true));
            }
            if k % 11 == 0 {
                let caller = format!("{}{k}@contoso.com", "e".repeat(k % 97));
                rows.push(op_row(k, -3, "Start", caller, k % 4 == 0));
            }
        }
        // Every operation's first row, then the rest, operations interleaved.
        let mut rows: Vec<Value> = per_op.iter().map(|r| r[0].clone()).collect();
        let most = per_op.iter().map(Vec::len).max().unwrap_or(0);
        for i in 1..most {
            rows.extend(per_op.iter().rev().filter_map(|r| r.get(i).cloned()));
        }
        let all = parse_azure_activity(&audit_table(rows), "S", true);
        assert!(all.problems.is_empty(), "{:?}", all.problems);
        assert_eq!(all.activities.len(), n);
        // The rules worked out on the rows themselves, without the parser: the first row is the
        // earliest (the first seen among equals), the status row the latest terminal one, else
        // the latest; fields come from the first row, else from the status row.
        let text = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let terminal = |r: &Value| text(r, "ActivityStatusValue").as_deref() == Some("Success");
        // Per operation: caller, resource group, resource id, correlation id.
        type Fields = (String, Option<String>, Option<String>, Option<String>);
        let mut naive: Vec<Fields> = Vec::new();
        let mut order: Vec<(String, usize)> = Vec::new();
        for rows in &per_op {
            let (mut first, mut status): (&Value, Option<&Value>) = (&rows[0], None);
            let mut status_row = &rows[0];
            for r in &rows[1..] {
                let new_first = text(r, "TimeGenerated") < text(first, "TimeGenerated");
                let replaces = match (terminal(r), terminal(status_row)) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => text(r, "TimeGenerated") >= text(status_row, "TimeGenerated"),
                };
                match (new_first, replaces) {
                    (true, true) => (first, status) = (r, None),
                    (true, false) => {
                        if status.is_none() {
                            status = Some(first);
                        }
                        first = r;
                    }
                    (false, true) => status = Some(r),
                    (false, false) => {}
                }
                if replaces {
                    status_row = r;
                }
            }
            let pick = |k: &str| text(first, k).or_else(|| status.and_then(|s| text(s, k)));
            order.push((
                text(first, "TimeGenerated").unwrap_or_default(),
                naive.len(),
            ));
            naive.push((
                pick("Caller").unwrap_or_default(),
                pick("ResourceGroup"),
                pick("_ResourceId"),
                pick("CorrelationId"),
            ));
        }
        order.sort();
        for (a, (_, i)) in all.activities.iter().zip(&order) {
            let (caller, rg, resource, correlation) = &naive[*i];
            assert_eq!(a.caller.as_deref(), Some(caller.as_str()));
            assert_eq!(a.resource_group.as_deref(), rg.as_deref());
            assert!(
                a.resource_id.as_deref() == resource.as_deref(),
                "resource of {correlation:?}"
            );
            assert_eq!(a.correlation_id.as_deref(), correlation.as_deref());
        }
        // And each operation's rows parsed on their own give the same activities.
        let mut want: Vec<Activity> = per_op
            .into_iter()
            .flat_map(|rows| parse_azure_activity(&audit_table(rows), "S", true).activities)
            .collect();
        want.sort_by_key(|a| a.time);
        assert!(all.activities == want, "the activities differ");
    }

    #[test]
    fn latest_terminal_row_wins_and_failures_need_include_failed() {
        let rows = vec![
            row("2026-11-20T09:00:00Z", "op", "Start", "c"),
            row("2026-11-20T09:01:00Z", "op", "Success", "c"),
            row("2026-11-20T09:02:00Z", "op", "Failure", "c"),
            row("2026-11-20T09:03:00Z", "op", "Accept", "c"),
        ];
        let p = parse_azure_activity(&audit_table(rows.clone()), "S", false);
        assert!(p.activities.is_empty());
        let p = parse_azure_activity(&audit_table(rows), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.activities[0].status, ActivityStatus::Failed);
    }

    #[test]
    fn different_correlation_or_resource_are_different_operations() {
        let mut other_res = row("2026-11-20T09:00:00Z", "op", "Success", "c");
        other_res["_ResourceId"] = json!("/subscriptions/s/other");
        let mut no_corr_a = row("2026-11-20T09:00:00Z", "op", "Success", "");
        no_corr_a["CorrelationId"] = json!(null);
        let no_corr_b = no_corr_a.clone();
        let rows = vec![
            row("2026-11-20T09:00:00Z", "op", "Success", "c"),
            row("2026-11-20T09:00:00Z", "OP", "Success", "C"),
            row("2026-11-20T09:00:00Z", "op", "Success", "d"),
            other_res,
            no_corr_a,
            no_corr_b,
        ];
        let p = parse_azure_activity(&audit_table(rows), "S", false);
        assert_eq!(p.activities.len(), 5);
    }

    /// Operations that logged the same caller, operation name and resource group hold one
    /// copy of each of those texts; their resource and correlation ids stay their own.
    #[test]
    fn repeated_texts_are_shared_between_operations() {
        let rows = vec![
            row("2026-11-20T09:00:00Z", "op", "Success", "c1"),
            row("2026-11-20T09:05:00Z", "op", "Success", "c2"),
        ];
        let p = parse_azure_activity(&audit_table(rows), "S", false);
        let [a, b] = p.activities.as_slice() else {
            panic!("two operations expected, got {:?}", p.activities);
        };
        let shared = |x: &Option<SharedText>, y: &Option<SharedText>| match (x, y) {
            (Some(x), Some(y)) => SharedText::same_allocation(x, y),
            _ => false,
        };
        assert!(SharedText::same_allocation(&a.operation, &b.operation));
        assert!(shared(&a.caller, &b.caller));
        assert!(shared(&a.resource_group, &b.resource_group));
        assert_eq!(a.resource_id, b.resource_id);
        assert!(!shared(&a.resource_id, &b.resource_id));
        assert_eq!(a.correlation_id.as_deref(), Some("c1"));
        assert_eq!(b.correlation_id.as_deref(), Some("c2"));
    }

    /// An operation whose earliest row names it by its operation id alone, between rows that
    /// name it by correlation id in other cases: one operation, whatever order the rows come
    /// in (the key is then no longer the first row's fields, and is kept as text).
    #[test]
    fn an_operation_named_by_operation_id_on_one_row_stays_one_operation() {
        let by_corr = |t: &str, status: &str, corr: &str| {
            let mut r = row(t, RESTART, status, corr);
            r["OperationId"] = json!("other");
            r
        };
        let mut by_op_id = row(
            "2026-11-20T09:00:00Z",
            "microsoft.compute/virtualmachines/restart/action",
            "Start",
            "",
        );
        by_op_id["CorrelationId"] = json!(null);
        by_op_id["OperationId"] = json!("C-1");
        let rows = [
            by_corr("2026-11-20T09:00:05Z", "Accept", "c-1"),
            by_op_id,
            by_corr("2026-11-20T09:00:09Z", "Success", "C-1"),
            by_corr("2026-11-20T09:00:07Z", "Accept", "c-1"),
        ];
        for order in [[0, 1, 2, 3], [1, 0, 3, 2], [0, 2, 1, 3], [3, 1, 0, 2]] {
            let table = audit_table(order.iter().map(|&i| rows[i].clone()).collect());
            let p = parse_azure_activity(&table, "S", false);
            assert_eq!(p.activities.len(), 1, "{order:?}");
            let a = &p.activities[0];
            assert_eq!(a.status, ActivityStatus::Succeeded, "{order:?}");
            assert_eq!(
                a.time,
                time::macros::datetime!(2026-11-20 09:00:00 UTC),
                "{order:?}"
            );
        }
    }

    /// The cells of the columns a parser does not read can be null (a streamed export does
    /// not hand them over): the same activities, problems and unreadable rows, on good rows,
    /// legacy columns, bad cells and rows with no correlation id alike.
    #[test]
    fn the_columns_a_parser_reads_are_all_it_needs() {
        let mut rows = Vec::new();
        for (i, status) in ["Start", "Success", "Failure", "Accept", "Bogus", ""]
            .iter()
            .enumerate()
        {
            let mut r = row(
                &format!("2026-11-20T09:00:0{i}Z"),
                RESTART,
                status,
                &format!("c{}", i % 3),
            );
            r["Properties_d"] = json!({"statusCode": "OK", "entity": "/subscriptions/s"});
            r["Authorization_d"] = json!("{\"action\":\"x\"}");
            r["HTTPRequest"] = json!("{\"clientIpAddress\":\"10.0.0.1\"}");
            r["Claims_d"] = json!(format!("{{\"oid\": \"oid-{i}\"}}"));
            r["OperationId"] = json!(format!("op-{i}"));
            if i == 3 {
                r["CorrelationId"] = json!(null);
            }
            if i == 4 {
                r["Claims_d"] = json!("{\"oid\": [1, broken");
            }
            rows.push(r);
        }
        let mut legacy = row("2026-11-20T09:00:09Z", "", "", "c9");
        legacy["OperationNameValue"] = json!("");
        legacy["OperationName"] = json!("Microsoft.Web/sites/write");
        legacy["ActivityStatus"] = json!("Succeeded");
        legacy["ResourceId"] =
            json!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/w");
        rows.push(legacy);
        let table = audit_table(rows);
        let read = AzureActivityParser::columns_read(&table.columns);
        for (c, r) in table.columns.iter().zip(&read) {
            let unread =
                ["Properties_d", "Authorization_d", "HTTPRequest"].contains(&c.name.as_str());
            assert_eq!(*r, !unread, "{}", c.name);
        }
        let mut nulled = table.clone();
        for cells in &mut nulled.rows {
            for (cell, r) in cells.iter_mut().zip(&read) {
                if !r {
                    *cell = Value::Null;
                }
            }
        }
        let whole = parse_azure_activity(&table, "S", true);
        let part = parse_azure_activity(&nulled, "S", true);
        assert_eq!(part.activities, whole.activities);
        assert_eq!(part.problems, whole.problems);
        assert_eq!(part.unreadable, whole.unreadable);
        assert_eq!(whole.activities.len(), 5);
        assert!(!whole.problems.is_empty());
    }

    #[test]
    fn non_administrative_rows_are_ignored_but_odd_case_is_not() {
        let mut policy = row("2026-11-20T09:00:00Z", "op1", "Success", "a");
        policy["CategoryValue"] = json!("Policy");
        let mut upper = row("2026-11-20T09:00:00Z", "op2", "Success", "b");
        upper["CategoryValue"] = json!("ADMINISTRATIVE");
        let p = parse_azure_activity(&audit_table(vec![policy, upper]), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.activities[0].operation, "op2");
    }

    #[test]
    fn bad_times_are_problems_and_skipped() {
        let mut bad = row("yesterday", "op", "Success", "a");
        let mut num = row("x", "op", "Success", "b");
        num["TimeGenerated"] = json!(5);
        let mut none = row("x", "op", "Success", "c");
        none["TimeGenerated"] = json!(null);
        bad["Caller"] = json!("x".repeat(100_000));
        let good = row("2026-11-20T09:00:00Z", "op", "Success", "d");
        let p = parse_azure_activity(&audit_table(vec![bad, num, none, good]), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.problems.len(), 3);
        for (i, pr) in p.problems.iter().enumerate() {
            assert_eq!(pr.row, Some(i));
            assert_eq!(pr.field.as_deref(), Some("TimeGenerated"));
        }
    }

    #[test]
    fn garbage_cells_and_missing_columns_do_not_panic() {
        let rows = vec![
            json!({"TimeGenerated": "2026-11-20T09:00:00Z", "OperationNameValue": ["x"],
                   "Caller": {"a": 1}, "Claims_d": 17}),
            json!({"TimeGenerated": "2026-11-20T09:00:00Z", "OperationNameValue": "op\u{0}\u{1b}",
                   "ActivityStatusValue": "Success", "Claims_d": "{\"oid\": [1, broken"}),
        ];
        let p = parse_azure_activity(&audit_table(rows), "S", true);
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.activities[0].operation, "op\u{0}\u{1b}");
        assert!(
            p.problems
                .iter()
                .any(|x| x.field.as_deref() == Some("OperationNameValue"))
        );
        assert!(
            p.problems
                .iter()
                .any(|x| x.field.as_deref() == Some("Claims_d"))
        );
        let empty = parse_azure_activity(&Table::default(), "S", true);
        assert!(empty.activities.is_empty() && empty.problems.is_empty());
    }

    #[test]
    fn a_missing_required_column_is_one_problem() {
        let rows: Vec<Value> = (0..5)
            .map(|_| json!({"Caller": "x", "OperationNameValue": "op", "ActivityStatusValue": "Success"}))
            .collect();
        let p = parse_azure_activity(&audit_table(rows), "S", true);
        assert!(p.activities.is_empty());
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].message.contains("no TimeGenerated column"));
        assert_eq!(p.rows_read, 5);
        assert!(
            p.failure
                .is_some_and(|f| f.contains("no TimeGenerated column"))
        );
    }

    /// The baseline history keeps one entry per identity, operation and resource type, counts
    /// only the rows of its period that the parser reads, and knows the earliest time of all.
    #[test]
    fn history_keeps_one_entry_per_identity_operation_and_type() {
        let mut rows = Vec::new();
        for i in 0..50 {
            let mut r = row("2026-11-10T09:00:00Z", RESTART, "Success", &format!("c{i}"));
            r["_ResourceId"] = json!(format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{i}"
            ));
            r["Claims_d"] = json!({OBJECT_ID_CLAIM: "OID-J"});
            rows.push(r);
        }
        // Outside the period, a PIM step, an unreadable status, another category: not counted.
        rows.push(row("2026-10-01T09:00:00Z", "op-early", "Success", "e"));
        rows.push(row(
            "2026-11-10T09:00:00Z",
            "Add member to role completed (PIM activation)",
            "Success",
            "p",
        ));
        rows.push(row("2026-11-10T09:00:00Z", "op-odd", "Resolved", "o"));
        let mut policy = row("2026-11-10T09:00:00Z", "op-policy", "Success", "q");
        policy["CategoryValue"] = json!("Policy");
        rows.push(policy);
        let t = audit_table(rows);
        let mut h = AzureActivityHistory::new(
            &t.columns,
            "AzureActivity.json",
            time::macros::datetime!(2026-11-01 00:00 UTC),
            time::macros::datetime!(2026-11-20 00:00 UTC),
        );
        for r in &t.rows {
            h.row(r);
        }
        let got = h.finish();
        assert_eq!(got.rows_read, 54);
        assert_eq!(got.failure, None);
        assert_eq!(
            got.entries,
            [(
                "jane@contoso.com".to_owned(),
                "oid-j".to_owned(),
                pim_domain::baseline::OperationKey::new(
                    RESTART,
                    "microsoft.compute/virtualmachines"
                )
            )]
        );
        assert_eq!(
            got.earliest,
            Some(time::macros::datetime!(2026-10-01 09:00 UTC))
        );
    }

    #[test]
    fn the_ascii_resource_type_is_arm_resource_type() {
        for id in [
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
            "  /SUBSCRIPTIONS/S/PROVIDERS/Microsoft.Web/sites  ",
            "/subscriptions/s/providers/Microsoft.Web/",
            "/subscriptions/s/providers//sites/x",
            "/subscriptions/s/providers/ a / b /c",
            "/a/Providers/x/y/providers/z/w",
            "/providers/x",
            "/providers",
            "no providers here",
            "",
        ] {
            let mut out = String::new();
            ascii_resource_type(id, &mut out);
            assert_eq!(out, pim_domain::baseline::arm_resource_type(id), "{id:?}");
        }
    }

    #[test]
    fn claims_quick_scan_handles_spacing_and_other_keys() {
        let text = format!(r#"{{"appid":"x", "notoid":"n", "{OBJECT_ID_CLAIM}" :  "abc" }}"#);
        assert_eq!(oid_from_text(&text).as_deref(), Some("abc"));
        assert_eq!(oid_from_text(r#"{"oid":"o"}"#).as_deref(), Some("o"));
        assert_eq!(oid_from_text(r#"{"xoid":"o"}"#), None);
        assert_eq!(oid_from_text(r#"{"oid""#), None);
        // Values read in place and values serde_json unescapes read alike.
        assert_eq!(oid_from_text(r#"{"oid":" o "}"#).as_deref(), Some("o"));
        assert_eq!(oid_from_text(r#"{"oid":"o\u0031"}"#).as_deref(), Some("o1"));
        assert_eq!(
            oid_from_text(r#"{"oid":"  ","oid":"later"}"#).as_deref(),
            Some("later")
        );
        assert_eq!(oid_from_text(r#"{"oid":5}"#).as_deref(), Some("5"));
    }

    /// Correctness at the benchmark's scale (500,000 rows collapse into 166,666 operations);
    /// the timing is measured by `examples/bench_pipeline.rs`, not here. Run with
    /// `cargo test --release -p pim-correlate -- --ignored`.
    #[test]
    #[ignore = "slow in debug builds; a scale check, run in release"]
    fn half_a_million_rows_collapse_correctly() {
        let t = big_table(500_000);
        let p = parse_azure_activity(&t, "S", false);
        assert_eq!(p.activities.len(), 500_000 / 3);
        assert!(p.problems.is_empty());
    }

    #[test]
    fn activities_built_on_two_threads_keep_the_time_order() {
        // More operations than one chunk of `finish`, given latest first, so that the order
        // comes from the sort and the chunks' halves are put back in it.
        let ops = BUILD_CHUNK + BUILD_CHUNK / 2;
        let mut t = big_table(3 * ops);
        t.rows.reverse();
        let p = parse_azure_activity(&t, "S", false);
        assert!(p.problems.is_empty());
        let ids: Vec<&str> = p
            .activities
            .iter()
            .filter_map(|a| a.correlation_id.as_deref())
            .collect();
        let expected: Vec<String> = (0..ops).map(|op| format!("corr-{op}")).collect();
        assert_eq!(ids, expected);
        assert!(p.activities.windows(2).all(|w| w[0].time < w[1].time));
        assert!(
            p.activities
                .iter()
                .all(|a| a.status == ActivityStatus::Succeeded)
        );
    }

    pub(crate) fn big_table(rows: usize) -> Table {
        let claims = format!(
            r#"{{"aud":"https://management.core.windows.net/","appid":"04b07795","{OBJECT_ID_CLAIM}":"oid-1","name":"Jane"}}"#
        );
        let statuses = ["Start", "Accept", "Success"];
        let rows = (0..rows)
            .map(|i| {
                let op = i / 3;
                vec![
                    json!(format!("2026-11-20T{:02}:{:02}:{:02}.1234567Z", (op / 3600) % 24, (op / 60) % 60, op % 60)),
                    json!(format!("user{}@contoso.com", op % 1000)),
                    json!("Microsoft.Compute/virtualMachines/write"),
                    json!(statuses[i % 3]),
                    json!("Administrative"),
                    json!(format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{op}")),
                    json!(format!("corr-{op}")),
                    json!(claims.clone()),
                ]
            })
            .collect();
        let cols = [
            "TimeGenerated",
            "Caller",
            "OperationNameValue",
            "ActivityStatusValue",
            "CategoryValue",
            "_ResourceId",
            "CorrelationId",
            "Claims_d",
        ];
        Table {
            name: "AzureActivity".into(),
            columns: cols
                .iter()
                .map(|c| pim_domain::Column {
                    name: (*c).into(),
                    kind: String::new(),
                })
                .collect(),
            rows,
        }
    }
}
