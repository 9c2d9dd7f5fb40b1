//! Reading raw cells: scalars, `dynamic` values (JSON string or nested JSON) and the key/value
//! and typed-array shapes inside them, always by name and case-insensitively.

use std::borrow::Cow;

use pim_domain::cells::CellRef;
use pim_domain::timestamp::{TimestampError, parse_timestamp};
use pim_domain::{DataProblem, Table};
use serde_json::Value;
use time::OffsetDateTime;

/// Most problems a single parse reports one by one; the rest are summarised, so a table of
/// 500,000 broken rows cannot produce 500,000 problem records.
pub(crate) const PROBLEM_CAP: usize = 1_000;

/// Collects table-level problems up to [`PROBLEM_CAP`], then counts the rest.
#[derive(Debug)]
pub(crate) struct Problems {
    source: String,
    list: Vec<DataProblem>,
    dropped: usize,
}

impl Problems {
    pub(crate) fn new(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            list: Vec::new(),
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, problem: DataProblem) {
        if self.list.len() < PROBLEM_CAP {
            self.list.push(problem);
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn finish(mut self) -> Vec<DataProblem> {
        if self.dropped > 0 {
            self.list.push(DataProblem::source(
                self.source,
                format!(
                    "{} further problems were not listed individually",
                    self.dropped
                ),
            ));
        }
        self.list
    }
}

/// At most 64 characters of untrusted text, for problem messages.
pub(crate) fn shorten(s: &str) -> String {
    pim_domain::text::clip(s, 64)
}

/// The text of a scalar: strings trimmed (`None` when blank), numbers and booleans as text.
/// Arrays and objects are not text.
pub(crate) fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then_some(Cow::Borrowed(t))
        }
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// Like [`scalar_text`], but owned.
pub(crate) fn owned_text(v: &Value) -> Option<String> {
    scalar_text(v).map(Cow::into_owned)
}

/// A text cell of `table`.
pub(crate) fn cell_text(table: &Table, row: usize, col: Option<usize>) -> Option<Cow<'_, str>> {
    col.and_then(|c| table.cell(row, c)).and_then(scalar_text)
}

/// A `dynamic` cell: nested JSON is borrowed; a JSON-encoded string is parsed. A string that is
/// not JSON is a problem naming the row and field. Blank and `null` read as absent.
pub(crate) fn cell_dynamic<'t>(
    table: &'t Table,
    row: usize,
    col: Option<usize>,
    field: &str,
    source: &str,
    problems: &mut Vec<DataProblem>,
) -> Option<Cow<'t, Value>> {
    let v = col.and_then(|c| table.cell(row, c))?;
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || t == "null" {
                return None;
            }
            match serde_json::from_str::<Value>(t) {
                Ok(Value::Null) => None,
                // Some exports encode twice: a JSON string holding the JSON text.
                Ok(Value::String(inner)) => serde_json::from_str::<Value>(&inner)
                    .ok()
                    .filter(|v| v.is_object() || v.is_array())
                    .map(Cow::Owned),
                Ok(parsed) => Some(Cow::Owned(parsed)),
                Err(e) => {
                    problems.push(DataProblem::field(
                        source,
                        row,
                        field,
                        format!("not valid JSON ({e})"),
                    ));
                    None
                }
            }
        }
        other => Some(Cow::Borrowed(other)),
    }
}

/// A timestamp cell; an unreadable value is a problem naming row and field.
pub(crate) fn cell_time(
    table: &Table,
    row: usize,
    col: Option<usize>,
    field: &str,
    source: &str,
    problems: &mut Vec<DataProblem>,
) -> Option<OffsetDateTime> {
    let v = col.and_then(|c| table.cell(row, c))?;
    parse_time_value(v, row, field, source, problems)
}

/// Parses a timestamp value (a string); anything else, or an unreadable string, is a problem.
pub(crate) fn parse_time_value(
    v: &Value,
    row: usize,
    field: &str,
    source: &str,
    problems: &mut Vec<DataProblem>,
) -> Option<OffsetDateTime> {
    parse_time_cell(CellRef::of(v), None, row, field, source, problems)
}

/// As [`parse_time_value`], for a cell read through [`RowCells`](pim_domain::cells::RowCells):
/// `parsed` is the cell's [`parse_timestamp`] when the row already knows it.
pub(crate) fn parse_time_cell(
    cell: CellRef<'_>,
    parsed: Option<Result<OffsetDateTime, TimestampError>>,
    row: usize,
    field: &str,
    source: &str,
    problems: &mut Vec<DataProblem>,
) -> Option<OffsetDateTime> {
    match cell {
        CellRef::Str(s) if s.trim().is_empty() => None,
        CellRef::Str(s) => match parsed.unwrap_or_else(|| parse_timestamp(s)) {
            // No Log Analytics record predates 2000: a year-0000 or epoch time is a placeholder,
            // never the start of a window.
            Ok(t) if t.year() < 2000 => {
                problems.push(DataProblem::field(
                    source,
                    row,
                    field,
                    format!(
                        "timestamp {:?} is before the year 2000: a placeholder, not a real time",
                        shorten(s.trim())
                    ),
                ));
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(DataProblem::field(source, row, field, e.to_string()));
                None
            }
        },
        CellRef::Null => None,
        CellRef::Other(other) => {
            problems.push(DataProblem::field(
                source,
                row,
                field,
                format!("expected a timestamp string, found {}", json_kind(other)),
            ));
            None
        }
    }
}

/// A word for the JSON type of a value, for problem messages (never the value itself, which may
/// be huge).
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An object member, by exact key first, then case-insensitively.
pub(crate) fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    if let Some(v) = map.get(key) {
        return Some(v);
    }
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// An object member as owned text.
pub(crate) fn get_text(obj: &Value, key: &str) -> Option<String> {
    get_ci(obj, key).and_then(owned_text)
}

/// A value from `AdditionalDetails`: an array of `{key, value}` pairs (the documented shape), or
/// an object used as a bag (as some exports flatten it). Keys match case-insensitively.
pub(crate) fn detail(details: Option<&Value>, key: &str) -> Option<String> {
    let details = details?;
    match details {
        Value::Array(items) => items.iter().find_map(|item| {
            let k = get_ci(item, "key")?.as_str()?;
            if k.trim().eq_ignore_ascii_case(key) {
                get_ci(item, "value").and_then(owned_text)
            } else {
                None
            }
        }),
        Value::Object(_) => get_text(details, key),
        _ => None,
    }
}

/// The elements of a `TargetResources` array, skipping anything that is not an object.
pub(crate) fn targets(targets: Option<&Value>) -> impl Iterator<Item = &Value> {
    targets
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.is_object())
}

/// The `type` of a target, lower-cased with spaces and underscores removed
/// (`Resource group` → `resourcegroup`).
pub(crate) fn target_type(target: &Value) -> Option<String> {
    let t = get_ci(target, "type")?.as_str()?;
    let norm: String = t
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    (!norm.is_empty()).then_some(norm)
}

/// The first target whose normalised type is `wanted` (already normalised).
pub(crate) fn target_of_type<'a>(list: Option<&'a Value>, wanted: &str) -> Option<&'a Value> {
    targets(list).find(|t| target_type(t).as_deref() == Some(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one_cell(v: Value) -> Table {
        Table {
            name: "T".into(),
            columns: vec![pim_domain::Column {
                name: "D".into(),
                kind: "dynamic".into(),
            }],
            rows: vec![vec![v]],
        }
    }

    #[test]
    fn dynamic_accepts_string_and_nested_forms() {
        let mut p = Vec::new();
        let nested = one_cell(json!([{"key": "StartTime", "value": "x"}]));
        let string = one_cell(json!(r#"[{"key":"StartTime","value":"x"}]"#));
        let a = cell_dynamic(&nested, 0, Some(0), "D", "T", &mut p).unwrap();
        let b = cell_dynamic(&string, 0, Some(0), "D", "T", &mut p).unwrap();
        assert_eq!(a, b);
        assert!(p.is_empty());
    }

    #[test]
    fn dynamic_double_encoded_string_is_unwrapped() {
        let mut p = Vec::new();
        let inner = r#"{"user":{"id":"x"}}"#;
        let t = one_cell(json!(serde_json::to_string(inner).unwrap()));
        let v = cell_dynamic(&t, 0, Some(0), "D", "T", &mut p).unwrap();
        assert_eq!(v.as_ref(), &json!({"user": {"id": "x"}}));
    }

    #[test]
    fn dynamic_bad_json_is_a_problem_with_row_and_field() {
        let mut p = Vec::new();
        let t = one_cell(json!("{not json"));
        assert!(cell_dynamic(&t, 0, Some(0), "D", "T", &mut p).is_none());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].row, Some(0));
        assert_eq!(p[0].field.as_deref(), Some("D"));
    }

    #[test]
    fn details_match_keys_case_insensitively_in_both_shapes() {
        let arr = json!([{"Key": "endTime", "Value": "e"}, {"key": "x", "value": 5}]);
        assert_eq!(detail(Some(&arr), "EndTime").as_deref(), Some("e"));
        assert_eq!(detail(Some(&arr), "X").as_deref(), Some("5"));
        let bag = json!({"starttime": "s"});
        assert_eq!(detail(Some(&bag), "StartTime").as_deref(), Some("s"));
        assert_eq!(detail(Some(&json!(42)), "StartTime"), None);
    }

    #[test]
    fn target_types_normalise() {
        let list = json!([1, {"type": "Resource group", "id": "a"}, {"type": "USER"}]);
        assert!(target_of_type(Some(&list), "resourcegroup").is_some());
        assert!(target_of_type(Some(&list), "user").is_some());
        assert!(target_of_type(Some(&list), "role").is_none());
    }

    #[test]
    fn problems_are_capped_with_a_summary() {
        let mut p = Problems::new("S");
        for i in 0..PROBLEM_CAP + 5 {
            p.push(DataProblem::row("S", i, "bad"));
        }
        let list = p.finish();
        assert_eq!(list.len(), PROBLEM_CAP + 1);
        assert!(list[PROBLEM_CAP].message.starts_with("5 further"));
    }
}
