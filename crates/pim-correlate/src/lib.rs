//! Parsing of raw `AuditLogs` and `AzureActivity` rows, elevation windows, and correlation of
//! activity to activations.
//!
//! Every log source (the query API, an offline export, the demo tenant) hands over raw
//! [`pim_domain::Table`]s, and the same code here turns them into domain values:
//!
//! 1. [`parse_pim_events`] reads PIM's `AuditLogs` rows into [`PimEvents`]: completed
//!    activations ([`ActivationRecord`]) and expiry / deactivation rows ([`EndRecord`]);
//!    [`parse_activity_pim_events`] reads the same steps of Azure resource roles from the
//!    Activity Log (`AzureActivity`, `azurerbac` rows), and [`merge_pim_events`] makes each
//!    activation found in both tables one record that lists both as its sources;
//! 2. [`build_activations`] pairs them into [`pim_domain::Activation`]s with real elevation
//!    windows ([`WindowOptions`], [`Activations`]), end rows matched by request id first;
//! 3. [`parse_azure_activity`] and [`parse_directory_activity`] read what identities did
//!    ([`ParsedActivities`]), operations never seen ending as `in_progress`, and every row
//!    they cannot read as an [`UnreadableRow`];
//! 4. [`correlate`] gives each activation the activities inside its window ([`Correlated`]),
//!    and [`attribute_unreadable`] the unreadable rows that could belong to it.
//!
//! Columns and the keys inside `dynamic` values are always looked up by name and
//! case-insensitively, `dynamic` cells may be JSON strings or nested JSON, and bad input becomes
//! a [`pim_domain::DataProblem`] naming source, row and field, never a panic or a silently
//! dropped activation. No function here fails as a whole, so the crate has no error type: a
//! table that cannot be read at all says so in [`ParsedActivities::failure`] or
//! [`PimEvents::unrecognised`].
//!
//! ```
//! use pim_correlate::{CorrelateOptions, WindowOptions, build_activations, correlate, parse_pim_events};
//! use pim_domain::{Table, TimeRange, timestamp::parse_timestamp};
//!
//! let table: Table = serde_json::from_value(serde_json::json!({
//!     "columns": [{"name": "TimeGenerated"}, {"name": "OperationName"}, {"name": "Category"},
//!                 {"name": "InitiatedBy"}, {"name": "TargetResources"}, {"name": "ResultReason"}],
//!     "rows": [["2026-11-20T09:14:03Z", "Add member to role completed (PIM activation)",
//!               "RoleManagement", "{\"user\":{\"userPrincipalName\":\"jane@contoso.com\"}}",
//!               "[{\"type\":\"Role\",\"displayName\":\"User Administrator\"}]", "CHG0012345 onboarding"]]
//! })).unwrap();
//! let scan = TimeRange::new(
//!     parse_timestamp("2026-11-20T00:00:00Z").unwrap(),
//!     parse_timestamp("2026-11-21T00:00:00Z").unwrap(),
//! );
//! let built = build_activations(parse_pim_events(&table, "AuditLogs"), &WindowOptions::new(scan));
//! let a = &built.activations[0];
//! assert_eq!(a.role.name, "User Administrator");
//! assert_eq!(a.tickets, vec!["CHG0012345".to_owned()]);
//! assert!(a.window.assumed); // no end logged: 8 hours assumed
//!
//! let correlated = correlate(&built.activations, &[], &[], &CorrelateOptions::default());
//! assert_eq!(correlated[0].total, 0);
//! ```

mod activity_pim;
mod azure;
mod cells;
mod correlate;
mod directory;
mod evidence;
mod pim;
mod tickets;
mod window;

#[cfg(test)]
mod test_support;

pub use activity_pim::{SAME_ACTIVATION_SLACK, merge_pim_events, parse_activity_pim_events};
pub use azure::{
    ActivityHistory, AzureActivityHistory, AzureActivityParser, OBJECT_ID_CLAIM, ParsedActivities,
    parse_azure_activity,
};
pub use correlate::{
    CorrelateOptions, Correlated, DEFAULT_MAX_ACTIVITIES, ELEVATE_ACCESS_OPERATION, correlate,
    correlate_owned,
};
pub use directory::parse_directory_activity;
pub use evidence::{MAX_LISTED_PER_ACTIVATION, UnreadableRow, attribute_unreadable};
pub use pim::{
    ActivationRecord, EndKind, EndRecord, OP_ACTIVATION_COMPLETED, OP_ACTIVATION_EXPIRED,
    OP_DEACTIVATE_COMPLETED, PimEvents, UNKNOWN_ROLE, parse_pim_events,
};
pub use tickets::extract_tickets;
pub use window::{Activations, DEFAULT_WINDOW, WindowOptions, build_activations};
