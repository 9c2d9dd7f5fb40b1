//! Validation of JSON reports against the report's JSON Schema, with a real validator.
//!
//! The schema is [`pim_domain::schema::report_json_schema`] (the content of
//! `docs/report.schema.json`). [`strict_report_errors`] also rejects properties the schema does
//! not declare, which the published schema allows (so readers survive additive changes) but
//! which in a test means a field was added without being described.

use serde_json::Value;

/// Adds `additionalProperties: false` to every object schema that declares properties.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for v in map.values_mut() {
                close_objects(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn errors_with(schema: &Value, report: &Value) -> Result<Vec<String>, String> {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("the report schema does not compile: {e}"))?;
    Ok(validator
        .iter_errors(report)
        .map(|e| {
            // The value is quoted in the message: keep a huge one from flooding the output.
            let message: String = e.to_string().chars().take(300).collect();
            format!("{}: {message}", e.instance_path())
        })
        .collect())
}

/// Every violation of the report schema by `report` (formats such as `date-time` checked);
/// empty when valid.
pub fn report_errors(report: &Value) -> Vec<String> {
    errors_with(&pim_domain::schema::report_json_schema(), report).unwrap_or_else(|e| vec![e])
}

/// As [`report_errors`], with every object closed: an undeclared property is an error too.
pub fn strict_report_errors(report: &Value) -> Vec<String> {
    let mut schema = pim_domain::schema::report_json_schema();
    close_objects(&mut schema);
    errors_with(&schema, report).unwrap_or_else(|e| vec![e])
}

/// Panics with every violation when `report` is not a valid (strictly valid: no undeclared
/// property) JSON report.
#[allow(clippy::panic)]
pub fn assert_valid_report(report: &Value) {
    let errors = strict_report_errors(report);
    if !errors.is_empty() {
        panic!(
            "the JSON report does not match docs/report.schema.json:\n{}",
            errors.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_a_bad_timestamp_an_unknown_verdict_and_a_stray_field_is_rejected() {
        let mut report = serde_json::json!({});
        assert!(!report_errors(&report).is_empty());
        report = serde_json::json!({ "schema_version": "2.0", "generated_at": "yesterday" });
        let errors = report_errors(&report).join("\n");
        assert!(errors.contains("/generated_at"), "{errors}");
        report["surprise"] = true.into();
        assert!(
            strict_report_errors(&report)
                .join("\n")
                .contains("surprise")
        );
        assert!(!report_errors(&report).join("\n").contains("surprise"));
    }
}
