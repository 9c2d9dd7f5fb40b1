//! The behaviour baseline (issue 14, item 4): what each activated identity did, and how often it
//! activated roles, in the days before the scan window, and which operations of its window it
//! had never performed before.
//!
//! The period is the `--baseline-days` before the earliest start of the scan's activation
//! windows, `[start, end)`. A source that runs KQL answers one summarize query per table for
//! all activated identities at once (chunked only when the source caps the identities per
//! query): AzureActivity for every identity, AuditLogs directory changes for the identities of
//! directory-role and group activations, and, without a state store that covers the period,
//! one AuditLogs query counting their activations. An offline source (an export, the demo)
//! hands over its tables, kept to the activated identities before the window; the baseline is
//! computed from them only when the table reaches back to the period's start, and is otherwise
//! unavailable, saying how far the export reaches.
//!
//! Nothing here ever reads as "no first-time operations" by mistake: a failed, cut or partial
//! query, an identity that cannot be quoted, or an export that does not cover the period makes
//! the affected activations' baseline `unavailable` with the reason. History that is missing in
//! the other way (an unreadable row of the period) can only make an operation look new, never
//! hide one, so it does not make the baseline unavailable.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use pim_domain::baseline::{OperationKey, baseline_period};
use pim_domain::{
    ActivationHistory, Activity, ActivitySource, Baseline, BaselineStatus, FirstTimeOperation,
    ReportWindow, RoleKind, Table, TimeRange,
};
use pim_kql::{Identity, QueryRange};
use pim_loganalytics::{KqlSource, LogQuery, LogTable, QueryOutcome};
use pim_rules::RulesConfig;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::auditor::{activity_scope, quotable};

/// Activations recorded before this scan, by a state store of earlier runs (`pim-batch
/// --state`; [`ScanOptions::known_activations`](crate::ScanOptions::known_activations)): the
/// behaviour baseline counts each identity's activations in its period from these instead of
/// querying AuditLogs, when [`since`](Self::since) reaches back to the period's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownActivations {
    /// From when the records are complete: the window start of the earliest successful run.
    pub since: OffsetDateTime,
    /// The activations: who, and when.
    pub activations: Vec<KnownActivation>,
}

/// One activation a state store recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownActivation {
    /// The user principal name, if known.
    pub upn: Option<String>,
    /// The object id, if known.
    pub object_id: Option<String>,
    /// When the activation completed.
    pub activated_at: OffsetDateTime,
}

/// One identity's history row: who (lower case) and what.
#[derive(Debug, Clone)]
struct HistoryRow {
    upn: String,
    object_id: String,
    key: OperationKey,
}

/// What one table's history read gave.
#[derive(Debug, Default)]
struct TableHistory {
    rows: Vec<HistoryRow>,
    /// Why the whole table's history is unknown.
    failure: Option<String>,
    /// Identities left out of the query (their value cannot be quoted into KQL).
    identity_failures: Vec<(Identity, String)>,
    /// Whether the table was read at all (false: no activation needed it).
    read: bool,
}

/// Activation counts per identity, or why they are unknown.
#[derive(Debug, Default)]
struct Counts {
    /// `(upn, object id, count)`, lower case.
    rows: Vec<(String, String, u64)>,
    /// From the state store: the activations themselves.
    known: Option<Vec<KnownActivation>>,
    failure: Option<String>,
    source: &'static str,
}

/// Everything the baseline stage learned, for [`BaselineData::for_activation`].
#[derive(Debug)]
pub(crate) struct BaselineData {
    days: u32,
    period: ReportWindow,
    azure: TableHistory,
    directory: TableHistory,
    counts: Counts,
    /// Queries run and rows read (for the run summary).
    pub(crate) queries: usize,
    pub(crate) rows: usize,
    /// Warnings for the report.
    pub(crate) warnings: Vec<String>,
}

/// What the stage needs from the scan.
pub(crate) struct Stage<'s> {
    pub(crate) source: &'s dyn KqlSource,
    pub(crate) permits: [&'s Semaphore; 2],
    /// Hears each baseline query, as the scan's other queries (telemetry counts them).
    pub(crate) observer: &'s dyn crate::ScanObserver,
    pub(crate) days: u32,
    pub(crate) max_identities: usize,
    pub(crate) known: Option<&'s KnownActivations>,
    /// The AzureActivity history an export's single pass already read (issue 12), used when
    /// it was read with this stage's own scope and period.
    pub(crate) prefetched: std::sync::Mutex<Option<crate::offline::PrefetchedHistory>>,
}

impl Stage<'_> {
    /// Reads the history of `activations`' identities (see the module docs).
    pub(crate) async fn collect(&self, activations: &[pim_domain::Activation]) -> BaselineData {
        let first_start = activations
            .iter()
            .map(|a| a.window.start)
            .min()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let period = baseline_period(first_start, self.days);
        let all: Vec<&pim_domain::Activation> = activations.iter().collect();
        let dir: Vec<&pim_domain::Activation> = activations
            .iter()
            .filter(|a| a.role.kind != RoleKind::AzureResource)
            .collect();
        let mut data = BaselineData {
            days: self.days,
            period,
            azure: TableHistory::default(),
            directory: TableHistory::default(),
            counts: Counts::default(),
            queries: 0,
            rows: 0,
            warnings: Vec::new(),
        };
        let known = self.known.filter(|k| k.since <= period.start);
        if let Some(k) = self.known
            && known.is_none()
        {
            data.warnings.push(format!(
                "the state store's records begin at {}, after the behaviour baseline's start ({}): activations in the period are counted from AuditLogs instead",
                stamp(k.since),
                stamp(period.start)
            ));
        }
        if self.source.capabilities().runs_arbitrary_kql {
            self.collect_live(&mut data, &all, &dir, known).await;
        } else {
            self.collect_offline(&mut data, &all, known).await;
        }
        data
    }

    async fn collect_live(
        &self,
        data: &mut BaselineData,
        all: &[&pim_domain::Activation],
        dir: &[&pim_domain::Activation],
        known: Option<&KnownActivations>,
    ) {
        let range = QueryRange {
            range: TimeRange::new(data.period.start, data.period.end),
            end_inclusive: false,
        };
        let chunk = self.max_identities;
        let (azure_ids, azure_bad) = quotable(identities(all), LogTable::AzureActivity);
        let (dir_ids, dir_bad) = quotable(identities(dir), LogTable::AuditLogs);
        let azure = async {
            let kql = pim_kql::azure_baseline_queries(&azure_ids, range, chunk);
            self.summaries("baseline-azure", LogTable::AzureActivity, kql, range)
                .await
        };
        let directory = async {
            if dir.is_empty() {
                return (Ok(Vec::new()), 0);
            }
            let kql = pim_kql::directory_baseline_queries(&dir_ids, range, chunk);
            self.summaries("baseline-directory", LogTable::AuditLogs, kql, range)
                .await
        };
        let counts = async {
            if known.is_some() {
                return (Ok(Vec::new()), 0);
            }
            let kql = pim_kql::activation_count_queries(&azure_ids, range, chunk);
            self.summaries("baseline-activations", LogTable::AuditLogs, kql, range)
                .await
        };
        let ((azure, qa), (directory, qd), (counts, qc)) =
            futures_util::future::join3(azure, directory, counts).await;
        data.queries += qa + qd + qc;
        for tables in [&azure, &directory, &counts].into_iter().flatten() {
            data.rows += tables.iter().map(Table::len).sum::<usize>();
        }
        data.azure = history_of(
            azure,
            azure_bad,
            LogTable::AzureActivity,
            &mut data.warnings,
        );
        data.directory = if dir.is_empty() {
            TableHistory::default()
        } else {
            history_of(directory, dir_bad, LogTable::AuditLogs, &mut data.warnings)
        };
        data.counts = match known {
            Some(k) => Counts {
                known: Some(k.activations.clone()),
                source: "state",
                ..Counts::default()
            },
            None => match counts {
                Ok(tables) => Counts {
                    rows: tables.iter().flat_map(count_rows).collect(),
                    source: "audit_logs",
                    ..Counts::default()
                },
                Err(reason) => {
                    data.warnings.push(format!(
                        "{reason}; activation counts in the behaviour baseline are unknown"
                    ));
                    Counts {
                        failure: Some(reason),
                        source: "audit_logs",
                        ..Counts::default()
                    }
                }
            },
        };
    }

    /// Runs the (chunked) summarize queries of one table; every answer must be complete.
    async fn summaries(
        &self,
        label: &str,
        table: LogTable,
        kql: pim_kql::Result<Vec<String>>,
        range: QueryRange,
    ) -> (Result<Vec<Table>, String>, usize) {
        let texts = match kql {
            Ok(t) => t,
            Err(e) => {
                return (Err(format!("the {label} query could not be built: {e}")), 0);
            }
        };
        // The chunks run at once, each under both concurrency bounds: 5,000 identities make 25
        // chunks per table, which one after another took 25 latencies (issue 12, item 3). The
        // answers are read in chunk order; the first failure stops the table, and chunks not
        // yet sent are then never sent.
        let sent = AtomicUsize::new(0);
        let sent = &sent;
        let mut running: FuturesOrdered<_> = texts
            .into_iter()
            .map(|kql| async move {
                let query = LogQuery {
                    label: label.to_owned(),
                    table: Some(table),
                    kql,
                    timespan: range.range,
                    scope: None,
                };
                self.run(&query, sent).await
            })
            .collect();
        let mut tables = Vec::new();
        while let Some(answer) = running.next().await {
            let queries = || sent.load(Ordering::Relaxed);
            let outcome = match answer {
                Ok(o) => o,
                Err(e) => return (Err(format!("the {label} query failed: {e}")), queries()),
            };
            if let Some(cut) = &outcome.truncation {
                return (
                    Err(format!(
                        "the {label} query was cut at a service limit ({cut})"
                    )),
                    queries(),
                );
            }
            if let Some(partial) = &outcome.partial_error {
                return (
                    Err(format!(
                        "the {label} query returned a partial result ({partial})"
                    )),
                    queries(),
                );
            }
            tables.extend(outcome.tables.into_iter().take(1));
        }
        (Ok(tables), sent.load(Ordering::Relaxed))
    }

    /// One query under both concurrency bounds; `sent` counts it once it is sent.
    async fn run(
        &self,
        query: &LogQuery,
        sent: &AtomicUsize,
    ) -> pim_loganalytics::Result<QueryOutcome> {
        let closed = |_| pim_loganalytics::Error::Unsupported {
            message: "the scan's query permits were closed".to_owned(),
        };
        let _scan = self.permits[0].acquire().await.map_err(closed)?;
        let _auditor = self.permits[1].acquire().await.map_err(closed)?;
        sent.fetch_add(1, Ordering::Relaxed);
        // As every query of a scan: a `pim.query` span with our names and counts only, and
        // the observer told how it went.
        let table = query.table.map_or("", |t| t.name());
        let span = tracing::info_span!(
            target: crate::TRACE_TARGET,
            "pim.query",
            query = query.label.as_str(),
            table,
            rows = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let answer = tracing::Instrument::instrument(self.source.query(query), span.clone()).await;
        let (rows, status) = match &answer {
            Ok(o) if o.truncation.is_some() => (rows_of(o), crate::QueryStatus::Cut),
            Ok(o) => (rows_of(o), crate::QueryStatus::Complete),
            Err(_) => (0, crate::QueryStatus::Failed),
        };
        span.record("rows", rows);
        span.record("outcome", status.as_str());
        self.observer.query_done(&crate::QueryDone {
            name: &query.label,
            table,
            rows,
            duration: started.elapsed(),
            status,
        });
        answer
    }

    /// Why an export whose earliest readable row is `earliest` cannot give the baseline
    /// period starting at `start`; `None` when it reaches back far enough.
    fn coverage_gap(
        &self,
        earliest: Option<OffsetDateTime>,
        start: OffsetDateTime,
        name: &str,
    ) -> Option<String> {
        match earliest {
            Some(e) if e <= start => None,
            Some(e) => Some(format!(
                "exports cover only {} onwards ({name}), not the {} days from {}",
                stamp(e),
                self.days,
                stamp(start)
            )),
            None => Some(format!(
                "exports cover no readable time ({name} has no timestamped rows), not the {} days from {}",
                self.days,
                stamp(start)
            )),
        }
    }

    async fn collect_offline(
        &self,
        data: &mut BaselineData,
        all: &[&pim_domain::Activation],
        known: Option<&KnownActivations>,
    ) {
        let ids = identities(all);
        // Every row of these identities up to the window (the export says how far back its
        // rows reach, kept or not).
        let floor = OffsetDateTime::UNIX_EPOCH;
        let span = TimeRange::new(floor, data.period.end);
        for table in [LogTable::AzureActivity, LogTable::AuditLogs] {
            let query = LogQuery {
                label: format!("baseline-{}", table.name()),
                table: Some(table),
                kql: String::new(),
                timespan: span,
                scope: Some(activity_scope(table, &ids, span)),
            };
            let name = self.source.table_label(table);
            let prefetched = self
                .prefetched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .filter(|p| {
                    table == LogTable::AzureActivity
                        && Some(&p.scope) == query.scope.as_ref()
                        && p.period == data.period
                });
            if let Some(p) = prefetched {
                // Read in the scan's one pass over the file: counted there.
                self.absorb_prefetched(data, p, &name, known);
                continue;
            }
            data.queries += 1;
            let outcome = match self.run(&query, &AtomicUsize::new(0)).await {
                Ok(o) => o,
                Err(e) => {
                    let reason = match e {
                        pim_loganalytics::Error::MissingTable { .. } => {
                            format!("there is no {name} export to compute it from")
                        }
                        e => format!("the {name} export could not be read: {e}"),
                    };
                    self.offline_unavailable(data, table, reason, known);
                    continue;
                }
            };
            let earliest = outcome
                .scoped
                .as_ref()
                .map_or_else(|| earliest_time(outcome.tables.first()), |s| s.earliest);
            data.rows += outcome.tables.first().map_or(0, Table::len);
            let Some(first) = outcome.tables.into_iter().next() else {
                self.offline_unavailable(data, table, format!("{name} holds no table"), known);
                continue;
            };
            if let Some(reason) = self.coverage_gap(earliest, data.period.start, &name) {
                self.offline_unavailable(data, table, reason, known);
                continue;
            }
            let period = TimeRange::new(data.period.start, data.period.end);
            let in_period = |t: OffsetDateTime| t >= period.start && t < period.end;
            let parsed = match table {
                LogTable::AzureActivity => pim_correlate::parse_azure_activity(&first, &name, true),
                LogTable::AuditLogs => pim_correlate::parse_directory_activity(&first, &name, true),
            };
            let history = if let Some(why) = parsed.failure {
                TableHistory {
                    failure: Some(format!("{name} could not be read: {why}")),
                    read: true,
                    ..TableHistory::default()
                }
            } else {
                TableHistory {
                    rows: parsed
                        .activities
                        .iter()
                        .filter(|a| in_period(a.time))
                        .map(|a| HistoryRow {
                            upn: lower(a.caller.as_deref()),
                            object_id: lower(a.caller_object_id.as_deref()),
                            key: OperationKey::of(a),
                        })
                        .collect(),
                    read: true,
                    ..TableHistory::default()
                }
            };
            match table {
                LogTable::AzureActivity => data.azure = history,
                LogTable::AuditLogs => {
                    data.directory = history;
                    if let Some(k) = known {
                        data.counts = state_counts(k);
                    } else {
                        // The export's PIM activation records give the counts.
                        let events = pim_correlate::parse_pim_events(&first, &name);
                        let mut rows: BTreeMap<(String, String), u64> = BTreeMap::new();
                        for record in events
                            .activations
                            .iter()
                            .filter(|r| r.activation_time.is_some_and(in_period))
                        {
                            let key = (
                                lower(record.principal.upn.as_deref()),
                                lower(record.principal.object_id.as_deref()),
                            );
                            *rows.entry(key).or_default() += 1;
                        }
                        data.counts = Counts {
                            rows: rows.into_iter().map(|((u, o), n)| (u, o, n)).collect(),
                            source: "export",
                            ..Counts::default()
                        };
                    }
                }
            }
        }
    }

    /// The AzureActivity history read in the scan's single pass over the export, judged as a
    /// queried table is: coverage first, then the operations of the period.
    fn absorb_prefetched(
        &self,
        data: &mut BaselineData,
        p: crate::offline::PrefetchedHistory,
        name: &str,
        known: Option<&KnownActivations>,
    ) {
        let table = LogTable::AzureActivity;
        // As for a queried table: the scope's earliest when it left rows out, else the
        // earliest of the rows (all of them) it kept.
        let earliest = if p.stats.left_out > 0 {
            p.stats.earliest
        } else {
            p.history.earliest
        };
        data.rows += p.stats.kept;
        if let Some(reason) = self.coverage_gap(earliest, data.period.start, name) {
            self.offline_unavailable(data, table, reason, known);
            return;
        }
        data.azure = match p.history.failure {
            Some(why) => TableHistory {
                failure: Some(format!("{name} could not be read: {why}")),
                read: true,
                ..TableHistory::default()
            },
            None => TableHistory {
                rows: p
                    .history
                    .entries
                    .into_iter()
                    .map(|(upn, object_id, key)| HistoryRow {
                        upn,
                        object_id,
                        key,
                    })
                    .collect(),
                read: true,
                ..TableHistory::default()
            },
        };
    }

    fn offline_unavailable(
        &self,
        data: &mut BaselineData,
        table: LogTable,
        reason: String,
        known: Option<&KnownActivations>,
    ) {
        data.warnings.push(format!(
            "behaviour baseline unavailable from {}: {reason}",
            table.name()
        ));
        let history = TableHistory {
            failure: Some(reason.clone()),
            read: true,
            ..TableHistory::default()
        };
        match table {
            LogTable::AzureActivity => data.azure = history,
            LogTable::AuditLogs => {
                data.directory = history;
                data.counts = match known {
                    Some(k) => state_counts(k),
                    None => Counts {
                        failure: Some(reason),
                        source: "export",
                        ..Counts::default()
                    },
                };
            }
        }
    }
}

fn state_counts(k: &KnownActivations) -> Counts {
    Counts {
        known: Some(k.activations.clone()),
        source: "state",
        ..Counts::default()
    }
}

impl BaselineData {
    /// The baseline of one activation, given the operations of its window.
    pub(crate) fn for_activation(
        &self,
        activation: &pim_domain::Activation,
        activities: &[Activity],
        rules: &RulesConfig,
    ) -> Baseline {
        let p = &activation.principal;
        let upn = lower(p.upn.as_deref());
        let oid = lower(p.object_id.as_deref());
        let is_me = |u: &str, o: &str| {
            (!upn.is_empty() && (u == upn)) || (!oid.is_empty() && (u == oid || o == oid))
        };
        let kind = activation.role.kind;
        let mut needs = vec![];
        if kind != RoleKind::EntraDirectory
            || activities
                .iter()
                .any(|a| a.source == ActivitySource::AzureActivity)
        {
            needs.push((ActivitySource::AzureActivity, &self.azure));
        }
        if kind != RoleKind::AzureResource
            || activities
                .iter()
                .any(|a| a.source == ActivitySource::AuditLogs)
        {
            needs.push((ActivitySource::AuditLogs, &self.directory));
        }
        let activations = self.activation_history(&upn, &oid);
        let unavailable = |reason: String| Baseline {
            days: self.days,
            period: self.period,
            status: BaselineStatus::Unavailable,
            reason: Some(reason),
            known_operations: 0,
            first_time_operations: Vec::new(),
            activations: activations.clone(),
        };
        if upn.is_empty() && oid.is_empty() {
            return unavailable("the activation names no user".to_owned());
        }
        for (source, history) in &needs {
            let table = table_name(*source);
            if let Some(why) = &history.failure {
                return unavailable(why.clone());
            }
            if let Some((_, why)) = history.identity_failures.iter().find(|(i, _)| {
                lower(i.upn.as_deref()) == upn && lower(i.object_id.as_deref()) == oid
            }) {
                return unavailable(why.clone());
            }
            if !history.read {
                return unavailable(format!("the {table} history was not read"));
            }
        }
        let mut known: HashSet<(ActivitySource, &OperationKey)> = HashSet::new();
        for (source, history) in &needs {
            for row in history.rows.iter().filter(|r| is_me(&r.upn, &r.object_id)) {
                known.insert((*source, &row.key));
            }
        }
        let mut first: Vec<FirstTimeOperation> = Vec::new();
        let mut index: std::collections::HashMap<(ActivitySource, OperationKey), usize> =
            std::collections::HashMap::new();
        // Whether an operation is bookkeeping or a plain read depends on its name alone, and a
        // window repeats few names many times (a script's 5,100 restarts): each distinct name
        // is matched against the catalogue once, not once per operation (issue 12, item 3:
        // this was most of the assessment stage at 1,000,000 operations).
        let mut skipped: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
        for a in activities {
            let skip = *skipped.entry(a.operation.as_str()).or_insert_with(|| {
                pim_rules::catalogue::is_elevation_bookkeeping(a)
                    || pim_rules::catalogue::is_read_only(a, rules)
            });
            if skip {
                continue;
            }
            let key = OperationKey::of(a);
            if known.contains(&(a.source, &key)) {
                continue;
            }
            match index.get(&(a.source, key.clone())) {
                Some(&i) => {
                    first[i].count += 1;
                    first[i].first = first[i].first.min(a.time);
                }
                None => {
                    index.insert((a.source, key.clone()), first.len());
                    first.push(FirstTimeOperation {
                        operation: a.operation.as_str().to_owned(),
                        resource_type: key.resource_type,
                        source: a.source,
                        count: 1,
                        first: a.time,
                    });
                }
            }
        }
        first.sort_by_key(|f| f.first);
        Baseline {
            days: self.days,
            period: self.period,
            status: BaselineStatus::Computed,
            reason: None,
            known_operations: known.len(),
            first_time_operations: first,
            activations,
        }
    }

    fn activation_history(&self, upn: &str, oid: &str) -> ActivationHistory {
        let c = &self.counts;
        if let Some(why) = &c.failure {
            return ActivationHistory {
                count: None,
                source: c.source.to_owned(),
                error: Some(why.clone()),
            };
        }
        let same = |v: &Option<String>, me: &str| {
            !me.is_empty()
                && v.as_deref()
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case(me))
        };
        let count = match &c.known {
            Some(known) => known
                .iter()
                .filter(|k| k.activated_at >= self.period.start && k.activated_at < self.period.end)
                .filter(|k| same(&k.upn, upn) || same(&k.object_id, oid) || same(&k.upn, oid))
                .count() as u64,
            None => c
                .rows
                .iter()
                .filter(|(u, o, _)| {
                    (!upn.is_empty() && u == upn) || (!oid.is_empty() && (o == oid || u == oid))
                })
                .map(|(_, _, n)| n)
                .sum(),
        };
        ActivationHistory {
            count: Some(count),
            source: c.source.to_owned(),
            error: None,
        }
    }
}

fn table_name(source: ActivitySource) -> &'static str {
    match source {
        ActivitySource::AzureActivity => LogTable::AzureActivity.name(),
        ActivitySource::AuditLogs => LogTable::AuditLogs.name(),
    }
}

/// The history of one table from its summarize answers.
fn history_of(
    answer: Result<Vec<Table>, String>,
    identity_failures: Vec<(Identity, String)>,
    table: LogTable,
    warnings: &mut Vec<String>,
) -> TableHistory {
    for (_, why) in &identity_failures {
        warnings.push(format!("{why}; its behaviour baseline is unavailable"));
    }
    match answer {
        Ok(tables) => TableHistory {
            rows: tables.iter().flat_map(history_rows).collect(),
            identity_failures,
            read: true,
            failure: None,
        },
        Err(reason) => {
            warnings.push(format!(
                "{reason}; the behaviour baseline of activations that depend on {} is unavailable",
                table.name()
            ));
            TableHistory {
                failure: Some(reason),
                identity_failures,
                read: true,
                rows: Vec::new(),
            }
        }
    }
}

/// The rows of a baseline summary ([`pim_kql::BASELINE_COLUMNS`]).
fn history_rows(t: &Table) -> Vec<HistoryRow> {
    let col = |n: &str| t.column_index(n);
    let (Some(u), Some(o), Some(op), Some(ty)) = (
        col("Upn"),
        col("ObjectId"),
        col("Operation"),
        col("ResourceType"),
    ) else {
        return Vec::new();
    };
    t.rows
        .iter()
        .map(|r| HistoryRow {
            upn: lower(text(r.get(u)).as_deref()),
            object_id: lower(text(r.get(o)).as_deref()),
            key: OperationKey::new(
                text(r.get(op)).as_deref().unwrap_or_default(),
                text(r.get(ty)).as_deref().unwrap_or_default(),
            ),
        })
        .collect()
}

/// The rows of an activation-count summary ([`pim_kql::ACTIVATION_COUNT_COLUMNS`]).
fn count_rows(t: &Table) -> Vec<(String, String, u64)> {
    let col = |n: &str| t.column_index(n);
    let (Some(u), Some(o), Some(n)) = (col("Upn"), col("ObjectId"), col("Activations")) else {
        return Vec::new();
    };
    t.rows
        .iter()
        .map(|r| {
            let count = match r.get(n) {
                Some(serde_json::Value::Number(x)) => x.as_u64().unwrap_or(0),
                Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
                _ => 0,
            };
            (
                lower(text(r.get(u)).as_deref()),
                lower(text(r.get(o)).as_deref()),
                count,
            )
        })
        .collect()
}

fn text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn lower(v: Option<&str>) -> String {
    v.map(|v| v.trim().to_lowercase()).unwrap_or_default()
}

/// The earliest readable `TimeGenerated` (else `ActivityDateTime`) of a whole table.
fn earliest_time(table: Option<&Table>) -> Option<OffsetDateTime> {
    let t = table?;
    let cols: Vec<usize> = ["TimeGenerated", "ActivityDateTime"]
        .iter()
        .filter_map(|c| t.column_index(c))
        .collect();
    t.rows
        .iter()
        .filter_map(|r| {
            cols.iter().find_map(|&c| match r.get(c) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                    pim_domain::timestamp::parse_timestamp(s.trim()).ok()
                }
                _ => None,
            })
        })
        .min()
}

/// The identities whose history to read (one per UPN / object id pair).
fn identities(activations: &[&pim_domain::Activation]) -> Vec<Identity> {
    crate::auditor::identities(activations)
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Rows of every table of an answer.
fn rows_of(outcome: &QueryOutcome) -> usize {
    outcome.tables.iter().map(Table::len).sum()
}
