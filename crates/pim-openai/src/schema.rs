//! Local checking of JSON-mode answers, for models that reject strict `json_schema`
//! (reference §10.5): the answer is read out of any reasoning preamble or code fence and checked
//! against the same strict schema the service would have enforced.

use serde_json::Value;

/// Nesting deeper than this is refused: strict schemas allow 5 levels, and a hostile answer
/// must not recurse without end.
const MAX_DEPTH: usize = 16;

/// The answer without a leading `<think>…</think>` block (DeepSeek-R1 style) and without a
/// surrounding Markdown code fence, trimmed.
///
/// ```
/// use pim_openai::strip_reasoning_preamble;
/// assert_eq!(strip_reasoning_preamble("<think>hm</think>\n{\"a\":1}"), "{\"a\":1}");
/// assert_eq!(strip_reasoning_preamble("```json\n{\"a\":1}\n```"), "{\"a\":1}");
/// assert_eq!(strip_reasoning_preamble(" {} "), "{}");
/// ```
pub fn strip_reasoning_preamble(text: &str) -> &str {
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix("<think>") {
        // An unclosed think block holds no answer.
        s = match rest.find("</think>") {
            Some(end) => rest[end + "</think>".len()..].trim(),
            None => "",
        };
    }
    if let Some(rest) = s.strip_prefix("```") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        if let Some(inner) = rest.trim_end().strip_suffix("```") {
            s = inner.trim();
        }
    }
    s
}

/// Checks `value` against a strict structured-output `schema`: `type` (one or a list), `enum`,
/// `properties` with every `required` one present, `additionalProperties: false`, `items`, and
/// `anyOf`. A keyword outside that set is ignored, as strict mode does not allow it anyway.
///
/// # Errors
/// What is wrong and where, e.g. `$.verdict: "maybe" is not one of the allowed values`.
///
/// ```
/// use serde_json::json;
/// let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}},
///                     "required": ["ok"], "additionalProperties": false});
/// assert!(pim_openai::validate(&json!({"ok": true}), &schema).is_ok());
/// assert!(pim_openai::validate(&json!({"ok": 1}), &schema).is_err());
/// assert!(pim_openai::validate(&json!({"ok": true, "x": 1}), &schema).is_err());
/// ```
pub fn validate(value: &Value, schema: &Value) -> Result<(), String> {
    check(value, schema, "$", 0)
}

fn check(value: &Value, schema: &Value, at: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{at}: nested too deeply"));
    }
    let Some(schema) = schema.as_object() else {
        return Ok(());
    };
    if let Some(Value::Array(options)) = schema.get("anyOf") {
        let fits = options
            .iter()
            .any(|o| check(value, o, at, depth + 1).is_ok());
        if !fits {
            return Err(format!("{at}: matches none of the allowed shapes"));
        }
    }
    if let Some(ty) = schema.get("type") {
        let allowed: Vec<&str> = match ty {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| has_type(value, t)) {
            return Err(format!(
                "{at}: expected {}, found {}",
                allowed.join(" or "),
                type_name(value)
            ));
        }
    }
    if let Some(Value::Array(choices)) = schema.get("enum")
        && !choices.contains(value)
    {
        return Err(format!(
            "{at}: {} is not one of the allowed values",
            short(value)
        ));
    }
    if let Value::Object(map) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    return Err(format!("{at}: the property {name:?} is missing"));
                }
            }
        }
        for (name, item) in map {
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => check(item, sub, &format!("{at}.{}", short_name(name)), depth + 1)?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!(
                        "{at}: the property {:?} is not in the schema",
                        short_name(name)
                    ));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(item, item_schema, &format!("{at}[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value as shown in an error: short, one line, no control characters.
fn short(value: &Value) -> String {
    pim_domain::text::log_field(&value.to_string(), 60)
}

fn short_name(name: &str) -> String {
    pim_domain::text::log_field(name, 40)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "verdict": {"type": "string", "enum": ["aligned", "unknown"]},
            "confidence": {"type": "number"},
            "note": {"type": ["string", "null"]},
            "ops": {"type": "array", "items": {"type": "string"}}},
            "required": ["verdict", "confidence", "note", "ops"], "additionalProperties": false})
    }

    #[test]
    fn strict_schema_checks_say_where() {
        let ok = json!({"verdict": "aligned", "confidence": 0.5, "note": null, "ops": ["a"]});
        assert_eq!(validate(&ok, &schema()), Ok(()));
        for (bad, says) in [
            (json!([]), "$: expected object, found array"),
            (
                json!({"verdict": "aligned", "confidence": 1, "note": null}),
                "\"ops\" is missing",
            ),
            (
                json!({"verdict": "maybe", "confidence": 1, "note": null, "ops": []}),
                "$.verdict: \"maybe\" is not one of the allowed values",
            ),
            (
                json!({"verdict": "aligned", "confidence": "high", "note": null, "ops": []}),
                "$.confidence: expected number, found string",
            ),
            (
                json!({"verdict": "aligned", "confidence": 1, "note": null, "ops": [1]}),
                "$.ops[0]: expected string, found number",
            ),
            (
                json!({"verdict": "aligned", "confidence": 1, "note": null, "ops": [], "x": 1}),
                "\"x\" is not in the schema",
            ),
        ] {
            let err = validate(&bad, &schema()).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn preambles_and_fences_are_stripped_but_an_open_think_is_empty() {
        assert_eq!(
            strip_reasoning_preamble(
                "<think>\nlong thoughts {\"no\":1}\n</think>\n\n```json\n{\"a\":1}\n```"
            ),
            "{\"a\":1}"
        );
        assert_eq!(
            strip_reasoning_preamble("<think>never closed {\"a\":1}"),
            ""
        );
        assert_eq!(strip_reasoning_preamble("```\n[1]\n```"), "[1]");
        assert_eq!(strip_reasoning_preamble("text {\"a\":1}"), "text {\"a\":1}");
    }

    #[test]
    fn hostile_nesting_is_refused_not_overflowed() {
        let mut schema = json!({"type": "array"});
        let mut value = json!([]);
        for _ in 0..40 {
            schema = json!({"type": "array", "items": schema});
            value = json!([value]);
        }
        assert!(
            validate(&value, &schema)
                .unwrap_err()
                .contains("nested too deeply")
        );
    }
}
