//! Builders shared by the unit tests.

use pim_domain::{Column, Table};
use serde_json::{Value, json};

/// A table whose columns are the union of the rows' keys (first-seen order), one row per object.
pub(crate) fn audit_table(rows: Vec<Value>) -> Table {
    let mut columns: Vec<String> = Vec::new();
    for r in &rows {
        if let Some(obj) = r.as_object() {
            for k in obj.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let rows = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    Table {
        name: "AuditLogs".into(),
        columns: columns
            .into_iter()
            .map(|name| Column {
                name,
                kind: String::new(),
            })
            .collect(),
        rows,
    }
}

/// The constructed sample record of the Azure reference, §1.11, with the elided ids filled in.
pub(crate) fn sample_activation_row() -> Value {
    json!({
      "TimeGenerated": "2026-11-20T09:14:03.512Z",
      "OperationName": "Add member to role completed (PIM activation)",
      "Category": "ResourceManagement",
      "LoggedByService": "PIM",
      "Result": "success",
      "ResultReason": "INC0042 - restart stuck VM in rg-prod-web",
      "AADOperationType": "ActivateRole",
      "Identity": "Jane Doe",
      "CorrelationId": "5d0c1c7e-0000-4000-8000-000000000001",
      "Id": "PIM_abc_1343",
      "InitiatedBy": {"user": {"id": "3f1e-oid", "displayName": "Jane Doe",
                               "userPrincipalName": "jane@contoso.com", "ipAddress": "203.0.113.7"}},
      "AdditionalDetails": [
        {"key": "RoleDefinitionOriginId", "value": "b24988ac-6180-42a0-ab88-20f7382dd24c"},
        {"key": "StartTime", "value": "2026-11-20T09:13:58.1234567Z"},
        {"key": "ExpirationTime", "value": "2026-11-20T13:13:58.1234567Z"},
        {"key": "Justification", "value": "INC0042 - restart stuck VM in rg-prod-web"},
        {"key": "oid", "value": "3f1e-oid"}, {"key": "ipaddr", "value": "203.0.113.7"},
        {"key": "RequestId", "value": "9a8b"}
      ],
      "TargetResources": [
        {"type": "Role", "displayName": "Contributor", "id": "b24988ac-6180-42a0-ab88-20f7382dd24c", "modifiedProperties": []},
        {"type": "Request", "id": "9a8b"},
        {"type": "User", "displayName": "Jane Doe", "id": "3f1e-oid", "userPrincipalName": "jane@contoso.com"},
        {"type": "Subscription", "displayName": "Prod-Sub", "id": "/subscriptions/00000000-0000-0000-0000-000000000001"}
      ]
    })
}

/// An Entra directory-role activation of `upn` starting at `start` and lasting `hours`.
pub(crate) fn activation_at(
    upn: &str,
    start: time::OffsetDateTime,
    hours: i64,
) -> pim_domain::Activation {
    use pim_domain::{Activation, ElevationWindow, EndReason, Principal, Role, RoleKind, Scope};
    Activation {
        id: format!("{upn}-{start}"),
        activated_at: start,
        principal: Principal {
            upn: Some(upn.into()),
            object_id: None,
            display_name: None,
        },
        role: Role {
            name: "User Administrator".into(),
            id: None,
            kind: RoleKind::EntraDirectory,
        },
        scope: Scope::directory(),
        justification: String::new(),
        tickets: vec![],
        ticket_info: None,
        ticket_checks: Vec::new(),
        window: ElevationWindow {
            start,
            end: start + time::Duration::hours(hours),
            end_reason: EndReason::Expired,
            scheduled_end: None,
            assumed: false,
        },
        request_id: None,
        correlation_id: None,
        problems: vec![],
    }
}
