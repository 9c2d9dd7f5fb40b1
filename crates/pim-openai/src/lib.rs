//! The chat-model port of the PIM Activity Audit Agent.
//!
//! [`ChatModel`] is what the model-backed assessor and the chat agent talk to: one chat
//! completion per call, with the wire details (Azure OpenAI's deployment and `v1` URL styles,
//! OpenAI-compatible endpoints, authentication, retries) left to adapters. [`ScriptedChatModel`]
//! answers from a queue and records every request, for tests and offline demos.
//!
//! With the `azure` feature (on by default) the crate also has the HTTP adapters:
//! [`AzureOpenAi`] (Azure OpenAI and Azure AI Foundry: the `v1` path by default, the deployment
//! path with a dated [`ApiVersion`], Foundry project endpoints with [`AI_FOUNDRY_SCOPE`]; an
//! [`OpenAiAuth`] api key or Entra token) and [`OpenAiCompatible`] (self-hosted servers that
//! speak OpenAI's chat-completions API). Both retry throttling, 5xx and timeouts per
//! `pim_domain::retry::RetryPolicy` through `pim-http`'s shared driver (a server wait longer
//! than the call's remaining budget is [`Error::ServerWaitTooLong`] at once), and never show a
//! key or token in `Debug`, errors or logs.
//!
//! Both send the parameters the model family takes ([`ModelFamily`], [`ModelParameters`];
//! reference §10): reasoning models get `max_completion_tokens` with room for hidden reasoning,
//! `reasoning_effort` and no `temperature`; others the request's temperature and cap. The family
//! is configured, or inferred from the model name the service returns, else from the deployment
//! name. A 400 `unsupported_parameter` / `unsupported_value` / `unknown_parameter` adjusts the
//! named parameter for the rest of the run and retries once; a rejected strict `json_schema`
//! falls back to `json_object` with the answer checked against the schema here ([`validate`])
//! and one repair. [`ChatModel::profile`] says what was learned.
//!
//! ```
//! use pim_openai::{ChatModel, ChatRequest, ChatMessage, ScriptedChatModel};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pim_openai::Error> {
//! let model = ScriptedChatModel::new(["{\"verdict\":\"aligned\"}"]);
//! let reply = model
//!     .complete(&ChatRequest::new(vec![ChatMessage::user("judge this")]))
//!     .await?;
//! assert_eq!(reply.content.as_deref(), Some("{\"verdict\":\"aligned\"}"));
//! assert_eq!(model.requests().len(), 1);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "azure")]
mod azure; // Azure OpenAI and Azure AI Foundry: endpoints, API versions, scopes, auth
#[cfg(feature = "azure")]
mod compatible; // any OpenAI-compatible endpoint (self-hosted models)
mod family; // request parameters per model family, and what `--check` reports
mod port; // the `ChatModel` trait, its request/answer types and errors
#[cfg(feature = "azure")]
mod schema; // local JSON-schema validation for the `json_object` fallback
mod scripted; // `ScriptedChatModel`: canned answers for tests and the demo
#[cfg(feature = "azure")]
mod wire; // the chat-completions wire format and error bodies

#[cfg(feature = "azure")]
pub use azure::{
    AI_FOUNDRY_SCOPE, AI_FOUNDRY_SCOPE_CHINA, AI_FOUNDRY_SCOPE_US_GOVERNMENT, ApiVersion,
    AzureOpenAi, AzureOpenAiOptions, COGNITIVE_SERVICES_SCOPE, COGNITIVE_SERVICES_SCOPE_CHINA,
    COGNITIVE_SERVICES_SCOPE_US_GOVERNMENT, DEFAULT_API_VERSION, LATEST_DATED_API_VERSION,
    OpenAiAuth, entra_scope_for,
};
#[cfg(feature = "azure")]
pub use compatible::{OpenAiCompatible, OpenAiCompatibleOptions};
pub use family::{
    DEFAULT_MAX_OUTPUT_TOKENS, ModelFamily, ModelParameters, ModelProfile, ReasoningEffort,
    StructuredOutput,
};
#[cfg(any(test, feature = "mock"))]
pub use port::MockChatModel;
pub use port::{
    ChatMessage, ChatModel, ChatRequest, ChatResponse, Error, FinishReason, MessageRole,
    ResponseFormat, Usage,
};
#[cfg(feature = "azure")]
pub use schema::{strip_reasoning_preamble, validate};
pub use scripted::ScriptedChatModel;
