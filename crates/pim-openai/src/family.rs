//! Model families and the request parameters that fit each (reference §10).
//!
//! Reasoning models (`o1`, `o3`, `o4-mini`, the `gpt-5` family) reject `temperature`, `top_p`
//! and `max_tokens`, take `max_completion_tokens` (which also counts their hidden reasoning) and
//! `reasoning_effort`. Other models (`gpt-4o`, `gpt-4.1`, Foundry's non-OpenAI models) take
//! `temperature` and either token-cap field, depending on the API version.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Default cap on a reasoning model's output, hidden reasoning included
/// ([`ModelParameters::max_output_tokens`]). A small cap can be spent entirely on reasoning and
/// come back as `finish_reason: "length"` with empty content (reference §10.1), so it is
/// thousands, not hundreds.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4_000;

/// Which request parameters a model takes.
///
/// ```
/// use pim_openai::ModelFamily;
/// assert_eq!(ModelFamily::infer("gpt-5-mini"), Some(ModelFamily::Reasoning));
/// assert_eq!(ModelFamily::infer("o4-mini-2025-04-16"), Some(ModelFamily::Reasoning));
/// assert_eq!(ModelFamily::infer("gpt-4.1"), Some(ModelFamily::Standard));
/// assert_eq!(ModelFamily::infer("pim-prod"), None);
/// assert_eq!("reasoning".parse::<ModelFamily>().unwrap(), ModelFamily::Reasoning);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFamily {
    /// `gpt-4o`, `gpt-4.1`, `gpt-5-chat`, and non-OpenAI models: `temperature` 0 and a token cap.
    Standard,
    /// `o1`, `o3`, `o4-mini` and the `gpt-5` family: `max_completion_tokens` with room for hidden
    /// reasoning, `reasoning_effort`, and no `temperature` or `top_p`.
    Reasoning,
}

/// Name prefixes of non-OpenAI models offered by Azure AI Foundry, which take the standard
/// parameters.
const STANDARD_PREFIXES: &[&str] = &[
    "llama",
    "meta",
    "mistral",
    "mixtral",
    "ministral",
    "codestral",
    "phi",
    "deepseek",
    "cohere",
    "command",
    "jamba",
    "qwen",
    "gemma",
];

impl ModelFamily {
    /// The family a model or deployment name suggests, if it suggests one: `o1`, `o3`, `o4`
    /// (alone or as in `o4-mini`) and `gpt-5*` (except `gpt-5-chat`) are reasoning models;
    /// `gpt-4*`, `gpt-35*` and the usual non-OpenAI names are standard. A name like `pim-prod`
    /// says nothing.
    pub fn infer(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        // A Foundry model id may be a path (`azureml://registries/…/models/gpt-5/versions/1`).
        let tokens: Vec<&str> = lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .filter(|t| !t.is_empty())
            .collect();
        for (i, token) in tokens.iter().enumerate() {
            let next = tokens.get(i + 1).copied().unwrap_or_default();
            let after = tokens.get(i + 2).copied().unwrap_or_default();
            if matches!(*token, "o1" | "o3" | "o4")
                || ["o1", "o3", "o4"].iter().any(|o| {
                    token
                        .strip_prefix(o)
                        .is_some_and(|rest| matches!(rest, "mini" | "pro" | "preview"))
                })
            {
                return Some(Self::Reasoning);
            }
            let (major, rest) = match *token {
                "gpt" => (next, after),
                t => match t.strip_prefix("gpt") {
                    Some(m) if !m.is_empty() => (m, next),
                    _ => ("", ""),
                },
            };
            if major.starts_with('5') {
                return Some(if rest == "chat" {
                    Self::Standard
                } else {
                    Self::Reasoning
                });
            }
            if major.starts_with('4') || major.starts_with("35") || major.starts_with("3.5") {
                return Some(Self::Standard);
            }
        }
        let first = tokens.first().copied().unwrap_or_default();
        STANDARD_PREFIXES
            .iter()
            .any(|p| first.starts_with(p))
            .then_some(Self::Standard)
    }

    /// `standard` or `reasoning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Reasoning => "reasoning",
        }
    }
}

impl fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelFamily {
    type Err = Error;

    /// `standard` or `reasoning`, any case (`auto` is the absence of a family: see
    /// [`ModelParameters::family`]).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standard" => Ok(Self::Standard),
            "reasoning" => Ok(Self::Reasoning),
            _ => Err(Error::Config(format!(
                "the model family {:?} is neither `auto`, `standard` nor `reasoning`",
                s.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// How hard a reasoning model thinks before it answers (`reasoning_effort`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// No reasoning (`gpt-5.1` and later only).
    None,
    /// Very little (`gpt-5` family only).
    Minimal,
    /// Little: enough to judge one activation, and cheap. The default.
    #[default]
    Low,
    /// The models' own default.
    Medium,
    /// The most on most models.
    High,
}

impl ReasoningEffort {
    /// The value sent as `reasoning_effort`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl fmt::Display for ReasoningEffort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReasoningEffort {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "minimal" => Ok(Self::Minimal),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(Error::Config(format!(
                "the reasoning effort {:?} is not one of none, minimal, low, medium, high",
                s.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// The request parameters an adapter chooses per model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelParameters {
    /// The family, or `None` to infer it (`auto`): from the model name the service returns,
    /// else from the deployment or model name; a name that says nothing gets the standard
    /// parameters until the service rejects one.
    pub family: Option<ModelFamily>,
    /// Sent as `reasoning_effort` to reasoning models. Default [`ReasoningEffort::Low`].
    pub reasoning_effort: ReasoningEffort,
    /// Sent as `max_completion_tokens` to reasoning models (at least; a request may ask for
    /// more). Default [`DEFAULT_MAX_OUTPUT_TOKENS`].
    pub max_output_tokens: u32,
}

impl Default for ModelParameters {
    fn default() -> Self {
        Self {
            family: None,
            reasoning_effort: ReasoningEffort::Low,
            max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
        }
    }
}

/// Whether strict structured output (`response_format` `json_schema`) works on a deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// Not tried yet.
    #[default]
    Unknown,
    /// The service accepted a strict `json_schema`.
    JsonSchema,
    /// The service rejected `json_schema`; the adapter asks for `json_object`, validates every
    /// answer against the schema itself, and allows one repair.
    JsonObjectFallback,
}

/// What an adapter has learned about its model ([`ChatModel::profile`](crate::ChatModel::profile)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelProfile {
    /// The family whose parameters are sent; `None` when nothing says which (standard
    /// parameters are sent).
    pub family: Option<ModelFamily>,
    /// Where the family came from, e.g. `configured` or `the model name the service returned`.
    pub family_source: Option<String>,
    /// The model name the service last reported (e.g. `gpt-5-mini-2025-08-07`).
    pub service_model: Option<String>,
    /// Whether strict structured output works.
    pub structured_output: StructuredOutput,
    /// Parameters the service rejected and how they were adjusted, in order.
    pub adjustments: Vec<String>,
    /// The output cap sent to a reasoning model ([`ModelParameters::max_output_tokens`]), when
    /// the adapter sends one.
    pub max_output_tokens: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_families() {
        for name in [
            "o1",
            "o3-mini",
            "o4-mini",
            "o3",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano-2025-08-07",
            "gpt-5.1",
            "gpt-5.2-codex",
            "GPT5-prod",
            "pim-o4-mini",
            "azureml://registries/azure-openai/models/gpt-5/versions/1",
        ] {
            assert_eq!(
                ModelFamily::infer(name),
                Some(ModelFamily::Reasoning),
                "{name}"
            );
        }
        for name in [
            "gpt-4o",
            "gpt-4o-2024-11-20",
            "gpt-4.1-mini",
            "gpt-35-turbo",
            "gpt-5-chat",
            "Llama-3.3-70B-Instruct",
            "DeepSeek-V3-0324",
            "Mistral-Large-2411",
            "Phi-4",
        ] {
            assert_eq!(
                ModelFamily::infer(name),
                Some(ModelFamily::Standard),
                "{name}"
            );
        }
        for name in ["pim-prod", "assessor", "", "o2", "solo1"] {
            assert_eq!(ModelFamily::infer(name), None, "{name}");
        }
    }

    #[test]
    fn settings_parse() {
        assert_eq!(
            " Standard ".parse::<ModelFamily>().unwrap(),
            ModelFamily::Standard
        );
        assert!("auto".parse::<ModelFamily>().is_err());
        assert_eq!(
            "MINIMAL".parse::<ReasoningEffort>().unwrap(),
            ReasoningEffort::Minimal
        );
        assert!("extreme".parse::<ReasoningEffort>().is_err());
        assert_eq!(ReasoningEffort::default().as_str(), "low");
        assert_eq!(ModelParameters::default().max_output_tokens, 4_000);
    }
}
