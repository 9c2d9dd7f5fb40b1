//! The view-model the Markdown templates render: everything grouped, counted, capped and
//! formatted here, so templates only lay it out. Text from the logs stays raw; templates escape it
//! with the filters in [`crate::filters`].

use std::collections::HashMap;

use pim_domain::{
    ActivationReport, Activity, DataProblem, EndReason, OperationRef, Report, Risk, RiskFinding,
    RunSummary, Verdict,
};
use serde::Serialize;

use crate::MarkdownOptions;
use crate::format;

/// Most report-level input problems listed in the header.
pub(crate) const MAX_LISTED_PROBLEMS: usize = 50;

#[derive(Debug, Serialize)]
pub(crate) struct ReportView<'a> {
    schema_version: &'a str,
    report_id: &'a str,
    generated_at: String,
    generator: &'a str,
    window: WindowView,
    source_kind: &'a str,
    source_description: &'a str,
    assessors: Vec<&'a str>,
    rules_only: bool,
    include_failed: bool,
    max_activities_per_activation: usize,
    run: RunView,
    warnings: Vec<&'a str>,
    problems: Capped<ProblemView<'a>>,
    summary: SummaryView,
    timeline: Vec<GanttSection<'a>>,
    activations: Vec<ActivationView<'a>>,
}

/// The run summary, formatted for the header's "Run" line.
#[derive(Debug, Serialize)]
struct RunView {
    duration: String,
    queries: usize,
    rows: usize,
    model_calls: u64,
    model_retries: u64,
    model_failures: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl RunView {
    fn new(run: &RunSummary) -> Self {
        Self {
            duration: format::run_duration(run.duration_ms),
            queries: run.queries,
            rows: run.query_rows,
            model_calls: run.model_calls,
            model_retries: run.model_retries,
            model_failures: run.model_failures,
            prompt_tokens: run.prompt_tokens,
            completion_tokens: run.completion_tokens,
        }
    }
}

#[derive(Debug, Serialize)]
struct WindowView {
    start: String,
    end: String,
    hours: u32,
    lookback_hours: u32,
}

/// A list cut to `cap` entries; `total` is the length before the cut.
#[derive(Debug, Serialize)]
struct Capped<T> {
    items: Vec<T>,
    total: usize,
    cap: usize,
    capped: bool,
}

impl<T> Capped<T> {
    fn new(all: impl ExactSizeIterator<Item = T>, cap: usize) -> Self {
        let total = all.len();
        Self {
            items: all.take(cap).collect(),
            total,
            cap,
            capped: total > cap,
        }
    }
}

/// One ticket check as the Markdown shows it; every text from the ticket system is escaped by
/// the template's filters.
#[derive(Debug, Serialize)]
struct TicketView<'a> {
    reference: &'a str,
    origin: &'static str,
    system: Option<&'static str>,
    /// `found`, `not found`, `unverified`, `not checked`.
    status: &'static str,
    state: Option<&'a str>,
    /// `open`, `closed` or nothing.
    open: Option<&'static str>,
    assignee: Option<&'a str>,
    requester: Option<&'a str>,
    caller: Option<&'a str>,
    opened: Option<String>,
    closed: Option<String>,
    description: Option<&'a str>,
    reason: Option<&'a str>,
    /// What the rules make of it: closed before the activation, not the identity's.
    findings: Vec<String>,
}

impl<'a> TicketView<'a> {
    fn new(c: &'a pim_domain::TicketCheck, a: &'a ActivationReport) -> Self {
        let e = c.evidence.as_ref();
        let mut findings = Vec::new();
        if let Some(why) = c.closed_before(a.window.start) {
            findings.push(why);
        }
        if let Some(pim_domain::Assignment::NoMatch(why)) = c.assignment(&a.principal) {
            findings.push(why);
        }
        let person = |p: Option<&'a pim_domain::TicketPerson>| p.map(|p| p.label());
        Self {
            reference: &c.reference,
            origin: c.origin.as_str(),
            system: c.system.map(|s| s.label()),
            status: match c.status {
                pim_domain::TicketStatus::Found => "found",
                pim_domain::TicketStatus::NotFound => "not found",
                pim_domain::TicketStatus::Unverified => "unverified",
                pim_domain::TicketStatus::NotChecked => "not checked",
            },
            state: e.and_then(|e| e.state.as_deref()),
            open: e
                .and_then(|e| e.open)
                .map(|o| if o { "open" } else { "closed" }),
            assignee: person(e.and_then(|e| e.assignee.as_ref())),
            requester: person(e.and_then(|e| e.requester.as_ref())),
            caller: person(e.and_then(|e| e.caller.as_ref())),
            opened: e.and_then(|e| e.opened_at).map(format::compact),
            closed: e.and_then(|e| e.closed_at).map(format::compact),
            description: e.and_then(|e| e.short_description.as_deref()),
            reason: c.reason.as_deref(),
            findings,
        }
    }
}

#[derive(Debug, Serialize)]
struct ProblemView<'a> {
    source: &'a str,
    row: Option<usize>,
    field: Option<&'a str>,
    message: &'a str,
}

impl<'a> From<&'a DataProblem> for ProblemView<'a> {
    fn from(p: &'a DataProblem) -> Self {
        Self {
            source: &p.source,
            row: p.row,
            field: p.field.as_deref(),
            message: &p.message,
        }
    }
}

#[derive(Debug, Serialize)]
struct Count {
    name: &'static str,
    count: usize,
}

#[derive(Debug, Serialize)]
struct SummaryView {
    activations: usize,
    by_verdict: Vec<Count>,
    by_risk: Vec<Count>,
    findings: usize,
    activities: usize,
    problems: usize,
}

#[derive(Debug, Serialize)]
struct GanttSection<'a> {
    name: &'a str,
    tasks: Vec<GanttTask<'a>>,
}

#[derive(Debug, Serialize)]
struct GanttTask<'a> {
    id: String,
    label: &'a str,
    /// `crit`, `active`, `crit, active` or empty.
    tags: String,
    start: String,
    end: String,
}

#[derive(Debug, Serialize)]
struct ActivationView<'a> {
    index: usize,
    id: &'a str,
    principal: &'a str,
    upn: Option<&'a str>,
    display_name: Option<&'a str>,
    object_id: Option<&'a str>,
    role_name: &'a str,
    role_id: Option<&'a str>,
    role_kind: &'static str,
    role_kind_label: &'static str,
    scope_kind: &'static str,
    scope_name: Option<&'a str>,
    scope_id: Option<&'a str>,
    activated_at: String,
    justification: &'a str,
    tickets: Vec<&'a str>,
    /// Entra's own ticket number and system, as typed.
    entra_ticket: Option<(Option<&'a str>, Option<&'a str>)>,
    ticket_checks: Vec<TicketView<'a>>,
    window_start: String,
    window_end: String,
    end_reason: &'static str,
    scheduled_end: Option<String>,
    duration: String,
    assumed: bool,
    request_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    /// The tables the activation was recorded in (`AuditLogs`, `AzureActivity`).
    sources: Vec<&'static str>,
    verdict: &'static str,
    /// The verdict may still change: the state store re-assesses it next run (issue 13).
    provisional: bool,
    /// The assessment's revision in the state store, when one was kept.
    revision: Option<u32>,
    risk: &'static str,
    assessor: &'static str,
    confidence: Option<String>,
    error: Option<&'a str>,
    rationale: &'a str,
    flags: Vec<&'static str>,
    is_finding: bool,
    evidence: EvidenceView<'a>,
    disagreements: Vec<&'a str>,
    groups: Capped<ActivityGroup<'a>>,
    activities: Capped<ActivityView<'a>>,
    activity_count: usize,
    truncated_at_collection: bool,
    problems: Vec<ProblemView<'a>>,
    /// The behaviour baseline (issue 14), when the scan computed one.
    baseline: Option<BaselineView<'a>>,
}

/// The behaviour baseline of one activation, as the Markdown shows it.
#[derive(Debug, Serialize)]
struct BaselineView<'a> {
    days: u32,
    start: String,
    end: String,
    available: bool,
    reason: Option<&'a str>,
    known_operations: usize,
    first_time: Vec<FirstTimeView<'a>>,
    activations: Option<u64>,
    activations_source: &'a str,
    activations_error: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct FirstTimeView<'a> {
    operation: &'a str,
    resource_type: &'a str,
    count: usize,
    first: String,
}

impl<'a> BaselineView<'a> {
    fn new(b: &'a pim_domain::Baseline) -> Self {
        Self {
            days: b.days,
            start: format::compact(b.period.start),
            end: format::compact(b.period.end),
            available: b.status == pim_domain::BaselineStatus::Computed,
            reason: b.reason.as_deref(),
            known_operations: b.known_operations,
            first_time: b
                .first_time_operations
                .iter()
                .map(|f| FirstTimeView {
                    operation: &f.operation,
                    resource_type: &f.resource_type,
                    count: f.count,
                    first: format::compact(f.first),
                })
                .collect(),
            activations: b.activations.count,
            activations_source: match b.activations.source.as_str() {
                "state" => "the state store",
                "audit_logs" => "AuditLogs",
                "export" => "the AuditLogs export",
                other => other,
            },
            activations_error: b.activations.error.as_deref(),
        }
    }
}

#[derive(Debug, Serialize)]
struct EvidenceView<'a> {
    intents: Vec<&'a str>,
    named_resources: Vec<&'a str>,
    explained: Capped<OperationRefView<'a>>,
    unexplained: Capped<OperationRefView<'a>>,
    risk_findings: Capped<RiskFindingView<'a>>,
    empty: bool,
}

#[derive(Debug, Serialize)]
struct OperationRefView<'a> {
    operation: &'a str,
    resource: Option<&'a str>,
    count: usize,
    first: String,
}

impl<'a> From<&'a OperationRef> for OperationRefView<'a> {
    fn from(o: &'a OperationRef) -> Self {
        Self {
            operation: &o.operation,
            resource: o.resource.as_deref(),
            count: o.count,
            first: format::compact(o.first),
        }
    }
}

#[derive(Debug, Serialize)]
struct RiskFindingView<'a> {
    operation: &'a str,
    resource: Option<&'a str>,
    risk: &'static str,
    rule: &'a str,
    explained: bool,
}

impl<'a> From<&'a RiskFinding> for RiskFindingView<'a> {
    fn from(f: &'a RiskFinding) -> Self {
        Self {
            operation: &f.operation,
            resource: f.resource.as_deref(),
            risk: f.risk.as_str(),
            rule: &f.rule,
            explained: f.explained,
        }
    }
}

#[derive(Debug, Serialize)]
struct ActivityGroup<'a> {
    operation: &'a str,
    resource: Option<&'a str>,
    status: &'static str,
    count: usize,
    first: String,
    last: String,
    #[serde(skip)]
    first_at: time::OffsetDateTime,
    #[serde(skip)]
    last_at: time::OffsetDateTime,
}

#[derive(Debug, Serialize)]
struct ActivityView<'a> {
    time: String,
    operation: &'a str,
    status: &'static str,
    resource: Option<&'a str>,
    caller: Option<&'a str>,
    source: &'static str,
}

impl<'a> From<&'a Activity> for ActivityView<'a> {
    fn from(a: &'a Activity) -> Self {
        Self {
            time: format::compact(a.time),
            operation: &a.operation,
            status: a.status.as_str(),
            resource: resource_of(a),
            caller: a.caller.as_deref(),
            source: a.source.as_str(),
        }
    }
}

/// The resource id, else the first directory target's name or id.
fn resource_of(a: &Activity) -> Option<&str> {
    a.resource_id.as_deref().or_else(|| {
        a.targets
            .first()
            .and_then(|t| t.name.as_deref().or(t.id.as_deref()))
    })
}

impl<'a> ReportView<'a> {
    pub(crate) fn new(report: &'a Report, options: &MarkdownOptions) -> Self {
        let assessors: Vec<&str> = report
            .settings
            .assessors
            .iter()
            .map(String::as_str)
            .collect();
        let rules_only = assessors.iter().all(|a| a.trim() == "rules");
        let activations: Vec<ActivationView<'a>> = report
            .activations
            .iter()
            .enumerate()
            .map(|(i, a)| ActivationView::new(i + 1, a, options))
            .collect();
        Self {
            schema_version: &report.schema_version,
            report_id: &report.report_id,
            generated_at: format::rfc3339(report.generated_at),
            generator: &report.generator,
            window: WindowView {
                start: format::compact(report.window.start),
                end: format::compact(report.window.end),
                hours: report.settings.hours,
                lookback_hours: report.settings.lookback_hours,
            },
            source_kind: &report.source.kind,
            source_description: &report.source.description,
            assessors,
            rules_only,
            include_failed: report.settings.include_failed,
            max_activities_per_activation: report.settings.max_activities_per_activation,
            run: RunView::new(&report.run),
            warnings: report.warnings.iter().map(String::as_str).collect(),
            problems: Capped::new(
                report.problems.iter().map(ProblemView::from),
                MAX_LISTED_PROBLEMS,
            ),
            summary: summary(report),
            timeline: timeline(&report.activations),
            activations,
        }
    }
}

/// Every verdict and risk level with its count; values missing from the map count as zero so the
/// table always has the same rows.
fn summary(report: &Report) -> SummaryView {
    let s = &report.summary;
    SummaryView {
        activations: s.activations,
        by_verdict: Verdict::ALL
            .iter()
            .map(|v| Count {
                name: v.as_str(),
                count: s.by_verdict.get(v).copied().unwrap_or(0),
            })
            .collect(),
        by_risk: Risk::ALL
            .iter()
            .map(|r| Count {
                name: r.as_str(),
                count: s.by_risk.get(r).copied().unwrap_or(0),
            })
            .collect(),
        findings: s.findings,
        activities: s.activities,
        problems: s.problems,
    }
}

/// One gantt section per principal, in order of first appearance; task ids follow the
/// activation numbers used everywhere else in the report.
fn timeline(activations: &[ActivationReport]) -> Vec<GanttSection<'_>> {
    let mut sections: Vec<GanttSection<'_>> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, a) in activations.iter().enumerate() {
        let mut tags = Vec::new();
        if a.is_finding() && a.assessment.risk >= Risk::High {
            tags.push("crit");
        }
        if a.window.end_reason == EndReason::StillActive {
            tags.push("active");
        }
        let task = GanttTask {
            id: format!("a{}", i + 1),
            label: &a.role.name,
            tags: tags.join(", "),
            start: format::mermaid(a.window.start),
            end: format::mermaid(a.window.end.max(a.window.start)),
        };
        let name = a.principal.label();
        let slot = *by_name.entry(name).or_insert_with(|| {
            sections.push(GanttSection {
                name,
                tasks: Vec::new(),
            });
            sections.len() - 1
        });
        if let Some(section) = sections.get_mut(slot) {
            section.tasks.push(task);
        }
    }
    sections
}

impl<'a> ActivationView<'a> {
    fn new(index: usize, a: &'a ActivationReport, options: &MarkdownOptions) -> Self {
        let cap = options.max_listed_activities;
        let e = &a.assessment.evidence;
        let evidence = EvidenceView {
            intents: e.intents.iter().map(String::as_str).collect(),
            named_resources: e.named_resources.iter().map(String::as_str).collect(),
            // Evidence lists are capped like the activity list: a runaway script's thousands of
            // explained operations must not bury the unexplained one.
            explained: Capped::new(e.explained.iter().map(OperationRefView::from), cap),
            unexplained: Capped::new(e.unexplained.iter().map(OperationRefView::from), cap),
            risk_findings: Capped::new(e.risk_findings.iter().map(RiskFindingView::from), cap),
            empty: e.intents.is_empty()
                && e.named_resources.is_empty()
                && e.explained.is_empty()
                && e.unexplained.is_empty()
                && e.risk_findings.is_empty(),
        };
        let groups = group_activities(&a.activities);
        Self {
            index,
            id: &a.id,
            principal: a.principal.label(),
            upn: a.principal.upn.as_deref(),
            display_name: a.principal.display_name.as_deref(),
            object_id: a.principal.object_id.as_deref(),
            role_name: &a.role.name,
            role_id: a.role.id.as_deref(),
            role_kind: a.role.kind.as_str(),
            role_kind_label: a.role.kind.label(),
            scope_kind: a.scope.kind.as_str(),
            scope_name: a.scope.display_name.as_deref(),
            scope_id: a.scope.id.as_deref(),
            activated_at: format::compact(a.activated_at),
            justification: &a.justification,
            tickets: a.tickets.iter().map(String::as_str).collect(),
            entra_ticket: a
                .ticket_info
                .as_ref()
                .map(|t| (t.number.as_deref(), t.system.as_deref())),
            ticket_checks: a
                .ticket_checks
                .iter()
                .map(|c| TicketView::new(c, a))
                .collect(),
            window_start: format::compact(a.window.start),
            window_end: format::compact(a.window.end),
            end_reason: a.window.end_reason.as_str(),
            scheduled_end: a.window.scheduled_end.map(format::compact),
            duration: format::duration(a.window.duration()),
            assumed: a.window.assumed,
            request_id: a.request_id.as_deref(),
            correlation_id: a.correlation_id.as_deref(),
            sources: a
                .sources
                .iter()
                .map(|s| match s {
                    pim_domain::ActivitySource::AuditLogs => "AuditLogs",
                    pim_domain::ActivitySource::AzureActivity => "AzureActivity",
                })
                .collect(),
            verdict: a.assessment.verdict.as_str(),
            provisional: a.state == Some(pim_domain::VerdictState::Provisional),
            revision: a.revision,
            risk: a.assessment.risk.as_str(),
            assessor: a.assessment.assessor.as_str(),
            confidence: a.assessment.confidence.map(|c| format!("{c:.2}")),
            error: a.assessment.error.as_deref(),
            rationale: &a.assessment.rationale,
            flags: a.assessment.flags.iter().map(|f| f.as_str()).collect(),
            is_finding: a.is_finding(),
            evidence,
            disagreements: a
                .assessment
                .disagreements
                .iter()
                .map(String::as_str)
                .collect(),
            groups: Capped::new(groups.into_iter(), cap),
            activities: Capped::new(a.activities.iter().map(ActivityView::from), cap),
            activity_count: a.activity_count,
            baseline: a.baseline.as_ref().map(BaselineView::new),
            truncated_at_collection: a.activity_count > a.activities.len(),
            problems: a.problems.iter().map(ProblemView::from).collect(),
        }
    }
}

/// Groups operations by operation name (case-insensitively, as Azure's casing varies between
/// rows of one operation), resource and status, in order of first occurrence.
fn group_activities(activities: &[Activity]) -> Vec<ActivityGroup<'_>> {
    let mut groups: Vec<ActivityGroup<'_>> = Vec::new();
    let mut index: HashMap<(String, Option<String>, &'static str), usize> = HashMap::new();
    for a in activities {
        let resource = resource_of(a);
        let key = (
            a.operation.to_lowercase(),
            resource.map(str::to_lowercase),
            a.status.as_str(),
        );
        match index.get(&key).and_then(|&i| groups.get_mut(i)) {
            Some(g) => {
                g.count += 1;
                g.first_at = g.first_at.min(a.time);
                g.last_at = g.last_at.max(a.time);
            }
            None => {
                index.insert(key, groups.len());
                groups.push(ActivityGroup {
                    operation: &a.operation,
                    resource,
                    status: a.status.as_str(),
                    count: 1,
                    first: String::new(),
                    last: String::new(),
                    first_at: a.time,
                    last_at: a.time,
                });
            }
        }
    }
    for g in &mut groups {
        g.first = format::compact(g.first_at);
        g.last = format::compact(g.last_at);
    }
    groups
}
