//! The report model: the result of one scan, and the schema of the JSON report.
//!
//! Field names here are the JSON report's field names; `docs/report-schema.md` documents them and
//! `docs/report.schema.json` is their JSON Schema, generated from these types by
//! [`crate::schema::report_json_schema`]. Changing a name is a breaking change that bumps
//! [`REPORT_SCHEMA_VERSION`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    Activation, Activity, Assessment, DataProblem, ElevationWindow, Principal, Risk, Role, Scope,
    Verdict,
};

/// Version of the JSON report schema. Bumped on any incompatible change.
///
/// History: `1.0` first release; `1.1` adds the [`Report::run`] block (additive: a `1.0` reader
/// that ignores unknown fields reads `1.1`, and a `1.1` reader fills `run` with zeros when it
/// reads `1.0`); `2.0` adds the flag `evidence_incomplete` and the activity status
/// `in_progress` (new enum values, which the schema policy counts as breaking: a reader that
/// checks enums rejects them), the activation's `sources`, and counts every problem, global and
/// per activation, in `summary.problems`; `2.1` adds the activation's optional `state` and
/// `revision`, present when the scan kept a state store (issue 13; additive); `3.0` adds ticket
/// verification (issue 14): the flags `ticket_not_found`, `ticket_closed`,
/// `ticket_not_assigned` and `ticket_unverified` (new enum values: breaking), and the
/// activation's `ticket_info` (Entra's own ticket fields) and `ticket_checks`; and the
/// behaviour baseline (issue 14, item 4): the flag `first_time_operation`, the activation's
/// optional `baseline` block and `settings.baseline_days`.
pub const REPORT_SCHEMA_VERSION: &str = "3.0";

/// Whether an activation's verdict is settled, as a scan with a state store (`--state`) keeps
/// it (issue 13).
///
/// An activation is `provisional` while its window is open, or ended less than the settle time
/// (`--settle`) before the scan: its activity may not all have been ingested yet (Log Analytics
/// ingests minutes, sometimes more, after the fact). Provisional activations are re-assessed on
/// every run; once `final`, the stored assessment stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VerdictState {
    /// Judged on evidence that may still grow; re-assessed on the next run.
    Provisional,
    /// Settled: the window ended at least the settle time before a run.
    Final,
}

impl VerdictState {
    /// The snake_case name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisional => "provisional",
            Self::Final => "final",
        }
    }
}

/// The time range a scan covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportWindow {
    /// Start of the scan window (`end - hours`).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub start: OffsetDateTime,
    /// End of the scan window.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub end: OffsetDateTime,
}

/// Where the data came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportSource {
    /// `demo`, `export` or `log_analytics`.
    pub kind: String,
    /// A human description, e.g. the export directory or the workspace ids.
    pub description: String,
}

/// The settings a scan ran with, so a reader can reproduce it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScanSettings {
    /// Length of the scan window in hours.
    pub hours: u32,
    /// How far before the scan window activations were looked for, in hours.
    pub lookback_hours: u32,
    /// Whether failed operations were included.
    pub include_failed: bool,
    /// Most operations kept per activation.
    pub max_activities_per_activation: usize,
    /// Which assessors ran, e.g. `rules`.
    pub assessors: Vec<String>,
    /// Length of the behaviour-baseline period in days (`--baseline-days`); 0 when the
    /// baseline was off. Added in schema `3.0`.
    #[serde(default)]
    pub baseline_days: u32,
}

/// Counts for the report header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReportSummary {
    /// Number of activations in the report.
    pub activations: usize,
    /// Activations per verdict (every verdict present, zero included).
    #[schemars(schema_with = "crate::schema::count_per_verdict")]
    pub by_verdict: BTreeMap<Verdict, usize>,
    /// Activations per risk level (every level present, zero included).
    #[schemars(schema_with = "crate::schema::count_per_risk")]
    pub by_risk: BTreeMap<Risk, usize>,
    /// Activations that need a human look: not `aligned`, or risk high or above, or flagged.
    pub findings: usize,
    /// Number of operations correlated, over all activations.
    pub activities: usize,
    /// Number of input problems recorded: the report's own list plus every activation's.
    pub problems: usize,
}

/// What a model-backed assessor used: calls, retries, failures and tokens.
///
/// Counters only ever grow over an assessor's life; a scan reports the difference between two
/// readings ([`ModelUsage::since`]), so an assessor shared by many scans is counted per scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModelUsage {
    /// Requests sent to the model, retries included.
    pub calls: u64,
    /// Requests that were retries of an earlier one (an answer cut off, or unusable).
    pub retries: u64,
    /// Assessments that ended in an error (the rules' assessment stood instead).
    pub failures: u64,
    /// Prompt tokens the service reported.
    pub prompt_tokens: u64,
    /// Answer (completion) tokens the service reported.
    pub completion_tokens: u64,
}

impl ModelUsage {
    /// What was used between `earlier` and `self`, two readings of the same counters. Saturates
    /// at zero, so readings taken in the wrong order (or of a reset counter) never underflow.
    ///
    /// ```
    /// use pim_domain::ModelUsage;
    ///
    /// let before = ModelUsage { calls: 3, prompt_tokens: 900, ..ModelUsage::default() };
    /// let after = ModelUsage { calls: 5, prompt_tokens: 1_500, ..ModelUsage::default() };
    /// assert_eq!(after.since(&before).calls, 2);
    /// assert_eq!(after.since(&before).prompt_tokens, 600);
    /// assert_eq!(before.since(&after), ModelUsage::default());
    /// ```
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            calls: self.calls.saturating_sub(earlier.calls),
            retries: self.retries.saturating_sub(earlier.retries),
            failures: self.failures.saturating_sub(earlier.failures),
            prompt_tokens: self.prompt_tokens.saturating_sub(earlier.prompt_tokens),
            completion_tokens: self
                .completion_tokens
                .saturating_sub(earlier.completion_tokens),
        }
    }
}

/// How one scan ran: time taken, data read and model usage. Operational facts for the people who
/// run the tool, not part of the judgement (and the only part of a report that differs between
/// two runs over the same data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    /// Wall time of the scan in milliseconds, measured with a monotonic clock.
    pub duration_ms: u64,
    /// Log Analytics queries sent (or, for offline sources, tables read).
    pub queries: usize,
    /// Rows the queries returned, over all queries.
    pub query_rows: usize,
    /// Requests sent to the model, retries included; 0 without a model.
    pub model_calls: u64,
    /// Model requests that were retries of an earlier one.
    pub model_retries: u64,
    /// Model assessments that failed (those activations are `unknown`, with the rules' findings).
    pub model_failures: u64,
    /// Prompt tokens the model service reported.
    pub prompt_tokens: u64,
    /// Answer (completion) tokens the model service reported.
    pub completion_tokens: u64,
    /// Activations in the report (as [`ReportSummary::activations`]).
    pub activations: usize,
    /// Activations that need a human look (as [`ReportSummary::findings`]).
    pub findings: usize,
}

impl RunSummary {
    /// Copies the model counters of `usage` into this summary.
    pub fn set_model_usage(&mut self, usage: ModelUsage) {
        self.model_calls = usage.calls;
        self.model_retries = usage.retries;
        self.model_failures = usage.failures;
        self.prompt_tokens = usage.prompt_tokens;
        self.completion_tokens = usage.completion_tokens;
    }
}

/// The window block of one activation in the report.
pub type ActivationWindow = ElevationWindow;

/// One activation with what the identity did and the judgement, as it appears in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActivationReport {
    /// Stable id of the activation.
    pub id: String,
    /// When the activation completed.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub activated_at: OffsetDateTime,
    /// Who.
    pub principal: Principal,
    /// Which role.
    pub role: Role,
    /// Where.
    pub scope: Scope,
    /// Why, in the person's own (untrusted) words.
    pub justification: String,
    /// Ticket references found in the justification.
    pub tickets: Vec<String>,
    /// Entra PIM's own ticket fields (`TicketNumber`, `TicketSystem`; free text), when the
    /// record carries any. Added in schema `3.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_info: Option<crate::TicketInfo>,
    /// Each cited ticket (justification and Entra's field) and what its ticket system said,
    /// when ticket verification is configured; empty otherwise. Added in schema `3.0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticket_checks: Vec<crate::TicketCheck>,
    /// When the role was held.
    pub window: ActivationWindow,
    /// PIM request id.
    pub request_id: Option<String>,
    /// Audit correlation id.
    pub correlation_id: Option<String>,
    /// Every operation correlated to the window, in time order (never capped in JSON).
    pub activities: Vec<Activity>,
    /// Operations found in the window before any cap, so `activities.len() < activity_count`
    /// shows a truncation.
    pub activity_count: usize,
    /// The judgement.
    pub assessment: Assessment,
    /// Input problems that concern this activation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<DataProblem>,
    /// The tables the activation was recorded in: `audit_logs`, `azure_activity`, or both (one
    /// activation logged in both is reported once). Added in schema `2.0`; empty when unknown.
    #[serde(default)]
    pub sources: Vec<crate::ActivitySource>,
    /// `provisional` or `final` ([`VerdictState`]); present only when the scan kept a state
    /// store. Added in schema `2.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VerdictState>,
    /// The assessment's revision in the state store: 1 when first assessed, one more each time
    /// its verdict, risk or flags changed; present only with a state store. Added in schema
    /// `2.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub revision: Option<u32>,
    /// The identity's behaviour baseline: its operations over the days before the window,
    /// the window's first-time operations, and its activations in that period. Absent when the
    /// scan ran with `--baseline-days 0`. Added in schema `3.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::Baseline>,
}

impl ActivationReport {
    /// Assembles the report entry from an activation, its activities and its assessment.
    pub fn new(
        activation: Activation,
        activities: Vec<Activity>,
        activity_count: usize,
        assessment: Assessment,
    ) -> Self {
        Self {
            id: activation.id,
            activated_at: activation.activated_at,
            principal: activation.principal,
            role: activation.role,
            scope: activation.scope,
            justification: activation.justification,
            tickets: activation.tickets,
            ticket_info: activation.ticket_info,
            ticket_checks: activation.ticket_checks,
            window: activation.window,
            request_id: activation.request_id,
            correlation_id: activation.correlation_id,
            activities,
            activity_count,
            assessment,
            problems: activation.problems,
            sources: Vec::new(),
            state: None,
            revision: None,
            baseline: None,
        }
    }

    /// Whether this activation needs a human look: not aligned, risk high or above, or any flag
    /// other than the informational `still_active`.
    pub fn is_finding(&self) -> bool {
        use crate::Flag;
        self.assessment.verdict != Verdict::Aligned
            || self.assessment.risk >= Risk::High
            || self
                .assessment
                .flags
                .iter()
                .any(|f| *f != Flag::StillActive)
    }
}

/// The result of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    #[schemars(
        description = "Report schema version, major.minor (a reader accepts its own major)."
    )]
    pub schema_version: String,
    /// Unique id of this report (stable for the same inputs and settings).
    pub report_id: String,
    /// When the report was produced.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub generated_at: OffsetDateTime,
    /// Name and version of the tool, e.g. `pim-audit 0.1.0`.
    pub generator: String,
    /// The scan window.
    pub window: ReportWindow,
    /// Where the data came from.
    pub source: ReportSource,
    /// How the scan was run.
    pub settings: ScanSettings,
    /// Counts.
    pub summary: ReportSummary,
    /// How the scan ran (duration, queries, rows, model usage). Added in schema `1.1`; reading
    /// a `1.0` report leaves it all zero.
    #[serde(default)]
    pub run: RunSummary,
    /// Problems with the input that are not tied to one activation (bad files, bad rows).
    pub problems: Vec<DataProblem>,
    /// Warnings about the scan as a whole (partial results, no model configured, ...).
    pub warnings: Vec<String>,
    /// Every activation whose window overlaps the scan window, sorted by activation time.
    pub activations: Vec<ActivationReport>,
}

impl ReportSummary {
    /// Computes the summary of a set of activations.
    pub fn compute(activations: &[ActivationReport], problems: usize) -> Self {
        let mut by_verdict: BTreeMap<Verdict, usize> =
            Verdict::ALL.iter().map(|v| (*v, 0)).collect();
        let mut by_risk: BTreeMap<Risk, usize> = Risk::ALL.iter().map(|r| (*r, 0)).collect();
        let mut findings = 0;
        let mut activities = 0;
        for a in activations {
            *by_verdict.entry(a.assessment.verdict).or_default() += 1;
            *by_risk.entry(a.assessment.risk).or_default() += 1;
            findings += usize::from(a.is_finding());
            activities += a.activities.len();
        }
        Self {
            activations: activations.len(),
            by_verdict,
            by_risk,
            findings,
            activities,
            problems,
        }
    }
}
