//! The behaviour baseline of an activated identity (issue 14, item 4): what the identity did
//! in the days before the scan window, and which operations of the window it had never
//! performed before.
//!
//! An operation is compared by its [`OperationKey`]: the operation name and the type of
//! resource it acted on, both lower-cased and trimmed. The Log Analytics baseline query
//! computes the same key on the server (`pim_kql::baseline_queries`), so the key is defined
//! once here and spelled in KQL there; [`OperationKey::of`] is what every Rust-side comparison
//! uses.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::string_enum;
use crate::{Activity, ActivitySource, ReportWindow};

/// Whether a baseline could be computed for an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineStatus {
    /// The identity's history over the whole period was read: `first_time_operations` is
    /// complete (an empty list means every operation had been performed before).
    Computed,
    /// The history could not be read (a failed or truncated query, exports that do not reach
    /// back far enough): `reason` says why, and `first_time_operations` is empty because it is
    /// not known, never because there were none.
    Unavailable,
}

string_enum!(BaselineStatus, "baseline status", {
    Computed => "computed",
    Unavailable => "unavailable",
});

/// One operation of the window that the identity had not performed in the baseline period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FirstTimeOperation {
    /// The operation name as logged (its first occurrence in the window).
    pub operation: String,
    /// The resource type it acted on: the ARM type from the resource id
    /// (`microsoft.compute/virtualmachines`) or the directory target's type (`group`), lower
    /// case; empty when the record names none.
    pub resource_type: String,
    /// Which table the operation came from.
    pub source: ActivitySource,
    /// How many times it happened in the window.
    pub count: usize,
    /// When it first happened in the window.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub first: OffsetDateTime,
}

/// How many times the identity activated roles in the baseline period, and where the count
/// came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActivationHistory {
    /// Activations (completed PIM activations of any role) that began in the period; `None`
    /// when they could not be counted (`error` says why).
    pub count: Option<u64>,
    /// `state` (the state store of earlier runs), `audit_logs` (a summarize query over
    /// AuditLogs) or `export` (the offline AuditLogs export).
    pub source: String,
    /// Why the count is missing, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The behaviour baseline of one activation's identity. Absent from the report when the scan
/// ran with `--baseline-days 0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Baseline {
    /// The length of the period, in days.
    pub days: u32,
    /// The period: the `days` before the earliest start of the scan's activation windows.
    pub period: ReportWindow,
    /// Whether the operations of the period could be read.
    pub status: BaselineStatus,
    /// Why not, when `status` is `unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Distinct operations (operation and resource type) the identity performed in the
    /// period; 0 when unavailable.
    pub known_operations: usize,
    /// The window's operations never performed in the period, in the order they first
    /// happened (flag `first_time_operation`). Empty when unavailable. Read-only operations
    /// and the elevation's own bookkeeping are not listed.
    pub first_time_operations: Vec<FirstTimeOperation>,
    /// How many times the identity activated roles in the period.
    pub activations: ActivationHistory,
}

impl Baseline {
    /// Whether `activity` is one of the first-time operations.
    pub fn is_first_time(&self, activity: &Activity) -> bool {
        let key = OperationKey::of(activity);
        self.first_time_operations
            .iter()
            .any(|f| f.source == activity.source && key.matches(&f.operation, &f.resource_type))
    }
}

/// What makes two operations "the same" for the baseline: the lower-cased, trimmed operation
/// name and resource type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationKey {
    /// The operation name, lower case.
    pub operation: String,
    /// The resource type, lower case; empty when none.
    pub resource_type: String,
}

impl OperationKey {
    /// A key from raw values (as the baseline query returns them).
    pub fn new(operation: &str, resource_type: &str) -> Self {
        Self {
            operation: operation.trim().to_lowercase(),
            resource_type: resource_type.trim().to_lowercase(),
        }
    }

    /// The key of an activity: its operation and [`resource_type`].
    pub fn of(activity: &Activity) -> Self {
        Self::new(&activity.operation, &resource_type(activity))
    }

    fn matches(&self, operation: &str, resource_type: &str) -> bool {
        *self == Self::new(operation, resource_type)
    }
}

/// The resource type of an activity, lower case: for an Azure operation the ARM type read from
/// its resource id (the provider namespace and the type after the first `/providers/`,
/// `microsoft.compute/virtualmachines`); for a directory change the type of its first target
/// (`group`, `user`, `application`). Empty when there is none.
///
/// ```
/// use pim_domain::baseline::arm_resource_type;
/// let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01";
/// assert_eq!(arm_resource_type(id), "microsoft.compute/virtualmachines");
/// assert_eq!(arm_resource_type("/subscriptions/s/resourceGroups/rg"), "");
/// ```
pub fn resource_type(activity: &Activity) -> String {
    match activity.source {
        ActivitySource::AzureActivity => activity
            .resource_id
            .as_deref()
            .map(arm_resource_type)
            .unwrap_or_default(),
        ActivitySource::AuditLogs => activity
            .targets
            .first()
            .map(|t| t.kind.trim().to_lowercase())
            .unwrap_or_default(),
    }
}

/// The ARM resource type of a resource id: the two path segments after the first
/// `/providers/` (case-insensitive), lower case; empty when the id has none. The baseline
/// query's KQL computes the same: `extract("/providers/([^/]+/[^/]+)", 1, tolower(id))`.
pub fn arm_resource_type(resource_id: &str) -> String {
    let lower = resource_id.trim().to_lowercase();
    let Some(at) = lower.find("/providers/") else {
        return String::new();
    };
    let rest = &lower[at + "/providers/".len()..];
    let mut parts = rest.split('/');
    match (parts.next(), parts.next()) {
        (Some(ns), Some(ty)) if !ns.is_empty() && !ty.is_empty() => format!("{ns}/{ty}"),
        _ => String::new(),
    }
}

/// The baseline period for a scan whose earliest activation window starts at `first_start`:
/// the `days` before it, `[first_start - days, first_start)`.
pub fn baseline_period(first_start: OffsetDateTime, days: u32) -> ReportWindow {
    ReportWindow {
        start: first_start - time::Duration::days(i64::from(days)),
        end: first_start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActivityStatus, ActivityTarget};
    use time::macros::datetime;

    fn activity(source: ActivitySource, op: &str, resource: Option<&str>) -> Activity {
        Activity {
            time: datetime!(2026-11-20 10:00 UTC),
            operation: op.into(),
            status: ActivityStatus::Succeeded,
            resource_id: resource.map(Into::into),
            resource_group: None,
            subscription_id: None,
            provider: None,
            source,
            caller: None,
            caller_object_id: None,
            correlation_id: None,
            targets: Vec::new(),
        }
    }

    #[test]
    fn resource_types_match_what_the_query_computes() {
        let a = activity(
            ActivitySource::AzureActivity,
            "Microsoft.Sql/servers/databases/write",
            Some(
                "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.SQL/SERVERS/s1/databases/db",
            ),
        );
        assert_eq!(resource_type(&a), "microsoft.sql/servers");
        let none = activity(ActivitySource::AzureActivity, "x", Some("/providers/"));
        assert_eq!(resource_type(&none), "");
        let mut d = activity(ActivitySource::AuditLogs, "Add member to group", None);
        assert_eq!(resource_type(&d), "");
        d.targets.push(ActivityTarget {
            kind: " Group ".into(),
            name: None,
            id: None,
        });
        assert_eq!(resource_type(&d), "group");
        assert_eq!(
            OperationKey::of(&d),
            OperationKey::new("ADD MEMBER TO GROUP", "group")
        );
    }

    #[test]
    fn first_time_is_by_key_and_source() {
        let a = activity(
            ActivitySource::AzureActivity,
            "Microsoft.Compute/virtualMachines/delete",
            Some(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01",
            ),
        );
        let period = baseline_period(datetime!(2026-11-20 09:00 UTC), 30);
        assert_eq!(period.start, datetime!(2026-10-21 09:00 UTC));
        let baseline = Baseline {
            days: 30,
            period,
            status: BaselineStatus::Computed,
            reason: None,
            known_operations: 3,
            first_time_operations: vec![FirstTimeOperation {
                operation: "microsoft.compute/VIRTUALMACHINES/delete".into(),
                resource_type: "microsoft.compute/virtualmachines".into(),
                source: ActivitySource::AzureActivity,
                count: 1,
                first: a.time,
            }],
            activations: ActivationHistory {
                count: Some(2),
                source: "state".into(),
                error: None,
            },
        };
        assert!(baseline.is_first_time(&a));
        let mut other = a.clone();
        other.source = ActivitySource::AuditLogs;
        assert!(!baseline.is_first_time(&other));
        let json = serde_json::to_value(&baseline).unwrap();
        assert_eq!(json["status"], "computed");
        assert!(json.get("reason").is_none());
    }
}
