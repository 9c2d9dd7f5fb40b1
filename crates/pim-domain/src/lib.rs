//! Pure domain types of the PIM Activity Audit Agent.
//!
//! Everything the other crates pass between each other lives here, with no I/O and no async:
//!
//! - [`Activation`]: one completed PIM activation (who, which role, which scope, why, and the
//!   [`ElevationWindow`] during which the role was held);
//! - [`Activity`]: one operation an identity performed (an Azure Resource Manager operation from
//!   `AzureActivity`, or a directory change from `AuditLogs`);
//! - [`Assessment`]: the [`Verdict`], [`Risk`], [`Flag`]s and [`Evidence`] for one activation;
//! - [`Report`]: the whole result of a scan, which is also the JSON report's schema;
//! - [`schema`]: the JSON report's JSON Schema, derived from these types with `schemars`;
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
pub mod cloud;
mod problem;
mod report;
pub mod retry;
pub mod schema;
mod table;
pub mod text;
pub mod timestamp;

pub use activation::{
    Activation, ElevationWindow, EndReason, Principal, Role, RoleKind, Scope, ScopeKind,
};
pub use activity::{Activity, ActivitySource, ActivityStatus, ActivityTarget};
pub use assessment::{
    Assessment, AssessorKind, Evidence, Flag, OperationRef, Risk, RiskFinding, Verdict,
};
pub use problem::DataProblem;
pub use report::{
    ActivationReport, ModelUsage, REPORT_SCHEMA_VERSION, Report, ReportSource, ReportSummary,
    ReportWindow, RunSummary, ScanSettings, VerdictState,
};
pub use table::{Column, Table};
pub use timestamp::TimeRange;

/// The error returned when a string does not name a known enum value (for example a
/// `--fail-on` argument or a verdict in a model's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What kind of value was expected ("verdict", "risk", ...).
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown {} {:?}: expected one of {}",
            self.kind,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

/// Implements `as_str`, `Display`, `FromStr` and the list of all values for a fieldless enum
/// whose serde names are the snake_case strings given here.
macro_rules! string_enum {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            const NAMES: &'static [&'static str] = &[$($name),+];

            /// The stable snake_case name used in reports and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim();
                $(
                    if wanted.eq_ignore_ascii_case($name) {
                        return Ok($ty::$variant);
                    }
                )+
                Err($crate::UnknownValue { kind: $kind, value: s.to_owned(), expected: Self::NAMES })
            }
        }
    };
}
pub(crate) use string_enum;
