//! The chat-model port: the request and answer types every adapter speaks, the error
//! taxonomy (what a retry can fix), and the [`ChatModel`] trait itself.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ModelProfile;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// Fixed instructions.
    System,
    /// The question, and data blocks.
    User,
    /// An earlier answer of the model.
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: MessageRole,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::Assistant,
            content: content.into(),
        }
    }
}

/// The shape the answer must take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that follows a strict schema (structured output).
    JsonSchema {
        /// The schema's name.
        name: String,
        /// The JSON Schema.
        schema: serde_json::Value,
        /// Whether the service must follow the schema exactly.
        strict: bool,
    },
}

/// One chat completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature for models that take one; the assessor uses 0. Adapters never send
    /// it to reasoning models ([`ModelFamily::Reasoning`]), which reject it.
    pub temperature: f32,
    /// Cap on the visible answer's tokens. Adapters send it as `max_tokens` or
    /// `max_completion_tokens` as the API version and model accept; for reasoning models they
    /// send at least [`ModelParameters::max_output_tokens`], since hidden reasoning counts too.
    pub max_tokens: Option<u32>,
    /// The answer's required shape.
    pub response_format: Option<ResponseFormat>,
}

impl ChatRequest {
    /// A request at temperature 0 with no token cap and free-text answers.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            temperature: 0.0,
            max_tokens: None,
            response_format: None,
        }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A complete answer.
    Stop,
    /// The token cap was hit; the answer may be cut off.
    Length,
    /// The answer was withheld by a content filter.
    ContentFilter,
    /// The model asked to call tools.
    ToolCalls,
    /// Anything else the service reported.
    Other(String),
}

/// Tokens used by one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Answer tokens.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// One chat completion answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The answer's text (absent when filtered).
    pub content: Option<String>,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Token usage.
    pub usage: Usage,
}

/// Why a chat completion failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service throttled the call (HTTP 429); retry after the given delay.
    #[error("rate limited by the model service{}", retry_hint(.retry_after))]
    RateLimited {
        /// The delay the service asked for, if it said.
        retry_after: Option<Duration>,
    },
    /// The service asked to wait longer than what was left of this call's retry budget, so the
    /// call failed at once instead of sleeping past it.
    #[error(
        "the model service asked to wait {} ms before a retry, more than the {} ms left of this call's retry budget: {source}",
        asked.as_millis(),
        remaining.as_millis()
    )]
    ServerWaitTooLong {
        /// The wait the service asked for.
        asked: Duration,
        /// What was left of the retry budget.
        remaining: Duration,
        /// The answer that asked for the wait.
        #[source]
        source: Box<Error>,
    },
    /// The prompt was blocked by the service's content filter (HTTP 400 `content_filter`).
    #[error("the prompt was blocked by the content filter: {message}")]
    ContentFilter {
        /// The service's message.
        message: String,
    },
    /// The call did not complete in time.
    #[error("the model call timed out after {0:?}")]
    Timeout(Duration),
    /// The service answered with an error status.
    #[error("the model service answered HTTP {status}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The innermost error message from the body.
        message: String,
    },
    /// The answer could not be read.
    #[error("the model's answer could not be read: {0}")]
    InvalidResponse(String),
    /// The connection failed.
    #[error("could not reach the model service")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An adapter's settings are unusable (endpoint, deployment, api version, key shape).
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// No token could be obtained from the Entra credential.
    #[error("could not authenticate to the model service: {0}")]
    Credential(String),
    /// The request could not be encoded.
    #[error("the model request could not be encoded: {0}")]
    InvalidRequest(String),
    /// A scripted model ran out of answers.
    #[error("the scripted model has no answer left for request {0}")]
    ScriptExhausted(usize),
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(" (retry after {} ms)", d.as_millis()))
        .unwrap_or_default()
}

impl Error {
    /// Whether repeating the same call later may succeed (throttling, timeouts, 5xx, transport).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Timeout(_) | Self::Transport(_) => true,
            Self::Http { status, .. } => *status >= 500,
            Self::ServerWaitTooLong { source, .. } => source.is_retryable(),
            Self::ContentFilter { .. }
            | Self::InvalidResponse(_)
            | Self::ScriptExhausted(_)
            | Self::Config(_)
            | Self::Credential(_)
            | Self::InvalidRequest(_) => false,
        }
    }
}

/// A chat model: one completion per call.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    /// A short description for logs and reports, e.g. `azure-openai gpt-4o (deployment pim)`.
    /// Never includes a key or token.
    fn describe(&self) -> String;

    /// Sends one request and returns the answer.
    ///
    /// # Errors
    /// [`Error::RateLimited`], [`Error::Timeout`], [`Error::Transport`] and 5xx
    /// [`Error::Http`] are retryable ([`Error::is_retryable`]); a content-filter block, a 4xx or an
    /// unreadable answer is not.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, Error>;

    /// What the adapter knows about the model behind it so far: its family and where that came
    /// from, the model name the service reported, whether strict structured output works, and
    /// the parameters it had to adjust. Filled in as calls are made; `--check` reports it.
    fn profile(&self) -> ModelProfile {
        ModelProfile::default()
    }
}
