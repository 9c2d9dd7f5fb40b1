//! What the fake does to rows before they go on the wire, as the service would: filter them
//! by time and identity, project the columns the query asks for, and cut the result at the
//! query API's limits with the exact truncation response (reference §9.1, §9.2).
//!
//! The fake does not run KQL. It reads the parts of the query text that our own builder
//! (`pim_kql::scan`) emits, and nothing else:
//!
//! - the time filter `TimeGenerated between (datetime(a) .. datetime(b))` (closed) or
//!   `TimeGenerated >= datetime(a) and TimeGenerated < datetime(b)` (half-open), intersected
//!   with the request's `timespan` (read as closed, the lenient reading: the query's own filter
//!   then decides every boundary, so a split that counted a boundary row twice would show);
//! - the identity lists `Caller in~ (…)`, `CallerObjectId in~ (…)`,
//!   `tostring(InitiatedBy.user.userPrincipalName) in~ (…)` and `tostring(InitiatedBy.user.id)
//!   in~ (…)`, OR-ed as the builder writes them;
//! - the `| project a, b, c` line (bare column names only; anything else leaves every column),
//!   computing `CallerObjectId` from the row's claims when the table has no such column;
//! - the behaviour-baseline `| summarize Count = count() by Upn, …` and `| summarize
//!   Activations = count() by Upn, …` lines (issue 14): the kept rows are then grouped by the
//!   key the query computes (lower-cased caller or initiator, operation, ARM type or target
//!   type), with the query's `LoggedByService` and activation-operation filters applied, and
//!   the groups are the result, cut at the limits like any other.
//!
//! A query with none of these (free-form KQL) gets every row and column. Rows whose
//! `TimeGenerated` cannot be read are kept: the service never stores such rows, and tests that
//! serve malformed rows want the client to see them.

use std::collections::HashSet;

use pim_domain::timestamp::parse_timestamp;
use pim_domain::{Column, Table};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::DynamicCells;

/// The claim that carries a caller's object id (reference §2.3).
const OBJECT_ID_CLAIM: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

/// The column `pim_kql`'s AzureActivity query computes on the server from the claims.
pub const CALLER_OBJECT_ID: &str = "CallerObjectId";

/// The query API's limits on one result (reference §9.1). [`Default`] is the service's: 500,000
/// rows and about 100 MiB of raw data. Tests set them lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most rows in one result.
    pub max_rows: usize,
    /// Most bytes of rows (as serialised JSON) in one result.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: 500_000,
            max_bytes: 100 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// No limits at all.
    pub const NONE: Limits = Limits {
        max_rows: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// The rows a query asks for, as the fake reads them from the query text and the request's
/// `timespan`; handed to a [`RowGenerator`] so it need not make rows that would be dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowScope {
    /// Rows at or after this time.
    pub start: Option<OffsetDateTime>,
    /// Rows before this time (or at it, when `end_inclusive`).
    pub end: Option<OffsetDateTime>,
    /// Whether a row at exactly `end` is in scope.
    pub end_inclusive: bool,
    /// Every UPN and object id the query names, lower-cased; `None` when it names none (then
    /// every identity is in scope).
    pub names: Option<HashSet<String>>,
}

impl RowScope {
    /// Whether a row at `t` is in the time range.
    pub fn contains_time(&self, t: OffsetDateTime) -> bool {
        self.start.is_none_or(|s| t >= s)
            && self
                .end
                .is_none_or(|e| t < e || (self.end_inclusive && t == e))
    }

    /// Whether `name` (a UPN or object id) is in scope.
    pub fn names_identity(&self, name: &str) -> bool {
        self.names
            .as_ref()
            .is_none_or(|n| n.contains(&name.to_lowercase()))
    }
}

/// Makes rows on demand, for volumes that would not fit in memory as a [`Table`] (the
/// `bench_live --volume` load: 2,000,000 rows with 1.5 KB of claims each).
///
/// The fake still filters, projects and cuts what the generator emits, so a generator may
/// emit more than the scope asks for; emitting less is a bug in the generator.
pub trait RowGenerator: Send + Sync {
    /// The columns of every row, in order.
    fn columns(&self) -> Vec<Column>;

    /// Emits the rows in `scope` (and possibly more), in any order. `emit` returns `false`
    /// once the result is cut: stop then.
    fn generate(&self, scope: &RowScope, emit: &mut dyn FnMut(Vec<Value>) -> bool);
}

/// The identity clauses of a query, lower-cased values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Identities {
    callers: HashSet<String>,
    object_ids: HashSet<String>,
    initiated_upns: HashSet<String>,
    initiated_ids: HashSet<String>,
}

impl Identities {
    fn is_empty(&self) -> bool {
        self.callers.is_empty()
            && self.object_ids.is_empty()
            && self.initiated_upns.is_empty()
            && self.initiated_ids.is_empty()
    }
}

/// What the fake read from one request.
#[derive(Debug, Clone, Default)]
pub(super) struct Request {
    pub scope: RowScope,
    identities: Option<Identities>,
    /// The projected columns, when the query has a plain `| project` line.
    project: Option<Vec<String>>,
    /// The behaviour-baseline summary the query asks for, if any.
    summary: Option<Summary>,
}

/// The two summaries `pim_kql`'s baseline builders write (issue 14), recognised by their
/// `| summarize` line. The fake aggregates the rows it keeps exactly as the KQL says: the
/// client cannot re-check an aggregate, so the fake must apply the query's own row filters
/// (`LoggedByService`, the activation operation) that it ignores for row-returning queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Summary {
    /// `Count = count() by Upn, ObjectId, Operation, ResourceType`, of AzureActivity or of the
    /// AuditLogs directory changes (`LoggedByService !~ "PIM"`).
    Operations,
    /// `Activations = count() by Upn, ObjectId` of the completed PIM activations.
    Activations,
}

impl Summary {
    fn read(kql: &str) -> Option<Self> {
        kql.lines().map(str::trim).find_map(|l| {
            if l.starts_with("| summarize Count = count() by Upn") {
                Some(Summary::Operations)
            } else if l.starts_with("| summarize Activations = count() by Upn") {
                Some(Summary::Activations)
            } else {
                None
            }
        })
    }
}

/// The groups of a summary being built.
struct Summarizer {
    kind: Summary,
    columns: SummaryCols,
    groups: std::collections::BTreeMap<Vec<String>, u64>,
}

/// Where the summary's inputs are.
struct SummaryCols {
    caller: Option<usize>,
    operation_value: Option<usize>,
    resource: [Option<usize>; 2],
    operation: [Option<usize>; 2],
    service: Option<usize>,
    targets: Option<usize>,
    initiated_by: Option<usize>,
}

impl Summarizer {
    fn new(kind: Summary, columns: &[Column]) -> Self {
        let c = |n: &str| columns.iter().position(|c| c.name == n);
        Self {
            kind,
            columns: SummaryCols {
                caller: c("Caller"),
                operation_value: c("OperationNameValue"),
                resource: [c("_ResourceId"), c("ResourceId")],
                operation: [c("OperationName"), c("ActivityDisplayName")],
                service: c("LoggedByService"),
                targets: c("TargetResources"),
                initiated_by: c("InitiatedBy"),
            },
            groups: std::collections::BTreeMap::new(),
        }
    }

    /// Adds one row the filters kept.
    fn add(&mut self, row: &[Value], cols: &Cols) {
        let s = &self.columns;
        let text = |i: Option<usize>| -> String {
            i.and_then(|i| row.get(i))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let json = |i: Option<usize>| -> Value {
            match i.and_then(|i| row.get(i)) {
                Some(Value::String(t)) => serde_json::from_str(t).unwrap_or(Value::Null),
                Some(other) => other.clone(),
                None => Value::Null,
            }
        };
        let key = if s.operation_value.is_some() {
            // AzureActivity.
            let resource = s
                .resource
                .iter()
                .map(|&i| text(i))
                .find(|r| !r.is_empty())
                .unwrap_or_default();
            vec![
                text(s.caller).to_lowercase(),
                claims_object_id(row, cols)
                    .unwrap_or_default()
                    .to_lowercase(),
                text(s.operation_value).to_lowercase(),
                pim_domain::baseline::arm_resource_type(&resource),
            ]
        } else {
            let service = text(s.service);
            let operation = s
                .operation
                .iter()
                .map(|&i| text(i))
                .find(|o| !o.is_empty())
                .unwrap_or_default();
            let pim = service.eq_ignore_ascii_case("PIM");
            let wanted = match self.kind {
                Summary::Operations => !pim,
                Summary::Activations => {
                    pim && operation
                        .eq_ignore_ascii_case("Add member to role completed (PIM activation)")
                }
            };
            if !wanted {
                return;
            }
            let by = json(s.initiated_by);
            let user = |k: &str| by["user"][k].as_str().unwrap_or_default().to_lowercase();
            let mut key = vec![user("userPrincipalName"), user("id")];
            if self.kind == Summary::Operations {
                let targets = json(s.targets);
                key.push(operation.to_lowercase());
                key.push(
                    targets[0]["type"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                );
            }
            key
        };
        *self.groups.entry(key).or_default() += 1;
    }

    fn columns(&self) -> Vec<Column> {
        let names: &[&str] = match self.kind {
            Summary::Operations => &["Upn", "ObjectId", "Operation", "ResourceType", "Count"],
            Summary::Activations => &["Upn", "ObjectId", "Activations"],
        };
        names
            .iter()
            .map(|n| Column {
                name: (*n).to_owned(),
                kind: if matches!(*n, "Count" | "Activations") {
                    "long".into()
                } else {
                    "string".into()
                },
            })
            .collect()
    }
}

impl Request {
    /// Reads the query text and the `timespan` (see the module docs).
    pub(super) fn read(kql: &str, timespan: Option<&str>) -> Self {
        let mut scope = RowScope::default();
        // The timespan, read as closed.
        if let Some((a, b)) = timespan.and_then(|t| t.split_once('/'))
            && let (Ok(a), Ok(b)) = (parse_timestamp(a.trim()), parse_timestamp(b.trim()))
        {
            scope.start = Some(a);
            scope.end = Some(b);
            scope.end_inclusive = true;
        }
        if let Some((a, b, inclusive)) = kql_time_filter(kql) {
            intersect(&mut scope, a, b, inclusive);
        }
        let identities = read_identities(kql).filter(|i| !i.is_empty());
        scope.names = identities.as_ref().map(|i| {
            i.callers
                .iter()
                .chain(&i.object_ids)
                .chain(&i.initiated_upns)
                .chain(&i.initiated_ids)
                .cloned()
                .collect()
        });
        Request {
            scope,
            identities,
            project: read_project(kql),
            summary: Summary::read(kql),
        }
    }
}

fn intersect(scope: &mut RowScope, a: OffsetDateTime, b: OffsetDateTime, inclusive: bool) {
    if scope.start.is_none_or(|s| a > s) {
        scope.start = Some(a);
    }
    match scope.end {
        Some(e) if e < b => {}
        Some(e) if e == b => scope.end_inclusive &= inclusive,
        _ => {
            scope.end = Some(b);
            scope.end_inclusive = inclusive;
        }
    }
}

/// `(start, end, end_inclusive)` of the builder's time filter.
fn kql_time_filter(kql: &str) -> Option<(OffsetDateTime, OffsetDateTime, bool)> {
    for line in kql.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("| where TimeGenerated between (") {
            let (a, rest) = datetime_arg(rest)?;
            let rest = rest.trim_start().strip_prefix("..")?;
            let (b, _) = datetime_arg(rest.trim_start())?;
            return Some((a, b, true));
        }
        if let Some(rest) = line.strip_prefix("| where TimeGenerated >= ") {
            let (a, rest) = datetime_arg(rest)?;
            let rest = rest.trim_start().strip_prefix("and TimeGenerated < ")?;
            let (b, _) = datetime_arg(rest)?;
            return Some((a, b, false));
        }
    }
    None
}

/// `datetime(2026-…Z)` at the start of `text`: the time and the rest.
fn datetime_arg(text: &str) -> Option<(OffsetDateTime, &str)> {
    let rest = text.strip_prefix("datetime(")?;
    let close = rest.find(')')?;
    let t = parse_timestamp(&rest[..close]).ok()?;
    Some((t, &rest[close + 1..]))
}

fn read_identities(kql: &str) -> Option<Identities> {
    let mut out = Identities::default();
    let mut found = false;
    for (marker, set) in [
        ("CallerObjectId in~ (", 1),
        ("Caller in~ (", 0),
        ("tostring(InitiatedBy.user.userPrincipalName) in~ (", 2),
        ("tostring(InitiatedBy.user.id) in~ (", 3),
    ] {
        for (at, _) in kql.match_indices(marker) {
            // `Caller in~ (` also ends `CallerObjectId in~ (`… no: it is preceded by "Object";
            // make sure a `Caller` match is the whole identifier.
            if set == 0 && kql[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let values = string_list(&kql[at + marker.len()..])?;
            found = true;
            let target = match set {
                0 => &mut out.callers,
                1 => &mut out.object_ids,
                2 => &mut out.initiated_upns,
                _ => &mut out.initiated_ids,
            };
            target.extend(values.into_iter().map(|v| v.to_lowercase()));
        }
    }
    found.then_some(out)
}

/// The values of a `h"a", "b")` list, up to its closing parenthesis, decoded as `pim_kql`
/// writes them (escapes `\\`, `\"`, `\n`, `\r`, `\t`).
fn string_list(text: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        match chars.next()? {
            ')' => return Some(values),
            'h' | 'H' => {
                if chars.next()? != '"' {
                    return None;
                }
            }
            '"' => {}
            _ => return None,
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => value.push(match chars.next()? {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    other => other,
                }),
                c => value.push(c),
            }
        }
        values.push(value);
    }
}

/// The column names of a plain `| project a, b, c` line.
fn read_project(kql: &str) -> Option<Vec<String>> {
    let line = kql
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("| project "))?;
    let names: Vec<String> = line.split(',').map(|n| n.trim().to_owned()).collect();
    let plain = names
        .iter()
        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'));
    plain.then_some(names)
}

/// The object id in a row's claims: `CallerObjectId`, else the `objectidentifier` (or `oid`)
/// claim of `Claims_d` / `Claims`, nested or as JSON text.
fn claims_object_id(row: &[Value], cols: &Cols) -> Option<String> {
    if let Some(v) = cols
        .object_id
        .and_then(|i| row.get(i))
        .and_then(Value::as_str)
        && !v.is_empty()
    {
        return Some(v.to_owned());
    }
    for i in cols.claims.iter().flatten() {
        let found = match row.get(*i) {
            Some(Value::Object(map)) => [OBJECT_ID_CLAIM, "oid"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str).map(str::to_owned)),
            Some(Value::String(text)) => claim_in_text(text),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The object-id claim in claims JSON text, without parsing all of it (the bench serves
/// millions of 1.5 KB claims): the value after the claim's key.
fn claim_in_text(text: &str) -> Option<String> {
    const QUOTED: [&str; 2] = [
        "\"http://schemas.microsoft.com/identity/claims/objectidentifier\"",
        "\"oid\"",
    ];
    for quoted in QUOTED {
        if let Some(at) = text.find(quoted) {
            let rest = text[at + quoted.len()..].trim_start().strip_prefix(':')?;
            let rest = rest.trim_start().strip_prefix('"')?;
            let end = rest.find('"')?;
            return Some(rest[..end].to_owned());
        }
    }
    None
}

/// `text` lower-cased, borrowed when it already is.
fn lower(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_uppercase) {
        std::borrow::Cow::Owned(text.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Column positions the filter and the projection read.
struct Cols {
    time: Option<usize>,
    caller: Option<usize>,
    object_id: Option<usize>,
    claims: [Option<usize>; 2],
    initiated_by: Option<usize>,
}

impl Cols {
    fn new(columns: &[Column]) -> Self {
        let c = |n: &str| columns.iter().position(|c| c.name == n);
        Self {
            time: c("TimeGenerated"),
            caller: c("Caller"),
            object_id: c(CALLER_OBJECT_ID),
            claims: [c("Claims_d"), c("Claims")],
            initiated_by: c("InitiatedBy"),
        }
    }
}

/// Turns source rows into the wire body: filter, project, cut at the limits.
pub(super) struct Writer<'a> {
    request: &'a Request,
    filtering: bool,
    limits: Limits,
    dynamic: DynamicCells,
    cols: Cols,
    /// For each output column, where it comes from.
    out: Vec<Source>,
    out_columns: Vec<Column>,
    is_dynamic: Vec<bool>,
    /// The body so far: for a row-returning query its opening (up to `"rows":[`) and the rows
    /// written, so that the answer is never copied once made; for a summary only the rows.
    rows: Vec<u8>,
    /// How many bytes of `rows` are the opening (not counted against the byte limit).
    opening: usize,
    row_count: usize,
    cut: Option<Cut>,
    /// Set for a baseline summary: rows are aggregated, and written by `finish`.
    summary: Option<Summarizer>,
    /// The last claims text whose object id was read, and that id: a generator repeats one
    /// identity's claims over many rows, and finding the claim in 1.5 KB of text per row was
    /// a large part of the fake's time at volume.
    last_claims: Option<(String, Option<String>)>,
}

/// The most bytes a body reserves up front (address space only: pages are touched as rows are
/// written), so that a ~100 MB answer is not grown and copied by doubling.
const RESERVE_BYTES: usize = 128 * 1024 * 1024;

#[derive(Clone, Copy)]
enum Source {
    Column(usize),
    ObjectId,
    Null,
}

/// Why a result was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Rows(usize),
    Bytes(usize),
}

impl<'a> Writer<'a> {
    pub(super) fn new(
        columns: &[Column],
        request: &'a Request,
        filtering: bool,
        limits: Limits,
        dynamic: DynamicCells,
    ) -> Self {
        let cols = Cols::new(columns);
        let summary = request
            .summary
            .filter(|_| filtering)
            .map(|kind| Summarizer::new(kind, columns));
        let (out, out_columns): (Vec<Source>, Vec<Column>) = match &request.project {
            Some(names) if filtering => names
                .iter()
                .map(|n| match columns.iter().position(|c| &c.name == n) {
                    Some(i) => (Source::Column(i), columns[i].clone()),
                    None if n == CALLER_OBJECT_ID => (
                        Source::ObjectId,
                        Column {
                            name: n.clone(),
                            kind: "string".into(),
                        },
                    ),
                    // A projected column the table lacks: the service would refuse the query;
                    // tests serve partial tables, so it is left out.
                    None => (
                        Source::Null,
                        Column {
                            name: String::new(),
                            kind: String::new(),
                        },
                    ),
                })
                .filter(|(s, _)| !matches!(s, Source::Null))
                .unzip(),
            _ => (
                (0..columns.len()).map(Source::Column).collect(),
                columns.to_vec(),
            ),
        };
        let is_dynamic = out_columns
            .iter()
            .map(|c| c.kind.eq_ignore_ascii_case("dynamic"))
            .collect();
        let mut rows = Vec::new();
        if summary.is_none() {
            rows.reserve(limits.max_bytes.min(RESERVE_BYTES).saturating_add(4096));
            opening(&mut rows, &out_columns);
        }
        let opening = rows.len();
        Self {
            request,
            filtering,
            limits,
            dynamic,
            cols,
            out,
            out_columns,
            is_dynamic,
            rows,
            opening,
            row_count: 0,
            cut: None,
            summary,
            last_claims: None,
        }
    }

    /// [`claims_object_id`], remembering the last claims text read.
    fn object_id(&mut self, row: &[Value]) -> Option<String> {
        let single_claims = match self.cols.claims {
            [Some(i), None] | [None, Some(i)] => Some(i),
            _ => None,
        };
        let text = match (self.cols.object_id, single_claims.and_then(|i| row.get(i))) {
            (None, Some(Value::String(text))) => text,
            _ => return claims_object_id(row, &self.cols),
        };
        if let Some((last, id)) = &self.last_claims
            && last == text
        {
            return id.clone();
        }
        let id = claims_object_id(row, &self.cols);
        self.last_claims = Some((text.clone(), id.clone()));
        id
    }

    fn keeps(&self, row: &[Value]) -> bool {
        if !self.filtering {
            return true;
        }
        let scope = &self.request.scope;
        if let Some(t) = self
            .cols
            .time
            .and_then(|i| row.get(i))
            .and_then(Value::as_str)
            .and_then(|t| parse_timestamp(t).ok())
            && !scope.contains_time(t)
        {
            return false;
        }
        let Some(ids) = &self.request.identities else {
            return true;
        };
        let caller = self
            .cols
            .caller
            .and_then(|i| row.get(i))
            .and_then(Value::as_str);
        if caller.is_some_and(|c| ids.callers.contains(&*lower(c))) {
            return true;
        }
        if !ids.object_ids.is_empty()
            && claims_object_id(row, &self.cols)
                .is_some_and(|o| ids.object_ids.contains(&o.to_lowercase()))
        {
            return true;
        }
        if !(ids.initiated_upns.is_empty() && ids.initiated_ids.is_empty())
            && let Some(by) = self.cols.initiated_by.and_then(|i| row.get(i))
        {
            let parsed;
            let by = match by {
                Value::String(text) => {
                    parsed = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
                    &parsed
                }
                other => other,
            };
            let user = &by["user"];
            let field = |k: &str| user[k].as_str().map(str::to_lowercase);
            if field("userPrincipalName").is_some_and(|u| ids.initiated_upns.contains(&u))
                || field("id").is_some_and(|u| ids.initiated_ids.contains(&u))
            {
                return true;
            }
        }
        false
    }

    /// Offers one source row; `false` once the result is cut (offer no more).
    pub(super) fn push(&mut self, row: &[Value]) -> bool {
        let mut copy = row.to_vec();
        self.push_owned(&mut copy)
    }

    /// [`push`](Self::push) for a row the caller gives away: its cells are moved, not copied.
    pub(super) fn push_owned(&mut self, row: &mut [Value]) -> bool {
        if self.cut.is_some() {
            return false;
        }
        if !self.keeps(row) {
            return true;
        }
        if let Some(summary) = &mut self.summary {
            summary.add(row, &self.cols);
            return true;
        }
        self.write_row(row)
    }

    /// Writes one output row (projected), unless the limits cut it.
    fn write_row(&mut self, row: &mut [Value]) -> bool {
        if self.row_count >= self.limits.max_rows {
            self.cut = Some(Cut::Rows(self.limits.max_rows));
            return false;
        }
        // Computed before any cell is moved out of the row.
        let object_id = if self.out.iter().any(|s| matches!(s, Source::ObjectId)) {
            Some(self.object_id(row))
        } else {
            None
        };
        let cells: Vec<Value> = self
            .out
            .iter()
            .zip(&self.is_dynamic)
            .map(|(source, dynamic)| {
                let cell = match source {
                    Source::Column(i) => row.get_mut(*i).map(Value::take).unwrap_or(Value::Null),
                    Source::ObjectId => {
                        Value::String(object_id.clone().flatten().unwrap_or_default())
                    }
                    Source::Null => Value::Null,
                };
                if *dynamic
                    && self.dynamic == DynamicCells::Strings
                    && (cell.is_array() || cell.is_object())
                {
                    Value::String(cell.to_string())
                } else {
                    cell
                }
            })
            .collect();
        // Written in place, and taken back if it does not fit.
        let mark = self.rows.len();
        if self.row_count > 0 {
            self.rows.push(b',');
        }
        if serde_json::to_writer(&mut self.rows, &cells).is_err()
            || self.rows.len() - self.opening > self.limits.max_bytes
        {
            self.rows.truncate(mark);
            self.cut = Some(Cut::Bytes(self.limits.max_bytes));
            return false;
        }
        self.row_count += 1;
        true
    }

    /// Offers every row of `table`.
    pub(super) fn push_table(&mut self, table: &Table) {
        for row in &table.rows {
            if !self.push(row) {
                break;
            }
        }
    }

    /// Rows written so far.
    #[cfg(test)]
    pub(super) fn row_count(&self) -> usize {
        self.row_count
    }

    /// The response body: the table as far as the cut, and the §9.2 `PartialError` when cut.
    #[cfg(test)]
    pub(super) fn finish(self) -> Vec<u8> {
        self.finish_cut().0
    }

    /// [`finish`](Self::finish), and whether the result was cut at a limit.
    pub(super) fn finish_cut(mut self) -> (Vec<u8>, bool) {
        if let Some(summary) = self.summary.take() {
            // The aggregate is the result: its rows go through the same limits.
            self.out_columns = summary.columns();
            self.out = (0..self.out_columns.len()).map(Source::Column).collect();
            self.is_dynamic = vec![false; self.out_columns.len()];
            for (key, count) in summary.groups {
                let mut row: Vec<Value> = key.into_iter().map(Value::String).collect();
                row.push(json!(count));
                if !self.write_row(&mut row) {
                    break;
                }
            }
        }
        let mut body = if self.opening > 0 {
            std::mem::take(&mut self.rows)
        } else {
            // A summary: its columns are known only now.
            let mut body = Vec::with_capacity(self.rows.len() + 1024);
            opening(&mut body, &self.out_columns);
            body.extend_from_slice(&self.rows);
            body
        };
        body.extend_from_slice(b"]}]");
        if let Some(cut) = self.cut {
            body.extend_from_slice(b",\"error\":");
            body.extend_from_slice(&serde_json::to_vec(&truncation_error(cut)).unwrap_or_default());
        }
        body.push(b'}');
        (body, self.cut.is_some())
    }
}

/// The start of a body, up to the rows: `{"tables":[{"name":"PrimaryResult","columns":[…],"rows":[`.
fn opening(body: &mut Vec<u8>, columns: &[Column]) {
    let columns: Vec<Value> = columns
        .iter()
        .map(|c| json!({"name": c.name, "type": if c.kind.is_empty() { "string" } else { c.kind.as_str() }}))
        .collect();
    body.extend_from_slice(b"{\"tables\":[{\"name\":\"PrimaryResult\",\"columns\":");
    body.extend_from_slice(&serde_json::to_vec(&columns).unwrap_or_default());
    body.extend_from_slice(b",\"rows\":[");
}

/// The `error` of a result cut at a limit: the recorded response of reference §9.2 (code
/// `-2133196797` as a string), worded for the limit that was hit.
fn truncation_error(cut: Cut) -> Value {
    let message = match cut {
        Cut::Bytes(limit) => format!(
            "Query result set has exceeded the internal data size limit {limit} (E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)"
        ),
        Cut::Rows(limit) => format!(
            "The results of this query exceed the set limit of {limit} records, so not all records were returned (E_QUERY_RESULT_SET_TOO_LARGE, 0x80DA0003, see https://aka.ms/kustoquerylimits)"
        ),
    };
    json!({
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [{
            "code": "EngineError",
            "message": "Something went wrong processing your query on the server.",
            "innererror": {
                "code": "-2133196797",
                "message": message,
                "severity": 2,
                "severityName": "Error"
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AZURE: &str = "AzureActivity\n\
        | where TimeGenerated >= datetime(2026-11-20T09:00:00.0000000Z) and TimeGenerated < datetime(2026-11-20T10:00:00.0000000Z)\n\
        | where CategoryValue =~ \"Administrative\"\n\
        | extend CallerObjectId = coalesce(tostring(Claims_d[\"x\"]), tostring(Claims_d.oid))\n\
        | where Caller in~ (h\"Jane@Contoso.com\", h\"o\\\"b@x.com\")\n    or CallerObjectId in~ (h\"OID-1\")\n\
        | project TimeGenerated, Caller, CallerObjectId\n\
        | order by TimeGenerated asc";

    fn columns(names: &[&str]) -> Vec<Column> {
        names
            .iter()
            .map(|n| Column {
                name: (*n).into(),
                kind: String::new(),
            })
            .collect()
    }

    #[test]
    fn reads_the_builders_time_filter_identities_and_projection() {
        let r = Request::read(AZURE, Some("2026-11-20T08:00:00Z/2026-11-20T12:00:00Z"));
        assert_eq!(r.scope.start, parse_timestamp("2026-11-20T09:00:00Z").ok());
        assert_eq!(r.scope.end, parse_timestamp("2026-11-20T10:00:00Z").ok());
        assert!(!r.scope.end_inclusive);
        let ids = r.identities.clone().unwrap();
        assert!(ids.callers.contains("jane@contoso.com") && ids.callers.contains("o\"b@x.com"));
        assert_eq!(ids.object_ids, HashSet::from(["oid-1".to_owned()]));
        assert_eq!(
            r.project.as_deref().unwrap(),
            ["TimeGenerated", "Caller", "CallerObjectId"]
        );
        // The timespan narrows a closed KQL range, and a free-form query names nothing.
        let closed = Request::read(
            "AuditLogs\n| where TimeGenerated between (datetime(2026-11-20T09:00:00Z) .. datetime(2026-11-20T10:00:00Z))\n| project A, B = x",
            Some("2026-11-20T09:30:00Z/2026-11-20T10:00:00Z"),
        );
        assert_eq!(
            closed.scope.start,
            parse_timestamp("2026-11-20T09:30:00Z").ok()
        );
        assert!(closed.scope.end_inclusive);
        assert!(closed.identities.is_none() && closed.project.is_none());
    }

    #[test]
    fn filters_projects_and_derives_the_object_id() {
        let r = Request::read(AZURE, None);
        let cols = columns(&["TimeGenerated", "Caller", "Claims_d", "Extra"]);
        let mut w = Writer::new(&cols, &r, true, Limits::NONE, DynamicCells::Strings);
        let claims = format!("{{\"{OBJECT_ID_CLAIM}\": \"oid-1\", \"name\": \"x\"}}");
        for row in [
            // In: by caller (any case), at the start.
            json!(["2026-11-20T09:00:00Z", "JANE@contoso.com", null, 1]),
            // In: by the object-id claim.
            json!(["2026-11-20T09:10:00Z", "", claims, 2]),
            // Out: at the half-open end; another caller; before the start.
            json!(["2026-11-20T10:00:00Z", "jane@contoso.com", null, 3]),
            json!(["2026-11-20T09:20:00Z", "eve@contoso.com", null, 4]),
            json!(["2026-11-20T08:59:59Z", "jane@contoso.com", null, 5]),
        ] {
            assert!(w.push(row.as_array().unwrap()));
        }
        assert_eq!(w.row_count(), 2);
        let body: Value = serde_json::from_slice(&w.finish()).unwrap();
        let t = &body["tables"][0];
        assert_eq!(t["columns"].as_array().unwrap().len(), 3);
        assert_eq!(
            t["rows"][0],
            json!(["2026-11-20T09:00:00Z", "JANE@contoso.com", ""])
        );
        assert_eq!(t["rows"][1][2], json!("oid-1"));
        assert!(body.get("error").is_none());
    }

    #[test]
    fn each_rows_object_id_comes_from_its_own_claims() {
        // The writer remembers the last claims text; rows with other claims must not get its id.
        let r = Request::read(
            "AzureActivity\n| where CallerObjectId in~ (h\"oid-1\", h\"oid-2\")\n| project Caller, CallerObjectId",
            None,
        );
        let cols = columns(&["Caller", "Claims_d"]);
        let mut w = Writer::new(&cols, &r, true, Limits::NONE, DynamicCells::Strings);
        let claims = |oid: &str| format!("{{\"{OBJECT_ID_CLAIM}\": \"{oid}\"}}");
        for (caller, oid) in [
            ("a", "oid-1"),
            ("a", "oid-1"),
            ("b", "oid-2"),
            ("a", "oid-1"),
        ] {
            assert!(w.push(&[json!(caller), json!(claims(oid))]));
        }
        let body: Value = serde_json::from_slice(&w.finish()).unwrap();
        let ids: Vec<&str> = body["tables"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[1].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["oid-1", "oid-1", "oid-2", "oid-1"]);
    }

    #[test]
    fn a_cut_result_is_the_exact_truncation_response() {
        let r = Request::read("AzureActivity | take 10", None);
        let cols = columns(&["A"]);
        for (limits, rows, code_word) in [
            (
                Limits {
                    max_rows: 3,
                    max_bytes: usize::MAX,
                },
                3,
                "records",
            ),
            (
                Limits {
                    max_rows: usize::MAX,
                    max_bytes: 20,
                },
                3,
                "data size limit 20",
            ),
        ] {
            let mut w = Writer::new(&cols, &r, true, limits, DynamicCells::Strings);
            let mut offered = 0;
            for i in 0..10 {
                offered += 1;
                if !w.push(&[json!(format!("r{i}"))]) {
                    break;
                }
            }
            assert_eq!(w.row_count(), rows);
            assert!(offered < 10);
            let body: Value = serde_json::from_slice(&w.finish()).unwrap();
            assert_eq!(body["tables"][0]["rows"].as_array().unwrap().len(), rows);
            assert_eq!(body["error"]["code"], "PartialError");
            let inner = &body["error"]["details"][0]["innererror"];
            assert_eq!(inner["code"], "-2133196797");
            let message = inner["message"].as_str().unwrap();
            assert!(
                message.contains("E_QUERY_RESULT_SET_TOO_LARGE"),
                "{message}"
            );
            assert!(message.contains(code_word), "{message}");
        }
        // Exactly the row limit is not cut.
        let mut w = Writer::new(
            &cols,
            &r,
            true,
            Limits {
                max_rows: 2,
                max_bytes: usize::MAX,
            },
            DynamicCells::Strings,
        );
        assert!(w.push(&[json!("a")]) && w.push(&[json!("b")]));
        let body: Value = serde_json::from_slice(&w.finish()).unwrap();
        assert!(body.get("error").is_none());
    }
}
