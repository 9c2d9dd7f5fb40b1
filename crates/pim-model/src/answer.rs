//! The structured-output schema and the reading of the model's answer.

use std::collections::HashMap;

use pim_domain::{OperationRef, Verdict, text};
use pim_rules::Case;
use serde::Deserialize;
use serde_json::json;

use crate::prompt::{group_activities, group_key};

/// The longest rationale kept from a model, in characters.
pub const MAX_RATIONALE_CHARS: usize = 1_000;
/// The most operations kept from each of the model's lists.
const MAX_LISTED: usize = 100;
/// The longest operation text kept from a model, in characters.
const MAX_LISTED_CHARS: usize = 300;

/// The JSON Schema the answer must follow, for `response_format` `json_schema` with
/// `strict: true`: every property required, no other properties.
///
/// Strict structured output does not support `minimum`/`maximum`, so the confidence range is in
/// the description and checked by [`parse_answer`].
///
/// ```
/// let schema = pim_model::assessment_schema();
/// assert_eq!(schema["additionalProperties"], false);
/// assert_eq!(schema["required"].as_array().unwrap().len(), 5);
/// ```
pub fn assessment_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "verdict": {
                "type": "string",
                "enum": ["aligned", "partial", "not_aligned", "no_activity", "unknown"],
                "description": "Whether the activity fits the justification."
            },
            "confidence": {
                "type": "number",
                "description": "Confidence in the verdict, from 0 to 1."
            },
            "rationale": {
                "type": "string",
                "description": "At most three plain sentences."
            },
            "explained_operations": {
                "type": "array",
                "items": { "type": "string" },
                "description": "Activity groups the justification explains, as <operation> on <resource>."
            },
            "unexplained_operations": {
                "type": "array",
                "items": { "type": "string" },
                "description": "Activity groups the justification does not explain, as <operation> on <resource>."
            }
        },
        "required": [
            "verdict",
            "confidence",
            "rationale",
            "explained_operations",
            "unexplained_operations"
        ],
        "additionalProperties": false
    })
}

/// The model's answer, checked and cleaned.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAnswer {
    /// The verdict.
    pub verdict: Verdict,
    /// The confidence, within 0..=1.
    pub confidence: f64,
    /// The rationale: untrusted text, control and invisible characters removed, at most
    /// [`MAX_RATIONALE_CHARS`] characters.
    pub rationale: String,
    /// The operations the model says the justification explains, matched to the case's groups
    /// (count and first time from the case); a name that matches no group is kept with count 0
    /// and the window's start as its time.
    pub explained: Vec<OperationRef>,
    /// The operations the model says it does not explain, matched the same way.
    pub unexplained: Vec<OperationRef>,
}

/// Why a model's answer could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The answer was empty.
    #[error("the answer is empty")]
    Empty,
    /// The answer is not JSON.
    #[error("the answer is not json: {0}")]
    NotJson(String),
    /// The answer is JSON but not the schema's shape (missing or extra field, wrong type).
    #[error("the answer does not match the schema: {0}")]
    Shape(String),
    /// The verdict is not one of the schema's.
    #[error("unknown verdict {0:?}")]
    UnknownVerdict(String),
    /// The confidence is outside 0..=1.
    #[error("confidence {0} is outside 0..1")]
    ConfidenceOutOfRange(f64),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    verdict: String,
    confidence: f64,
    rationale: String,
    explained_operations: Vec<String>,
    unexplained_operations: Vec<String>,
}

/// Reads a model's answer against [`assessment_schema`] and matches its operation lists back to
/// the case's activity groups.
///
/// A surrounding Markdown code fence is tolerated (some OpenAI-compatible servers add one even
/// in JSON mode); anything else that is not exactly the schema is an error.
///
/// # Errors
///
/// A [`ParseError`] saying what was wrong; its message never quotes more than a short, cleaned
/// piece of the answer.
pub fn parse_answer(text: &str, case: &Case<'_>) -> Result<ModelAnswer, ParseError> {
    let body = strip_fence(text.trim());
    if body.is_empty() {
        return Err(ParseError::Empty);
    }
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ParseError::NotJson(text::log_field(&e.to_string(), 200)))?;
    if !value.is_object() {
        return Err(ParseError::Shape("the answer is not a json object".into()));
    }
    let raw: Raw = serde_json::from_value(value)
        .map_err(|e| ParseError::Shape(text::log_field(&e.to_string(), 200)))?;
    let verdict: Verdict = raw
        .verdict
        .parse()
        .map_err(|_| ParseError::UnknownVerdict(text::log_field(&raw.verdict, 40)))?;
    if !(raw.confidence.is_finite() && (0.0..=1.0).contains(&raw.confidence)) {
        return Err(ParseError::ConfidenceOutOfRange(raw.confidence));
    }
    let matcher = Matcher::new(case);
    Ok(ModelAnswer {
        verdict,
        confidence: raw.confidence,
        rationale: text::log_field(&raw.rationale, MAX_RATIONALE_CHARS),
        explained: matcher.resolve(&raw.explained_operations),
        unexplained: matcher.resolve(&raw.unexplained_operations),
    })
}

fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// Finds the case's groups from the names a model lists.
struct Matcher {
    refs: Vec<OperationRef>,
    by_full: HashMap<String, usize>,
    by_operation: HashMap<String, Vec<usize>>,
    fallback_time: time::OffsetDateTime,
}

impl Matcher {
    fn new(case: &Case<'_>) -> Self {
        let groups = group_activities(case.activities);
        let mut by_full = HashMap::new();
        let mut by_operation: HashMap<String, Vec<usize>> = HashMap::new();
        let mut refs = Vec::with_capacity(groups.len());
        for (i, g) in groups.into_iter().enumerate() {
            let (op, res) = (name_key(&g.key.0), name_key(&g.key.1));
            if res.is_empty() {
                by_full.entry(op.clone()).or_insert(i);
            } else {
                by_full.entry(format!("{op} on {res}")).or_insert(i);
            }
            by_operation.entry(op).or_default().push(i);
            refs.push(OperationRef {
                operation: g.operation.to_owned(),
                resource: g.resource,
                count: g.count,
                first: g.first,
            });
        }
        Self {
            refs,
            by_full,
            by_operation,
            fallback_time: case.activation.window.start,
        }
    }

    fn resolve(&self, names: &[String]) -> Vec<OperationRef> {
        let mut out: Vec<OperationRef> = Vec::new();
        let mut push = |r: OperationRef| {
            if !out.contains(&r) {
                out.push(r);
            }
        };
        for name in names.iter().take(MAX_LISTED) {
            let key = name_key(name);
            if key.is_empty() {
                continue;
            }
            if let Some(&i) = self.by_full.get(&key) {
                push(self.refs[i].clone());
            } else if let Some(indices) = self.by_operation.get(&key) {
                for &i in indices {
                    push(self.refs[i].clone());
                }
            } else {
                push(OperationRef {
                    operation: text::log_field(name, MAX_LISTED_CHARS),
                    resource: None,
                    count: 0,
                    first: self.fallback_time,
                });
            }
        }
        out
    }
}

/// The form names are compared in: quotes and backticks dropped (the prompt shows names as
/// JSON strings and models copy them either way), then [`group_key`]'s normalisation.
fn name_key(text: &str) -> String {
    let unquoted: String = text.chars().filter(|c| !matches!(c, '"' | '`')).collect();
    group_key(&unquoted, None).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, RESTART};

    fn answer(verdict: &str, confidence: &str) -> String {
        format!(
            r#"{{"verdict":"{verdict}","confidence":{confidence},"rationale":"ok","explained_operations":[],"unexplained_operations":[]}}"#
        )
    }

    #[test]
    fn schema_is_strict_and_complete() {
        let schema = assessment_schema();
        let props = schema["properties"].as_object().unwrap();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(props.len(), required.len());
        for key in props.keys() {
            assert!(required.contains(&key.as_str()), "{key}");
        }
        assert_eq!(schema["additionalProperties"], false);
        let verdicts: Vec<&str> = schema["properties"]["verdict"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(verdicts, ours);
    }

    #[test]
    fn reads_a_valid_answer_and_matches_operations() {
        let f = testing::restart();
        let case = f.case();
        let text = format!(
            r#"{{"verdict":"aligned","confidence":0.85,"rationale":"Restarts of web01.\u0007\u202e","explained_operations":["\"{RESTART}\" on \"{}\"", "Microsoft.Compute/virtualMachines/READ"],"unexplained_operations":["something the model made up"]}}"#,
            testing::vm("web01")
        );
        let a = parse_answer(&text, &case).unwrap();
        assert_eq!(a.verdict, Verdict::Aligned);
        assert_eq!(a.confidence, 0.85);
        assert_eq!(a.rationale, "Restarts of web01.");
        assert_eq!(a.explained.len(), 2);
        assert_eq!(a.explained[0].operation, RESTART);
        assert_eq!(a.explained[0].count, 2);
        assert_eq!(a.explained[1].count, 1);
        assert_eq!(a.unexplained.len(), 1);
        assert_eq!(a.unexplained[0].count, 0);
        assert_eq!(a.unexplained[0].operation, "something the model made up");
        assert_eq!(a.unexplained[0].first, f.activation.window.start);
    }

    #[test]
    fn rejects_what_the_schema_does_not_allow() {
        let f = testing::restart();
        let case = f.case();
        let parse = |t: &str| parse_answer(t, &case);
        assert_eq!(parse("  "), Err(ParseError::Empty));
        assert!(matches!(parse("{not json"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse("[1,2]"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse(r#"{"verdict":"aligned","confidence":0.5}"#),
            Err(ParseError::Shape(m)) if m.contains("missing field")
        ));
        assert!(matches!(
            parse(&answer("approved", "0.5")),
            Err(ParseError::UnknownVerdict(v)) if v == "approved"
        ));
        assert_eq!(
            parse(&answer("aligned", "1.5")),
            Err(ParseError::ConfidenceOutOfRange(1.5))
        );
        assert!(matches!(
            parse(&answer("aligned", "-0.1")),
            Err(ParseError::ConfidenceOutOfRange(_))
        ));
        assert!(matches!(
            parse(&answer("aligned", "\"0.5\"")),
            Err(ParseError::Shape(_))
        ));
        let extra = answer("aligned", "0.5").replace('}', r#","risk":"low"}"#);
        assert!(matches!(parse(&extra), Err(ParseError::Shape(m)) if m.contains("unknown field")));
        // A fenced answer and integer confidence are fine.
        let fenced = format!("```json\n{}\n```", answer("not_aligned", "1"));
        assert_eq!(parse(&fenced).unwrap().verdict, Verdict::NotAligned);
    }

    #[test]
    fn rationale_is_capped_and_cleaned() {
        let f = testing::restart();
        let case = f.case();
        let long = "x\u{200b}\n\ty ".repeat(2_000);
        let text = format!(
            r#"{{"verdict":"partial","confidence":0,"rationale":{},"explained_operations":[],"unexplained_operations":[]}}"#,
            serde_json::to_string(&long).unwrap()
        );
        let a = parse_answer(&text, &case).unwrap();
        assert_eq!(a.rationale.chars().count(), MAX_RATIONALE_CHARS);
        assert!(a.rationale.starts_with("x y x y"));
        assert!(a.rationale.ends_with('…'));
        assert!(
            !a.rationale
                .chars()
                .any(|c| c.is_control() || c == '\u{200b}')
        );
    }

    #[test]
    fn long_lists_are_bounded() {
        let f = testing::bulk(500);
        let case = f.case();
        let names: Vec<String> = (0..5_000).map(|i| format!("made up {i}")).collect();
        let text = serde_json::json!({
            "verdict": "partial", "confidence": 0.5, "rationale": "",
            "explained_operations": names, "unexplained_operations": [RESTART]
        })
        .to_string();
        let a = parse_answer(&text, &case).unwrap();
        assert_eq!(a.explained.len(), MAX_LISTED);
        // An operation name alone stands for all its groups.
        assert!(a.unexplained.len() > 1);
        assert!(
            a.unexplained
                .iter()
                .all(|r| r.operation == RESTART && r.count > 0)
        );
    }
}
