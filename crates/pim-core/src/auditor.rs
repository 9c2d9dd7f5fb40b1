//! The scan pipeline: query, parse, build windows, correlate, assess, assemble the report.

use std::sync::Arc;

use pim_correlate::{
    Activations, CorrelateOptions, WindowOptions, build_activations, correlate_owned,
    parse_azure_activity, parse_directory_activity, parse_pim_events,
};
use pim_domain::{
    Activation, ActivationReport, Activity, Assessment, AssessorKind, DataProblem,
    REPORT_SCHEMA_VERSION, Report, ReportSource, ReportSummary, ReportWindow, RoleKind,
    ScanSettings, Table, TimeRange, Verdict,
};
use pim_kql::Identity;
use pim_loganalytics::{LogAnalytics, LogQuery, LogTable, QueryOutcome, SourceKind};
use pim_rules::{Assessor, Case, RulesConfig, RulesEngine};
use time::{Duration, OffsetDateTime};
use tracing::{debug, info, warn};

use crate::budget::CallBudget;
use crate::config::ModelLimits;
use crate::{Error, Result, ScanOptions};
use futures_util::StreamExt;

/// Identities per activity query against a live workspace: keeps the KQL text well under the
/// query API's size limits while still making a handful of queries for thousands of users.
const LIVE_IDENTITY_CHUNK: usize = 200;

/// Runs scans: one source of logs, the rules engine, and optionally a model-backed assessor.
///
/// Cheap to share: hold it in an `Arc` and call [`Auditor::scan`] from many tasks.
#[derive(Debug, Clone)]
pub struct Auditor {
    source: Arc<dyn LogAnalytics>,
    rules: Arc<RulesEngine>,
    assessor: Option<Arc<dyn Assessor>>,
    limits: ModelLimits,
}

/// Builds an [`Auditor`].
#[derive(Debug)]
pub struct AuditorBuilder {
    source: Arc<dyn LogAnalytics>,
    rules: RulesConfig,
    assessor: Option<Arc<dyn Assessor>>,
    limits: ModelLimits,
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

    /// Finishes the builder.
    pub fn build(self) -> Auditor {
        Auditor {
            source: self.source,
            rules: Arc::new(RulesEngine::new(self.rules)),
            assessor: self.assessor,
            limits: self.limits,
        }
    }
}

/// What one activity source produced for the scan, or why it could not.
struct ActivityFetch {
    activities: Vec<Activity>,
    /// Set when the source failed: every activation that depends on it becomes `unknown`.
    failure: Option<String>,
    /// Set when the source returned a partial result.
    partial: bool,
}

impl ActivityFetch {
    fn empty() -> Self {
        Self {
            activities: Vec::new(),
            failure: None,
            partial: false,
        }
    }
}

impl Auditor {
    /// Starts building an auditor that reads from `source`.
    pub fn builder(source: Arc<dyn LogAnalytics>) -> AuditorBuilder {
        AuditorBuilder {
            source,
            rules: RulesConfig::default(),
            assessor: None,
            limits: ModelLimits::default(),
        }
    }

    /// The source this auditor reads.
    pub fn source(&self) -> &Arc<dyn LogAnalytics> {
        &self.source
    }

    /// Scans the window that `options` describes and returns the report model.
    ///
    /// `generated_at` is the report's timestamp: the caller passes the clock so that library code
    /// never reads it (and reports of fixed inputs are reproducible).
    ///
    /// # Errors
    /// Fails only when the scan cannot produce a meaningful report: invalid options, or the query
    /// for PIM activations failing. Failures of the activity queries do not fail the scan: the
    /// affected activations are reported as `unknown` with the reason, and the report carries a
    /// warning.
    pub async fn scan(
        &self,
        options: &ScanOptions,
        generated_at: OffsetDateTime,
    ) -> Result<Report> {
        options.validate()?;
        // Stage timings at debug level, for operators chasing a slow scan (monotonic timer,
        // not the wall clock).
        let started = std::time::Instant::now();
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
        let live = info.kind == SourceKind::LogAnalytics;
        let mut log = ScanLog::default();

        // 1. PIM activations, expiries and deactivations (one query).
        let pim_query = LogQuery {
            label: "pim-events".to_owned(),
            table: Some(LogTable::AuditLogs),
            kql: pim_kql::pim_events_query(pim_range),
            timespan: pim_range,
        };
        log.queries += 1;
        let outcome = self
            .source
            .query(&pim_query)
            .await
            .map_err(|source| Error::PimQuery { source })?;
        let audit_name = table_source_name(LogTable::AuditLogs, info.kind);
        let pim_table = log.take_table(outcome, &audit_name);
        let events = parse_pim_events(&pim_table, &audit_name);
        drop(pim_table);
        let Activations {
            activations,
            problems: window_problems,
        } = build_activations(
            events,
            &WindowOptions {
                scan,
                default_duration: Duration::hours(i64::from(options.default_window_hours)),
            },
        );
        log.problems.extend(window_problems);
        info!(
            activations = activations.len(),
            "PIM activations in the scan window"
        );
        lap("pim-events");

        // 2. What the activated identities did, across the union of their windows.
        let chunk = if live {
            LIVE_IDENTITY_CHUNK
        } else {
            usize::MAX
        };
        let (azure, directory) = if activations.is_empty() {
            (ActivityFetch::empty(), ActivityFetch::empty())
        } else {
            let span = union_span(&activations);
            let all: Vec<&Activation> = activations.iter().collect();
            let dir: Vec<&Activation> = activations
                .iter()
                .filter(|a| a.role.kind != RoleKind::AzureResource)
                .collect();
            let azure = self
                .fetch_activity(
                    LogTable::AzureActivity,
                    &all,
                    span,
                    options,
                    chunk,
                    info.kind,
                    &mut log,
                )
                .await;
            let directory = self
                .fetch_activity(
                    LogTable::AuditLogs,
                    &dir,
                    span,
                    options,
                    chunk,
                    info.kind,
                    &mut log,
                )
                .await;
            (azure, directory)
        };
        lap("activity");

        // 3. Correlate and assess.
        let correlated = correlate_owned(
            &activations,
            azure.activities,
            directory.activities,
            &CorrelateOptions {
                max_activities_per_activation: options.max_activities_per_activation,
            },
        );
        lap("correlate");

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
                    azure.failure.as_ref().filter(|_| needs_azure),
                    directory.failure.as_ref().filter(|_| needs_directory),
                );
                let partial = azure.partial
                    || (needs_directory && directory.partial)
                    || (!needs_azure && azure.failure.is_some());
                (unassessable, c.truncated || partial)
            })
            .collect();
        let cases: Vec<Case<'_>> = activations
            .iter()
            .zip(&correlated)
            .zip(&facts)
            .map(|((activation, c), (unassessable, truncated))| Case {
                activation,
                activities: &c.activities,
                activity_total: c.total,
                truncated: *truncated,
                unassessable: unassessable.clone(),
            })
            .collect();
        let rules = assess_rules_parallel(&self.rules, &cases);
        let assessments: Vec<Assessment> = if self.assessor.is_some() {
            // Model calls are I/O-bound: up to `concurrency` in flight, each spending the
            // per-minute budget first. `buffered` keeps the results in case order.
            let budget = CallBudget::new(
                self.limits.requests_per_minute,
                self.limits.tokens_per_minute,
            );
            let budget = &budget;
            futures_util::stream::iter(cases.iter().zip(rules))
                .map(|(case, rules)| self.with_model(case, rules, budget))
                .buffered(self.limits.concurrency.max(1))
                .collect()
                .await
        } else {
            rules
        };
        drop(cases);
        let reports: Vec<ActivationReport> = activations
            .into_iter()
            .zip(correlated)
            .zip(assessments)
            .map(|((activation, c), assessment)| {
                ActivationReport::new(activation, c.activities, c.total, assessment)
            })
            .collect();

        lap("assess");
        let ScanLog {
            mut problems,
            mut warnings,
            queries,
        } = log;
        if self.assessor.is_none() {
            warnings.push(
                "No model is configured: verdicts come from the deterministic rules engine alone."
                    .to_owned(),
            );
        }
        // The AuditLogs source is read by two queries (PIM events, directory activity); a bad
        // row is one problem, not two.
        let mut seen = std::collections::HashSet::new();
        problems.retain(|p| seen.insert(p.clone()));
        let summary = ReportSummary::compute(&reports, problems.len());
        debug!(
            queries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scan finished"
        );
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
            },
            summary,
            problems,
            warnings,
            activations: reports,
        })
    }

    /// The rules engine's assessment stands alone, or, with a model assessor, is combined with
    /// the model's answer under the guardrails. A failing model never drops the activation: the rules' assessment stands and
    /// the failure is recorded.
    async fn with_model(
        &self,
        case: &Case<'_>,
        rules: Assessment,
        budget: &CallBudget,
    ) -> Assessment {
        let Some(model) = &self.assessor else {
            return rules;
        };
        // Where the rules' verdict stands whatever a model says (nothing to judge, or nothing
        // could be read), the guardrails would discard the answer: do not pay for it.
        if case.unassessable.is_some()
            || matches!(rules.verdict, Verdict::NoActivity | Verdict::Unknown)
        {
            return rules;
        }
        budget.acquire(self.limits.estimated_tokens_per_call).await;
        match model.assess(case, &rules).await {
            Ok(answer) => pim_rules::guardrails::combine(&rules, answer),
            Err(e) => {
                // The configured assessment did not happen: say so with `unknown` (so that
                // `--fail-on unknown` catches it), keeping everything the rules found — their
                // risk, flags and evidence never depend on the model.
                warn!(activation = %case.activation.id, error = %e, "model assessment failed");
                let mut failed = rules;
                let rules_verdict = failed.verdict;
                failed.verdict = Verdict::Unknown;
                failed.assessor = AssessorKind::ModelAndRules;
                failed.error = Some(format!("the model assessment failed: {e}"));
                failed.disagreements.push(format!(
                    "The model assessment failed ({e}); the rules engine alone found {rules_verdict}."
                ));
                failed
            }
        }
    }

    /// Fetches and parses the activity of `activations` from one table: AzureActivity
    /// operations, or the directory changes they initiated in AuditLogs. A failed query makes
    /// the fetch a failure (the activations that depend on it become `unknown`), never an empty
    /// result.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_activity(
        &self,
        table: LogTable,
        activations: &[&Activation],
        span: TimeRange,
        options: &ScanOptions,
        chunk: usize,
        kind: SourceKind,
        log: &mut ScanLog,
    ) -> ActivityFetch {
        if activations.is_empty() {
            return ActivityFetch::empty();
        }
        let identities = identities(activations);
        let directory = table == LogTable::AuditLogs;
        let (label, built) = if directory {
            (
                "directory-activity",
                pim_kql::directory_activity_queries(&identities, span, chunk),
            )
        } else {
            (
                "azure-activity",
                pim_kql::azure_activity_queries(&identities, span, options.include_failed, chunk),
            )
        };
        let texts = match built {
            Ok(t) => t,
            Err(e) => {
                return fail(
                    &mut log.warnings,
                    format!("the {label} query could not be built: {e}"),
                );
            }
        };
        let source_name = table_source_name(table, kind);
        let mut fetch = ActivityFetch::empty();
        let n = texts.len();
        for (i, kql) in texts.into_iter().enumerate() {
            let query = LogQuery {
                label: if n > 1 {
                    format!("{label} {}/{n}", i + 1)
                } else {
                    label.to_owned()
                },
                table: Some(table),
                kql,
                timespan: span,
            };
            log.queries += 1;
            match self.source.query(&query).await {
                Ok(outcome) => {
                    if outcome.partial_error.is_some() {
                        fetch.partial = true;
                    }
                    let t = log.take_table(outcome, &source_name);
                    let parse_started = std::time::Instant::now();
                    let parsed = if directory {
                        parse_directory_activity(&t, &source_name, options.include_failed)
                    } else {
                        parse_azure_activity(&t, &source_name, options.include_failed)
                    };
                    let parse_ms = parse_started.elapsed().as_millis() as u64;
                    drop(t);
                    debug!(
                        query = %query.label,
                        rows = parsed.rows_read,
                        activities = parsed.activities.len(),
                        parse_ms,
                        drop_ms = (parse_started.elapsed().as_millis() as u64).saturating_sub(parse_ms),
                        "activity parsed"
                    );
                    log.problems.extend(parsed.problems);
                    fetch.activities.extend(parsed.activities);
                }
                Err(e) => {
                    let reason = format!("the {} query failed: {e}", query.label);
                    warn!(query = %query.label, error = %e, "activity query failed");
                    log.warnings.push(format!(
                        "{reason}. Activations that depend on {} are marked unknown.",
                        table.name()
                    ));
                    fetch.failure = Some(reason);
                    return fetch;
                }
            }
        }
        fetch
    }
}

/// What a scan collects besides activations: input problems, warnings, and the query count.
#[derive(Debug, Default)]
struct ScanLog {
    problems: Vec<DataProblem>,
    warnings: Vec<String>,
    queries: usize,
}

impl ScanLog {
    /// Keeps the first table of a query outcome, recording partial errors and adapter problems.
    fn take_table(&mut self, outcome: QueryOutcome, source_name: &str) -> Table {
        let QueryOutcome {
            tables,
            partial_error,
            problems,
            ..
        } = outcome;
        self.problems.extend(problems);
        if let Some(message) = partial_error {
            self.warnings.push(format!(
                "{source_name}: the source returned a partial result ({message}); activity may be incomplete and affected activations are flagged activity_truncated."
            ));
        }
        tables.into_iter().next().unwrap_or_default()
    }
}

/// Runs the rules engine over every case, on as many threads as the machine has cores: the
/// rules are pure CPU work over borrowed data, and a large scan has thousands of cases.
fn assess_rules_parallel(rules: &RulesEngine, cases: &[Case<'_>]) -> Vec<Assessment> {
    const MIN_PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(cases.len() / MIN_PER_THREAD)
        .max(1);
    if threads == 1 {
        return cases.iter().map(|c| rules.assess(c)).collect();
    }
    let chunk = cases.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(|c| rules.assess(c)).collect::<Vec<_>>())
            })
            .collect();
        let mut out = Vec::with_capacity(cases.len());
        for (handle, part) in handles.into_iter().zip(cases.chunks(chunk)) {
            match handle.join() {
                Ok(done) => out.extend(done),
                // A panic in the rules engine is a bug; its activations stay in the report,
                // marked unknown, instead of taking the scan down with them.
                Err(_) => out.extend(part.iter().map(|_| {
                    Assessment::unknown(
                        AssessorKind::Rules,
                        "internal error: the rules engine failed on this activation",
                    )
                })),
            }
        }
        out
    })
}

fn fail(warnings: &mut Vec<String>, reason: String) -> ActivityFetch {
    warnings.push(reason.clone());
    ActivityFetch {
        activities: Vec::new(),
        failure: Some(reason),
        partial: false,
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
fn identities(activations: &[&Activation]) -> Vec<Identity> {
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

/// The smallest range covering every activation window.
fn union_span(activations: &[Activation]) -> TimeRange {
    let start = activations.iter().map(|a| a.window.start).min();
    let end = activations.iter().map(|a| a.window.end).max();
    match (start, end) {
        (Some(s), Some(e)) => TimeRange::new(s, e),
        _ => TimeRange::new(OffsetDateTime::UNIX_EPOCH, OffsetDateTime::UNIX_EPOCH),
    }
}

/// How input problems name a table: the export file for offline sources, the table otherwise.
fn table_source_name(table: LogTable, kind: SourceKind) -> String {
    match kind {
        SourceKind::Export => format!("{}.json", table.name()),
        _ => table.name().to_owned(),
    }
}
