//! Pure domain types of the PIM Activity Audit Agent.
//!
//! Everything the other crates pass between each other lives here, with no I/O and no async:
//!
//! - [`Activation`]: one completed PIM activation (who, which role, which scope, why, and the
//!   [`ElevationWindow`] during which the role was held);
//! - [`Activity`]: one operation an identity performed (an Azure Resource Manager operation from
//!   `AzureActivity`, or a directory change from `AuditLogs`);
//! - [`SharedText`]: the reference-counted text an [`Activity`] holds, so the hundreds of
//!   thousands of operations of a scan share one copy of each repeated caller or operation name;
//! - [`Assessment`]: the [`Verdict`], [`Risk`], [`Flag`]s and [`Evidence`] for one activation;
//! - [`Report`]: the whole result of a scan, which is also the JSON report's schema;
//! - [`schema`]: the JSON report's JSON Schema, derived from these types with `schemars`;
//! - [`TicketCheck`]: a ticket an activation cites and what its ticket system said about it
//!   ([`TicketEvidence`]), with Entra's own [`TicketInfo`];
//! - [`DataProblem`]: a precise description of input that could not be used (file, row, field);
//! - [`Table`]: raw rows as Log Analytics returns them, the input of every parser, whatever the source;
//! - [`cloud`]: which Azure cloud an endpoint's host belongs to, so every token scope follows
//!   its endpoint (with the Logs Ingestion scopes, which `pim-deliver` and `--check` share);
//! - [`text`]: the one set of rules for untrusted text: cutting on character boundaries, and
//!   neutralising control, bidi and zero-width characters for a terminal, a log field or Markdown.
//!
//! The justification and every other text that comes from the logs is *untrusted data*: these
//! types only carry it; whoever renders or splices it escapes it, with the rules of [`text`].
//!
//! ```
//! use pim_domain::{Risk, Verdict};
//!
//! assert!(Risk::Critical > Risk::High);
//! assert_eq!(Verdict::NotAligned.as_str(), "not_aligned");
//! assert_eq!("partial".parse::<Verdict>(), Ok(Verdict::Partial));
//! ```

mod activation;
mod activity;
mod assessment;
pub mod baseline;
pub mod cells;
pub mod cloud;
mod names;
mod problem;
mod report;
pub mod retry;
pub mod schema;
mod shared;
mod table;
pub mod text;
mod ticket;
pub mod timestamp;

pub use activation::{
    Activation, ElevationWindow, EndReason, Principal, Role, RoleKind, Scope, ScopeKind,
};
pub use activity::{Activity, ActivitySource, ActivityStatus, ActivityTarget};
pub use assessment::{
    Assessment, AssessorKind, Evidence, Flag, OperationRef, Risk, RiskFinding, Verdict,
};
pub use baseline::{ActivationHistory, Baseline, BaselineStatus, FirstTimeOperation};
pub use names::UnknownValue;
pub(crate) use names::string_enum;
pub use problem::DataProblem;
pub use report::{
    ActivationReport, ModelUsage, REPORT_SCHEMA_VERSION, Report, ReportSource, ReportSummary,
    ReportWindow, RunSummary, ScanSettings, VerdictState,
};
pub use shared::SharedText;
pub use table::{Column, Table};
pub use ticket::{
    Assignment, TicketCheck, TicketEvidence, TicketInfo, TicketOrigin, TicketPerson, TicketStatus,
    TicketSystemKind,
};
pub use timestamp::TimeRange;
