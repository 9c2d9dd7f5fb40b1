//! Verdicts, risk, flags and evidence.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::string_enum;

/// Does the activity in the window fit the justification?
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything done is explained by the justification.
    Aligned,
    /// The stated work was done, and more besides.
    Partial,
    /// What was done does not fit the justification.
    NotAligned,
    /// Nothing was recorded in the window.
    NoActivity,
    /// Could not be assessed; the assessment's `error` says why.
    Unknown,
}

string_enum!(Verdict, "verdict", {
    Aligned => "aligned",
    Partial => "partial",
    NotAligned => "not_aligned",
    NoActivity => "no_activity",
    Unknown => "unknown",
});

/// How risky an elevation was. Ordered: `Low < Medium < High < Critical`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Nothing sensitive.
    #[default]
    Low,
    /// Worth a look.
    Medium,
    /// Sensitive operations or a poor fit with the justification.
    High,
    /// Operations that grant or hide privilege, or destroy security controls.
    Critical,
}

impl Risk {
    /// One level up, `critical` staying `critical`.
    ///
    /// ```
    /// use pim_domain::Risk;
    /// assert_eq!(Risk::Low.raised(), Risk::Medium);
    /// assert_eq!(Risk::Critical.raised(), Risk::Critical);
    /// ```
    #[must_use]
    pub fn raised(self) -> Self {
        match self {
            Self::Low => Self::Medium,
            Self::Medium => Self::High,
            Self::High | Self::Critical => Self::Critical,
        }
    }
}

string_enum!(Risk, "risk", {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});

/// A named condition found while assessing an activation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// At least one operation in the window is in the sensitive-operation catalogue at high or
    /// critical risk.
    HighRiskOperation,
    /// The justification is empty or content-free ("work", ".", "n/a").
    InsufficientJustification,
    /// The justification tries to instruct the assessor. A model can never clear this flag.
    PromptInjectionSuspected,
    /// The role was still active when the scan ended; more activity may follow.
    StillActive,
    /// No end of the window was logged; a default duration was assumed.
    AssumedWindow,
    /// The activity list for the window is incomplete (a limit was hit or the source reported a
    /// partial result).
    ActivityTruncated,
    /// Rows that could belong to this activation (its identity, or an unreadable identity; its
    /// window, or an unreadable time) could not be read. The activation's problems list them; an
    /// `aligned` or `no_activity` verdict becomes `unknown`, because unread evidence is never
    /// evidence of innocence.
    EvidenceIncomplete,
    /// A cited ticket does not exist in the system that owns its kind of number (issue 14).
    TicketNotFound,
    /// A cited ticket was closed before the activation started. Raises risk by one level.
    TicketClosed,
    /// None of a cited ticket's assignee, requester or caller is the activating identity (by
    /// UPN or e-mail). Raises risk by one level.
    TicketNotAssigned,
    /// A cited ticket could not be looked up (authentication, permission, throttling, server
    /// errors, timeout); its check gives the reason. Never a silent pass.
    TicketUnverified,
    /// An operation of the window that the identity never performed in the behaviour-baseline
    /// period (`--baseline-days`) before it; the activation's `baseline` lists them.
    FirstTimeOperation,
}

string_enum!(Flag, "flag", {
    HighRiskOperation => "high_risk_operation",
    InsufficientJustification => "insufficient_justification",
    PromptInjectionSuspected => "prompt_injection_suspected",
    StillActive => "still_active",
    AssumedWindow => "assumed_window",
    ActivityTruncated => "activity_truncated",
    EvidenceIncomplete => "evidence_incomplete",
    TicketNotFound => "ticket_not_found",
    TicketClosed => "ticket_closed",
    TicketNotAssigned => "ticket_not_assigned",
    TicketUnverified => "ticket_unverified",
    FirstTimeOperation => "first_time_operation",
});

/// Who produced an assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AssessorKind {
    /// The deterministic rules engine alone.
    #[serde(rename = "rules")]
    Rules,
    /// A model alone (only used for raw model answers before guardrails).
    #[serde(rename = "model")]
    Model,
    /// A model's answer held in check by the rules engine.
    #[serde(rename = "model+rules")]
    ModelAndRules,
}

string_enum!(AssessorKind, "assessor", {
    Rules => "rules",
    Model => "model",
    ModelAndRules => "model+rules",
});

/// A reference to one operation (for evidence lists), grouped: the same operation on the same
/// resource is listed once with a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OperationRef {
    /// The operation name as logged.
    pub operation: String,
    /// The resource (ARM id or directory target), if any.
    pub resource: Option<String>,
    /// How many times it happened in the window.
    pub count: usize,
    /// When it first happened.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub first: OffsetDateTime,
}

/// One sensitive operation found by the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RiskFinding {
    /// The operation name as logged.
    pub operation: String,
    /// The resource it touched.
    pub resource: Option<String>,
    /// The catalogue's risk for it.
    pub risk: Risk,
    /// The catalogue entry, e.g. `role assignment written`.
    pub rule: String,
    /// Whether the justification explains it.
    pub explained: bool,
}

/// Why the verdict is what it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// The intents recognised in the justification (e.g. `restart virtual machine`).
    pub intents: Vec<String>,
    /// Resources the justification names explicitly.
    pub named_resources: Vec<String>,
    /// Operations the justification explains.
    pub explained: Vec<OperationRef>,
    /// Operations it does not explain.
    pub unexplained: Vec<OperationRef>,
    /// Sensitive operations from the catalogue.
    pub risk_findings: Vec<RiskFinding>,
}

/// The judgement on one activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Assessment {
    /// Does the activity fit the justification?
    pub verdict: Verdict,
    /// How risky was the elevation?
    pub risk: Risk,
    /// A short explanation in words.
    pub rationale: String,
    /// Conditions found, sorted and without duplicates.
    pub flags: Vec<Flag>,
    /// Who produced this assessment.
    pub assessor: AssessorKind,
    /// Why the activation could not be (fully) assessed, when it could not.
    pub error: Option<String>,
    /// The model's confidence (0..1), when a model took part.
    #[schemars(range(min = 0.0, max = 1.0))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Where a model and the rules disagreed, and what the guardrails kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<String>,
    /// What the verdict rests on.
    pub evidence: Evidence,
}

impl Assessment {
    /// Adds a flag once, keeping the list sorted.
    pub fn add_flag(&mut self, flag: Flag) {
        if let Err(pos) = self.flags.binary_search(&flag) {
            self.flags.insert(pos, flag);
        }
    }

    /// Whether the flag is set.
    pub fn has_flag(&self, flag: Flag) -> bool {
        self.flags.binary_search(&flag).is_ok()
    }

    /// An `unknown` assessment carrying the reason, for activations that could not be judged.
    pub fn unknown(assessor: AssessorKind, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            verdict: Verdict::Unknown,
            risk: Risk::Medium,
            rationale: format!("Could not assess: {reason}"),
            flags: Vec::new(),
            assessor,
            error: Some(reason),
            confidence: None,
            disagreements: Vec::new(),
            evidence: Evidence::default(),
        }
    }
}
