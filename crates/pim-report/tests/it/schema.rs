use pim_domain::{
    ActivityStatus, ActivityTarget, AssessorKind, DataProblem, EndReason, Flag, Report, Risk,
    RoleKind, ScopeKind, Verdict,
};
use serde_json::Value;

use crate::support::fixture;

fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Follows a local `#/$defs/name` reference.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            resolve(root, &root["$defs"][name])
        }
        None => schema,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        other => panic!("unknown type {other}"),
    }
}

/// Checks `value` against `schema` as far as our schema uses JSON Schema: types, enums,
/// declared properties, required properties and array items. Returns every mismatch.
fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if let Some(ty) = schema.get("type") {
        let ok = match ty {
            Value::String(t) => type_matches(t, value),
            Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), value)),
            _ => panic!("bad type at {path}"),
        };
        if !ok {
            errors.push(format!("{path}: {value} is not {ty}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} not in enum {allowed:?}"));
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for (key, v) in map {
                match props.and_then(|p| p.get(key)) {
                    Some(s) => check(root, s, v, &format!("{path}.{key}"), errors),
                    None => errors.push(format!("{path}.{key}: emitted but not declared")),
                }
            }
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let req = req.as_str().unwrap();
                if !map.contains_key(req) {
                    errors.push(format!("{path}.{req}: required but not emitted"));
                }
            }
        }
        Value::Array(items) => {
            let item_schema = schema
                .get("items")
                .unwrap_or_else(|| panic!("{path}: no items"));
            for (i, v) in items.iter().enumerate() {
                check(root, item_schema, v, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

fn errors_for(report: &Report) -> Vec<String> {
    let root = schema();
    let value = serde_json::from_str(&pim_report::render_json(report).unwrap()).unwrap();
    let mut errors = Vec::new();
    check(&root, &root, &value, "$", &mut errors);
    errors
}

/// The fixture with every optional field filled and every optional list non-empty, so the
/// serializer emits every property it can.
fn fully_populated() -> Report {
    let mut r = fixture();
    for a in &mut r.activations {
        a.principal
            .upn
            .get_or_insert_with(|| "x@contoso.com".to_owned());
        a.principal
            .object_id
            .get_or_insert_with(|| "oid".to_owned());
        a.principal
            .display_name
            .get_or_insert_with(|| "X".to_owned());
        a.role.id.get_or_insert_with(|| "role-id".to_owned());
        a.scope.id.get_or_insert_with(|| "scope-id".to_owned());
        a.scope
            .display_name
            .get_or_insert_with(|| "scope".to_owned());
        a.request_id.get_or_insert_with(|| "req".to_owned());
        a.correlation_id.get_or_insert_with(|| "corr".to_owned());
        a.window.scheduled_end.get_or_insert(a.window.end);
        a.assessment.error.get_or_insert_with(|| "error".to_owned());
        a.assessment.confidence.get_or_insert(0.5);
        if a.assessment.disagreements.is_empty() {
            a.assessment.disagreements.push("disagreement".to_owned());
        }
        if a.problems.is_empty() {
            a.problems
                .push(DataProblem::field("AuditLogs", 1, "f", "m"));
        }
        for act in &mut a.activities {
            act.resource_id.get_or_insert_with(|| "res".to_owned());
            act.resource_group.get_or_insert_with(|| "rg".to_owned());
            act.subscription_id.get_or_insert_with(|| "sub".to_owned());
            act.provider.get_or_insert_with(|| "prov".to_owned());
            act.caller.get_or_insert_with(|| "caller".to_owned());
            act.caller_object_id
                .get_or_insert_with(|| "caller-oid".to_owned());
            act.correlation_id.get_or_insert_with(|| "corr".to_owned());
            if act.targets.is_empty() {
                act.targets.push(ActivityTarget {
                    kind: "User".to_owned(),
                    name: Some("n".to_owned()),
                    id: Some("id".to_owned()),
                });
            }
        }
    }
    r
}

#[test]
fn fully_populated_report_matches_schema() {
    let r = fully_populated();
    // Guard the guard: the fixture really does populate the optional parts.
    let json = pim_report::render_json(&r).unwrap();
    for key in [
        "caller_object_id",
        "targets",
        "confidence",
        "disagreements",
        "\"problems\"",
        "\"run\"",
        "\"query_rows\"",
    ] {
        assert!(json.contains(key), "{key} not emitted");
    }
    assert_eq!(errors_for(&r), Vec::<String>::new());
}

#[test]
fn fixture_with_nulls_and_omissions_matches_schema() {
    assert_eq!(errors_for(&fixture()), Vec::<String>::new());
}

#[test]
fn checker_catches_undeclared_and_missing_properties() {
    let root = schema();
    let mut value: Value =
        serde_json::from_str(&pim_report::render_json(&fully_populated()).unwrap()).unwrap();
    value["activations"][0]["surprise"] = Value::Bool(true);
    value["summary"].as_object_mut().unwrap().remove("findings");
    value["activations"][1]["assessment"]["verdict"] = Value::String("maybe".to_owned());
    let mut errors = Vec::new();
    check(&root, &root, &value, "$", &mut errors);
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

fn enum_values(name: &str) -> Vec<String> {
    schema()["$defs"][name]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn names<T: Copy + std::fmt::Display>(all: &[T]) -> Vec<String> {
    all.iter().map(ToString::to_string).collect()
}

#[test]
fn schema_enums_list_every_domain_value() {
    assert_eq!(enum_values("verdict"), names(Verdict::ALL));
    assert_eq!(enum_values("risk"), names(Risk::ALL));
    assert_eq!(enum_values("flag"), names(Flag::ALL));
    assert_eq!(enum_values("assessor"), names(AssessorKind::ALL));
    assert_eq!(enum_values("role_kind"), names(RoleKind::ALL));
    assert_eq!(enum_values("scope_kind"), names(ScopeKind::ALL));
    assert_eq!(enum_values("end_reason"), names(EndReason::ALL));
    assert_eq!(enum_values("activity_status"), names(ActivityStatus::ALL));
    assert_eq!(
        enum_values("activity_source"),
        names(pim_domain::ActivitySource::ALL)
    );
    // serde and as_str agree, so the schema matches what is emitted.
    assert_eq!(
        serde_json::to_value(AssessorKind::ModelAndRules).unwrap(),
        "model+rules"
    );
}
