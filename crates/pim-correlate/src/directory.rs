//! Directory changes from `AuditLogs`: what a user changed in Entra ID.

use pim_domain::{
    Activity, ActivitySource, ActivityStatus, ActivityTarget, DataProblem, SharedText, Table,
};
use serde_json::Value;

use crate::azure::ParsedActivities;
use crate::cells::{
    Problems, cell_dynamic, cell_text, cell_time, get_ci, get_text, target_type, targets,
};
use crate::evidence::{UnreadableRow, identity_keys};

/// System identities that act for PIM; their changes are PIM's bookkeeping, not a person's.
const PIM_ACTORS: &[&str] = &["MS-PIM", "Azure AD PIM", "Microsoft Entra PIM"];

/// Reads user-initiated `AuditLogs` rows into directory activities.
///
/// Kept: rows whose `InitiatedBy.user` has a UPN or object id. Skipped: PIM's own rows
/// (`LoggedByService` PIM), app-initiated rows (including MS-PIM's directory-side removals) and
/// rows whose actor is a PIM system identity. Status comes from `Result` (success → succeeded,
/// failure/timeout → failed, anything else or missing → other); only succeeded rows are kept
/// unless `include_failed`.
///
/// Targets are all `TargetResources` (kind = `type`, name = display name or UPN, id). When a
/// target's `modifiedProperties` carries `Role.DisplayName` (role-assignment changes), a `Role`
/// target with that name (JSON quotes trimmed) is added, with `Role.TemplateId` as its id.
pub fn parse_directory_activity(
    table: &Table,
    source: &str,
    include_failed: bool,
) -> ParsedActivities {
    let c = |n: &str| table.column_index(n);
    let time_cols = [c("ActivityDateTime"), c("TimeGenerated")];
    let op_cols = [c("OperationName"), c("ActivityDisplayName")];
    let result_col = c("Result");
    let service_col = c("LoggedByService");
    let identity_col = c("Identity");
    let initiated_col = c("InitiatedBy");
    let targets_col = c("TargetResources");
    let correlation_col = c("CorrelationId");

    let mut problems = Problems::new(source);
    let mut activities = Vec::new();
    let mut unreadable = Vec::new();
    if initiated_col.is_none() && !table.is_empty() {
        let message = format!(
            "no InitiatedBy column: none of the {} rows can be attributed to a user (columns found: {})",
            table.len(),
            crate::azure::column_list(table)
        );
        problems.push(DataProblem::source(source, message.clone()));
        return ParsedActivities {
            activities,
            rows_read: table.len(),
            problems: problems.finish(),
            unreadable,
            failure: Some(format!("{source}: {message}")),
        };
    }
    for row in 0..table.len() {
        let service = cell_text(table, row, service_col);
        if service
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("PIM"))
        {
            continue;
        }
        if cell_text(table, row, identity_col).is_some_and(|i| is_pim_actor(&i)) {
            continue;
        }
        let mut row_problems = Vec::new();
        let initiated = cell_dynamic(
            table,
            row,
            initiated_col,
            "InitiatedBy",
            source,
            &mut row_problems,
        );
        let user = initiated
            .as_deref()
            .and_then(|i| get_ci(i, "user"))
            .filter(|u| u.is_object());
        let upn = user.and_then(|u| get_text(u, "userPrincipalName"));
        let oid = user.and_then(|u| get_text(u, "id"));
        let actor_name = user.and_then(|u| get_text(u, "displayName"));
        if (upn.is_none() && oid.is_none()) || actor_name.as_deref().is_some_and(is_pim_actor) {
            // An InitiatedBy that could not be parsed hides who acted: anyone's change.
            if let Some(first) = row_problems.first() {
                let time = time_cols
                    .iter()
                    .zip(["ActivityDateTime", "TimeGenerated"])
                    .find_map(|(col, field)| {
                        cell_time(table, row, *col, field, source, &mut Vec::new())
                    });
                unreadable.push(UnreadableRow {
                    time,
                    identities: Vec::new(),
                    problem: first.clone(),
                });
            }
            flush(&mut problems, row_problems);
            continue;
        }
        let identities = identity_keys([upn.as_deref(), oid.as_deref()]);

        let time = time_cols
            .iter()
            .zip(["ActivityDateTime", "TimeGenerated"])
            .find_map(|(col, field)| cell_time(table, row, *col, field, source, &mut row_problems));
        let Some(time) = time else {
            let problem = DataProblem::row(
                source,
                row,
                "no readable ActivityDateTime or TimeGenerated: the row is skipped",
            );
            unreadable.push(UnreadableRow {
                time: None,
                identities,
                problem: row_problems
                    .first()
                    .cloned()
                    .unwrap_or_else(|| problem.clone()),
            });
            row_problems.push(problem);
            flush(&mut problems, row_problems);
            continue;
        };
        // ActivityDisplayName stands in for a blank OperationName on this row.
        let Some(operation) = op_cols.iter().find_map(|col| cell_text(table, row, *col)) else {
            let problem = DataProblem::field(
                source,
                row,
                "OperationName",
                "missing (and no ActivityDisplayName): the row is skipped",
            );
            unreadable.push(UnreadableRow {
                time: Some(time),
                identities,
                problem: problem.clone(),
            });
            row_problems.push(problem);
            flush(&mut problems, row_problems);
            continue;
        };
        let status = cell_text(table, row, result_col)
            .map_or(ActivityStatus::Other, |r| ActivityStatus::normalise(&r));
        if !include_failed && status != ActivityStatus::Succeeded {
            flush(&mut problems, row_problems);
            continue;
        }

        let target_value = cell_dynamic(
            table,
            row,
            targets_col,
            "TargetResources",
            source,
            &mut row_problems,
        );
        let (target_list, resource_id) = collect_targets(target_value.as_deref());
        activities.push(Activity {
            time,
            operation: operation.into(),
            status,
            resource_id: resource_id.map(SharedText::from),
            resource_group: None,
            subscription_id: None,
            provider: service.map(SharedText::from),
            source: ActivitySource::AuditLogs,
            caller: upn.map(SharedText::from),
            caller_object_id: oid.map(SharedText::from),
            correlation_id: cell_text(table, row, correlation_col).map(SharedText::from),
            targets: target_list,
        });
        flush(&mut problems, row_problems);
    }
    activities.sort_by_key(|a| a.time);
    ParsedActivities {
        activities,
        rows_read: table.len(),
        problems: problems.finish(),
        unreadable,
        failure: None,
    }
}

fn flush(problems: &mut Problems, row_problems: Vec<DataProblem>) {
    for p in row_problems {
        problems.push(p);
    }
}

fn is_pim_actor(name: &str) -> bool {
    PIM_ACTORS
        .iter()
        .any(|a| a.eq_ignore_ascii_case(name.trim()))
}

/// The targets, and the resource id: the first non-User target's id, else the first target's.
fn collect_targets(list: Option<&Value>) -> (Vec<ActivityTarget>, Option<String>) {
    let mut out = Vec::new();
    let mut first_id = None;
    let mut first_non_user_id = None;
    let mut roles = Vec::new();
    for t in targets(list) {
        let kind = get_ci(t, "type")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .unwrap_or("Unknown")
            .to_owned();
        let id = get_text(t, "id");
        if first_id.is_none() {
            first_id.clone_from(&id);
        }
        if first_non_user_id.is_none() && target_type(t).as_deref() != Some("user") {
            first_non_user_id.clone_from(&id);
        }
        if let Some(role) = role_from_modified_properties(t) {
            roles.push(role);
        }
        out.push(ActivityTarget {
            kind,
            name: get_text(t, "displayName").or_else(|| get_text(t, "userPrincipalName")),
            id,
        });
    }
    for role in roles {
        let present = out.iter().any(|t| {
            t.kind.eq_ignore_ascii_case("Role")
                && t.name
                    .as_deref()
                    .zip(role.name.as_deref())
                    .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        });
        if !present {
            out.push(role);
        }
    }
    (out, first_non_user_id.or(first_id))
}

/// A `Role` target from `modifiedProperties` `Role.DisplayName` (new value, else old value for
/// removals), with `Role.TemplateId` as id.
fn role_from_modified_properties(target: &Value) -> Option<ActivityTarget> {
    let props = get_ci(target, "modifiedProperties")?.as_array()?;
    let prop = |name: &str| {
        props.iter().find_map(|p| {
            let n = get_ci(p, "displayName")?.as_str()?;
            if !n.trim().eq_ignore_ascii_case(name) {
                return None;
            }
            ["newValue", "oldValue"].iter().find_map(|k| {
                get_ci(p, k)?
                    .as_str()
                    .map(unquote)
                    .filter(|v| !v.is_empty())
            })
        })
    };
    let name = prop("Role.DisplayName")?;
    Some(ActivityTarget {
        kind: "Role".to_owned(),
        name: Some(name),
        id: prop("Role.TemplateId"),
    })
}

/// `modifiedProperties` values are JSON-encoded strings (`"\"Global Administrator\""`).
fn unquote(v: &str) -> String {
    v.trim().trim_matches('"').trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{audit_table, sample_activation_row};
    use serde_json::json;

    fn add_member_row() -> Value {
        json!({
            "TimeGenerated": "2026-11-20T09:30:00Z",
            "ActivityDateTime": "2026-11-20T09:29:59Z",
            "OperationName": "Add member to role",
            "Category": "RoleManagement",
            "LoggedByService": "Core Directory",
            "Result": "success",
            "CorrelationId": "c9",
            "InitiatedBy": "{\"user\": {\"id\": \"oid-jane\", \"userPrincipalName\": \"jane@contoso.com\"}}",
            "TargetResources": [
                {"type": "User", "userPrincipalName": "bob@contoso.com", "id": "oid-bob",
                 "modifiedProperties": [
                    {"displayName": "Role.DisplayName", "oldValue": null, "newValue": "\"Global Administrator\""},
                    {"displayName": "Role.TemplateId", "newValue": "\"62e90394\""}
                 ]},
                {"type": "Group", "displayName": "Ops", "id": "g1"}
            ]
        })
    }

    #[test]
    fn user_initiated_change_becomes_an_activity() {
        let p = parse_directory_activity(&audit_table(vec![add_member_row()]), "AuditLogs", false);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let a = &p.activities[0];
        assert_eq!(a.time, time::macros::datetime!(2026-11-20 09:29:59 UTC));
        assert_eq!(a.operation, "Add member to role");
        assert_eq!(a.status, ActivityStatus::Succeeded);
        assert_eq!(a.provider.as_deref(), Some("Core Directory"));
        assert_eq!(a.source, ActivitySource::AuditLogs);
        assert_eq!(a.caller.as_deref(), Some("jane@contoso.com"));
        assert_eq!(a.caller_object_id.as_deref(), Some("oid-jane"));
        assert_eq!(a.resource_id.as_deref(), Some("g1"));
        assert_eq!(a.targets.len(), 3);
        assert_eq!(a.targets[0].name.as_deref(), Some("bob@contoso.com"));
        assert_eq!(
            a.targets[2],
            ActivityTarget {
                kind: "Role".into(),
                name: Some("Global Administrator".into()),
                id: Some("62e90394".into())
            }
        );
    }

    #[test]
    fn pim_app_and_system_rows_are_excluded() {
        let pim = sample_activation_row();
        let mut app = add_member_row();
        app["InitiatedBy"] = json!({"app": {"displayName": "MS-PIM", "servicePrincipalId": "sp"}});
        let mut pim_user = add_member_row();
        pim_user["InitiatedBy"] = json!({"user": {"displayName": "Azure AD PIM", "id": "x"}});
        let mut identity = add_member_row();
        identity["Identity"] = json!("MS-PIM");
        let p = parse_directory_activity(
            &audit_table(vec![pim, app, pim_user, identity, add_member_row()]),
            "S",
            true,
        );
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.rows_read, 5);
    }

    #[test]
    fn failures_only_with_include_failed() {
        let mut failed = add_member_row();
        failed["Result"] = json!("failure");
        let t = audit_table(vec![failed]);
        assert!(
            parse_directory_activity(&t, "S", false)
                .activities
                .is_empty()
        );
        let p = parse_directory_activity(&t, "S", true);
        assert_eq!(p.activities[0].status, ActivityStatus::Failed);
    }

    #[test]
    fn only_user_targets_fall_back_to_the_first_id() {
        let mut r = add_member_row();
        r["TargetResources"] = json!([{"type": "User", "id": "u1", "displayName": "Bob"}]);
        let p = parse_directory_activity(&audit_table(vec![r]), "S", false);
        assert_eq!(p.activities[0].resource_id.as_deref(), Some("u1"));
        assert_eq!(p.activities[0].targets[0].name.as_deref(), Some("Bob"));
    }

    #[test]
    fn a_missing_initiated_by_column_is_one_problem() {
        let mut r = add_member_row();
        r.as_object_mut().unwrap().remove("InitiatedBy");
        let p = parse_directory_activity(&audit_table(vec![r.clone(), r]), "S", true);
        assert!(p.activities.is_empty());
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].message.contains("no InitiatedBy column"));
    }

    #[test]
    fn broken_rows_are_problems_not_panics() {
        let mut bad_json = add_member_row();
        bad_json["InitiatedBy"] = json!("{\"user\": ");
        let mut bad_time = add_member_row();
        bad_time["ActivityDateTime"] = json!("soon");
        bad_time["TimeGenerated"] = json!(3);
        let mut weird_targets = add_member_row();
        weird_targets["TargetResources"] = json!([null, 5, {"type": 7, "modifiedProperties": "x"}]);
        let p = parse_directory_activity(
            &audit_table(vec![bad_json, bad_time, weird_targets]),
            "S",
            false,
        );
        assert_eq!(p.activities.len(), 1);
        assert_eq!(p.activities[0].targets[0].kind, "Unknown");
        assert_eq!(p.problems[0].row, Some(0));
        assert_eq!(p.problems[0].field.as_deref(), Some("InitiatedBy"));
        assert!(p.problems.iter().any(|x| x.row == Some(1)));
    }
}
