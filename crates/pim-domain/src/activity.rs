//! What an identity did: Azure operations and directory changes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{SharedText, string_enum};

/// Which table an activity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivitySource {
    /// An Azure Resource Manager operation from the `AzureActivity` table.
    AzureActivity,
    /// A directory change from the `AuditLogs` table.
    AuditLogs,
}

string_enum!(ActivitySource, "activity source", {
    AzureActivity => "azure_activity",
    AuditLogs => "audit_logs",
});

/// The final status of one operation, after its Start/Accept/Success rows were collapsed.
///
/// `AzureActivity.ActivityStatusValue` is spelled `Start`, `Accept`, `Success`, `Failure` in current
/// data and `Started`, `Accepted`, `Succeeded`, `Failed` in legacy rows; both map here.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActivityStatus {
    /// Only a start row was seen.
    Started,
    /// Accepted (HTTP 202) and no final row seen.
    Accepted,
    /// Completed successfully.
    Succeeded,
    /// Failed.
    Failed,
    /// A status outside the four above (e.g. `Active`, `Resolved` in non-administrative rows).
    Other,
    /// Started or accepted, and no final (Success/Failure) row by the end of the scan: an
    /// operation still running, or one whose end was never logged. Always reported: it is
    /// something the identity set in motion.
    InProgress,
}

string_enum!(ActivityStatus, "activity status", {
    Started => "started",
    Accepted => "accepted",
    Succeeded => "succeeded",
    Failed => "failed",
    Other => "other",
    InProgress => "in_progress",
});

impl ActivityStatus {
    /// Normalises an `ActivityStatusValue` / `ActivityStatus` / AuditLogs `Result` value.
    ///
    /// ```
    /// use pim_domain::ActivityStatus;
    /// assert_eq!(ActivityStatus::normalise("Success"), ActivityStatus::Succeeded);
    /// assert_eq!(ActivityStatus::normalise("SUCCEEDED"), ActivityStatus::Succeeded);
    /// assert_eq!(ActivityStatus::normalise("Start"), ActivityStatus::Started);
    /// assert_eq!(ActivityStatus::normalise("failure"), ActivityStatus::Failed);
    /// ```
    pub fn normalise(raw: &str) -> Self {
        let s = raw.trim();
        let is = |a: &str| s.eq_ignore_ascii_case(a);
        if is("success") || is("succeeded") {
            Self::Succeeded
        } else if is("failure") || is("failed") || is("timeout") {
            Self::Failed
        } else if is("start") || is("started") {
            Self::Started
        } else if is("accept") || is("accepted") {
            Self::Accepted
        } else {
            Self::Other
        }
    }

    /// Whether this status ends an operation (success or failure).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Whether this status says the operation was set in motion and not (yet) seen ending:
    /// `started`, `accepted` or `in_progress`.
    pub fn is_in_progress(self) -> bool {
        matches!(self, Self::Started | Self::Accepted | Self::InProgress)
    }

    /// Whether `raw` is one of the spellings [`normalise`](Self::normalise) knows (any case);
    /// other values become [`Other`](Self::Other).
    pub fn is_known(raw: &str) -> bool {
        Self::normalise(raw) != Self::Other
    }
}

/// A thing a directory change acted on (`TargetResources` element), e.g. the group a member was
/// added to or the role assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActivityTarget {
    /// `TargetResources[].type`, e.g. `Group`, `User`, `Role`, `Application`, `Policy`.
    pub kind: String,
    /// Display name (or UPN for users).
    pub name: Option<String>,
    /// Object id.
    pub id: Option<String>,
}

/// One operation performed by an identity.
// Its texts are `SharedText`: a parser gives the operations that logged the same caller,
// operation name or subscription one shared copy of it (issue 12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Activity {
    /// When the operation started (the earliest of its collapsed rows).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub time: OffsetDateTime,
    /// `OperationNameValue` for Azure (e.g. `Microsoft.Compute/virtualMachines/restart/action`,
    /// case as logged) or `OperationName` for directory changes (e.g. `Add member to group`).
    pub operation: SharedText,
    /// Final status.
    pub status: ActivityStatus,
    /// ARM resource id (`_ResourceId` / `ResourceId`) or the directory object id of the first target.
    pub resource_id: Option<SharedText>,
    /// Resource group, where applicable.
    pub resource_group: Option<SharedText>,
    /// Subscription id, where applicable.
    pub subscription_id: Option<SharedText>,
    /// Resource provider (`Microsoft.Compute`) or the directory service (`Core Directory`).
    pub provider: Option<SharedText>,
    /// Which table the row came from.
    pub source: ActivitySource,
    /// The caller as logged (UPN, or object id for service principals).
    pub caller: Option<SharedText>,
    /// The caller's object id from the token claims (`Claims_d` objectidentifier) or the
    /// `InitiatedBy.user.id` of a directory change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_object_id: Option<SharedText>,
    /// Correlation id shared by the rows of one operation.
    pub correlation_id: Option<SharedText>,
    /// Directory targets (groups, roles, applications) for directory changes; empty for Azure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ActivityTarget>,
}

impl Activity {
    /// The last path segment of the resource id (`web01` for a VM id), if any.
    pub fn resource_name(&self) -> Option<&str> {
        self.resource_id
            .as_deref()
            .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
            .filter(|s| !s.is_empty())
    }
}
