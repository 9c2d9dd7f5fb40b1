//! The scan pipeline: query, parse, build windows, correlate, assess, assemble the report.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use pim_correlate::{
    Activations, CorrelateOptions, ParsedActivities, PimEvents, UnreadableRow, WindowOptions,
    attribute_unreadable, build_activations, correlate_owned, parse_azure_activity,
    parse_directory_activity, parse_pim_events,
};
use pim_domain::{
    Activation, ActivationReport, Activity, ActivityStatus, Assessment, AssessorKind, DataProblem,
    REPORT_SCHEMA_VERSION, Report, ReportSource, ReportSummary, ReportWindow, RoleKind, RunSummary,
    ScanSettings, Table, TimeRange, Verdict,
};
use pim_kql::Identity;
use pim_loganalytics::{
    IdentityField, IdentityScope, KqlSource, LogQuery, LogTable, OperationScope, QueryOutcome,
    RowScope, TimeScope,
};
use pim_rules::{Assessor, Case, RulesConfig, RulesEngine};
use pim_tickets::TicketVerifier;
use time::{Duration, OffsetDateTime};
use tracing::{debug, info, warn};

use crate::baseline::BaselineData;
use crate::budget::CallBudget;
use crate::config::ModelLimits;
use crate::observer::{ModelDone, ModelOutcome, ObserverHandle, ScanEnd, ScanObserver, ScanStage};
use crate::split;
use crate::{Error, Result, ScanOptions};
use futures_util::StreamExt;
use futures_util::future::Either;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Runs scans: one source of logs, the rules engine, and optionally a model-backed assessor.
///
/// Cheap to share: hold it in an `Arc` and call [`Auditor::scan`] from many tasks.
#[derive(Debug, Clone)]
pub struct Auditor {
    source: Arc<dyn KqlSource>,
    rules: Arc<RulesEngine>,
    assessor: Option<Arc<dyn Assessor>>,
    limits: ModelLimits,
    model_deadline: std::time::Duration,
    observer: ObserverHandle,
    /// Log Analytics queries in flight across all of this auditor's scans (each scan also has
    /// its own bound, [`ScanOptions::query_concurrency`]).
    query_permits: Arc<Semaphore>,
    /// Verifies cited tickets, when a ticket system is configured (issue 14).
    tickets: Option<Arc<TicketVerifier>>,
}

/// How long the whole model stage of a scan may take by default: 10 minutes.
pub const DEFAULT_MODEL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Builds an [`Auditor`].
#[derive(Debug)]
pub struct AuditorBuilder {
    source: Arc<dyn KqlSource>,
    rules: RulesConfig,
    assessor: Option<Arc<dyn Assessor>>,
    limits: ModelLimits,
    model_deadline: std::time::Duration,
    observer: ObserverHandle,
    query_concurrency: Option<usize>,
    tickets: Option<Arc<TicketVerifier>>,
}

impl AuditorBuilder {
    /// Replaces the rules engine's configuration (privileged name patterns, ...).
    pub fn rules(mut self, config: RulesConfig) -> Self {
        self.rules = config;
        self
    }

    /// Adds a model-backed assessor. Its answers are combined with the rules engine's under the
    /// guardrails: it can never lower the rules' risk or clear their flags.
    pub fn assessor(mut self, assessor: Arc<dyn Assessor>) -> Self {
        self.assessor = Some(assessor);
        self
    }

    /// Limits on model calls: assessments in flight at once (default 8) and optional
    /// requests-per-minute and tokens-per-minute budgets.
    pub fn model_limits(mut self, limits: ModelLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Bounds the whole model stage of each scan (default [`DEFAULT_MODEL_DEADLINE`], 10
    /// minutes): activations the model has not assessed by then are `unknown` ("model stage
    /// deadline reached"), keeping the rules' risk, flags and evidence, and the report's
    /// `warnings` says how many. A slow or hung model cannot stretch a scan past it.
    pub fn model_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.model_deadline = deadline;
        self
    }

    /// Reports the progress of every scan to `observer` (stages, and activations assessed so
    /// far). Without one, progress is only logged.
    pub fn observer(mut self, observer: Arc<dyn ScanObserver>) -> Self {
        self.observer = ObserverHandle(observer);
        self
    }

    /// Bounds the Log Analytics queries in flight across all scans of this auditor (at least
    /// 1). Without it only each scan's own bound applies
    /// ([`ScanOptions::query_concurrency`], default
    /// [`DEFAULT_QUERY_CONCURRENCY`](crate::DEFAULT_QUERY_CONCURRENCY)): set it when scans share
    /// the auditor at the same time, since the query API's limit of 5 concurrent queries is per
    /// user, not per scan (reference §9.4).
    pub fn query_concurrency(mut self, queries: usize) -> Self {
        self.query_concurrency = Some(queries.max(1));
        self
    }

    /// Verifies every cited ticket (the justification's and Entra's own ticket fields) in the
    /// configured ticket systems during each scan, while the activity is fetched: each ticket
    /// once per scan, the answers recorded as each activation's `ticket_checks`, which the
    /// rules turn into flags and risk (issue 14).
    pub fn tickets(mut self, verifier: Arc<TicketVerifier>) -> Self {
        self.tickets = Some(verifier);
        self
    }

    /// Finishes the builder.
    pub fn build(self) -> Auditor {
        let permits = self
            .query_concurrency
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Auditor {
            source: self.source,
            rules: Arc::new(RulesEngine::new(self.rules)),
            assessor: self.assessor,
            limits: self.limits,
            model_deadline: self.model_deadline,
            observer: self.observer,
            query_permits: Arc::new(Semaphore::new(permits)),
            tickets: self.tickets,
        }
    }
}

/// What one activity source produced for the scan, or why it could not.
struct ActivityFetch {
    activities: Vec<Activity>,
    /// Rows that could not be read, for the activations they could belong to.
    unreadable: Vec<UnreadableRow>,
    /// Set when the source failed: every activation that depends on it becomes `unknown`.
    failure: Option<String>,
    /// Set when the source returned a partial result.
    partial: bool,
    /// Identities left out of the queries because a value of theirs cannot be quoted into KQL,
    /// with the reason: only their activations become `unknown`.
    identity_failures: Vec<(Identity, String)>,
    /// Identities whose activity is still cut at a service limit after every split (one
    /// identity over one minute): only their activations are flagged `activity_truncated`.
    truncated_identities: Vec<Identity>,
}

impl ActivityFetch {
    fn empty() -> Self {
        Self {
            activities: Vec::new(),
            unreadable: Vec::new(),
            failure: None,
            partial: false,
            identity_failures: Vec::new(),
            truncated_identities: Vec::new(),
        }
    }

    /// Whether `activation`'s identity is one of `identities`.
    fn names(identities: &[Identity], activation: &Activation) -> bool {
        let pairs: Vec<(Identity, ())> = identities.iter().map(|i| (i.clone(), ())).collect();
        Self::identity_match(&pairs, activation).is_some()
    }

    /// Why this source could not be read for `activation`'s identity, if it could not.
    fn identity_failure<'f>(
        failures: &'f [(Identity, String)],
        activation: &Activation,
    ) -> Option<&'f String> {
        Self::identity_match(failures, activation)
    }

    /// The value paired with `activation`'s identity (same UPN or object id, ignoring case).
    fn identity_match<'f, T>(
        failures: &'f [(Identity, T)],
        activation: &Activation,
    ) -> Option<&'f T> {
        let p = &activation.principal;
        failures
            .iter()
            .find(|(i, _)| {
                let same = |a: &Option<String>, b: &Option<String>| {
                    a.as_deref()
                        .zip(b.as_deref())
                        .is_some_and(|(a, b)| a.trim().eq_ignore_ascii_case(b.trim()))
                };
                same(&i.upn, &p.upn) || same(&i.object_id, &p.object_id)
            })
            .map(|(_, reason)| reason)
    }
}

impl Auditor {
    /// Starts building an auditor that reads from `source`.
    pub fn builder(source: Arc<dyn KqlSource>) -> AuditorBuilder {
        AuditorBuilder {
            source,
            rules: RulesConfig::default(),
            assessor: None,
            limits: ModelLimits::default(),
            model_deadline: DEFAULT_MODEL_DEADLINE,
            observer: ObserverHandle::default(),
            query_concurrency: None,
            tickets: None,
        }
    }

    /// The source this auditor reads.
    pub fn source(&self) -> &Arc<dyn KqlSource> {
        &self.source
    }

    /// Scans the window that `options` describes and returns the report model.
    ///
    /// `generated_at` is the report's timestamp: the caller passes the clock so that library code
    /// never reads it (and reports of fixed inputs are reproducible).
    ///
    /// The report's [`run`](Report::run) block says how the scan went: its duration, the
    /// queries and rows read, and what the model assessor used during this scan (the difference
    /// of its [`usage`](Assessor::usage) before and after; scans sharing an assessor at the same
    /// time each see the other's calls too). The same numbers are logged at info level as
    /// `scan summary`. The observer, if any, hears every stage and ends with
    /// [`ScanStage::Done`] whether the scan succeeds or fails.
    ///
    /// # Errors
    /// Fails only when the scan cannot produce a meaningful report: invalid options, the query
    /// for PIM activations failing, or its table holding rows none of which is recognisable as an
    /// audit record ([`Error::UnrecognisedInput`]). Failures of the activity queries do not fail the scan: the
    /// affected activations are reported as `unknown` with the reason, and the report carries a
    /// warning.
    pub async fn scan(
        &self,
        options: &ScanOptions,
        generated_at: OffsetDateTime,
    ) -> Result<Report> {
        let started = std::time::Instant::now();
        // The trace of a scan: this span, one per stage under it, one per query and model
        // assessment under those (exported only when telemetry is on; see `TRACE_TARGET`).
        // Its fields are our names and counts, never text from the logs.
        let span = tracing::info_span!(
            target: crate::TRACE_TARGET,
            "pim.scan",
            source = self.source.info().kind.as_str(),
            hours = options.hours,
            activations = tracing::field::Empty,
            findings = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let result = self
            .scan_inner(options, generated_at)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(report) => {
                span.record("activations", report.summary.activations);
                span.record("findings", report.summary.findings);
                span.record("outcome", "success");
                self.observer.finished(&ScanEnd::Succeeded(report));
            }
            Err(e) => {
                span.record("outcome", "failure");
                self.observer
                    .finished(&ScanEnd::Failed(e, started.elapsed()));
            }
        }
        self.observer.stage(ScanStage::Done);
        result
    }

    async fn scan_inner(
        &self,
        options: &ScanOptions,
        generated_at: OffsetDateTime,
    ) -> Result<Report> {
        // Monotonic timer, not the wall clock: for the run summary and the stage timings at
        // debug level, for operators chasing a slow scan.
        let started = std::time::Instant::now();
        let usage_before = self.assessor.as_ref().and_then(|a| a.usage());
        options.validate()?;
        let mut stage = started;
        let mut lap = |name: &str| {
            let now = std::time::Instant::now();
            debug!(
                stage = name,
                elapsed_ms = (now - stage).as_millis() as u64,
                "scan stage done"
            );
            stage = now;
        };
        let info = self.source.info();
        let end = options.end;
        let scan = TimeRange::new(end - Duration::hours(i64::from(options.hours)), end);
        let pim_range = TimeRange::new(
            scan.start - Duration::hours(i64::from(options.lookback_hours)),
            end,
        );
        let capabilities = self.source.capabilities();
        // A source that runs no KQL answers every query with the whole table it names.
        let whole_tables = !capabilities.runs_arbitrary_kql;
        let mut log = ScanLog::default();

        // Every query of this scan holds a permit of both: the scan's bound and the auditor's.
        let scan_permits =
            Semaphore::new(options.query_concurrency.clamp(1, Semaphore::MAX_PERMITS));
        let quiet = |_: &LogQuery| {};
        let pim_stage = tracing::info_span!(target: crate::TRACE_TARGET, "pim.stage.pim_events");
        let pim_runner = split::Runner {
            source: &*self.source,
            permits: [&scan_permits, &self.query_permits],
            splits_by_time: capabilities.splits_by_time,
            on_query: &quiet,
            observer: &*self.observer,
            span: pim_stage.id(),
            limit: options.query_concurrency,
        };

        // 1. PIM activations, expiries and deactivations: AuditLogs (primary) and the Activity
        // Log's azurerbac rows (Azure resource roles), one query each, run at once; a query cut
        // at a service limit is split by time until complete (issue 12). AuditLogs is polled
        // first, so a source that fails it at once (a mock, a bad configuration) is asked
        // nothing else; a failure after I/O drops the Activity Log query in flight.
        let audit_build = |p: &split::Part| Ok(Some(pim_kql::pim_events_query(p.range)));
        let activity_build =
            |p: &split::Part| Ok(Some(pim_kql::activity_pim_events_query(p.range)));
        let whole = split::Part {
            range: pim_range.into(),
            identities: Vec::new(),
        };
        self.observer.stage(ScanStage::Querying {
            what: LogTable::AuditLogs.name().to_owned(),
        });
        let audit_plan = split::Plan {
            label: "pim-events",
            table: LogTable::AuditLogs,
            build: &audit_build,
            // An export keeps only the PIM rows of AuditLogs while it reads the file (issue 12).
            scope: whole_tables.then(audit_pim_scope),
        };
        let activity_plan = split::Plan {
            label: "pim-events-activity",
            table: LogTable::AzureActivity,
            build: &activity_build,
            // An export keeps only the Activity Log's PIM rows while it reads the file, instead
            // of holding the whole table (issue 12).
            scope: whole_tables.then(activity_pim_scope),
        };
        // An export that can stream its rows reads AuditLogs first, then the Activity Log
        // once for all three of its readers (see `crate::offline`).
        let stream = if whole_tables {
            self.source.row_stream()
        } else {
            None
        };
        let audit_future = std::pin::pin!(complete_one(&pim_runner, &audit_plan, whole.clone()));
        let activity_future = std::pin::pin!(complete_one(&pim_runner, &activity_plan, whole));
        let (audit_answer, activity_pending) = if stream.is_some() {
            (audit_future.await, None)
        } else {
            match futures_util::future::select(audit_future, activity_future).await {
                Either::Left((audit, activity)) => (audit, Some(Either::Left(activity))),
                Either::Right((activity, audit)) => (audit.await, Some(Either::Right(activity))),
            }
        };
        let audit_name = self.source.table_label(LogTable::AuditLogs);
        let audit_events = match log.take_completed(
            audit_answer,
            LogTable::AuditLogs,
            capabilities.splits_by_time,
        ) {
            Ok(mut outcome) => {
                let scoped = outcome.scoped.take();
                let pim_table = log.take_table(outcome, &audit_name);
                let mut events = parse_pim_events(&pim_table, &file_name(&pim_table, &audit_name));
                drop(pim_table);
                if let Some(rows) = &scoped {
                    renumber_events(&mut events, &rows.positions);
                    // The source left rows out because it read their operation names, so the
                    // table has named rows and is recognisable. (Without an operation or audit
                    // column the source leaves nothing out and the parser judges every row.)
                    events.unrecognised = None;
                }
                if let Some(why) = events.unrecognised {
                    return Err(Error::UnrecognisedInput(why));
                }
                Some(events)
            }
            // An export folder may hold only the Activity Log: its PIM rows are then enough.
            // (Only a source that can lack a table, an export, answers MissingTable.)
            Err(pim_loganalytics::Error::MissingTable {
                table: LogTable::AuditLogs,
                ..
            }) => None,
            Err(source) => return Err(Error::PimQuery { source }),
        };
        self.observer.stage(ScanStage::Querying {
            what: LogTable::AzureActivity.name().to_owned(),
        });
        let window_options = WindowOptions {
            scan,
            default_duration: Duration::hours(i64::from(options.default_window_hours)),
        };
        let mut prefetched = None;
        // The activations AuditLogs alone gives, built to plan the pass: the scan's own when
        // the Activity Log adds no PIM event to them.
        let mut planned: Option<Activations> = None;
        let activity_answer = match (activity_pending, &stream) {
            (Some(Either::Left(running)), _) => running.await,
            (Some(Either::Right(done)), _) => done,
            (None, Some(stream)) => {
                let (plan, built) = self.pass_plan(audit_events.as_ref(), &window_options, options);
                planned = built;
                let answer = self.run_pass(&**stream, plan, pim_stage.id());
                match answer {
                    Ok(pass) => {
                        prefetched = Some((pass.activity, pass.history));
                        let completed = split::Completed {
                            label: "pim-events-activity".to_owned(),
                            outcome: pass.pim,
                            unresolved: Vec::new(),
                        };
                        (Ok(completed), 1)
                    }
                    Err(e) => (Err(e), 1),
                }
            }
            (None, None) => (
                Err(pim_loganalytics::Error::Unsupported {
                    message: "the PIM-events query on AzureActivity was not run".to_owned(),
                }),
                0,
            ),
        };
        let (prefetched_activity, prefetched_history) = prefetched.unwrap_or((None, None));
        let activity_name = self.source.table_label(LogTable::AzureActivity);
        // A source that runs no KQL and answered with the whole table (the demo) serves the
        // activity stage with this same answer instead of reading the table a second time. An
        // export that applied the scope kept only the PIM rows: the activity stage asks again,
        // with its own scope.
        let mut offline_activity: Option<QueryOutcome> = None;
        let activity_events = match log.take_completed(
            activity_answer,
            LogTable::AzureActivity,
            capabilities.splits_by_time,
        ) {
            Ok(mut outcome) if whole_tables => {
                let scoped = outcome.scoped.take();
                let mut events = outcome
                    .tables
                    .first()
                    .map_or_else(PimEvents::default, |full| {
                        pim_correlate::parse_activity_pim_events(
                            full,
                            &file_name(full, &activity_name),
                        )
                    });
                match scoped {
                    Some(rows) => renumber_events(&mut events, &rows.positions),
                    None => offline_activity = Some(outcome),
                }
                Some(events)
            }
            Ok(outcome) => {
                let t = log.take_table(outcome, &activity_name);
                let events =
                    pim_correlate::parse_activity_pim_events(&t, &file_name(&t, &activity_name));
                Some(events)
            }
            Err(e) if audit_events.is_some() => {
                // AuditLogs is the primary record; without the Activity Log's copy only the
                // cross-check (and Activity-Log-only tenants) is lost.
                if !matches!(e, pim_loganalytics::Error::MissingTable { .. }) {
                    warn!(error = %e, "PIM events query on AzureActivity failed");
                    log.warnings.push(format!(
                        "the PIM-events query on AzureActivity failed ({e}); Azure resource-role activations recorded only in the Activity Log are not seen"
                    ));
                }
                None
            }
            Err(source) => return Err(Error::PimQuery { source }),
        };
        // Merging nothing into AuditLogs' events leaves them as they were.
        let adds_nothing = activity_events.as_ref().is_none_or(PimEvents::is_empty);
        let planned = planned.filter(|_| audit_events.is_some() && adds_nothing);
        let events = match (audit_events, activity_events) {
            (Some(audit), Some(activity)) => pim_correlate::merge_pim_events(audit, activity),
            (Some(audit), None) => audit,
            (None, Some(activity)) => {
                log.warnings.push(format!(
                    "{audit_name} is missing: only Azure resource-role activations recorded in the Activity Log ({activity_name}) are seen; Entra directory roles and PIM for Groups cannot be seen without AuditLogs"
                ));
                activity
            }
            (None, None) => PimEvents::default(),
        };
        let Activations {
            mut activations,
            problems: window_problems,
            sources: activation_sources,
        } = match planned {
            Some(built) => built,
            None => build_activations(events, &window_options),
        };
        log.problems.extend(window_problems);
        info!(
            activations = activations.len(),
            "PIM activations in the scan window"
        );
        lap("pim-events");
        drop(pim_stage);

        // 2. What the activated identities did, across the union of their windows.
        let chunk = capabilities.max_identities_per_query.unwrap_or(usize::MAX);
        let (azure, directory) = if activations.is_empty() {
            (ActivityFetch::empty(), ActivityFetch::empty())
        } else {
            let span = union_span(&activations);
            let all: Vec<&Activation> = activations.iter().collect();
            let dir: Vec<&Activation> = activations
                .iter()
                .filter(|a| a.role.kind != RoleKind::AzureResource)
                .collect();
            // The two tables are fetched at once; the scan's and the auditor's bounds hold
            // across both. Each keeps its own log, merged in the order of before.
            let mut azure_log = ScanLog::default();
            let mut directory_log = ScanLog::default();
            let stage = tracing::info_span!(target: crate::TRACE_TARGET, "pim.stage.activity");
            // Cited tickets are looked up while the activity is fetched: both wait on I/O.
            let verify = async {
                match &self.tickets {
                    Some(v) => Some(v.verify(&activations).await),
                    None => None,
                }
            };
            let ((azure, directory), verified) = futures_util::future::join(
                futures_util::future::join(
                    self.fetch_activity(
                        LogTable::AzureActivity,
                        &all,
                        span,
                        options,
                        chunk,
                        &mut azure_log,
                        offline_activity.take(),
                        prefetched_activity,
                        &scan_permits,
                    ),
                    self.fetch_activity(
                        LogTable::AuditLogs,
                        &dir,
                        span,
                        options,
                        chunk,
                        &mut directory_log,
                        None,
                        None,
                        &scan_permits,
                    ),
                ),
                verify,
            )
            .instrument(stage)
            .await;
            log.absorb(azure_log);
            log.absorb(directory_log);
            if let Some((checks, stats)) = verified {
                info!(
                    lookups = stats.lookups,
                    failed = stats.failed,
                    not_checked = stats.not_checked,
                    "tickets verified"
                );
                if stats.failed > 0 {
                    log.warnings.push(format!(
                        "{} of {} ticket lookup{} failed; the activations citing them are flagged ticket_unverified with the reason (run --check to test the ticket settings).",
                        stats.failed,
                        stats.lookups,
                        if stats.lookups == 1 { "" } else { "s" }
                    ));
                }
                for (activation, checks) in activations.iter_mut().zip(checks) {
                    activation.ticket_checks = checks;
                }
            }
            (azure, directory)
        };
        lap("activity");

        // 2b. The behaviour baseline (issue 14): the identities' history before the window.
        let baseline: Option<BaselineData> = if options.baseline_days == 0 || activations.is_empty()
        {
            None
        } else {
            self.observer.stage(ScanStage::Querying {
                what: "baseline".to_owned(),
            });
            let stage = crate::baseline::Stage {
                source: &*self.source,
                permits: [&scan_permits, &self.query_permits],
                days: options.baseline_days,
                max_identities: chunk,
                known: options.known_activations.as_deref(),
                observer: &*self.observer,
                prefetched: Mutex::new(prefetched_history),
            };
            let data = stage
                .collect(&activations)
                .instrument(tracing::info_span!(
                    target: crate::TRACE_TARGET,
                    "pim.stage.baseline"
                ))
                .await;
            log.queries += data.queries;
            log.rows += data.rows;
            log.warnings.extend(data.warnings.iter().cloned());
            Some(data)
        };
        lap("baseline");

        // 3. Correlate and assess.
        self.observer.stage(ScanStage::Correlating);
        let (unreadable, correlated) =
            tracing::info_span!(target: crate::TRACE_TARGET, "pim.stage.correlate").in_scope(
                || {
                    // Rows that could not be read count against every activation they could
                    // belong to.
                    let unreadable = attribute_unreadable(
                        &activations,
                        &azure.unreadable,
                        &directory.unreadable,
                    );
                    let correlated = correlate_owned(
                        &activations,
                        azure.activities,
                        directory.activities,
                        &CorrelateOptions {
                            max_activities_per_activation: options.max_activities_per_activation,
                        },
                    );
                    (unreadable, correlated)
                },
            );
        lap("correlate");
        let baselines: Vec<Option<pim_domain::Baseline>> = activations
            .iter()
            .zip(&correlated)
            .map(|(activation, c)| {
                baseline
                    .as_ref()
                    .map(|b| b.for_activation(activation, &c.activities, self.rules.config()))
            })
            .collect();
        drop(baseline);
        let assess_stage = tracing::info_span!(
            target: crate::TRACE_TARGET,
            "pim.stage.assess",
            activations = activations.len(),
            model = self.assessor.is_some(),
        );

        // The facts each case needs, computed once: which sources it depends on and whether
        // one of them failed or came back partial.
        let facts: Vec<(Option<String>, bool)> = activations
            .iter()
            .zip(&correlated)
            .map(|(activation, c)| {
                // Azure roles and groups are judged on AzureActivity, directory roles and groups
                // on the AuditLogs directory changes. A directory role reads AzureActivity only
                // for elevateAccess: losing that source leaves its verdict standing but
                // incomplete.
                let kind = activation.role.kind;
                let needs_azure = kind != RoleKind::EntraDirectory;
                let needs_directory = kind != RoleKind::AzureResource;
                let unassessable = unassessable_reason(
                    activation,
                    azure
                        .failure
                        .as_ref()
                        .or_else(|| {
                            ActivityFetch::identity_failure(&azure.identity_failures, activation)
                        })
                        .filter(|_| needs_azure),
                    directory
                        .failure
                        .as_ref()
                        .or_else(|| {
                            ActivityFetch::identity_failure(
                                &directory.identity_failures,
                                activation,
                            )
                        })
                        .filter(|_| needs_directory),
                );
                // A single identity still cut after every split flags only its activations.
                let cut = ActivityFetch::names(&azure.truncated_identities, activation)
                    || (needs_directory
                        && ActivityFetch::names(&directory.truncated_identities, activation));
                let partial = azure.partial
                    || (needs_directory && directory.partial)
                    || (!needs_azure && azure.failure.is_some())
                    || cut;
                (unassessable, c.truncated || partial)
            })
            .collect();
        let cases: Vec<Case<'_>> = activations
            .iter()
            .zip(&correlated)
            .zip(&facts)
            .zip(&unreadable)
            .zip(&baselines)
            .map(
                |((((activation, c), (unassessable, truncated)), unread), baseline)| Case {
                    activation,
                    activities: &c.activities,
                    activity_total: c.total,
                    truncated: *truncated,
                    unassessable: unassessable.clone(),
                    unreadable: unread,
                    baseline: baseline.as_ref(),
                },
            )
            .collect();
        let total = cases.len();
        self.observer.stage(ScanStage::Assessing { total });
        // With a model, an activation's assessment is final only once the model has answered:
        // progress counts those, not the (near-instant) rules pass.
        let rules_progress = self.assessor.is_none().then_some(&*self.observer);
        let rules =
            assess_stage.in_scope(|| assess_rules_parallel(&self.rules, &cases, rules_progress));
        let mut model_failures: Vec<ModelFailure> = Vec::new();
        let assessments: Vec<Assessment> = if self.assessor.is_some() {
            // Model calls are I/O-bound: up to `concurrency` in flight, each spending the
            // per-minute budget first. `buffered` keeps the results in case order.
            let budget = CallBudget::new(
                self.limits.requests_per_minute,
                self.limits.tokens_per_minute,
            );
            let budget = &budget;
            // The stream is polled by this task alone, so increments and calls never race and
            // the count rises by one per completed assessment. (Atomic rather than a `Cell` only
            // to keep the scan's future `Send`.)
            let done = AtomicUsize::new(0);
            let done = &done;
            // One deadline for the whole stage (issue 9): a hung model cannot stall the scan.
            let deadline = tokio::time::Instant::now() + self.model_deadline;
            // The futures are made up front, not in a closure inside the stream: a closure
            // over `&Case<'_>` there leaves the scan's future not `Send` (a higher-ranked
            // lifetime limitation of the compiler), and embedders spawn scans on thread pools.
            let pending: Vec<_> = cases
                .iter()
                .zip(rules)
                .map(|(case, rules)| {
                    self.with_model_counted(case, rules, budget, deadline, done, total)
                })
                .collect();
            let results: Vec<(Assessment, Option<ModelFailure>)> =
                futures_util::stream::iter(pending)
                    .buffered(self.limits.concurrency.max(1))
                    .collect()
                    .instrument(assess_stage.clone())
                    .await;
            let (assessments, failures): (Vec<_>, Vec<_>) = results.into_iter().unzip();
            model_failures = failures.into_iter().flatten().collect();
            assessments
        } else {
            rules
        };
        drop(cases);
        // A problem that concerns an activation is listed with it, not globally as well.
        let attributed: std::collections::HashSet<&DataProblem> =
            unreadable.iter().flatten().collect();
        log.problems.retain(|p| !attributed.contains(p));
        drop(attributed);
        let reports: Vec<ActivationReport> = activations
            .into_iter()
            .zip(correlated)
            .zip(assessments)
            .zip(unreadable)
            .zip(baselines)
            .map(|((((mut activation, c), assessment), unread), baseline)| {
                activation.problems.extend(unread);
                let sources = activation_sources
                    .get(&activation.id)
                    .cloned()
                    .unwrap_or_default();
                let mut report =
                    ActivationReport::new(activation, c.activities, c.total, assessment);
                report.sources = sources;
                report.baseline = baseline;
                report
            })
            .collect();

        lap("assess");
        drop(assess_stage);
        let ScanLog {
            mut problems,
            mut warnings,
            queries,
            rows: query_rows,
        } = log;
        if self.assessor.is_none() {
            warnings.push(
                "No model is configured: verdicts come from the deterministic rules engine alone."
                    .to_owned(),
            );
        }
        warnings.extend(model_failure_warnings(&model_failures, self.model_deadline));
        // The AuditLogs source is read by two queries (PIM events, directory activity); a bad
        // row is one problem, not two.
        let mut seen = std::collections::HashSet::new();
        problems.retain(|p| seen.insert(p.clone()));
        // Every problem recorded counts: the global ones and each activation's own.
        let problem_count =
            problems.len() + reports.iter().map(|r| r.problems.len()).sum::<usize>();
        let summary = ReportSummary::compute(&reports, problem_count);
        let mut run = RunSummary {
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            queries,
            query_rows,
            activations: summary.activations,
            findings: summary.findings,
            ..RunSummary::default()
        };
        if let Some(after) = self.assessor.as_ref().and_then(|a| a.usage()) {
            run.set_model_usage(after.since(&usage_before.unwrap_or_default()));
        }
        log_run(&run);
        let mut assessors = vec![AssessorKind::Rules.to_string()];
        if let Some(a) = &self.assessor {
            assessors.push(a.name().to_owned());
        }
        Ok(Report {
            schema_version: REPORT_SCHEMA_VERSION.to_owned(),
            report_id: crate::report_id::report_id(end, options.hours, &info.description, &reports),
            generated_at,
            generator: format!("pim-audit {}", env!("CARGO_PKG_VERSION")),
            window: ReportWindow {
                start: scan.start,
                end: scan.end,
            },
            source: ReportSource {
                kind: info.kind.as_str().to_owned(),
                description: info.description,
            },
            settings: ScanSettings {
                hours: options.hours,
                lookback_hours: options.lookback_hours,
                include_failed: options.include_failed,
                max_activities_per_activation: options.max_activities_per_activation,
                assessors,
                baseline_days: options.baseline_days,
            },
            summary,
            run,
            problems,
            warnings,
            activations: reports,
        })
    }

    /// [`with_model`](Self::with_model), then counts the activation off to the observer.
    async fn with_model_counted(
        &self,
        case: &Case<'_>,
        rules: Assessment,
        budget: &CallBudget,
        deadline: tokio::time::Instant,
        done: &AtomicUsize,
        total: usize,
    ) -> (Assessment, Option<ModelFailure>) {
        let outcome = self.with_model(case, rules, budget, deadline).await;
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        self.observer.assessed(n, total);
        outcome
    }

    /// The rules engine's assessment stands alone, or, with a model assessor, is combined with
    /// the model's answer under the guardrails. A failing model never drops the activation: the
    /// rules' assessment stands and the failure is recorded (and returned, for the warnings).
    /// Past `deadline` (the model stage's), no call is started and one in flight is dropped.
    async fn with_model(
        &self,
        case: &Case<'_>,
        rules: Assessment,
        budget: &CallBudget,
        deadline: tokio::time::Instant,
    ) -> (Assessment, Option<ModelFailure>) {
        let Some(model) = &self.assessor else {
            return (rules, None);
        };
        // Where the rules' verdict stands whatever a model says (nothing to judge, or nothing
        // could be read), the guardrails would discard the answer: do not pay for it.
        if case.unassessable.is_some()
            || matches!(rules.verdict, Verdict::NoActivity | Verdict::Unknown)
        {
            return (rules, None);
        }
        let started = std::time::Instant::now();
        // One span per model assessment, under the assess stage; its outcome is a kind, never
        // the model's words.
        let span = tracing::info_span!(
            target: crate::TRACE_TARGET,
            "pim.model.assess",
            outcome = tracing::field::Empty,
        );
        let answer = if tokio::time::Instant::now() >= deadline {
            None
        } else {
            let call = async {
                budget.acquire(self.limits.estimated_tokens_per_call).await;
                model.assess(case, &rules).await
            };
            tokio::time::timeout_at(deadline, call)
                .instrument(span.clone())
                .await
                .ok()
        };
        let heard = |outcome: ModelOutcome| {
            span.record(
                "outcome",
                match outcome {
                    ModelOutcome::Answered => "answered",
                    ModelOutcome::Failed(kind) => kind,
                    ModelOutcome::Deadline => "deadline",
                },
            );
            self.observer.model_done(&ModelDone {
                outcome,
                duration: started.elapsed(),
            });
        };
        let (reason, failure) = match answer {
            Some(Ok(answer)) => {
                heard(ModelOutcome::Answered);
                return (pim_rules::guardrails::combine(&rules, answer), None);
            }
            Some(Err(e)) => {
                warn!(activation = %case.activation.id, error = %e, "model assessment failed");
                let kind = failure_kind(&e);
                heard(ModelOutcome::Failed(kind));
                (
                    format!("the model assessment failed: {e}"),
                    ModelFailure::Failed(kind),
                )
            }
            None => {
                debug!(activation = %case.activation.id, "model stage deadline reached");
                heard(ModelOutcome::Deadline);
                (
                    "model stage deadline reached".to_owned(),
                    ModelFailure::Deadline,
                )
            }
        };
        // The configured assessment did not happen: say so with `unknown` (so that
        // `--fail-on unknown` catches it), keeping everything the rules found — their risk,
        // flags and evidence never depend on the model.
        let mut failed = rules;
        let rules_verdict = failed.verdict;
        failed.verdict = Verdict::Unknown;
        failed.assessor = AssessorKind::ModelAndRules;
        failed.disagreements.push(format!(
            "The model did not assess this activation ({reason}); the rules engine alone found {rules_verdict}."
        ));
        failed.error = Some(reason);
        (failed, Some(failure))
    }

    /// Fetches and parses the activity of `activations` from one table: AzureActivity
    /// operations, or the directory changes they initiated in AuditLogs. A failed query makes
    /// the fetch a failure (the activations that depend on it become `unknown`), never an empty
    /// result. A query cut at a service limit is split and re-run until complete
    /// ([`split`](crate::split)); what stays cut flags only its identity's activations.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_activity(
        &self,
        table: LogTable,
        activations: &[&Activation],
        span: TimeRange,
        options: &ScanOptions,
        chunk: usize,
        log: &mut ScanLog,
        mut cached: Option<QueryOutcome>,
        prefetched: Option<crate::offline::PrefetchedActivity>,
        scan_permits: &Semaphore,
    ) -> ActivityFetch {
        if activations.is_empty() {
            return ActivityFetch::empty();
        }
        let (identities, identity_failures) = quotable(identities(activations), table);
        for (_, reason) in &identity_failures {
            warn!(
                table = table.name(),
                "identity left out of the activity query"
            );
            log.warnings.push(format!(
                "{reason}. Only the activations of this identity are marked unknown."
            ));
        }
        let directory = table == LogTable::AuditLogs;
        let label = if directory {
            "directory-activity"
        } else {
            "azure-activity"
        };
        let include_failed = options.include_failed;
        // One query per part: the identities of a chunk (or of a split half of one) over its
        // range. Blank values are dropped by the builders, which then build nothing.
        let build = move |part: &split::Part| -> pim_kql::Result<Option<String>> {
            let texts = if directory {
                pim_kql::directory_activity_queries(&part.identities, part.range, usize::MAX)?
            } else {
                pim_kql::azure_activity_queries(
                    &part.identities,
                    part.range,
                    include_failed,
                    usize::MAX,
                )?
            };
            Ok(texts.into_iter().next())
        };
        let source_name = self.source.table_label(table);
        let mut fetch = ActivityFetch {
            identity_failures,
            ..ActivityFetch::empty()
        };
        if !identities.iter().any(is_usable) {
            return fetch;
        }
        // An offline answer already read for this table serves its (single) query.
        if let Some(outcome) = cached.take() {
            self.absorb_activity(
                table,
                &source_name,
                label,
                outcome,
                options,
                log,
                &mut fetch,
            );
            return fetch;
        }
        // The export's single pass already read this query's rows, with this very scope.
        if let Some(p) = prefetched
            && p.scope == activity_scope(table, &identities, span)
        {
            self.absorb_prefetched(table, &source_name, label, p, options, log, &mut fetch);
            return fetch;
        }
        let roots: Vec<split::Part> = identities
            .chunks(chunk.max(1))
            .map(|c| split::Part {
                range: span.into(),
                identities: c.to_vec(),
            })
            .collect();
        let observer = &self.observer;
        let announce = move |q: &LogQuery| {
            // `azure-activity 2/5 (part 1.2)` is shown as `AzureActivity 2/5 (part 1.2)`.
            let suffix = q.label.split_once(' ').map(|(_, s)| s);
            observer.stage(ScanStage::Querying {
                what: match suffix {
                    Some(s) => format!("{} {s}", table.name()),
                    None => table.name().to_owned(),
                },
            });
        };
        // The activity stage's span (the caller instruments this future with it).
        let stage = tracing::Span::current();
        let runner = split::Runner {
            source: &*self.source,
            permits: [scan_permits, &self.query_permits],
            splits_by_time: self.source.capabilities().splits_by_time,
            on_query: &announce,
            observer: &**observer,
            span: stage.id(),
            limit: options.query_concurrency,
        };
        // A source that runs no KQL gets the same filter as a row scope, so that an export
        // keeps only these identities' rows in the span while it reads (issue 12). Such a
        // source never splits (it answers whole), so one scope serves its single query.
        let plan = split::Plan {
            label,
            table,
            build: &build,
            scope: (!self.source.capabilities().runs_arbitrary_kql)
                .then(|| activity_scope(table, &identities, span)),
        };
        let splits_by_time = runner.splits_by_time;
        let mut warnings = Vec::new();
        let run = runner
            .run(&plan, roots, |completed| {
                for unresolved in &completed.unresolved {
                    warn!(query = %completed.label, "activity still cut after splitting");
                    warnings.push(unresolved.describe(table, splits_by_time));
                    fetch
                        .truncated_identities
                        .extend(unresolved.part.identities.iter().cloned());
                }
                self.absorb_activity(
                    table,
                    &source_name,
                    &completed.label,
                    completed.outcome,
                    options,
                    log,
                    &mut fetch,
                )
            })
            .await;
        log.warnings.extend(warnings);
        match run {
            Ok(queries) => log.queries += queries,
            Err((split::RunError::Build { source, .. }, queries)) => {
                log.queries += queries;
                let mut failed = fail(
                    &mut log.warnings,
                    format!("the {label} query could not be built: {source}"),
                );
                failed.identity_failures = std::mem::take(&mut fetch.identity_failures);
                return failed;
            }
            Err((split::RunError::Query { label, source: e }, queries)) => {
                log.queries += queries;
                let reason = format!("the {label} query failed: {e}");
                warn!(query = %label, error = %e, "activity query failed");
                log.warnings.push(format!(
                    "{reason}. Activations that depend on {} are marked unknown.",
                    table.name()
                ));
                fetch.failure = Some(reason);
            }
        }
        fetch
    }

    /// Parses one (complete, merged) activity answer into `fetch`. Returns `false` when the
    /// table cannot be read at all: the fetch is then a failure and no more is read.
    #[allow(clippy::too_many_arguments)]
    fn absorb_activity(
        &self,
        table: LogTable,
        source_name: &str,
        label: &str,
        mut outcome: QueryOutcome,
        options: &ScanOptions,
        log: &mut ScanLog,
        fetch: &mut ActivityFetch,
    ) -> bool {
        let scoped = outcome.scoped.take();
        let directory = table == LogTable::AuditLogs;
        if outcome.partial_error.is_some() {
            fetch.partial = true;
        }
        fetch.unreadable.extend(unreadable_rows(&outcome.problems));
        let t = log.take_table(outcome, source_name);
        let source_name = file_name(&t, source_name);
        let parse_started = std::time::Instant::now();
        // Every failure is read; which are reported is decided below, where the
        // catalogue is known.
        let mut parsed = if directory {
            parse_directory_activity(&t, &source_name, true)
        } else {
            parse_azure_activity(&t, &source_name, true)
        };
        if let Some(rows) = &scoped {
            renumber_parsed(&mut parsed, &rows.positions);
        }
        let parsed = self.keep_reported(parsed, options.include_failed);
        let parse_ms = parse_started.elapsed().as_millis() as u64;
        drop(t);
        debug!(
            query = %label,
            rows = parsed.rows_read,
            left_out = scoped.as_ref().map_or(0, |s| s.left_out),
            activities = parsed.activities.len(),
            parse_ms,
            drop_ms = (parse_started.elapsed().as_millis() as u64).saturating_sub(parse_ms),
            "activity parsed"
        );
        Self::absorb_parsed(table, label, parsed, log, fetch)
    }

    /// Activity read in an export's single pass ([`crate::offline`]): absorbed as the answer
    /// to the query it stands for, rows and problems counted alike.
    #[allow(clippy::too_many_arguments)]
    fn absorb_prefetched(
        &self,
        table: LogTable,
        source_name: &str,
        label: &str,
        p: crate::offline::PrefetchedActivity,
        options: &ScanOptions,
        log: &mut ScanLog,
        fetch: &mut ActivityFetch,
    ) -> bool {
        if p.partial_error.is_some() {
            fetch.partial = true;
        }
        fetch.unreadable.extend(unreadable_rows(&p.problems));
        log.take_answer(p.problems, p.partial_error, p.stats.kept, source_name);
        let parsed = self.keep_reported(p.parsed, options.include_failed);
        debug!(
            query = %label,
            rows = parsed.rows_read,
            left_out = p.stats.left_out,
            activities = parsed.activities.len(),
            "activity parsed while streamed"
        );
        Self::absorb_parsed(table, label, parsed, log, fetch)
    }

    /// Takes parsed activity into `fetch`; `false` when the table cannot be read at all.
    fn absorb_parsed(
        table: LogTable,
        label: &str,
        parsed: ParsedActivities,
        log: &mut ScanLog,
        fetch: &mut ActivityFetch,
    ) -> bool {
        log.problems.extend(parsed.problems);
        if fetch.activities.is_empty() {
            // Moved, not copied: an export's activities are a few hundred thousand, and
            // copying them into a new vector held both at once (about 50 MB more at the peak of
            // the 250 MB benchmark).
            fetch.activities = parsed.activities;
        } else {
            fetch.activities.extend(parsed.activities);
        }
        fetch.unreadable.extend(parsed.unreadable);
        if let Some(reason) = parsed.failure {
            warn!(query = %label, reason = %reason, "activity table unreadable");
            log.warnings.push(format!(
                "{reason}. Activations that depend on {} are marked unknown.",
                table.name()
            ));
            fetch.failure = Some(reason);
            return false;
        }
        true
    }
}

impl Auditor {
    /// What an export's single pass over AzureActivity reads besides the PIM rows: the activity
    /// and history that the activations of AuditLogs alone would query (see
    /// [`crate::offline`]). Also gives those activations, which are the scan's when the pass
    /// finds no PIM event to add.
    fn pass_plan(
        &self,
        audit: Option<&PimEvents>,
        window_options: &WindowOptions,
        options: &ScanOptions,
    ) -> (crate::offline::PassPlan, Option<Activations>) {
        let mut plan = crate::offline::PassPlan {
            pim: activity_pim_scope(),
            activity: None,
            history: None,
        };
        let Some(events) = audit else {
            return (plan, None);
        };
        let built = build_activations(events.clone(), window_options);
        let activations = &built.activations;
        if activations.is_empty() {
            return (plan, Some(built));
        }
        let all: Vec<&Activation> = activations.iter().collect();
        let span = union_span(activations);
        let (ids, _) = quotable(identities(&all), LogTable::AzureActivity);
        if ids.iter().any(is_usable) {
            plan.activity = Some(activity_scope(LogTable::AzureActivity, &ids, span));
        }
        if options.baseline_days > 0 {
            let period = pim_domain::baseline::baseline_period(span.start, options.baseline_days);
            let history_span = TimeRange::new(OffsetDateTime::UNIX_EPOCH, period.end);
            plan.history = Some((
                activity_scope(LogTable::AzureActivity, &identities(&all), history_span),
                period,
                self.source.table_label(LogTable::AzureActivity),
            ));
        }
        (plan, Some(built))
    }

    /// Runs the single pass as one query of the PIM-events stage (a `pim.query` span, the
    /// observer told).
    fn run_pass(
        &self,
        stream: &dyn pim_loganalytics::RowStream,
        plan: crate::offline::PassPlan,
        parent: Option<tracing::Id>,
    ) -> pim_loganalytics::Result<crate::offline::ActivityPass> {
        let label = "pim-events-activity";
        let table = LogTable::AzureActivity;
        let span = tracing::info_span!(
            target: crate::TRACE_TARGET,
            parent: parent,
            "pim.query",
            query = label,
            table = table.name(),
            rows = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let answer = span.in_scope(|| crate::offline::read_activity_once(stream, plan));
        let (rows, status) = match &answer {
            Ok(pass) => (
                pass.pim.tables.iter().map(Table::len).sum::<usize>()
                    + pass.activity.as_ref().map_or(0, |a| a.stats.kept)
                    + pass.history.as_ref().map_or(0, |h| h.stats.kept),
                crate::QueryStatus::Complete,
            ),
            Err(_) => (0, crate::QueryStatus::Failed),
        };
        span.record("rows", rows);
        span.record("outcome", status.as_str());
        self.observer.query_done(&crate::QueryDone {
            name: label,
            table: table.name(),
            rows,
            duration: started.elapsed(),
            status,
        });
        answer
    }
}

/// Runs one planned query (a PIM-events query) to completion; the source's error when it
/// fails.
async fn complete_one(
    runner: &split::Runner<'_>,
    plan: &split::Plan<'_>,
    part: split::Part,
) -> (pim_loganalytics::Result<split::Completed>, usize) {
    let mut done = None;
    let run = runner
        .run(plan, vec![part], |c| {
            done = Some(c);
            true
        })
        .await;
    match run {
        Ok(queries) => match done {
            Some(c) => (Ok(c), queries),
            None => (
                Err(pim_loganalytics::Error::Unsupported {
                    message: format!("the {} query returned nothing", plan.label),
                }),
                queries,
            ),
        },
        Err((split::RunError::Query { source, .. }, queries)) => (Err(source), queries),
        Err((e @ split::RunError::Build { .. }, queries)) => (
            Err(pim_loganalytics::Error::Unsupported {
                message: format!("the {} query could not be built: {e:?}", e.label()),
            }),
            queries,
        ),
    }
}

/// An identity with a UPN or object id that is not blank: one a query can name.
fn is_usable(identity: &Identity) -> bool {
    [&identity.upn, &identity.object_id]
        .into_iter()
        .any(|v| v.as_deref().is_some_and(|v| !v.trim().is_empty()))
}

impl Auditor {
    /// Which parsed activities the report lists: everything that succeeded or is still in
    /// progress, and failures only with `include_failed`, except that a failed attempt at an
    /// operation the catalogue rates high or critical is always kept: an attempt is a finding.
    fn keep_reported(
        &self,
        mut parsed: ParsedActivities,
        include_failed: bool,
    ) -> ParsedActivities {
        if !include_failed {
            let config = self.rules.config();
            parsed.activities.retain(|a| {
                a.status != ActivityStatus::Failed
                    || pim_rules::catalogue::classify(a, config)
                        .is_some_and(|m| m.entry_risk >= pim_domain::Risk::High)
            });
        }
        parsed
    }
}

/// What a scan collects besides activations: input problems, warnings, and the query and row
/// counts.
#[derive(Debug, Default)]
struct ScanLog {
    problems: Vec<DataProblem>,
    warnings: Vec<String>,
    queries: usize,
    /// Rows of the tables the parsers read.
    rows: usize,
}

impl ScanLog {
    /// Appends another log (of a fetch run alongside this one).
    fn absorb(&mut self, other: ScanLog) {
        self.problems.extend(other.problems);
        self.warnings.extend(other.warnings);
        self.queries += other.queries;
        self.rows += other.rows;
    }

    /// Counts the queries of a completed PIM-events query and warns about any part still cut
    /// after splitting; the merged outcome, or the source's error.
    fn take_completed(
        &mut self,
        answer: (pim_loganalytics::Result<split::Completed>, usize),
        table: LogTable,
        splits_by_time: bool,
    ) -> pim_loganalytics::Result<QueryOutcome> {
        let (result, queries) = answer;
        self.queries += queries;
        let completed = result?;
        for unresolved in &completed.unresolved {
            warn!(query = %completed.label, "PIM events still cut after splitting");
            self.warnings
                .push(unresolved.describe(table, splits_by_time));
        }
        Ok(completed.outcome)
    }

    /// Keeps the first table of a query outcome, recording partial errors and adapter problems.
    fn take_table(&mut self, outcome: QueryOutcome, source_name: &str) -> Table {
        let QueryOutcome {
            tables,
            partial_error,
            problems,
            ..
        } = outcome;
        let table = tables.into_iter().next().unwrap_or_default();
        self.take_answer(problems, partial_error, table.len(), source_name);
        table
    }

    /// Records what an answer of `rows` rows said besides its rows.
    fn take_answer(
        &mut self,
        problems: Vec<DataProblem>,
        partial_error: Option<String>,
        rows: usize,
        source_name: &str,
    ) {
        self.problems.extend(problems);
        self.rows += rows;
        if let Some(message) = partial_error {
            self.warnings.push(format!(
                "{source_name}: the source returned a partial result ({message}); activity may be incomplete and affected activations are flagged activity_truncated."
            ));
        }
    }
}

/// Logs the run summary: one info line with every count, for log searches and dashboards.
/// Why the model did not assess an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelFailure {
    /// The model stage's deadline passed first.
    Deadline,
    /// The call failed; the kind as the warning names it.
    Failed(&'static str),
}

/// The kind of a model failure, as the report's warning counts it.
fn failure_kind(e: &pim_rules::Error) -> &'static str {
    match e {
        pim_rules::Error::Refused { .. } => "content filter",
        pim_rules::Error::Timeout(_) => "timeout",
        pim_rules::Error::RateLimited { .. } => "throttling",
        pim_rules::Error::Backend { status, .. } if *status >= 500 => "server error (5xx)",
        pim_rules::Error::Backend { .. } => "HTTP error",
        pim_rules::Error::InvalidAnswer { .. } => "invalid answer",
        pim_rules::Error::Transport { .. } => "unreachable",
        pim_rules::Error::Configuration { .. } => "configuration",
        _ => "other",
    }
}

/// The report's warnings about model assessments that did not happen: how many failed and why
/// (content filter, timeout, 5xx, throttling, ...), and how many the stage deadline cut off.
/// See issue 9: a scan whose every model call failed used to report no warning at all.
fn model_failure_warnings(failures: &[ModelFailure], deadline: std::time::Duration) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut kinds: Vec<(&'static str, usize)> = Vec::new();
    for f in failures {
        if let ModelFailure::Failed(kind) = f {
            match kinds.iter_mut().find(|(k, _)| k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
    }
    let failed: usize = kinds.iter().map(|(_, n)| n).sum();
    if failed > 0 {
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let why: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        warnings.push(format!(
            "{failed} model assessment{} failed ({}); {} unknown, with the rules' findings kept (see each assessment's error).",
            if failed == 1 { "" } else { "s" },
            why.join(", "),
            if failed == 1 { "that activation is" } else { "those activations are" }
        ));
    }
    let cut = failures
        .iter()
        .filter(|f| **f == ModelFailure::Deadline)
        .count();
    if cut > 0 {
        warnings.push(format!(
            "The model stage deadline ({}) was reached: {cut} activation{} not assessed by the model {} unknown, with the rules' findings kept (raise it with --model-deadline / PIM_MODEL_DEADLINE).",
            crate::config::format_duration(deadline),
            if cut == 1 { "" } else { "s" },
            if cut == 1 { "is" } else { "are" }
        ));
    }
    warnings
}

fn log_run(run: &RunSummary) {
    info!(
        duration_ms = run.duration_ms,
        queries = run.queries,
        query_rows = run.query_rows,
        activations = run.activations,
        findings = run.findings,
        model_calls = run.model_calls,
        model_retries = run.model_retries,
        model_failures = run.model_failures,
        prompt_tokens = run.prompt_tokens,
        completion_tokens = run.completion_tokens,
        "scan summary"
    );
}

/// Runs the rules engine over every case, on as many threads as the machine has cores: the
/// rules are pure CPU work over borrowed data, and a large scan has thousands of cases.
///
/// With `progress`, each finished case is counted off to it. The count and the call share one
/// lock, so the observer hears 1, 2, ... `cases.len()` in order and never from two threads at
/// once, as [`ScanObserver`] promises.
fn assess_rules_parallel(
    rules: &RulesEngine,
    cases: &[Case<'_>],
    progress: Option<&dyn ScanObserver>,
) -> Vec<Assessment> {
    const MIN_PER_THREAD: usize = 256;
    let total = cases.len();
    let done = Mutex::new(0usize);
    let assess = |c: &Case<'_>| {
        let assessment = rules.assess(c);
        if let Some(observer) = progress {
            // A poisoned count only means an observer panicked earlier; keep counting.
            let mut n = done.lock().unwrap_or_else(PoisonError::into_inner);
            *n += 1;
            observer.assessed(*n, total);
        }
        assessment
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(cases.len() / MIN_PER_THREAD)
        .max(1);
    if threads == 1 {
        return cases.iter().map(assess).collect();
    }
    // Cases differ in cost by their number of operations, so equal halves finish far apart:
    // the threads take small chunks in turn until none is left (issue 12).
    const CHUNK: usize = 32;
    let chunks: Vec<&[Case<'_>]> = cases.chunks(CHUNK).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (assess, chunks, next) = (&assess, &chunks, &next);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(part) = chunks.get(n) else { break };
                        // A panic in the rules engine is a bug; that chunk's activations stay
                        // in the report, marked unknown, instead of taking the scan down.
                        let assessed =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                part.iter().map(assess).collect::<Vec<_>>()
                            }));
                        done.push((n, assessed.ok()));
                    }
                    done
                })
            })
            .collect();
        let mut parts: Vec<Option<Vec<Assessment>>> = Vec::new();
        parts.resize_with(chunks.len(), || None);
        for handle in handles {
            for (n, part) in handle.join().unwrap_or_default() {
                if let Some(slot) = parts.get_mut(n) {
                    *slot = part;
                }
            }
        }
        let mut out = Vec::with_capacity(cases.len());
        for (part, cases) in parts.into_iter().zip(chunks.iter()) {
            match part {
                Some(done) => out.extend(done),
                None => out.extend(cases.iter().map(|_| {
                    Assessment::unknown(
                        AssessorKind::Rules,
                        "internal error: the rules engine failed on this activation",
                    )
                })),
            }
        }
        // A chunk that panicked never counted the rest of its cases; they are assessed now (as
        // unknown), so the observer still hears the end.
        if let Some(observer) = progress {
            let n = done.lock().unwrap_or_else(PoisonError::into_inner);
            if *n < total {
                observer.assessed(total, total);
            }
        }
        out
    })
}

fn fail(warnings: &mut Vec<String>, reason: String) -> ActivityFetch {
    warnings.push(reason.clone());
    ActivityFetch {
        failure: Some(reason),
        ..ActivityFetch::empty()
    }
}

/// Why an activation cannot be judged, if it cannot: no identity to correlate on, or a failed
/// activity query it depends on.
fn unassessable_reason(
    activation: &Activation,
    azure_failure: Option<&String>,
    directory_failure: Option<&String>,
) -> Option<String> {
    let p = &activation.principal;
    if p.upn.is_none() && p.object_id.is_none() {
        let detail = activation
            .problems
            .first()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Some(format!(
            "the activation record names no user (no UPN or object id), so its activity cannot be found{detail}"
        ));
    }
    if let Some(reason) = azure_failure.or(directory_failure) {
        return Some(reason.clone());
    }
    None
}

/// The identities whose activity to fetch, deduplicated (case-insensitively on UPN).
pub(crate) fn identities(activations: &[&Activation]) -> Vec<Identity> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for a in activations {
        let key = (
            a.principal.upn.as_deref().map(str::to_lowercase),
            a.principal.object_id.as_deref().map(str::to_lowercase),
        );
        if key == (None, None) || !seen.insert(key) {
            continue;
        }
        out.push(Identity {
            upn: a.principal.upn.clone(),
            object_id: a.principal.object_id.clone(),
        });
    }
    out
}

/// Splits identities into those whose every value can be quoted into KQL and those that
/// cannot, each of the latter with a reason that names the identity and the character. One bad
/// value then fails only its own identity's activations, never the rest of its query chunk.
pub(crate) fn quotable(
    identities: Vec<Identity>,
    table: LogTable,
) -> (Vec<Identity>, Vec<(Identity, String)>) {
    let mut ok = Vec::with_capacity(identities.len());
    let mut bad = Vec::new();
    for identity in identities {
        let problem = [("UPN", &identity.upn), ("object id", &identity.object_id)]
            .into_iter()
            .find_map(|(what, value)| {
                let value = value.as_deref()?;
                let bad_char = value.chars().find(|c| pim_kql::string_literal(&c.to_string()).is_err())?;
                Some(format!(
                    "the {what} {value:?} contains the character U+{:04X}, which cannot be quoted safely into a KQL query, so its {} activity cannot be fetched",
                    u32::from(bad_char),
                    table.name()
                ))
            });
        match problem {
            Some(reason) => bad.push((identity, reason)),
            None => ok.push(identity),
        }
    }
    (ok, bad)
}

/// The smallest range covering every activation window.
fn union_span(activations: &[Activation]) -> TimeRange {
    let start = activations.iter().map(|a| a.window.start).min();
    let end = activations.iter().map(|a| a.window.end).max();
    match (start, end) {
        (Some(s), Some(e)) => TimeRange::new(s, e),
        _ => TimeRange::new(OffsetDateTime::UNIX_EPOCH, OffsetDateTime::UNIX_EPOCH),
    }
}

/// The AuditLogs rows that can hold PIM events: `parse_pim_events` ignores every row whose
/// operation name (else display name) is readable and not a PIM one. Without an operation
/// column, or without any column only audit records carry, it reads no row and says so naming
/// their count: then the source must leave nothing out.
fn audit_pim_scope() -> RowScope {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    RowScope {
        operations: Some(OperationScope {
            columns: names(&["OperationName", "ActivityDisplayName"]),
            names: names(&PIM_WINDOW_OPERATIONS),
        }),
        required_columns: vec![
            names(&["OperationName", "ActivityDisplayName"]),
            names(&[
                "LoggedByService",
                "InitiatedBy",
                "TargetResources",
                "AdditionalDetails",
            ]),
        ],
        ..RowScope::default()
    }
}

/// The operations that open or close an elevation window, as the parsers name them.
const PIM_WINDOW_OPERATIONS: [&str; 3] = [
    pim_correlate::OP_ACTIVATION_COMPLETED,
    pim_correlate::OP_ACTIVATION_EXPIRED,
    pim_correlate::OP_DEACTIVATE_COMPLETED,
];

/// The Activity Log rows that can hold PIM events: `parse_activity_pim_events` skips every row
/// whose operation name is readable and not a PIM one, and so may the source.
fn activity_pim_scope() -> RowScope {
    RowScope {
        operations: Some(OperationScope {
            columns: vec!["OperationNameValue".to_owned(), "OperationName".to_owned()],
            names: PIM_WINDOW_OPERATIONS.map(str::to_owned).to_vec(),
        }),
        ..RowScope::default()
    }
}

/// The rows of `table` that can be the activity of `identities` in `span`, read where the
/// parsers read them: AzureActivity's `Caller` and object-id claim, AuditLogs' `InitiatedBy`
/// user; the time of the row the parser uses (`ActivityDateTime` first in AuditLogs). The
/// required columns are the ones without which the parser reads no row at all (it then names
/// every row, so the source must not leave any out).
pub(crate) fn activity_scope(
    table: LogTable,
    identities: &[Identity],
    span: TimeRange,
) -> RowScope {
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let dynamic = |column: &str, path: &[&str]| IdentityField::Dynamic {
        column: column.to_owned(),
        path: names(path),
    };
    let values = identities
        .iter()
        .flat_map(|i| [i.upn.clone(), i.object_id.clone()])
        .flatten()
        .collect();
    let oid = pim_correlate::OBJECT_ID_CLAIM;
    let (time_columns, fields, required) = match table {
        LogTable::AzureActivity => (
            names(&["TimeGenerated"]),
            vec![
                IdentityField::Column("Caller".to_owned()),
                // The object id as the live query projects it, should an export hold it.
                IdentityField::Column("CallerObjectId".to_owned()),
                dynamic("Claims_d", &[oid]),
                dynamic("Claims_d", &["oid"]),
                dynamic("Claims", &[oid]),
                dynamic("Claims", &["oid"]),
            ],
            vec![
                names(&["TimeGenerated"]),
                names(&["OperationNameValue", "OperationName"]),
                names(&["ActivityStatusValue", "ActivityStatus"]),
            ],
        ),
        LogTable::AuditLogs => (
            names(&["ActivityDateTime", "TimeGenerated"]),
            vec![
                dynamic("InitiatedBy", &["user", "userPrincipalName"]),
                dynamic("InitiatedBy", &["user", "id"]),
            ],
            vec![names(&["InitiatedBy"])],
        ),
    };
    RowScope {
        time: Some(TimeScope {
            columns: time_columns,
            span,
        }),
        identities: Some(IdentityScope { fields, values }),
        operations: None,
        required_columns: required,
    }
}

/// A row the parser named in a scoped table, renumbered as the whole table numbers it.
fn renumber(row: usize, positions: &[usize]) -> usize {
    positions.get(row).copied().unwrap_or(row)
}

fn renumber_problem(problem: &mut DataProblem, positions: &[usize]) {
    if let Some(row) = problem.row.as_mut() {
        *row = renumber(*row, positions);
    }
    // A duplicate names the row it repeats in its message ("\"Add member …\" row duplicates
    // row 3 (same record Id …"): that number is a row too. The operation quoted before it is
    // one of the three PIM names, so the marker cannot occur earlier.
    const MARK: &str = " row duplicates row ";
    if let Some(at) = problem.message.find(MARK) {
        let start = at + MARK.len();
        let digits = problem.message[start..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if let Ok(row) = problem.message[start..start + digits].parse::<usize>() {
            problem
                .message
                .replace_range(start..start + digits, &renumber(row, positions).to_string());
        }
    }
}

/// Renumbers the rows PIM events name (records, their problems, the table's problems).
fn renumber_events(events: &mut PimEvents, positions: &[usize]) {
    for record in &mut events.activations {
        record.row = renumber(record.row, positions);
        for p in &mut record.problems {
            renumber_problem(p, positions);
        }
    }
    for end in &mut events.ends {
        end.row = renumber(end.row, positions);
    }
    for p in &mut events.problems {
        renumber_problem(p, positions);
    }
}

/// Renumbers the rows parsed activities name (problems and unreadable rows).
fn renumber_parsed(parsed: &mut ParsedActivities, positions: &[usize]) {
    for p in &mut parsed.problems {
        renumber_problem(p, positions);
    }
    for u in &mut parsed.unreadable {
        renumber_problem(&mut u.problem, positions);
    }
}

/// The name problems give a table: the export file it came from when the source named it so
/// (`AuditLogs.csv`), else `default`.
fn file_name(table: &Table, default: &str) -> String {
    if table.name.contains('.') {
        table.name.clone()
    } else {
        default.to_owned()
    }
}

/// The rows an adapter could not read at all (broken JSON in one cell, a bad CSV record),
/// among `problems`: they name no one and no time, so they could be anyone's operation.
fn unreadable_rows(problems: &[DataProblem]) -> impl Iterator<Item = UnreadableRow> + '_ {
    problems
        .iter()
        .filter(|p| p.row.is_some())
        .map(|p| UnreadableRow {
            time: None,
            identities: Vec::new(),
            problem: p.clone(),
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use async_trait::async_trait;
    use pim_domain::ModelUsage;

    use super::*;

    /// Passes the demo tenant through, counting the rows of the tables it hands out.
    #[derive(Debug)]
    struct RowCounting {
        demo: Arc<dyn KqlSource>,
        rows: AtomicUsize,
        fail: bool,
    }

    impl RowCounting {
        fn new(fail: bool) -> Self {
            Self {
                demo: crate::demo_source().unwrap(),
                rows: AtomicUsize::new(0),
                fail,
            }
        }
    }

    #[async_trait]
    impl KqlSource for RowCounting {
        fn info(&self) -> pim_loganalytics::SourceInfo {
            self.demo.info()
        }

        fn capabilities(&self) -> pim_loganalytics::SourceCapabilities {
            self.demo.capabilities()
        }

        async fn query(&self, query: &LogQuery) -> pim_loganalytics::Result<QueryOutcome> {
            if self.fail {
                return Err(pim_loganalytics::Error::Unsupported {
                    message: "injected failure".into(),
                });
            }
            let outcome = self.demo.query(query).await?;
            let first = outcome.tables.first().map_or(0, Table::len);
            self.rows.fetch_add(first, Ordering::Relaxed);
            Ok(outcome)
        }
    }

    /// An assessor that agrees with the rules and counts like a model: one call, 100 prompt
    /// and 10 completion tokens per assessment.
    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicU64,
        report_usage: bool,
    }

    #[async_trait]
    impl Assessor for Counting {
        fn name(&self) -> &str {
            "counting"
        }

        async fn assess<'c>(
            &self,
            _case: &Case<'c>,
            baseline: &Assessment,
        ) -> std::result::Result<Assessment, pim_rules::Error> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Ok(baseline.clone())
        }

        fn usage(&self) -> Option<ModelUsage> {
            let calls = self.calls.load(Ordering::Relaxed);
            self.report_usage.then_some(ModelUsage {
                calls,
                retries: 0,
                failures: 0,
                prompt_tokens: calls * 100,
                completion_tokens: calls * 10,
            })
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Event {
        Stage(ScanStage),
        Assessed(usize, usize),
    }

    #[derive(Default)]
    struct Recording(Mutex<Vec<Event>>);

    impl ScanObserver for Recording {
        fn stage(&self, stage: ScanStage) {
            self.0.lock().unwrap().push(Event::Stage(stage));
        }

        fn assessed(&self, done: usize, total: usize) {
            self.0.lock().unwrap().push(Event::Assessed(done, total));
        }
    }

    impl Recording {
        fn events(&self) -> Vec<Event> {
            self.0.lock().unwrap().clone()
        }
    }

    fn demo_end() -> OffsetDateTime {
        crate::demo_source().unwrap().info().default_end.unwrap()
    }

    fn querying(what: &str) -> Event {
        Event::Stage(ScanStage::Querying { what: what.into() })
    }

    /// The events a demo scan must produce, assessment counted off one by one.
    fn expected_events(total: usize) -> Vec<Event> {
        let mut want = vec![
            querying("AuditLogs"),
            querying("AzureActivity"),
            querying("AuditLogs"),
            querying("baseline"),
            Event::Stage(ScanStage::Correlating),
            Event::Stage(ScanStage::Assessing { total }),
        ];
        want.extend((1..=total).map(|n| Event::Assessed(n, total)));
        want.push(Event::Stage(ScanStage::Done));
        want
    }

    #[tokio::test]
    async fn the_run_summary_counts_queries_rows_activations_and_findings() {
        let source = Arc::new(RowCounting::new(false));
        let end = demo_end();
        let report = Auditor::builder(source.clone())
            .build()
            .scan(&ScanOptions::new(end), end)
            .await
            .unwrap();
        let run = report.run;
        // Two PIM-events queries and the AzureActivity answer reused offline, then one
        // directory-activity query, then the behaviour baseline's two tables.
        assert_eq!(run.queries, 5);
        let rows = source.rows.load(Ordering::Relaxed);
        assert!(rows > report.summary.activations, "{rows}");
        assert_eq!(run.query_rows, rows);
        assert!(run.activations >= 12);
        assert_eq!(run.activations, report.summary.activations);
        assert_eq!(run.activations, report.activations.len());
        let findings = report.activations.iter().filter(|a| a.is_finding()).count();
        assert!(findings > 0);
        assert_eq!(run.findings, findings);
        // No model: no model usage.
        assert_eq!(
            (run.model_calls, run.prompt_tokens, run.completion_tokens),
            (0, 0, 0)
        );
        assert_eq!(report.schema_version, "3.0");
    }

    #[tokio::test]
    async fn model_usage_is_counted_per_scan_on_a_shared_assessor() {
        let model = Arc::new(Counting {
            report_usage: true,
            ..Counting::default()
        });
        let end = demo_end();
        let auditor = Auditor::builder(crate::demo_source().unwrap())
            .assessor(model.clone())
            .build();
        let first = auditor.scan(&ScanOptions::new(end), end).await.unwrap().run;
        let second = auditor.scan(&ScanOptions::new(end), end).await.unwrap().run;
        let total = model.calls.load(Ordering::Relaxed);
        assert!(first.model_calls > 0);
        assert_eq!(first.model_calls, second.model_calls);
        assert_eq!(first.model_calls + second.model_calls, total);
        assert_eq!(second.prompt_tokens, 100 * second.model_calls);
        assert_eq!(second.completion_tokens, 10 * second.model_calls);
        assert_eq!((second.model_retries, second.model_failures), (0, 0));

        // An assessor that does not count reports no usage.
        let silent = Arc::new(Counting::default());
        let run = Auditor::builder(crate::demo_source().unwrap())
            .assessor(silent.clone())
            .build()
            .scan(&ScanOptions::new(end), end)
            .await
            .unwrap()
            .run;
        assert!(silent.calls.load(Ordering::Relaxed) > 0);
        assert_eq!((run.model_calls, run.prompt_tokens), (0, 0));
    }

    #[tokio::test]
    async fn the_observer_hears_every_stage_in_order_and_every_assessment() {
        let end = demo_end();
        for with_model in [false, true] {
            let observer = Arc::new(Recording::default());
            let mut builder =
                Auditor::builder(crate::demo_source().unwrap()).observer(observer.clone());
            if with_model {
                builder = builder.assessor(Arc::new(Counting::default()));
            }
            let report = builder
                .build()
                .scan(&ScanOptions::new(end), end)
                .await
                .unwrap();
            let total = report.summary.activations;
            assert!(total >= 12);
            assert_eq!(
                observer.events(),
                expected_events(total),
                "with_model={with_model}"
            );
        }
    }

    #[test]
    fn the_scan_future_is_send() {
        // Binaries and embedders spawn scans on multi-threaded runtimes.
        fn assert_send<T: Send>(_: &T) {}
        let end = demo_end();
        let auditor = Auditor::builder(crate::demo_source().unwrap())
            .assessor(Arc::new(Counting::default()))
            .build();
        let options = ScanOptions::new(end);
        let future = auditor.scan(&options, end);
        assert_send(&future);
    }

    #[tokio::test]
    async fn a_failed_scan_still_ends_with_done() {
        let observer = Arc::new(Recording::default());
        let end = demo_end();
        let result = Auditor::builder(Arc::new(RowCounting::new(true)))
            .observer(observer.clone())
            .build()
            .scan(&ScanOptions::new(end), end)
            .await;
        assert!(matches!(result, Err(Error::PimQuery { .. })));
        assert_eq!(
            observer.events(),
            [querying("AuditLogs"), Event::Stage(ScanStage::Done)]
        );
    }

    #[test]
    fn one_unquotable_identity_is_set_aside_alone_and_named() {
        let ids = vec![
            Identity {
                upn: Some("jane@contoso.com".into()),
                object_id: None,
            },
            Identity {
                upn: Some("evil\u{202E}@contoso.com".into()),
                object_id: Some("oid-2".into()),
            },
            Identity {
                upn: None,
                object_id: Some("oid\u{0}3".into()),
            },
        ];
        let (ok, bad) = quotable(ids, LogTable::AzureActivity);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].upn.as_deref(), Some("jane@contoso.com"));
        assert_eq!(bad.len(), 2);
        assert!(
            bad[0].1.contains("the UPN \"evil\\u{202e}@contoso.com\""),
            "{}",
            bad[0].1
        );
        assert!(bad[0].1.contains("U+202E"), "{}", bad[0].1);
        assert!(bad[0].1.contains("AzureActivity"), "{}", bad[0].1);
        assert!(bad[1].1.contains("the object id"), "{}", bad[1].1);
        assert!(bad[1].1.contains("U+0000"), "{}", bad[1].1);
    }

    #[tokio::test]
    async fn parallel_rules_count_off_in_order_from_one_thread_at_a_time() {
        let end = demo_end();
        let report = Auditor::builder(crate::demo_source().unwrap())
            .build()
            .scan(&ScanOptions::new(end), end)
            .await
            .unwrap();
        let a = &report.activations[0];
        let activation = Activation {
            id: a.id.clone(),
            activated_at: a.activated_at,
            principal: a.principal.clone(),
            role: a.role.clone(),
            scope: a.scope.clone(),
            justification: a.justification.clone(),
            tickets: a.tickets.clone(),
            ticket_info: None,
            ticket_checks: Vec::new(),
            window: a.window.clone(),
            request_id: a.request_id.clone(),
            correlation_id: a.correlation_id.clone(),
            problems: Vec::new(),
        };
        // Enough cases for several threads on any machine with more than one core.
        // Cases that differ (some unassessable, each with its own reason), so the order of
        // the answers shows.
        let cases: Vec<Case<'_>> = (0..1_000)
            .map(|i| Case {
                activation: &activation,
                activities: &[],
                activity_total: 0,
                truncated: false,
                unassessable: (i % 3 == 0).then(|| format!("reason {i}")),
                unreadable: &[],
                baseline: None,
            })
            .collect();
        let observer = Recording::default();
        let rules = RulesEngine::new(RulesConfig::default());
        let out = assess_rules_parallel(&rules, &cases, Some(&observer));
        assert_eq!(out.len(), 1_000);
        let serial: Vec<Assessment> = cases.iter().map(|c| rules.assess(c)).collect();
        assert_eq!(out, serial);
        let want: Vec<Event> = (1..=1_000).map(|n| Event::Assessed(n, 1_000)).collect();
        assert_eq!(observer.events(), want);
        // Without an observer nothing is counted, and the result is the same.
        assert_eq!(assess_rules_parallel(&rules, &cases, None), out);
    }
}
