use pim_domain::{
    ActivityStatus, ActivityTarget, AssessorKind, DataProblem, EndReason, Flag, Report, Risk,
    RoleKind, ScopeKind, Verdict,
};
use pim_testkit::report_schema::{report_errors, strict_report_errors};
use serde_json::Value;

use crate::support::fixture;

/// The committed schema (equal to the generated one: pim-domain's drift test guards that).
fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every violation of the schema (validated by `jsonschema`, formats included), with every
/// object closed: an undeclared property is an error too.
fn check(value: &Value) -> Vec<String> {
    strict_report_errors(value)
}

fn errors_for(report: &Report) -> Vec<String> {
    let value = serde_json::from_str(&pim_report::render_json(report).unwrap()).unwrap();
    check(&value)
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
            act.resource_id.get_or_insert_with(|| "res".into());
            act.resource_group.get_or_insert_with(|| "rg".into());
            act.subscription_id.get_or_insert_with(|| "sub".into());
            act.provider.get_or_insert_with(|| "prov".into());
            act.caller.get_or_insert_with(|| "caller".into());
            act.caller_object_id
                .get_or_insert_with(|| "caller-oid".into());
            act.correlation_id.get_or_insert_with(|| "corr".into());
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
fn validator_catches_undeclared_missing_and_malformed_values() {
    let mut value: Value =
        serde_json::from_str(&pim_report::render_json(&fully_populated()).unwrap()).unwrap();
    assert_eq!(check(&value), Vec::<String>::new());
    value["activations"][0]["surprise"] = Value::Bool(true);
    value["summary"].as_object_mut().unwrap().remove("findings");
    value["activations"][1]["assessment"]["verdict"] = Value::String("maybe".to_owned());
    value["generated_at"] = Value::String("2026-11-20 18:00".to_owned());
    value["summary"]["by_risk"]["low"] = Value::from(-1);
    let errors = check(&value);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    for path in [
        "/activations/0",
        "/summary",
        "/activations/1/assessment/verdict",
        "/generated_at",
        "/summary/by_risk/low",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{path}:"))),
            "{path} not reported: {errors:#?}"
        );
    }
    // The published schema is open (readers survive additive changes); only the stray field
    // passes there.
    assert_eq!(
        report_errors(&value).len(),
        4,
        "{:#?}",
        report_errors(&value)
    );
}

#[test]
fn schema_version_must_have_the_current_major() {
    let mut value: Value =
        serde_json::from_str(&pim_report::render_json(&fixture()).unwrap()).unwrap();
    value["schema_version"] = Value::String("1.1".to_owned());
    assert_eq!(check(&value).len(), 1, "{:#?}", check(&value));
    value["schema_version"] = Value::String("2.7".to_owned());
    assert_eq!(check(&value).len(), 1, "{:#?}", check(&value));
    value["schema_version"] = Value::String("3.7".to_owned());
    assert_eq!(check(&value), Vec::<String>::new());
}

fn enum_values(name: &str) -> Vec<String> {
    schema()["$defs"][name]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["const"].as_str().unwrap().to_owned())
        .collect()
}

fn names<T: Copy + std::fmt::Display>(all: &[T]) -> Vec<String> {
    all.iter().map(ToString::to_string).collect()
}

#[test]
fn schema_enums_list_every_domain_value() {
    assert_eq!(enum_values("Verdict"), names(Verdict::ALL));
    assert_eq!(enum_values("Risk"), names(Risk::ALL));
    assert_eq!(enum_values("Flag"), names(Flag::ALL));
    assert_eq!(enum_values("AssessorKind"), names(AssessorKind::ALL));
    assert_eq!(enum_values("RoleKind"), names(RoleKind::ALL));
    assert_eq!(enum_values("ScopeKind"), names(ScopeKind::ALL));
    assert_eq!(enum_values("EndReason"), names(EndReason::ALL));
    assert_eq!(enum_values("ActivityStatus"), names(ActivityStatus::ALL));
    assert_eq!(
        enum_values("ActivitySource"),
        names(pim_domain::ActivitySource::ALL)
    );
    // serde and as_str agree, so the schema matches what is emitted.
    assert_eq!(
        serde_json::to_value(AssessorKind::ModelAndRules).unwrap(),
        "model+rules"
    );
}
