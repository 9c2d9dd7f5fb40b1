//! PIM events recorded in the Activity Log (`AzureActivity`), and merging them with `AuditLogs`.
//!
//! Azure-resource-role PIM steps are written twice: to Entra `AuditLogs` and to the subscription
//! Activity Log, as `Administrative` rows whose properties carry `ResourceProviderName`
//! `azurerbac` (reference §8). Tenants that export only the Activity Log have only the second.
//! Where the row lands in the table's columns is partly inferred, so every placement §8 lists is
//! accepted: the operation name in `OperationNameValue` or `OperationName`, the properties in
//! `Properties_d` or `Properties` (object or JSON string), the actor from `SubjectID` or from
//! the JSON string `CallerInfo`.

use pim_domain::{ActivitySource, DataProblem, Principal, Role, RoleKind, Scope, ScopeKind, Table};
use serde_json::Value;

use crate::cells::{Problems, cell_dynamic, cell_text, cell_time, get_ci, get_text};
use crate::pim::{
    ActivationRecord, EndKind, EndRecord, OP_ACTIVATION_COMPLETED, OP_ACTIVATION_EXPIRED,
    OP_DEACTIVATE_COMPLETED, PimEvents, UNKNOWN_ROLE, eq_ci, scope_kind_from_arm_path,
};
use crate::tickets::extract_tickets;

/// How far apart the two tables' records of one activation may start and still be matched by
/// principal, role and scope (when no request id links them).
pub const SAME_ACTIVATION_SLACK: time::Duration = time::Duration::minutes(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Activation,
    End(EndKind),
}

/// The step a row records: by operation name, else by `EventName`.
fn step(operation: Option<&str>, event: Option<&str>) -> Option<Step> {
    let is = |a: Option<&str>, b: &str| a.is_some_and(|a| a.trim().eq_ignore_ascii_case(b));
    if is(operation, OP_ACTIVATION_COMPLETED) || is(event, "ActivateRole") {
        Some(Step::Activation)
    } else if is(operation, OP_ACTIVATION_EXPIRED) || is(event, "RemoveActivatedRole") {
        Some(Step::End(EndKind::Expired))
    } else if is(operation, OP_DEACTIVATE_COMPLETED) || is(event, "DeactivateRole") {
        Some(Step::End(EndKind::Deactivated))
    } else {
        None
    }
}

/// Reads the PIM activations, expiries and deactivations of an `AzureActivity` table.
///
/// A row is a PIM row when its properties say `ResourceProviderName` `azurerbac`, or, with no
/// readable properties, when its operation name is a PIM one. Other rows (ARM operations) are
/// ignored here: [`parse_azure_activity`](crate::parse_azure_activity) reads them. A PIM row
/// whose properties cannot be parsed, or that lacks a time, is a problem naming row and field.
///
/// Activations are Azure resource roles: the user is `SubjectID` (object id) with the `UPN` of
/// `CallerInfo` when the caller is the subject (self-activation), the role is `RoleDefinition`,
/// the scope is the row's resource id, and the request id is `RoleAssignmentRequestId`. The
/// Activity Log logs no `StartTime`/`ExpirationTime`: the window starts at the row's time and
/// ends at the matching expiry or deactivation row, else is assumed.
pub fn parse_activity_pim_events(table: &Table, source: &str) -> PimEvents {
    let c = |n: &str| table.column_index(n);
    let time_col = c("TimeGenerated");
    let op_cols = [c("OperationNameValue"), c("OperationName")];
    let props_cols = [
        (c("Properties_d"), "Properties_d"),
        (c("Properties"), "Properties"),
    ];
    let resource_cols = [c("_ResourceId"), c("ResourceId")];
    let correlation_col = c("CorrelationId");
    let event_id_col = c("EventDataId");
    let status_cols = [c("ActivityStatusValue"), c("ActivityStatus")];

    let mut events = PimEvents::default();
    let mut problems = Problems::new(source);
    for row in 0..table.len() {
        let operation = op_cols.iter().find_map(|col| cell_text(table, row, *col));
        // An ARM operation (most rows) is not a PIM step: skip it without reading its properties.
        if operation
            .as_deref()
            .is_some_and(|o| step_of_name(o).is_none())
        {
            continue;
        }
        let mut row_problems = Vec::new();
        let props = props_cols.iter().find_map(|(col, field)| {
            cell_dynamic(table, row, *col, field, source, &mut row_problems)
        });
        let props = props.as_deref().filter(|p| p.is_object());
        let azurerbac = props
            .and_then(|p| get_text(p, "ResourceProviderName"))
            .is_some_and(|p| p.eq_ignore_ascii_case("azurerbac"));
        let event = props.and_then(|p| get_text(p, "EventName"));
        // Requests, approvals and other steps carry no window.
        let Some(step) = step(operation.as_deref(), event.as_deref()) else {
            continue;
        };
        let pim_named = operation
            .as_deref()
            .is_some_and(|o| step_of_name(o).is_some());
        if !azurerbac && !pim_named {
            continue;
        }
        let Some(props) = props else {
            row_problems.push(DataProblem::row(
                source,
                row,
                format!(
                    "{:?} row has no readable Properties_d or Properties: the PIM event cannot be read",
                    operation.as_deref().unwrap_or("PIM")
                ),
            ));
            for p in row_problems {
                problems.push(p);
            }
            continue;
        };
        if let Some(status) = status_cols
            .iter()
            .find_map(|col| cell_text(table, row, *col))
            && pim_domain::ActivityStatus::normalise(&status) == pim_domain::ActivityStatus::Failed
        {
            problems.push(DataProblem::field(
                source,
                row,
                "ActivityStatusValue",
                format!("PIM row has status {status:?}; it is not counted"),
            ));
            continue;
        }
        let time = cell_time(
            table,
            row,
            time_col,
            "TimeGenerated",
            source,
            &mut row_problems,
        );
        let subject = subject_of(props, source, row, &mut row_problems);
        let role_name = get_text(props, "RoleDefinition");
        let role_id = get_text(props, "RoleDefinitionOriginId")
            .map(|id| id.rsplit('/').next().unwrap_or(&id).to_owned());
        let scope_id = resource_cols
            .iter()
            .find_map(|col| cell_text(table, row, *col))
            .map(|s| s.into_owned());
        let request_id = get_text(props, "RoleAssignmentRequestId");
        match step {
            Step::Activation => {
                let mut record_problems = std::mem::take(&mut row_problems);
                if time.is_none() {
                    record_problems.push(DataProblem::row(
                        source,
                        row,
                        "no readable activation time (TimeGenerated)",
                    ));
                }
                if subject.upn.is_none() && subject.object_id.is_none() {
                    record_problems.push(DataProblem::row(
                        source,
                        row,
                        "no user: neither properties.SubjectID nor CallerInfo names one",
                    ));
                }
                if role_name.is_none() {
                    record_problems.push(DataProblem::field(
                        source,
                        row,
                        "Properties.RoleDefinition",
                        "missing: the role is unknown",
                    ));
                }
                let justification = get_text(props, "Justification").unwrap_or_default();
                let scope = Scope {
                    kind: scope_id
                        .as_deref()
                        .and_then(scope_kind_from_arm_path)
                        .unwrap_or(ScopeKind::Unknown),
                    id: scope_id,
                    display_name: get_text(props, "ResourceGroupName"),
                };
                events.activations.push(ActivationRecord {
                    source: source.to_owned(),
                    row,
                    activation_time: time,
                    principal: subject,
                    role: Role {
                        name: role_name.unwrap_or_else(|| UNKNOWN_ROLE.to_owned()),
                        id: role_id,
                        kind: RoleKind::AzureResource,
                    },
                    scope,
                    tickets: extract_tickets(&justification),
                    ticket_info: crate::pim::ticket_info(
                        get_text(props, "TicketNumber"),
                        get_text(props, "TicketSystem"),
                    ),
                    justification,
                    start: time,
                    scheduled_end: None,
                    request_id,
                    correlation_id: cell_text(table, row, correlation_col).map(|c| c.into_owned()),
                    audit_id: cell_text(table, row, event_id_col).map(|c| c.into_owned()),
                    problems: record_problems,
                    sources: vec![ActivitySource::AzureActivity],
                });
            }
            Step::End(kind) => {
                let usable = time.is_some()
                    && (subject.upn.is_some()
                        || subject.object_id.is_some()
                        || request_id.is_some());
                match time.filter(|_| usable) {
                    Some(time) => events.ends.push(EndRecord {
                        row,
                        time,
                        kind,
                        principal: subject,
                        role_kind: Some(RoleKind::AzureResource),
                        role_name,
                        role_id,
                        scope_id,
                        request_id,
                        assignment_id: get_text(props, "OriginRoleAssignmentId"),
                    }),
                    None => row_problems.push(DataProblem::row(
                        source,
                        row,
                        "PIM end row is unusable: it names no time, or neither a user nor a request id",
                    )),
                }
                for p in row_problems {
                    problems.push(p);
                }
            }
        }
    }
    events.problems = problems.finish();
    events
}

fn step_of_name(operation: &str) -> Option<Step> {
    step(Some(operation), None)
}

/// The principal a PIM row is about: `SubjectID` / `SubjectName`, with the `CallerInfo` UPN
/// when the caller is the subject (or `SubjectID` is absent and the caller is a user).
fn subject_of(
    props: &Value,
    source: &str,
    row: usize,
    problems: &mut Vec<DataProblem>,
) -> Principal {
    let subject_id = get_text(props, "SubjectID");
    let mut caller_upn = None;
    let mut caller_oid = None;
    let info = get_ci(props, "CallerInfo");
    let parsed;
    let list = match info {
        Some(Value::String(text)) if !text.trim().is_empty() => {
            match serde_json::from_str::<Value>(text) {
                Ok(v) => {
                    parsed = v;
                    Some(&parsed)
                }
                Err(e) => {
                    problems.push(DataProblem::field(
                        source,
                        row,
                        "Properties.CallerInfo",
                        format!("not valid JSON ({e})"),
                    ));
                    None
                }
            }
        }
        Some(v @ Value::Array(_)) => Some(v),
        _ => None,
    };
    if let Some(Value::Array(items)) = list {
        for item in items {
            let kind = get_text(item, "CallerIdentityType").unwrap_or_default();
            let value = get_text(item, "CallerIdentityValue");
            if kind.eq_ignore_ascii_case("UPN") {
                caller_upn = value.filter(|v| v.contains('@'));
            } else if kind.eq_ignore_ascii_case("ObjectID") {
                caller_oid = value;
            }
        }
    }
    let caller_is_subject = match (&subject_id, &caller_oid) {
        (Some(s), Some(c)) => eq_ci(Some(s.trim()), Some(c.trim())),
        (None, _) => true,
        (Some(_), None) => false,
    };
    Principal {
        upn: caller_upn.filter(|_| caller_is_subject),
        object_id: subject_id.or(caller_oid),
        display_name: get_text(props, "SubjectName"),
    }
}

/// Merges the PIM events of `AuditLogs` (primary) and of the Activity Log into one list in which
/// each activation appears once.
///
/// An Activity Log activation is the same as an AuditLogs one when their request ids are equal
/// (case-insensitively), else when principal (object id or UPN), role (id or name), scope and
/// start within [`SAME_ACTIVATION_SLACK`] agree. The AuditLogs record is kept, its sources then
/// list both tables, and it takes what only the Activity Log row knew (object id, request id,
/// scope id). End rows of both tables are kept: each ends at most one activation.
pub fn merge_pim_events(audit: PimEvents, activity: PimEvents) -> PimEvents {
    let PimEvents {
        mut activations,
        mut ends,
        mut problems,
        unrecognised,
    } = audit;
    for record in activity.activations {
        match activations
            .iter_mut()
            .find(|a| a.sources.contains(&ActivitySource::AuditLogs) && same_activation(a, &record))
        {
            Some(primary) => {
                if !primary.sources.contains(&ActivitySource::AzureActivity) {
                    primary.sources.push(ActivitySource::AzureActivity);
                }
                if primary.principal.object_id.is_none() {
                    primary.principal.object_id = record.principal.object_id;
                }
                if primary.request_id.is_none() {
                    primary.request_id = record.request_id;
                }
                if primary.scope.id.is_none() {
                    primary.scope.id = record.scope.id;
                }
                if primary.ticket_info.is_none() {
                    primary.ticket_info = record.ticket_info;
                }
            }
            None => activations.push(record),
        }
    }
    ends.extend(activity.ends);
    problems.extend(activity.problems);
    PimEvents {
        activations,
        ends,
        problems,
        unrecognised,
    }
}

fn same_activation(a: &ActivationRecord, b: &ActivationRecord) -> bool {
    if let (Some(x), Some(y)) = (a.request_id.as_deref(), b.request_id.as_deref()) {
        return x.trim().eq_ignore_ascii_case(y.trim());
    }
    let same_user = eq_ci(
        a.principal.object_id.as_deref(),
        b.principal.object_id.as_deref(),
    ) || eq_ci(a.principal.upn.as_deref(), b.principal.upn.as_deref());
    let known = |n: &str| (n != UNKNOWN_ROLE).then(|| n.to_owned());
    let same_role = eq_ci(a.role.id.as_deref(), b.role.id.as_deref())
        || eq_ci(
            known(&a.role.name).as_deref(),
            known(&b.role.name).as_deref(),
        );
    let same_scope = match (a.scope.id.as_deref(), b.scope.id.as_deref()) {
        (Some(x), Some(y)) => x
            .trim_end_matches('/')
            .eq_ignore_ascii_case(y.trim_end_matches('/')),
        _ => true,
    };
    let close = match (a.start.or(a.activation_time), b.start.or(b.activation_time)) {
        (Some(x), Some(y)) => (x - y).abs() <= SAME_ACTIVATION_SLACK,
        _ => false,
    };
    a.role.kind == b.role.kind && same_user && same_role && same_scope && close
}

/// When the AuditLogs record of an activation started, for tests.
#[cfg(test)]
fn start_of(r: &ActivationRecord) -> Option<time::OffsetDateTime> {
    r.start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{audit_table, sample_activation_row};
    use crate::{WindowOptions, build_activations, parse_pim_events};
    use pim_domain::TimeRange;
    use serde_json::json;
    use time::macros::datetime;

    const REQ: &str = "7d3c0000-0000-4000-8000-00000000aaaa";

    #[test]
    fn merging_empty_events_changes_nothing() {
        let audit = parse_pim_events(&audit_table(vec![sample_activation_row()]), "AuditLogs");
        assert_eq!(audit.activations.len(), 1);
        assert!(PimEvents::default().is_empty() && !audit.is_empty());
        assert_eq!(merge_pim_events(audit.clone(), PimEvents::default()), audit);
    }

    fn caller_info(upn: &str, oid: &str) -> String {
        json!([
            {"CallerIdentityType": "UPN", "CallerIdentityValue": upn},
            {"CallerIdentityType": "ObjectID", "CallerIdentityValue": oid},
            {"CallerIdentityType": "ObjectClass", "CallerIdentityValue": "User"}
        ])
        .to_string()
    }

    /// An Activity Log PIM row in the §8.2/§8.3 shape, invented values.
    fn pim_row(time: &str, op: &str, event: &str, req: &str) -> Value {
        json!({
            "TimeGenerated": time,
            "OperationNameValue": op,
            "CategoryValue": "Administrative",
            "ActivityStatusValue": "Succeeded",
            "Caller": "",
            "_ResourceId": "/subscriptions/00000000-0000-0000-0000-000000000001",
            "CorrelationId": format!("corr-{event}"),
            "Properties_d": {
                "ResourceProviderName": "azurerbac",
                "EventName": event,
                "RoleAssignmentRequestId": req,
                "RoleDefinition": "Contributor",
                "RoleDefinitionOriginId": "/subscriptions/00000000-0000-0000-0000-00000000beef/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c",
                "Justification": "INC0042 - restart stuck VM in rg-prod-web",
                "SubjectID": "3f1e-oid",
                "SubjectName": "Jane Doe",
                "CallerInfo": caller_info("jane@contoso.com", "3f1e-oid"),
                "ResourceGroupName": "Prod-Sub",
                "ResourceType": "subscription"
            }
        })
    }

    #[test]
    fn activation_and_expiry_are_read_and_linked_by_request_id() {
        let mut expiry = pim_row(
            "2026-11-20T13:13:58Z",
            "Remove member from role (PIM activation expired)",
            "RemoveActivatedRole",
            REQ,
        );
        expiry["Properties_d"]["CallerInfo"] = json!(
            json!([{"CallerIdentityType": "UPN", "CallerIdentityValue": ""},
                   {"CallerIdentityType": "Username", "CallerIdentityValue": "AzureADPIM"}])
            .to_string()
        );
        let rows = vec![
            pim_row(
                "2026-11-20T09:14:03Z",
                "Add member to role completed (PIM activation)",
                "ActivateRole",
                REQ,
            ),
            expiry,
            json!({"TimeGenerated": "2026-11-20T09:20:00Z", "OperationNameValue": "Microsoft.Compute/virtualMachines/restart/action",
                   "CategoryValue": "Administrative", "ActivityStatusValue": "Success", "Caller": "jane@contoso.com"}),
        ];
        let ev = parse_activity_pim_events(&audit_table(rows), "AzureActivity.json");
        assert!(ev.problems.is_empty(), "{:?}", ev.problems);
        assert_eq!(ev.activations.len(), 1);
        assert_eq!(ev.ends.len(), 1);
        let a = &ev.activations[0];
        assert_eq!(a.principal.upn.as_deref(), Some("jane@contoso.com"));
        assert_eq!(a.principal.object_id.as_deref(), Some("3f1e-oid"));
        assert_eq!(a.role.name, "Contributor");
        assert_eq!(
            a.role.id.as_deref(),
            Some("b24988ac-6180-42a0-ab88-20f7382dd24c")
        );
        assert_eq!(a.scope.kind, ScopeKind::Subscription);
        assert_eq!(a.tickets, ["INC0042"]);
        assert_eq!(a.sources, [ActivitySource::AzureActivity]);
        assert_eq!(ev.ends[0].principal.object_id.as_deref(), Some("3f1e-oid"));
        let scan = TimeRange::new(
            datetime!(2026-11-20 00:00 UTC),
            datetime!(2026-11-21 00:00 UTC),
        );
        let built = build_activations(ev, &WindowOptions::new(scan));
        let w = &built.activations[0].window;
        assert_eq!(w.end, datetime!(2026-11-20 13:13:58 UTC));
        assert!(!w.assumed);
    }

    #[test]
    fn every_placement_of_section_8_is_accepted() {
        // Legacy OperationName, the string Properties column, no SubjectID: the actor comes
        // from CallerInfo.
        let mut r = pim_row("2026-11-20T09:14:03Z", "", "ActivateRole", REQ);
        let mut props = r["Properties_d"].take();
        props.as_object_mut().unwrap().remove("SubjectID");
        let obj = r.as_object_mut().unwrap();
        obj.remove("Properties_d");
        obj.remove("OperationNameValue");
        obj.insert(
            "OperationName".into(),
            json!("Add member to role completed (PIM activation)"),
        );
        obj.insert("Properties".into(), json!(props.to_string()));
        let ev = parse_activity_pim_events(&audit_table(vec![r]), "AzureActivity.json");
        assert!(ev.problems.is_empty(), "{:?}", ev.problems);
        let a = &ev.activations[0];
        assert_eq!(a.principal.upn.as_deref(), Some("jane@contoso.com"));
        assert_eq!(a.principal.object_id.as_deref(), Some("3f1e-oid"));
        assert_eq!(a.request_id.as_deref(), Some(REQ));
    }

    #[test]
    fn broken_properties_are_a_problem_not_a_silent_skip() {
        let mut r = pim_row(
            "2026-11-20T09:14:03Z",
            "Add member to role completed (PIM activation)",
            "ActivateRole",
            REQ,
        );
        r["Properties_d"] = json!("{\"ResourceProviderName\": \"azurerbac\", broken");
        let ev = parse_activity_pim_events(&audit_table(vec![r]), "AzureActivity.json");
        assert!(ev.activations.is_empty());
        assert_eq!(ev.problems.len(), 2, "{:?}", ev.problems);
        assert_eq!(ev.problems[0].field.as_deref(), Some("Properties_d"));
    }

    #[test]
    fn an_activation_in_both_tables_is_reported_once_from_both() {
        let audit = {
            let mut r = sample_activation_row();
            r["AdditionalDetails"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": "RoleAssignmentRequestId", "value": REQ}));
            parse_pim_events(&audit_table(vec![r]), "AuditLogs.json")
        };
        let activity = parse_activity_pim_events(
            &audit_table(vec![pim_row(
                "2026-11-20T09:14:04Z",
                "Add member to role completed (PIM activation)",
                "ActivateRole",
                &REQ.to_uppercase(),
            )]),
            "AzureActivity.json",
        );
        let merged = merge_pim_events(audit.clone(), activity.clone());
        assert_eq!(merged.activations.len(), 1);
        assert_eq!(
            merged.activations[0].sources,
            [ActivitySource::AuditLogs, ActivitySource::AzureActivity]
        );
        assert_eq!(merged.activations[0].source, "AuditLogs.json");

        // Without request ids: principal, role, scope and a start within two minutes.
        let strip = |mut e: PimEvents| {
            for a in &mut e.activations {
                a.request_id = None;
            }
            e
        };
        let merged = merge_pim_events(strip(audit.clone()), strip(activity.clone()));
        assert_eq!(merged.activations.len(), 1, "{:?}", merged.activations);
        let mut late = strip(activity);
        late.activations[0].start =
            start_of(&late.activations[0]).map(|t| t + time::Duration::minutes(3));
        let merged = merge_pim_events(strip(audit), late);
        assert_eq!(merged.activations.len(), 2);
    }
}
