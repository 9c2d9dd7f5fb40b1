//! The JSON Schema of the JSON report, derived from the types with `schemars`.
//!
//! [`report_json_schema`] is the one place the schema is made: `docs/report.schema.json` is its
//! output (a test fails when the committed file drifts from it), `pim-batch schema` prints it,
//! and the report tests validate every JSON report they produce against it.
//!
//! The schema describes what serde *writes* (the serialize contract): a field serde skips when
//! empty is optional, every other field is required, `Option` fields are nullable.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value};

use crate::{REPORT_SCHEMA_VERSION, Report, Risk, Verdict};

/// The `$id` of the report schema.
pub const REPORT_SCHEMA_ID: &str = "https://example.invalid/pim-activity-audit/report.schema.json";

/// The JSON Schema (draft 2020-12) of the JSON report, as a JSON value.
///
/// ```
/// let schema = pim_domain::schema::report_json_schema();
/// assert_eq!(schema["title"], "PIM Activity Audit Report");
/// assert!(schema["required"].as_array().is_some_and(|r| r.contains(&"activations".into())));
/// ```
pub fn report_json_schema() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Report>();
    schema.insert("$id".into(), REPORT_SCHEMA_ID.into());
    schema.insert("title".into(), "PIM Activity Audit Report".into());
    schema.insert(
        "description".into(),
        format!(
            "The JSON report of pim-report (render_json). Schema version {REPORT_SCHEMA_VERSION}; \
             see docs/report-schema.md. Generated from the pim-domain types: do not edit by hand."
        )
        .into(),
    );
    // A reader of this schema accepts reports of the same major version.
    let major = REPORT_SCHEMA_VERSION
        .split('.')
        .next()
        .unwrap_or(REPORT_SCHEMA_VERSION);
    if let Some(version) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("schema_version"))
        .and_then(Value::as_object_mut)
    {
        version.insert("pattern".into(), format!("^{major}\\.[0-9]+$").into());
    }
    schema.to_value()
}

/// The report schema as pretty-printed JSON with a final newline, byte for byte the content
/// of `docs/report.schema.json`.
pub fn report_json_schema_string() -> String {
    let mut text = serde_json::to_string_pretty(&report_json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// An RFC 3339 timestamp, as `time::serde::rfc3339` writes it.
pub(crate) fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}

/// An RFC 3339 timestamp or null, as `time::serde::rfc3339::option` writes it.
pub(crate) fn optional_date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "format": "date-time" })
}

/// A count per value of a string enum, every value present (as `ReportSummary::compute` writes).
fn count_per<T: JsonSchema>(generator: &mut SchemaGenerator, names: &[&str], what: &str) -> Schema {
    // Registers the enum's own definition, so the key set is documented next to it.
    let _ = generator.subschema_for::<T>();
    let mut properties = Map::new();
    for name in names {
        properties.insert(
            (*name).to_owned(),
            serde_json::json!({
                "type": "integer",
                "minimum": 0,
                "description": format!("Activations with {what} {name}."),
            }),
        );
    }
    json_schema!({
        "type": "object",
        "properties": properties,
        "required": names,
        "additionalProperties": false,
    })
}

/// `summary.by_verdict`: every verdict present, zero included.
pub(crate) fn count_per_verdict(generator: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
    count_per::<Verdict>(generator, &names, "verdict")
}

/// `summary.by_risk`: every risk level present, zero included.
pub(crate) fn count_per_risk(generator: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Risk::ALL.iter().map(|r| r.as_str()).collect();
    count_per::<Risk>(generator, &names, "risk")
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report.schema.json");

    /// `docs/report.schema.json` is exactly what the types generate. After changing a report
    /// type, regenerate it with `UPDATE_SCHEMA=1 cargo test -p pim-domain schema` (or
    /// `pim-batch schema > docs/report.schema.json`) and review the diff.
    #[test]
    fn committed_schema_matches_the_types() {
        let generated = report_json_schema_string();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap();
        assert!(
            committed == generated,
            "docs/report.schema.json drifted from the report types; regenerate it with \
             `UPDATE_SCHEMA=1 cargo test -p pim-domain schema` and review the diff"
        );
    }

    #[test]
    fn schema_describes_what_serde_writes() {
        let schema = report_json_schema();
        let defs = &schema["$defs"];
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(
            schema["properties"]["schema_version"]["pattern"],
            "^3\\.[0-9]+$"
        );
        assert_eq!(schema["properties"]["generated_at"]["format"], "date-time");
        // Enums carry serde's names, including the renamed assessor.
        let names = |def: &str| -> Vec<String> {
            defs[def]["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v["const"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(names("AssessorKind"), ["rules", "model", "model+rules"]);
        assert!(names("ActivityStatus").contains(&"in_progress".to_owned()));
        let verdicts: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(names("Verdict"), verdicts);
        // Fields skipped when empty are optional; `Option` fields are required and nullable.
        let activity_required = defs["Activity"]["required"].as_array().unwrap();
        assert!(!activity_required.contains(&"targets".into()));
        assert!(!activity_required.contains(&"caller_object_id".into()));
        assert!(activity_required.contains(&"resource_id".into()));
        assert_eq!(
            defs["Activity"]["properties"]["resource_id"]["type"],
            serde_json::json!(["string", "null"])
        );
        assert_eq!(
            defs["ElevationWindow"]["properties"]["scheduled_end"]["format"],
            "date-time"
        );
        // Every verdict is a required key of summary.by_verdict.
        let by_verdict = &defs["ReportSummary"]["properties"]["by_verdict"];
        assert_eq!(
            by_verdict["required"].as_array().unwrap().len(),
            Verdict::ALL.len()
        );
        assert_eq!(
            defs["Assessment"]["properties"]["confidence"]["maximum"],
            1.0
        );
    }
}
