//! Complete results at any volume: run the scan's queries under a concurrency bound, and when a
//! service limit cuts a result, split that query and re-run the parts until each is complete.
//!
//! See issue 12 and reference §9. Log Analytics returns at most 500,000 rows and about 100 MB
//! per query, and says so with a `PartialError` ([`Truncation`]). A cut query is split:
//!
//! - a chunk of several identities is halved (the halves name disjoint identities, so no row
//!   can come back twice);
//! - a query of one identity (or of none: the PIM-events queries) has its time range halved,
//!   when the source honours the time range ([`SourceCapabilities::splits_by_time`]). The halves
//!   are `[start, mid)` and `[mid, end]` ([`QueryRange::split`]): the KQL's own time filter is
//!   half-open, so a row stamped `mid` is read once, whatever the service does with the end of
//!   the `timespan` it intersects with;
//! - what cannot be split further stays cut: one identity (or the PIM-events query) over a
//!   range of one minute or less, or one identity on a source that cannot split by time. Its
//!   rows are kept and it is reported as [`Unresolved`], so the caller can flag exactly those
//!   activations and name the identity.
//!
//! The time parts of one query are merged back, in time order, into one table before anything
//! parses them: an operation whose Start and Success rows fall on either side of a time split
//! is still one operation. Identity halves read disjoint rows (all rows of an operation name
//! the same caller), so each is handed over, and parsed, as soon as it is complete: memory
//! holds about one query's rows at a time, as before splitting.
//!
//! Every query waits for a permit from each of the [`Semaphore`]s it is given (the scan's and
//! the auditor's): the per-user limit of the query API is 5 concurrent queries, more are
//! queued and then throttled (§9.4).
//!
//! [`SourceCapabilities::splits_by_time`]: pim_loganalytics::SourceCapabilities::splits_by_time

use std::collections::VecDeque;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use pim_domain::{Column, DataProblem, Table};
use pim_kql::{Identity, QueryRange};
use pim_loganalytics::{KqlSource, LogQuery, LogTable, QueryOutcome, Truncation};
use serde_json::Value;
use time::Duration;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::observer::{QueryDone, QueryStatus, ScanObserver};

/// The shortest time range that is still split: a single identity over one minute or less
/// that is still cut stays cut (issue 12).
pub(crate) const MIN_SPLIT_RANGE: Duration = Duration::minutes(1);

/// One query of a plan: a time range and the identities it names (none for the PIM-events
/// queries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The time range, half-open except for the last part of a scan's range.
    pub range: QueryRange,
    /// The identities the query names; empty for queries that name none.
    pub identities: Vec<Identity>,
}

impl Part {
    /// The two parts to run instead of this one when its result was cut: its identities in two
    /// halves when it names several, else its time range in two halves when the source
    /// `splits_by_time` and the range is longer than [`MIN_SPLIT_RANGE`]. `None` when it cannot
    /// be split.
    pub(crate) fn split(&self, splits_by_time: bool) -> Option<(Part, Part)> {
        if self.identities.len() > 1 {
            let (a, b) = self.identities.split_at(self.identities.len() / 2);
            return Some((
                Part {
                    range: self.range,
                    identities: a.to_vec(),
                },
                Part {
                    range: self.range,
                    identities: b.to_vec(),
                },
            ));
        }
        let length = self.range.range.end - self.range.range.start;
        if !splits_by_time || length <= MIN_SPLIT_RANGE {
            return None;
        }
        let (a, b) = self.range.split()?;
        Some((
            Part {
                range: a,
                identities: self.identities.clone(),
            },
            Part {
                range: b,
                identities: self.identities.clone(),
            },
        ))
    }
}

/// A part whose result is still cut and cannot be split further: its rows are kept, but they
/// are not the whole truth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unresolved {
    /// The part (one identity or none, and its range).
    pub part: Part,
    /// Why its result is known to be cut.
    pub truncation: Truncation,
}

impl Unresolved {
    /// A sentence naming what stayed cut, for the report's warnings.
    pub(crate) fn describe(&self, table: LogTable, splits_by_time: bool) -> String {
        let range = self.part.range.range;
        let span = format!(
            "{} to {}",
            pim_domain::timestamp::format_utc(range.start),
            pim_domain::timestamp::format_utc(range.end)
        );
        let why = if splits_by_time {
            "a range of one minute or less"
        } else {
            "the source cannot split a query by time"
        };
        match self.part.identities.first() {
            Some(identity) => format!(
                "{table}: the activity of {} from {span} is still over the query API's limits after splitting down to one identity and {why} ({}); only part of it was read, and that identity's activations are flagged activity_truncated",
                identity_name(identity),
                self.truncation
            ),
            None => format!(
                "{table}: the PIM-events query from {span} is still over the query API's limits after splitting down to {why} ({}); PIM events in that range may be missing",
                self.truncation
            ),
        }
    }
}

/// How the report names an identity: its UPN, else its object id.
pub(crate) fn identity_name(identity: &Identity) -> String {
    match (&identity.upn, &identity.object_id) {
        (Some(upn), Some(oid)) => format!("{upn} (object id {oid})"),
        (Some(upn), None) => upn.clone(),
        (None, Some(oid)) => format!("object id {oid}"),
        (None, None) => "an identity without UPN or object id".to_owned(),
    }
}

/// Builds the KQL of one part; `Ok(None)` when the part names nothing that can be queried
/// (every identity blank), so no query is needed.
pub(crate) type BuildKql<'a> = &'a (dyn Fn(&Part) -> pim_kql::Result<Option<String>> + Send + Sync);

/// Called as each query is sent (after its permits are granted), e.g. to report progress.
pub(crate) type OnQuery<'a> = &'a (dyn Fn(&LogQuery) + Send + Sync);

/// One family of queries: all parts of it read the same table and are built the same way.
pub(crate) struct Plan<'a> {
    /// The label of the queries, e.g. `azure-activity`; parts get `3/25` and split suffixes.
    pub label: &'a str,
    /// The table every part reads.
    pub table: LogTable,
    /// Builds a part's KQL.
    pub build: BuildKql<'a>,
    /// The row scope every part's query carries, for a source that runs no KQL
    /// ([`LogQuery::scope`]). Such a source answers whole and never splits, so one scope
    /// serves the plan.
    pub scope: Option<pim_loganalytics::RowScope>,
}

/// Runs plans against one source under the concurrency bounds.
pub(crate) struct Runner<'a> {
    pub source: &'a dyn KqlSource,
    /// Every query holds one permit of each while it runs.
    pub permits: [&'a Semaphore; 2],
    /// Whether a part may be split by time ([`SourceCapabilities::splits_by_time`](pim_loganalytics::SourceCapabilities::splits_by_time)).
    pub splits_by_time: bool,
    pub on_query: OnQuery<'a>,
    /// Hears each query's name, rows, time and outcome as it comes back.
    pub observer: &'a dyn ScanObserver,
    /// The parent of each query's `pim.query` span: the scan stage it belongs to (an id, so
    /// that the stage's span can close while the runner is still borrowed).
    pub span: Option<tracing::Id>,
    /// Most queries of one run started at once (the scan's bound): the rest wait in the
    /// runner's queue, where the parts of a split query go first, so the longest chain of
    /// splits is not queued behind every other planned query.
    pub limit: usize,
}

/// A query of the plan, merged from its complete parts.
#[derive(Debug)]
pub(crate) struct Completed {
    /// The label of the query as planned (before any split).
    pub label: String,
    /// One table with the rows of every part, in part order; partial errors other than
    /// truncation, and adapter problems, of every part.
    pub outcome: QueryOutcome,
    /// Parts still cut after every possible split.
    pub unresolved: Vec<Unresolved>,
}

/// Why a plan stopped.
#[derive(Debug)]
pub(crate) enum RunError {
    /// A part's KQL could not be built.
    Build {
        label: String,
        source: pim_kql::Error,
    },
    /// A query failed (after the adapter's own retries).
    Query {
        label: String,
        source: pim_loganalytics::Error,
    },
}

impl RunError {
    pub(crate) fn label(&self) -> &str {
        match self {
            RunError::Build { label, .. } | RunError::Query { label, .. } => label,
        }
    }
}

/// A part waiting to be sent: its root, split path, part, label and KQL.
type Queued = (usize, Vec<u8>, Part, String, String);

/// What a part came back with.
type Answer = (
    usize,
    Vec<u8>,
    Part,
    String,
    pim_loganalytics::Result<QueryOutcome>,
);

/// The parts of one planned query still running, and those done.
#[derive(Default)]
struct Root {
    /// The planned query's label (`azure-activity 3/25`).
    label: String,
    /// Where in the split tree this root starts: empty for a planned query, the path of an
    /// identity half for the roots an identity split makes.
    prefix: Vec<u8>,
    pending: usize,
    /// Complete parts by their position in the split tree (0 = first half, 1 = second).
    done: Vec<(Vec<u8>, QueryOutcome)>,
    unresolved: Vec<Unresolved>,
}

impl Runner<'_> {
    /// Runs `roots` (one planned query each) to completion: every cut part is split and
    /// re-run until complete or unsplittable. Each planned query is handed to `complete`, in
    /// the order they finish, as soon as all its parts are done; `complete` returns `false` to
    /// stop the run (nothing more is sent, and queries in flight are dropped).
    ///
    /// Returns the number of queries sent, cut ones included.
    ///
    /// # Errors
    /// The first build or query failure stops the run.
    pub(crate) async fn run(
        &self,
        plan: &Plan<'_>,
        roots: Vec<Part>,
        mut complete: impl FnMut(Completed) -> bool,
    ) -> Result<usize, (RunError, usize)> {
        let n = roots.len();
        let mut queries = 0usize;
        let mut state: Vec<Root> = Vec::with_capacity(n);
        let mut running = FuturesUnordered::new();
        let mut queue: VecDeque<Queued> = VecDeque::new();
        for (i, part) in roots.into_iter().enumerate() {
            let label = if n > 1 {
                format!("{} {}/{n}", plan.label, i + 1)
            } else {
                plan.label.to_owned()
            };
            let kql = match (plan.build)(&part) {
                Ok(kql) => kql,
                Err(source) => return Err((RunError::Build { label, source }, queries)),
            };
            let mut root = Root {
                label: label.clone(),
                ..Root::default()
            };
            match kql {
                Some(kql) => {
                    root.pending = 1;
                    queue.push_back((i, Vec::new(), part, label, kql));
                }
                None => root.done.push((Vec::new(), empty_outcome())),
            }
            state.push(root);
        }
        // Planned queries that needed no query at all are complete already.
        for root in state.iter_mut().filter(|r| r.pending == 0) {
            if !complete(finish(root)) {
                return Ok(queries);
            }
        }
        // Answers that came back while this task was sending queries ahead of a hand-over.
        let mut ready: VecDeque<Answer> = VecDeque::new();
        macro_rules! refill {
            () => {
                while running.len() < self.limit.max(1)
                    && let Some((i, path, part, label, kql)) = queue.pop_front()
                {
                    running.push(self.ask(plan, i, path, part, label, kql));
                }
            };
        }
        loop {
            refill!();
            let next = match ready.pop_front() {
                Some(answer) => Some(answer),
                None => running.next().await,
            };
            let Some((i, path, part, label, answer)) = next else {
                break;
            };
            queries += 1;
            let outcome = match answer {
                Ok(outcome) => outcome,
                Err(source) => return Err((RunError::Query { label, source }, queries)),
            };
            // The parts of a split go to the front of the queue, first half first.
            let mut splits: Vec<Queued> = Vec::new();
            let Some(root) = state.get_mut(i) else {
                continue;
            };
            root.pending -= 1;
            match outcome.truncation.clone() {
                None => root.done.push((path, outcome)),
                // Identity halves read disjoint rows (every row of an operation names the same
                // caller), so each becomes a query of its own, parsed as soon as it is
                // complete: memory holds one part's rows, not the whole chunk's.
                Some(truncation) if part.identities.len() > 1 => {
                    let Some((a, b)) = part.split(self.splits_by_time) else {
                        continue;
                    };
                    tracing::info!(query = %label, %truncation, "result cut at a service limit: splitting the identities");
                    let base = root.label.clone();
                    for (half, sub) in [(0u8, a), (1u8, b)] {
                        let mut sub_path = path.clone();
                        sub_path.push(half);
                        let sub_label = split_label(&base, &sub_path);
                        let kql = match (plan.build)(&sub) {
                            Ok(kql) => kql,
                            Err(source) => {
                                return Err((
                                    RunError::Build {
                                        label: sub_label,
                                        source,
                                    },
                                    queries,
                                ));
                            }
                        };
                        let index = state.len();
                        let mut sub_root = Root {
                            label: base.clone(),
                            prefix: sub_path.clone(),
                            ..Root::default()
                        };
                        match kql {
                            Some(kql) => {
                                sub_root.pending = 1;
                                splits.push((index, sub_path, sub, sub_label, kql));
                                state.push(sub_root);
                            }
                            // A half that names nothing usable (blank identities only) has no
                            // rows.
                            None => {
                                sub_root.done.push((sub_path, empty_outcome()));
                                state.push(sub_root);
                                if let Some(done) = state.last_mut()
                                    && !complete(finish(done))
                                {
                                    return Ok(queries);
                                }
                            }
                        }
                    }
                    // The cut root had only this part; its halves carry on without it.
                    for queued in splits.into_iter().rev() {
                        queue.push_front(queued);
                    }
                    continue;
                }
                Some(truncation) => match part.split(self.splits_by_time) {
                    Some((a, b)) => {
                        tracing::info!(query = %label, %truncation, "result cut at a service limit: splitting the query");
                        for (half, sub) in [(0u8, a), (1u8, b)] {
                            let mut sub_path = path.clone();
                            sub_path.push(half);
                            let sub_label = split_label(&root.label, &sub_path);
                            let kql = match (plan.build)(&sub) {
                                Ok(Some(kql)) => kql,
                                // A half that names nothing usable (blank identities only)
                                // has no rows.
                                Ok(None) => {
                                    root.done.push((sub_path, empty_outcome()));
                                    continue;
                                }
                                Err(source) => {
                                    return Err((
                                        RunError::Build {
                                            label: sub_label,
                                            source,
                                        },
                                        queries,
                                    ));
                                }
                            };
                            root.pending += 1;
                            splits.push((i, sub_path, sub, sub_label, kql));
                        }
                    }
                    None => {
                        tracing::warn!(query = %label, %truncation, "result still cut and the query cannot be split further");
                        root.unresolved.push(Unresolved {
                            part: part.clone(),
                            truncation,
                        });
                        // The cut is reported through `unresolved`, naming the part; its
                        // rows are kept, but not as a partial error that would flag every
                        // activation of the query.
                        let mut outcome = outcome;
                        outcome.partial_error = None;
                        root.done.push((path, outcome));
                    }
                },
            }
            for queued in splits.into_iter().rev() {
                queue.push_front(queued);
            }
            if root.pending == 0 {
                // Handing a query over parses its rows, and queries only go out while this
                // task polls them: the freed slot is filled, and the new queries polled until
                // they are on their way, first (issue 12, item 3). Answers that are already
                // back wait in `ready`.
                refill!();
                while let Some(Some(answer)) = running.next().now_or_never() {
                    ready.push_back(answer);
                }
                if !complete(finish(root)) {
                    return Ok(queries + ready.len());
                }
            }
        }
        Ok(queries)
    }

    /// One part's query: waits for its permits, then asks the source, in a `pim.query` span
    /// under the stage's, and tells the observer how it went.
    async fn ask(
        &self,
        plan: &Plan<'_>,
        root: usize,
        path: Vec<u8>,
        part: Part,
        label: String,
        kql: String,
    ) -> Answer {
        let query = LogQuery {
            label: label.clone(),
            table: Some(plan.table),
            kql,
            timespan: part.range.range,
            scope: plan.scope.clone(),
        };
        // The semaphores are never closed, so acquiring cannot fail; were one closed, the
        // query would simply run unbounded rather than not at all.
        let _scan = self.permits[0].acquire().await.ok();
        let _auditor = self.permits[1].acquire().await.ok();
        (self.on_query)(&query);
        // Only our names and counts go on the span: never the KQL (it quotes identities) nor
        // anything the logs hold.
        let span = tracing::info_span!(
            target: crate::TRACE_TARGET,
            parent: self.span.clone(),
            "pim.query",
            query = plan.label,
            table = plan.table.name(),
            rows = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let answer = self.source.query(&query).instrument(span.clone()).await;
        let (rows, status) = match &answer {
            Ok(outcome) if outcome.truncation.is_some() => (rows_of(outcome), QueryStatus::Cut),
            Ok(outcome) => (rows_of(outcome), QueryStatus::Complete),
            Err(_) => (0, QueryStatus::Failed),
        };
        span.record("rows", rows);
        span.record("outcome", status.as_str());
        self.observer.query_done(&QueryDone {
            name: plan.label,
            table: plan.table.name(),
            rows,
            duration: started.elapsed(),
            status,
        });
        (root, path, part, label, answer)
    }
}

/// Rows of every table of an answer.
fn rows_of(outcome: &QueryOutcome) -> usize {
    outcome.tables.iter().map(Table::len).sum()
}

/// `azure-activity 3/25 (part 1.2)`: the first half's second half.
fn split_label(root: &str, path: &[u8]) -> String {
    let steps: Vec<String> = path.iter().map(|h| (h + 1).to_string()).collect();
    format!("{root} (part {})", steps.join("."))
}

fn empty_outcome() -> QueryOutcome {
    QueryOutcome {
        tables: vec![Table::default()],
        ..QueryOutcome::default()
    }
}

/// Merges a finished root's parts, in split-tree order.
fn finish(root: &mut Root) -> Completed {
    let mut done = std::mem::take(&mut root.done);
    done.sort_by(|a, b| a.0.cmp(&b.0));
    Completed {
        label: if root.prefix.is_empty() {
            root.label.clone()
        } else {
            split_label(&root.label, &root.prefix)
        },
        outcome: merge(done.into_iter().map(|(_, o)| o).collect()),
        unresolved: std::mem::take(&mut root.unresolved),
    }
}

/// One outcome from the outcomes of a query's parts: their first tables' rows concatenated
/// under the first part's columns (matched by name when a part's columns differ, missing cells
/// null), every problem, and every partial error that is not a truncation the split resolved.
pub(crate) fn merge(mut outcomes: Vec<QueryOutcome>) -> QueryOutcome {
    if outcomes.len() == 1
        && let Some(only) = outcomes.pop()
    {
        return only;
    }
    let mut merged = QueryOutcome::default();
    let mut table: Option<Table> = None;
    let mut partial: Vec<String> = Vec::new();
    for outcome in outcomes {
        let QueryOutcome {
            tables,
            partial_error,
            problems,
            truncation,
            // Row positions in a whole table: only a source that answers whole (and so never
            // splits) sets them, and a single answer is returned above as it is.
            scoped: _,
        } = outcome;
        merged.problems.extend(problems);
        if let Some(p) = partial_error
            && !partial.contains(&p)
        {
            partial.push(p);
        }
        if merged.truncation.is_none() {
            merged.truncation = truncation;
        }
        let Some(part) = tables.into_iter().next() else {
            continue;
        };
        match &mut table {
            None => table = Some(part),
            Some(into) => append(into, part, &mut merged.problems),
        }
    }
    merged.tables = vec![table.unwrap_or_default()];
    merged.partial_error = (!partial.is_empty()).then(|| partial.join("; "));
    merged
}

/// Appends `part`'s rows to `into`, matching columns by name.
fn append(into: &mut Table, part: Table, problems: &mut Vec<DataProblem>) {
    if part.rows.is_empty() {
        return;
    }
    if into.columns.is_empty() {
        *into = part;
        return;
    }
    if same_columns(&into.columns, &part.columns) {
        into.rows.extend(part.rows);
        return;
    }
    let map: Vec<Option<usize>> = into
        .columns
        .iter()
        .map(|c| part.columns.iter().position(|p| p.name == c.name))
        .collect();
    let dropped = part
        .columns
        .iter()
        .filter(|p| !into.columns.iter().any(|c| c.name == p.name))
        .count();
    if dropped > 0 {
        problems.push(DataProblem::source(
            "log analytics",
            format!(
                "a split query's parts came back with different columns; {dropped} column(s) of one part were not in the first part and were dropped"
            ),
        ));
    }
    for row in part.rows {
        into.rows.push(
            map.iter()
                .map(|i| i.and_then(|i| row.get(i).cloned()).unwrap_or(Value::Null))
                .collect(),
        );
    }
}

fn same_columns(a: &[Column], b: &[Column]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use pim_domain::TimeRange;
    use pim_loganalytics::{SourceCapabilities, SourceInfo, SourceKind};
    use serde_json::json;
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-20 00:00 UTC);

    fn who(n: usize) -> Vec<Identity> {
        (0..n)
            .map(|i| Identity {
                upn: Some(format!("u{i}@x.com")),
                object_id: None,
            })
            .collect()
    }

    fn part(minutes: i64, identities: usize) -> Part {
        Part {
            range: QueryRange::from(TimeRange::new(T0, T0 + Duration::minutes(minutes))),
            identities: who(identities),
        }
    }

    #[test]
    fn identities_are_halved_before_time() {
        let (a, b) = part(60, 5).split(true).unwrap();
        assert_eq!((a.identities.len(), b.identities.len()), (2, 3));
        assert_eq!((a.range, b.range), (part(60, 5).range, part(60, 5).range));
        let mut all = a.identities.clone();
        all.extend(b.identities);
        assert_eq!(all, who(5));
        // Even without time splitting.
        assert!(part(60, 2).split(false).is_some());
    }

    #[test]
    fn one_identity_splits_by_time_into_half_open_halves_down_to_one_minute() {
        let (a, b) = part(60, 1).split(true).unwrap();
        assert_eq!(a.range.range.end, T0 + Duration::minutes(30));
        assert_eq!(b.range.range.start, a.range.range.end);
        assert!(!a.range.end_inclusive && b.range.end_inclusive);
        assert_eq!(a.identities, who(1));
        // PIM-events queries name no identity: time only.
        assert!(part(60, 0).split(true).is_some());
        // The single-identity, one-minute case, and sources that cannot split by time.
        assert_eq!(part(1, 1).split(true), None);
        assert_eq!(part(1, 0).split(true), None);
        assert_eq!(part(60, 1).split(false), None);
        assert!(part(2, 1).split(true).is_some());
    }

    fn table(columns: &[&str], rows: Vec<Vec<Value>>) -> Table {
        Table {
            name: "PrimaryResult".into(),
            columns: columns
                .iter()
                .map(|c| Column {
                    name: (*c).into(),
                    kind: "string".into(),
                })
                .collect(),
            rows,
        }
    }

    #[test]
    fn merge_concatenates_by_column_name_and_keeps_non_truncation_warnings() {
        let a = QueryOutcome {
            tables: vec![table(&["A", "B"], vec![vec![json!(1), json!(2)]])],
            partial_error: Some("PartialError: Failed to resolve x".into()),
            ..QueryOutcome::default()
        };
        let b = QueryOutcome {
            tables: vec![table(
                &["B", "A", "C"],
                vec![vec![json!(4), json!(3), json!(9)]],
            )],
            ..QueryOutcome::default()
        };
        let empty = empty_outcome();
        let m = merge(vec![empty, a, b]);
        let t = &m.tables[0];
        assert_eq!(
            t.rows,
            vec![vec![json!(1), json!(2)], vec![json!(3), json!(4)]]
        );
        assert_eq!(
            m.partial_error.as_deref(),
            Some("PartialError: Failed to resolve x")
        );
        assert_eq!(m.problems.len(), 1, "{:?}", m.problems);
        assert_eq!(m.truncation, None);
    }

    /// A source of rows `(minute, identity)`: cuts any answer over `limit` rows (keeping the
    /// first `limit`), filters by the part's range (half-open unless inclusive) and identities,
    /// and counts queries in flight.
    #[derive(Debug)]
    struct Cutting {
        rows: Vec<(OffsetDateTime, String)>,
        limit: usize,
        splits_by_time: bool,
        seen: Mutex<Vec<LogQuery>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    impl Cutting {
        fn new(rows: Vec<(OffsetDateTime, String)>, limit: usize) -> Self {
            Self {
                rows,
                limit,
                splits_by_time: true,
                seen: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait]
    impl KqlSource for Cutting {
        fn info(&self) -> SourceInfo {
            SourceInfo {
                kind: SourceKind::LogAnalytics,
                description: "cutting".into(),
                default_end: None,
            }
        }

        fn capabilities(&self) -> SourceCapabilities {
            SourceCapabilities {
                runs_arbitrary_kql: true,
                max_identities_per_query: Some(4),
                splits_by_time: self.splits_by_time,
            }
        }

        async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            self.seen.lock().unwrap().push(query.clone());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            // The KQL here is `<inclusive>|<upn>,<upn>...`, built by `build` below.
            let (inclusive, names) = query.kql.split_once('|').unwrap();
            let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
            let r = query.timespan;
            let rows: Vec<Vec<Value>> = self
                .rows
                .iter()
                .filter(|(t, who)| {
                    *t >= r.start
                        && (*t < r.end || (inclusive == "1" && *t == r.end))
                        && (names.is_empty() || names.contains(&who.as_str()))
                })
                .map(|(t, who)| vec![json!(pim_domain::timestamp::format_utc(*t)), json!(who)])
                .collect();
            let cut = rows.len() > self.limit;
            let mut rows = rows;
            rows.truncate(self.limit);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(QueryOutcome {
                tables: vec![table(&["TimeGenerated", "Caller"], rows)],
                partial_error: cut.then(|| "PartialError: E_QUERY_RESULT_SET_TOO_LARGE".into()),
                truncation: cut.then(|| Truncation::LimitExceeded {
                    message: "E_QUERY_RESULT_SET_TOO_LARGE".into(),
                }),
                ..QueryOutcome::default()
            })
        }
    }

    fn build(part: &Part) -> pim_kql::Result<Option<String>> {
        let names: Vec<&str> = part
            .identities
            .iter()
            .filter_map(|i| i.upn.as_deref())
            .collect();
        Ok(Some(format!(
            "{}|{}",
            if part.range.end_inclusive { "1" } else { "0" },
            names.join(",")
        )))
    }

    async fn run_all(
        source: &Cutting,
        roots: Vec<Part>,
        concurrency: usize,
    ) -> (Vec<Completed>, usize) {
        let (out, queries, _) = run_heard(source, roots, concurrency).await;
        (out, queries)
    }

    /// Every `query_done` the observer heard: status and rows.
    #[derive(Default)]
    struct Heard(std::sync::Mutex<Vec<(QueryStatus, usize, String)>>);

    impl ScanObserver for Heard {
        fn query_done(&self, q: &QueryDone<'_>) {
            self.0
                .lock()
                .unwrap()
                .push((q.status, q.rows, format!("{} {}", q.name, q.table)));
        }
    }

    async fn run_heard(
        source: &Cutting,
        roots: Vec<Part>,
        concurrency: usize,
    ) -> (Vec<Completed>, usize, Vec<(QueryStatus, usize, String)>) {
        let scan = Semaphore::new(concurrency);
        let auditor = Semaphore::new(100);
        let heard = Heard::default();
        let runner = Runner {
            source,
            permits: [&scan, &auditor],
            splits_by_time: source.splits_by_time,
            on_query: &|_| {},
            observer: &heard,
            span: None,
            limit: concurrency,
        };
        let plan = Plan {
            label: "azure-activity",
            table: LogTable::AzureActivity,
            build: &build,
            scope: None,
        };
        let mut out = Vec::new();
        let queries = runner
            .run(&plan, roots, |c| {
                out.push(c);
                true
            })
            .await
            .unwrap();
        let heard = heard.0.into_inner().unwrap();
        (out, queries, heard)
    }

    /// Rows for 8 identities over an hour; identity 0 is busy, and rows sit exactly on the
    /// split boundaries and at the range's (inclusive) end.
    fn rows() -> Vec<(OffsetDateTime, String)> {
        let mut rows = Vec::new();
        for i in 0..8 {
            let n = if i == 0 { 400 } else { 20 };
            for k in 0..n {
                rows.push((
                    T0 + Duration::seconds((k * 3600 / n) as i64),
                    format!("u{i}@x.com"),
                ));
            }
            rows.push((T0 + Duration::minutes(30), format!("u{i}@x.com")));
            rows.push((T0 + Duration::minutes(15), format!("u{i}@x.com")));
            rows.push((T0 + Duration::minutes(60), format!("u{i}@x.com")));
        }
        rows
    }

    #[tokio::test]
    async fn cut_parts_are_split_until_complete_and_merge_to_exactly_the_truth() {
        let source = Cutting::new(rows(), 50);
        let roots = vec![part(60, 4), {
            let mut p = part(60, 0);
            p.identities = who(8)[4..].to_vec();
            p
        }];
        let (done, queries, heard) = run_heard(&source, roots, 3).await;
        // The observer hears every query sent, the cut ones as cut, under the plan's name
        // (no chunk or split suffix), with the rows each returned.
        assert_eq!(heard.len(), queries);
        let cut = heard.iter().filter(|h| h.0 == QueryStatus::Cut).count();
        assert_eq!(
            cut,
            queries
                - heard
                    .iter()
                    .filter(|h| h.0 == QueryStatus::Complete)
                    .count()
        );
        assert!(cut > 0, "{heard:?}");
        assert!(heard.iter().all(|h| h.2 == "azure-activity AzureActivity"));
        let complete_rows: usize = heard
            .iter()
            .filter(|h| h.0 == QueryStatus::Complete)
            .map(|h| h.1)
            .sum();
        assert_eq!(complete_rows, rows().len());
        // Identity halves are handed over on their own: more completions than planned
        // queries, each with its own identities' rows only.
        assert!(done.len() > 2, "{}", done.len());
        assert!(done.iter().all(|c| c.unresolved.is_empty()));
        let mut callers_seen: Vec<String> = Vec::new();
        for c in &done {
            let mut mine: Vec<String> = c.outcome.tables[0]
                .rows
                .iter()
                .map(|r| r[1].as_str().unwrap().to_owned())
                .collect();
            mine.sort();
            mine.dedup();
            callers_seen.extend(mine);
        }
        callers_seen.sort();
        let before = callers_seen.len();
        callers_seen.dedup();
        assert_eq!(before, callers_seen.len(), "an identity in two completions");
        let mut got: Vec<(String, String)> = done
            .iter()
            .flat_map(|c| c.outcome.tables[0].rows.iter())
            .map(|r| {
                (
                    r[0].as_str().unwrap().to_owned(),
                    r[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> = rows()
            .into_iter()
            .map(|(t, w)| (pim_domain::timestamp::format_utc(t), w))
            .collect();
        got.sort();
        want.sort();
        // Nothing lost, nothing read twice: not on the split boundaries, not at the end.
        assert_eq!(got, want);
        assert!(done.iter().all(|c| c.outcome.partial_error.is_none()));
        assert_eq!(queries, source.seen.lock().unwrap().len());
        assert!(queries > 2, "{queries}");
        // Labels say which part of which planned query ran.
        let labels: Vec<String> = source
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|q| q.label.clone())
            .collect();
        assert!(
            labels.contains(&"azure-activity 1/2 (part 1)".to_owned()),
            "{labels:?}"
        );
        assert!(source.max_in_flight.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test]
    async fn one_identity_in_one_minute_still_over_the_limit_is_unresolved_and_kept() {
        // 100 rows in one minute for one identity, limit 10.
        let rows: Vec<(OffsetDateTime, String)> = (0..100)
            .map(|k| (T0 + Duration::milliseconds(k * 500), "u0@x.com".to_owned()))
            .collect();
        let source = Cutting::new(rows, 10);
        let (done, queries) = run_all(&source, vec![part(8, 1)], 4).await;
        assert_eq!(done.len(), 1);
        let c = &done[0];
        assert_eq!(c.unresolved.len(), 1, "{:?}", c.unresolved);
        let u = &c.unresolved[0];
        assert!(u.part.range.range.end - u.part.range.range.start <= MIN_SPLIT_RANGE);
        assert_eq!(u.part.identities, who(1));
        // The cut rows are kept; the outcome says it is cut.
        assert_eq!(c.outcome.tables[0].len(), 10);
        assert!(c.outcome.truncation.is_some());
        // 8 min -> 4 -> 2 -> 1: four queries down the busy branch; the other halves are
        // empty (all rows are in the first minute).
        assert_eq!(queries, 7, "{:?}", source.seen.lock().unwrap());
        let text = u.describe(LogTable::AzureActivity, true);
        assert!(text.contains("u0@x.com"), "{text}");
        assert!(text.contains("activity_truncated"), "{text}");
    }

    #[tokio::test]
    async fn without_time_splitting_one_identity_stays_cut() {
        let mut source = Cutting::new(rows(), 50);
        source.splits_by_time = false;
        let (done, _) = run_all(&source, vec![part(60, 4)], 2).await;
        let unresolved: Vec<&Unresolved> = done.iter().flat_map(|c| &c.unresolved).collect();
        let names: Vec<_> = unresolved
            .iter()
            .map(|u| u.part.identities[0].upn.clone().unwrap())
            .collect();
        assert_eq!(names, ["u0@x.com"]);
        assert!(
            unresolved[0]
                .describe(LogTable::AzureActivity, false)
                .contains("cannot split a query by time")
        );
        // The completion holding it is labelled with its part.
        let holder = done.iter().find(|c| !c.unresolved.is_empty()).unwrap();
        assert_eq!(holder.label, "azure-activity (part 1.1)");
    }

    #[tokio::test]
    async fn the_next_query_is_sent_before_a_completed_one_is_handed_over() {
        // One query at a time: when the first is handed over (and parsed), the second is
        // already on its way, so the slot does not wait for the parse.
        let source = Cutting::new(rows(), 1_000);
        let roots: Vec<Part> = (0..3)
            .map(|i| {
                let mut p = part(60, 0);
                p.identities = who(8)[i..=i].to_vec();
                p
            })
            .collect();
        let scan = Semaphore::new(1);
        let auditor = Semaphore::new(100);
        let runner = Runner {
            source: &source,
            permits: [&scan, &auditor],
            splits_by_time: true,
            on_query: &|_| {},
            observer: &Heard::default(),
            span: None,
            limit: 1,
        };
        let plan = Plan {
            label: "azure-activity",
            table: LogTable::AzureActivity,
            build: &build,
            scope: None,
        };
        let mut sent_at_hand_over = Vec::new();
        let queries = runner
            .run(&plan, roots, |_| {
                sent_at_hand_over.push(source.seen.lock().unwrap().len());
                true
            })
            .await
            .unwrap();
        assert_eq!(queries, 3);
        assert_eq!(sent_at_hand_over, [2, 3, 3]);
        assert_eq!(source.max_in_flight.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_concurrency_bound_is_respected_and_reached() {
        let source = Cutting::new(rows(), 1_000);
        let roots: Vec<Part> = (0..8)
            .map(|i| {
                let mut p = part(60, 0);
                p.identities = who(8)[i..=i].to_vec();
                p
            })
            .collect();
        let (done, queries) = run_all(&source, roots, 3).await;
        assert_eq!((done.len(), queries), (8, 8));
        assert_eq!(source.max_in_flight.load(Ordering::SeqCst), 3);
    }
}
