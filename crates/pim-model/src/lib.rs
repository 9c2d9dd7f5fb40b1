//! Model-backed assessment for the PIM Activity Audit Agent: versioned prompts, the
//! structured-output schema, answer parsing, held in check by the rules.
//!
//! [`ModelAssessor`] implements [`pim_rules::Assessor`] on top of any
//! [`pim_openai::ChatModel`]. For each case it
//!
//! 1. builds the [`PROMPT_VERSION`] prompt with [`build_messages`]: fixed instructions
//!    ([`SYSTEM_PROMPT`]), then one data block whose boundary is derived from its content, in which
//!    every text from the logs (above all the justification, written by the person being
//!    audited) is an escaped JSON string, and the activity is summarised in groups cut to a hard
//!    budget of o200k_base tokens, counted with a real tokenizer ([`count_tokens`],
//!    [`ModelAssessorOptions::max_prompt_tokens`]); three or more like groups of one operation
//!    share a line;
//! 2. asks for an answer in the strict [`assessment_schema`] at temperature 0, retrying once
//!    with half the activity summary when the answer is cut off, and once with a note when it does
//!    not follow the schema;
//! 3. reads it with [`parse_answer`] into a [`ModelAnswer`], matching the operations the model
//!    names back to the case, and returns an [`Assessment`](pim_domain::Assessment) with
//!    `assessor = model` that keeps the rules' risk and flags.
//!
//! The caller then combines it with the rules' assessment through
//! [`pim_rules::guardrails::combine`], which keeps the rules' risk as a floor and their flags
//! (`prompt_injection_suspected` above all). A failure is an [`pim_rules::Error`]: a content
//! filter block is [`Refused`](pim_rules::Error::Refused) with a reason saying so, an unusable
//! answer [`InvalidAnswer`](pim_rules::Error::InvalidAnswer); the caller keeps the rules'
//! assessment.
//!
//! ```
//! use std::sync::Arc;
//!
//! use pim_model::{ModelAssessor, ModelAssessorOptions, UsageTotals, assessment_schema};
//! use pim_openai::ScriptedChatModel;
//! use pim_rules::Assessor;
//!
//! let model = ScriptedChatModel::default();
//! let assessor = ModelAssessor::new(Arc::new(model), ModelAssessorOptions::default());
//! assert_eq!(assessor.name(), "model");
//! assert_eq!(assessor.options().max_prompt_tokens, 2_300);
//! assert_eq!(assessor.usage(), UsageTotals::default());
//! assert_eq!(assessment_schema()["additionalProperties"], false);
//! ```

mod answer;
mod assessor;
mod prompt;
#[cfg(test)]
mod testing;

pub use answer::{MAX_RATIONALE_CHARS, ModelAnswer, ParseError, assessment_schema, parse_answer};
pub use assessor::{ModelAssessor, ModelAssessorOptions, UsageTotals};
pub use prompt::{
    DEFAULT_MAX_PROMPT_TOKENS, PROMPT_VERSION, SYSTEM_PROMPT, build_messages, count_prompt_tokens,
    count_tokens,
};
