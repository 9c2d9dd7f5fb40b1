//! Deterministic assessment of PIM activations: sensitive-operation catalogue, intent vocabulary,
//! justification checks, verdict and risk — and the seam where a model-backed assessor plugs in.
//!
//! The [`RulesEngine`] judges one [`Case`] (an activation, the operations its identity performed
//! in the elevation window, and what the pipeline knows about their completeness) without any
//! model, and always the same way for the same input. Its rules are written down for auditors in
//! the module docs:
//!
//! - [`catalogue`]: which operations are sensitive, and how risky ([`catalogue::classify`]);
//! - [`vocabulary`]: which operations the justification explains ([`vocabulary::intents`], named
//!   resources);
//! - [`justification`]: whether the justification says anything at all, and whether it tries to
//!   instruct an assessor ([`justification::injection_signals`]);
//! - [`engine`]: how those facts become a [`Verdict`](pim_domain::Verdict), a
//!   [`Risk`](pim_domain::Risk), flags, evidence and a rationale;
//! - [`guardrails`]: how a model's answer is held in check by the rules ([`guardrails::combine`]).
//!
//! A model-backed assessor implements [`Assessor`]; callers hold it as `Arc<dyn Assessor>`, give
//! it the rules' own assessment as a baseline, and pass its answer through
//! [`guardrails::combine`].
//!
//! The justification is untrusted text written by the person being audited. The engine only
//! matches it against fixed word lists; nothing in it can change what the engine does beyond
//! which intents and resource names it recognises.
//!
//! ```
//! use pim_domain::{
//!     Activation, Activity, ActivitySource, ActivityStatus, AssessorKind, ElevationWindow,
//!     EndReason, Principal, Risk, Role, RoleKind, Scope, Verdict,
//! };
//! use pim_rules::{Case, RulesConfig, RulesEngine};
//! use time::macros::datetime;
//!
//! let activation = Activation {
//!     id: "PIM_1".into(),
//!     activated_at: datetime!(2026-11-20 09:13:58 UTC),
//!     principal: Principal { upn: Some("jane@contoso.com".into()), ..Principal::default() },
//!     role: Role { name: "Virtual Machine Contributor".into(), id: None, kind: RoleKind::AzureResource },
//!     scope: Scope::unknown(),
//!     justification: "Restart web01 after patching, INC0012345".into(),
//!     tickets: vec!["INC0012345".into()],
//!     ticket_info: None,
//!     ticket_checks: Vec::new(),
//!     window: ElevationWindow {
//!         start: datetime!(2026-11-20 09:13:58 UTC),
//!         end: datetime!(2026-11-20 13:13:58 UTC),
//!         end_reason: EndReason::Expired,
//!         scheduled_end: None,
//!         assumed: false,
//!     },
//!     request_id: None,
//!     correlation_id: None,
//!     problems: vec![],
//! };
//! let restart = Activity {
//!     time: datetime!(2026-11-20 09:20:11 UTC),
//!     operation: "MICROSOFT.COMPUTE/VIRTUALMACHINES/RESTART/ACTION".into(),
//!     status: ActivityStatus::Succeeded,
//!     resource_id: Some(
//!         "/subscriptions/s1/resourcegroups/rg-prod-web/providers/microsoft.compute/virtualmachines/web01".into(),
//!     ),
//!     resource_group: Some("rg-prod-web".into()),
//!     subscription_id: Some("s1".into()),
//!     provider: Some("Microsoft.Compute".into()),
//!     source: ActivitySource::AzureActivity,
//!     caller: Some("jane@contoso.com".into()),
//!     caller_object_id: None,
//!     correlation_id: None,
//!     targets: vec![],
//! };
//! let activities = [restart];
//! let case = Case {
//!     activation: &activation,
//!     activities: &activities,
//!     activity_total: 1,
//!     truncated: false,
//!     unassessable: None,
//!     unreadable: &[],
//!     baseline: None,
//! };
//! let assessment = RulesEngine::new(RulesConfig::default()).assess(&case);
//! assert_eq!(assessment.verdict, Verdict::Aligned);
//! assert_eq!(assessment.risk, Risk::Low);
//! assert_eq!(assessment.assessor, AssessorKind::Rules);
//! assert_eq!(assessment.evidence.named_resources, ["web01"]);
//! ```

// The rules, written down for auditors in each module's docs.
pub mod catalogue; // which operations are sensitive, and how risky
pub mod engine; // the `RulesEngine`: verdict, risk, flags, evidence and rationale of one case
pub mod guardrails; // how a model's answer is held in check by the rules
pub mod justification; // whether a justification says anything, and injection signals
pub mod vocabulary; // which operations a justification's intents and named resources explain

// The engine's parts.
mod evidence; // resource labels, evidence groups and catalogue findings
mod policy; // the verdict and risk tables as code
mod rationale;
mod tickets; // what the cited tickets' checks do to flags, risk and substance // the rationale's sentences, built only from the assessment's facts

// Speed, never behaviour.
mod bytes; // word-at-a-time text checks and digests (imports nothing from the crate)
mod fast; // per-name operation facts, worked out once per distinct name and cached

// The seam for other assessors, and errors.
mod assessor; // the `Assessor` trait a model-backed assessor implements
mod error; // the crate's errors

pub use assessor::Assessor;
#[cfg(any(test, feature = "mock"))]
pub use assessor::MockAssessor;
pub use catalogue::CatalogueMatch;
pub use engine::RulesEngine;
pub use error::{AssessError, Error, Result};
pub use vocabulary::Intent;

use pim_domain::{Activation, Activity};

/// Settings of the rules engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// A role or group whose name contains any of these (case-insensitively, ignoring spaces,
    /// hyphens and underscores) is privileged. Defaults: `admin`, `priv`, `tier0` (so also
    /// `tier-0` and `tier 0`), `global`, `owner`, `security`, `breakglass` (so also
    /// `break glass`), `emergency`.
    pub privileged_name_patterns: Vec<String>,
    /// Extra words that carry no information in a justification, on top of
    /// [`justification::CONTENT_FREE_WORDS`] (e.g. an organisation's own filler such as `bau2`).
    pub content_free_words: Vec<String>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            privileged_name_patterns: [
                "admin",
                "priv",
                "tier0",
                "tier-0",
                "tier 0",
                "global",
                "owner",
                "security",
                "break glass",
                "breakglass",
                "emergency",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            content_free_words: Vec::new(),
        }
    }
}

impl RulesConfig {
    /// Whether a role or group name is privileged under
    /// [`privileged_name_patterns`](Self::privileged_name_patterns).
    ///
    /// ```
    /// use pim_rules::RulesConfig;
    /// let config = RulesConfig::default();
    /// assert!(config.is_privileged_name("Global Administrator"));
    /// assert!(config.is_privileged_name("SG-Tier-0 Operators"));
    /// assert!(!config.is_privileged_name("Marketing"));
    /// ```
    pub fn is_privileged_name(&self, name: &str) -> bool {
        let name = squash(name);
        self.privileged_name_patterns
            .iter()
            .map(|p| squash(p))
            .any(|p| !p.is_empty() && name.contains(&p))
    }
}

/// Lower case without spaces, hyphens and underscores, so `Tier 0`, `tier-0` and `TIER_0` agree.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '_' | '\u{2010}'..='\u{2015}')))
        .flat_map(char::to_lowercase)
        .collect()
}

/// One activation to judge, with what its identity did in the elevation window.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    /// The activation.
    pub activation: &'a Activation,
    /// The operations performed in the window (after the pipeline's filtering, e.g. of failed
    /// operations, and possibly cut to a limit).
    pub activities: &'a [Activity],
    /// How many operations the window held before any limit was applied.
    pub activity_total: usize,
    /// Whether `activities` is incomplete (a limit was hit or the source reported a partial
    /// result).
    pub truncated: bool,
    /// Set by the pipeline when the activation cannot be judged (e.g. the activity query failed,
    /// or the activation lacks an identity); the verdict is then `unknown` with this reason.
    pub unassessable: Option<String>,
    /// Problems of input rows that could belong to this activation (its identity or an
    /// unreadable one, its window or an unreadable time) but could not be read. When any are
    /// given the case is flagged `evidence_incomplete`, and `aligned` or `no_activity` becomes
    /// `unknown`.
    pub unreadable: &'a [pim_domain::DataProblem],
    /// The identity's behaviour baseline, when the scan computed one (`--baseline-days`): its
    /// first-time operations set the flag `first_time_operation` and can raise the risk (see
    /// the [engine docs](crate::engine)); an unavailable baseline is named in the rationale.
    /// `None` when the baseline is off.
    pub baseline: Option<&'a pim_domain::Baseline>,
}
