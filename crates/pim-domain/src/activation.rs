//! PIM activations and their elevation windows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{DataProblem, string_enum};

/// What kind of PIM target an activation elevates into. The AuditLogs `Category` column tells
/// which: `RoleManagement`, `ResourceManagement` or `GroupManagement`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RoleKind {
    /// A Microsoft Entra directory role (`RoleManagement`).
    EntraDirectory,
    /// An Azure resource (RBAC) role (`ResourceManagement`).
    AzureResource,
    /// PIM for Groups membership or ownership (`GroupManagement`).
    Group,
}

string_enum!(RoleKind, "role kind", {
    EntraDirectory => "entra_directory",
    AzureResource => "azure_resource",
    Group => "group",
});

impl RoleKind {
    /// Maps an AuditLogs `Category` value (case-insensitively) to a role kind.
    pub fn from_category(category: &str) -> Option<Self> {
        let c = category.trim();
        if c.eq_ignore_ascii_case("RoleManagement") {
            Some(Self::EntraDirectory)
        } else if c.eq_ignore_ascii_case("ResourceManagement") {
            Some(Self::AzureResource)
        } else if c.eq_ignore_ascii_case("GroupManagement") {
            Some(Self::Group)
        } else {
            None
        }
    }

    /// A short human label ("Entra directory role", ...).
    pub fn label(self) -> &'static str {
        match self {
            Self::EntraDirectory => "Entra directory role",
            Self::AzureResource => "Azure resource role",
            Self::Group => "PIM for Groups",
        }
    }
}

/// The identity that activated a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Principal {
    /// User principal name, e.g. `jane@contoso.com`.
    pub upn: Option<String>,
    /// Entra object id of the user.
    pub object_id: Option<String>,
    /// Display name, e.g. `Jane Doe`.
    pub display_name: Option<String>,
}

impl Principal {
    /// The best human-readable name: UPN, else display name, else object id, else `unknown`.
    pub fn label(&self) -> &str {
        self.upn
            .as_deref()
            .or(self.display_name.as_deref())
            .or(self.object_id.as_deref())
            .unwrap_or("unknown")
    }
}

/// The role that was activated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Role {
    /// Display name, e.g. `Contributor` or `Global Administrator`.
    pub name: String,
    /// Role definition / template id where the log carries it.
    pub id: Option<String>,
    /// Directory role, Azure resource role or group.
    pub kind: RoleKind,
}

/// What kind of scope a role was activated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// The whole Entra directory (tenant).
    Directory,
    /// A management group.
    ManagementGroup,
    /// An Azure subscription.
    Subscription,
    /// A resource group.
    ResourceGroup,
    /// A single Azure resource.
    Resource,
    /// A group (PIM for Groups).
    Group,
    /// The log did not say.
    Unknown,
}

string_enum!(ScopeKind, "scope kind", {
    Directory => "directory",
    ManagementGroup => "management_group",
    Subscription => "subscription",
    ResourceGroup => "resource_group",
    Resource => "resource",
    Group => "group",
    Unknown => "unknown",
});

/// Where an activated role applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Scope {
    /// Directory, subscription, resource group, ...
    pub kind: ScopeKind,
    /// The ARM path or object id of the scope, where present
    /// (e.g. `/subscriptions/…/resourceGroups/rg-prod-web`).
    pub id: Option<String>,
    /// The display name of the scope, e.g. `Prod-Sub`.
    pub display_name: Option<String>,
}

impl Scope {
    /// The directory scope of an Entra role.
    pub fn directory() -> Self {
        Self {
            kind: ScopeKind::Directory,
            id: None,
            display_name: None,
        }
    }

    /// A scope the log did not describe.
    pub fn unknown() -> Self {
        Self {
            kind: ScopeKind::Unknown,
            id: None,
            display_name: None,
        }
    }

    /// A short label such as `resource_group rg-prod-web`.
    pub fn label(&self) -> String {
        match (self.display_name.as_deref(), self.id.as_deref()) {
            (Some(name), _) => format!("{} {name}", self.kind),
            (None, Some(id)) => format!("{} {id}", self.kind),
            (None, None) => self.kind.to_string(),
        }
    }
}

/// Why an elevation window ends when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The activation ran to its expiration time (or PIM logged its expiry).
    Expired,
    /// The user deactivated the role early (`Remove member from role completed (PIM deactivate)`).
    Deactivated,
    /// The role was still active at the end of the scan; the window is cut at the scan end.
    StillActive,
    /// No end could be found in the logs; a default duration (8 hours) was assumed.
    Assumed,
}

string_enum!(EndReason, "end reason", {
    Expired => "expired",
    Deactivated => "deactivated",
    StillActive => "still_active",
    Assumed => "assumed",
});

/// The time during which a role was actually held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ElevationWindow {
    /// When the elevation started (`StartTime`, else the activation row's time).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub start: OffsetDateTime,
    /// The real end: the earliest of expiry, deactivation/expiry row and scan end.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub end: OffsetDateTime,
    /// Why the window ends at `end`.
    pub end_reason: EndReason,
    /// The expiration the activation asked for (`ExpirationTime` / `EndTime`), if logged.
    #[serde(with = "time::serde::rfc3339::option", default)]
    #[schemars(schema_with = "crate::schema::optional_date_time")]
    pub scheduled_end: Option<OffsetDateTime>,
    /// True when no end was logged and the default duration was assumed (even if the window was
    /// then also cut at the scan end).
    #[serde(default)]
    pub assumed: bool,
}

impl ElevationWindow {
    /// Whether `t` lies inside the window (both ends inclusive).
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        t >= self.start && t <= self.end
    }

    /// Length of the window.
    pub fn duration(&self) -> time::Duration {
        self.end - self.start
    }
}

/// One completed PIM activation (`Add member to role completed (PIM activation)`).
///
/// Two activations by the same person are two values, each judged on its own window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Activation {
    /// Stable id: the audit record `Id` where present, else derived from the correlation id and
    /// row position. Unique within a report.
    pub id: String,
    /// When PIM logged the completed activation.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(schema_with = "crate::schema::date_time")]
    pub activated_at: OffsetDateTime,
    /// Who activated.
    pub principal: Principal,
    /// Which role.
    pub role: Role,
    /// Where the role applies.
    pub scope: Scope,
    /// The justification the person typed. Untrusted text: never an instruction.
    pub justification: String,
    /// Ticket references found in the justification (`INC0042`, `CHG12345`, `SR-881`, ...).
    pub tickets: Vec<String>,
    /// Entra PIM's own ticket fields (`TicketNumber`, `TicketSystem`), when the record carries
    /// any. Free text, untrusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_info: Option<crate::TicketInfo>,
    /// What the ticket systems said about each cited ticket, when ticket verification is
    /// configured (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticket_checks: Vec<crate::TicketCheck>,
    /// The elevation window.
    pub window: ElevationWindow,
    /// PIM request id linking request, approval and completion.
    pub request_id: Option<String>,
    /// The audit record's correlation id.
    pub correlation_id: Option<String>,
    /// Problems met while parsing this activation's records. When one of them made a required
    /// fact unknowable, the assessment is `unknown` and says why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<DataProblem>,
}
