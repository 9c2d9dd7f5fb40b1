//! The HTTP engine shared by [`AzureOpenAi`](crate::AzureOpenAi) and
//! [`OpenAiCompatible`](crate::OpenAiCompatible): the chat-completions request body, the retry
//! loop, and the reading of answers and error bodies.
//!
//! Both adapters speak the same wire format and differ only in the URL, the auth header, whether
//! the model name goes in the body, and which token-cap field they send, so those are the
//! fields of [`Wire`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use pim_domain::retry::RetryPolicy;
use pim_domain::text;
use pim_http::Stop;
use pim_http::secret::Redacted;
use pim_http::transport::TransportKind;
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::{
    ChatMessage, ChatRequest, ChatResponse, Error, FinishReason, ModelFamily, ModelParameters,
    ModelProfile, ReasoningEffort, ResponseFormat, StructuredOutput, Usage,
};

/// Answers larger than this are refused rather than buffered: a chat completion is a few KiB,
/// so anything this large is a misrouted download or a hostile server.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Service messages are cut to this many characters before they reach an error's text.
const MAX_MESSAGE_CHARS: usize = 400;

/// Parameter recoveries per call: each rejected parameter is adjusted once, and a call rarely
/// needs more than one (the family usually gets the parameters right).
const MAX_RECOVERIES: usize = 4;

/// The `error.code` values that name a request parameter the model does not take
/// (reference §10.2).
const PARAMETER_CODES: &[&str] = &[
    "unsupported_parameter",
    "unsupported_value",
    "unknown_parameter",
];

/// Where the caller's key or token goes.
pub(crate) enum Credentials {
    /// No auth header (a local server without keys).
    None,
    /// `api-key: <key>` (Azure OpenAI keys).
    ApiKeyHeader(Secret),
    /// `Authorization: Bearer <key>` with a fixed key (OpenAI-compatible servers).
    StaticBearer(Secret),
    /// `Authorization: Bearer <token>` with an Entra token for `scope`, fetched per attempt
    /// (the credential caches; fetching per attempt picks up a refreshed token on retries).
    Entra {
        credential: Arc<dyn TokenCredential>,
        scope: &'static str,
    },
}

impl fmt::Debug for Credentials {
    /// Which kind of auth, never the key: the one redaction marker of [`Redacted`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::ApiKeyHeader(_) => f.debug_tuple("ApiKeyHeader").field(&Redacted).finish(),
            Self::StaticBearer(_) => f.debug_tuple("StaticBearer").field(&Redacted).finish(),
            Self::Entra { scope, .. } => f
                .debug_struct("Entra")
                .field("scope", scope)
                .finish_non_exhaustive(),
        }
    }
}

/// Which request field carries [`ChatRequest::max_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TokenCapField {
    /// `max_tokens`: what GA dated Azure versions and most self-hosted servers accept.
    MaxTokens,
    /// `max_completion_tokens`: the newer field, the only one reasoning models accept.
    MaxCompletionTokens,
}

/// One chat-completions endpoint with everything needed to call it.
pub(crate) struct Wire {
    pub(crate) client: reqwest::Client,
    pub(crate) url: Url,
    pub(crate) credentials: Credentials,
    /// Sent as `"model"` in the body when set.
    pub(crate) model: Option<String>,
    /// The token-cap field for standard models (reasoning models always get
    /// `max_completion_tokens` unless the service says otherwise).
    pub(crate) token_cap: TokenCapField,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    /// What to tell the operator on 401 and 403 (already free of secrets).
    pub(crate) advice_401: String,
    pub(crate) advice_403: String,
    /// The family and its parameters, as configured.
    pub(crate) parameters: ModelParameters,
    /// The deployment or model name, to infer the family from in `auto`.
    pub(crate) name: String,
    /// What the service has taught us about this deployment, for the rest of the run.
    pub(crate) learned: Mutex<Learned>,
}

/// What the service has said about a deployment: rejected parameters, the model behind it, and
/// whether strict structured output works. Shared by every call of the run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Learned {
    service_model: Option<String>,
    /// The family the service revealed (its model name, or its rejecting `temperature`).
    family: Option<(ModelFamily, String)>,
    no_temperature: bool,
    no_reasoning_effort: bool,
    effort: Option<ReasoningEffort>,
    token_field: Option<TokenCapField>,
    structured: StructuredOutput,
    adjustments: Vec<String>,
}

/// A 400 that names a parameter the model does not take.
#[derive(Debug, Clone, PartialEq)]
struct Rejection {
    param: String,
    code: String,
}

/// The parameters one attempt sends, derived from the request, the family and what was learned.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    family: Option<ModelFamily>,
    temperature: Option<f32>,
    cap: Option<u32>,
    field: TokenCapField,
    effort: Option<ReasoningEffort>,
    /// The schema to check the answer against locally (json_object fallback).
    local_schema: Option<Value>,
}

/// The request body. Serialised directly (not via `serde_json::Value`) so an `f32`
/// temperature of `0.2` is sent as `0.2`, not `0.20000000298023224`.
#[derive(Serialize)]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireFormat<'a>>,
}

/// `response_format` as the service expects it; [`ResponseFormat`]'s own serde shape keeps the
/// schema fields flat, while the service nests them under `json_schema`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireFormat<'a> {
    Text,
    JsonObject,
    JsonSchema { json_schema: WireSchema<'a> },
}

#[derive(Serialize)]
struct WireSchema<'a> {
    name: &'a str,
    strict: bool,
    schema: &'a Value,
}

impl<'a> From<&'a ResponseFormat> for WireFormat<'a> {
    fn from(format: &'a ResponseFormat) -> Self {
        match format {
            ResponseFormat::Text => Self::Text,
            ResponseFormat::JsonObject => Self::JsonObject,
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => Self::JsonSchema {
                json_schema: WireSchema {
                    name,
                    strict: *strict,
                    schema,
                },
            },
        }
    }
}

/// A failed attempt: the error to return, and what the server asked us to wait.
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
    /// Set when a 400 names a parameter the model does not take.
    rejection: Option<Rejection>,
}

impl std::fmt::Display for Failure {
    // What the retry driver logs: the error, which never holds a key or token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl pim_http::Retryable for Failure {
    fn is_retryable(&self) -> bool {
        self.error.is_retryable()
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
            rejection: None,
        }
    }
}

/// A successful answer with the model name the service reported.
struct Answer {
    response: ChatResponse,
    model: Option<String>,
}

impl Wire {
    fn learned(&self) -> std::sync::MutexGuard<'_, Learned> {
        // The state is a few flags; a panic elsewhere cannot leave it half-written.
        self.learned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The family whose parameters are sent, and where it came from.
    fn family(&self, learned: &Learned) -> (Option<ModelFamily>, Option<String>) {
        if let Some(f) = self.parameters.family {
            return (Some(f), Some("configured (PIM_MODEL_FAMILY)".to_owned()));
        }
        if let Some((f, source)) = &learned.family {
            return (Some(*f), Some(source.clone()));
        }
        match ModelFamily::infer(&self.name) {
            Some(f) => (
                Some(f),
                Some(format!("the name {:?}", text::log_field(&self.name, 80))),
            ),
            None => (None, None),
        }
    }

    /// What the adapter knows about its model so far.
    pub(crate) fn profile(&self) -> ModelProfile {
        let learned = self.learned().clone();
        let (family, family_source) = self.family(&learned);
        ModelProfile {
            family,
            family_source,
            service_model: learned.service_model,
            structured_output: learned.structured,
            adjustments: learned.adjustments,
            max_output_tokens: Some(self.parameters.max_output_tokens),
        }
    }

    fn plan(&self, request: &ChatRequest) -> Plan {
        let learned = self.learned().clone();
        let (family, _) = self.family(&learned);
        let reasoning = family == Some(ModelFamily::Reasoning);
        // A NaN would be sent as `null` and rejected with a confusing 400; leave it out so
        // the service default applies.
        let temperature = (!reasoning && !learned.no_temperature)
            .then_some(request.temperature)
            .filter(|t| t.is_finite());
        // Reasoning tokens count against the cap: give them room (reference §10.1).
        let cap = if reasoning {
            Some(
                request
                    .max_tokens
                    .unwrap_or(0)
                    .max(self.parameters.max_output_tokens),
            )
        } else {
            request.max_tokens
        };
        let field = learned.token_field.unwrap_or(if reasoning {
            TokenCapField::MaxCompletionTokens
        } else {
            self.token_cap
        });
        let effort = (reasoning && !learned.no_reasoning_effort)
            .then(|| learned.effort.unwrap_or(self.parameters.reasoning_effort));
        let local_schema = match &request.response_format {
            Some(ResponseFormat::JsonSchema { schema, .. })
                if learned.structured == StructuredOutput::JsonObjectFallback =>
            {
                Some(schema.clone())
            }
            _ => None,
        };
        Plan {
            family,
            temperature,
            cap,
            field,
            effort,
            local_schema,
        }
    }

    /// Encodes one request body; every attempt of the retry loop sends the same bytes.
    fn encode(
        &self,
        request: &ChatRequest,
        plan: &Plan,
        extra: &[ChatMessage],
    ) -> Result<Vec<u8>, Error> {
        let mut messages: Vec<ChatMessage> = request.messages.clone();
        let fallback_format = ResponseFormat::JsonObject;
        let format = match &plan.local_schema {
            Some(schema) => {
                // JSON mode needs the word JSON in a message, or the model may stream
                // whitespace until the cap (reference §4.3).
                messages.push(ChatMessage::system(format!(
                    "Answer with one JSON object and nothing else (no code fence, no other text). It must follow this JSON Schema exactly: every property present, no other properties.\n{schema}"
                )));
                Some(&fallback_format)
            }
            None => request.response_format.as_ref(),
        };
        messages.extend_from_slice(extra);
        let body = WireRequest {
            model: self.model.as_deref(),
            messages: &messages,
            temperature: plan.temperature,
            max_tokens: plan.cap.filter(|_| plan.field == TokenCapField::MaxTokens),
            max_completion_tokens: plan
                .cap
                .filter(|_| plan.field == TokenCapField::MaxCompletionTokens),
            reasoning_effort: plan.effort.map(ReasoningEffort::as_str),
            response_format: format.map(WireFormat::from),
        };
        serde_json::to_vec(&body).map_err(|e| Error::InvalidRequest(e.to_string()))
    }

    /// Sends the request with the parameters its model takes.
    ///
    /// A 400 naming a parameter the model does not take (`unsupported_parameter`,
    /// `unsupported_value`, `unknown_parameter`, or a rejected `json_schema`) adjusts that
    /// parameter, remembers it for the rest of the run and retries once. In the json_object
    /// fallback the answer is checked against the schema, with one repair.
    pub(crate) async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, Error> {
        let mut recoveries = 0usize;
        let mut repair: Vec<ChatMessage> = Vec::new();
        loop {
            let plan = self.plan(request);
            let body = self.encode(request, &plan, &repair)?;
            let answer = match self.send(&body).await {
                Ok(answer) => answer,
                Err(failure) => {
                    let adjusted = match &failure.rejection {
                        Some(r) if recoveries < MAX_RECOVERIES => self.adjust(r, &plan, request),
                        _ => false,
                    };
                    if !adjusted {
                        return Err(failure.error);
                    }
                    recoveries += 1;
                    continue;
                }
            };
            self.learn_from(&answer, request, &plan);
            let Some(schema) = &plan.local_schema else {
                return Ok(answer.response);
            };
            match check_local(&answer.response, schema) {
                Ok(response) => return Ok(response),
                Err(reason) if repair.is_empty() => {
                    tracing::info!(
                        deployment = %text::log_field(&self.name, 80),
                        reason = %reason,
                        "the json_object answer does not follow the schema; asking once for a repair"
                    );
                    repair = vec![
                        ChatMessage::assistant(text::log_field(
                            answer.response.content.as_deref().unwrap_or_default(),
                            4_000,
                        )),
                        ChatMessage::user(format!(
                            "That answer could not be used ({reason}). Answer again with only the JSON object that follows the schema."
                        )),
                    ];
                }
                Err(reason) => {
                    return Err(Error::InvalidResponse(format!(
                        "the JSON-mode answer does not follow the schema after one repair: {reason}"
                    )));
                }
            }
        }
    }

    /// Remembers what a successful answer says: the model behind the deployment (and so its
    /// family), and that strict structured output works.
    fn learn_from(&self, answer: &Answer, request: &ChatRequest, plan: &Plan) {
        let mut learned = self.learned();
        if let Some(model) = &answer.model {
            let model = text::log_field(model, 80);
            if self.parameters.family.is_none()
                && let Some(family) = ModelFamily::infer(&model)
            {
                let changed = learned.family.as_ref().map(|(f, _)| *f) != Some(family)
                    && plan.family != Some(family);
                learned.family = Some((
                    family,
                    format!("the model name {model:?} the service returned"),
                ));
                if changed {
                    tracing::info!(
                        deployment = %text::log_field(&self.name, 80),
                        model = %model,
                        family = %family,
                        "the service names the model behind the deployment; sending {family} parameters from now on"
                    );
                }
            }
            learned.service_model = Some(model);
        }
        if plan.local_schema.is_none()
            && matches!(
                request.response_format,
                Some(ResponseFormat::JsonSchema { .. })
            )
        {
            learned.structured = StructuredOutput::JsonSchema;
        }
    }

    /// Adjusts the rejected parameter for the rest of the run; `false` when there is nothing
    /// left to adjust (then the 400 stands).
    fn adjust(&self, rejection: &Rejection, plan: &Plan, request: &ChatRequest) -> bool {
        if self.plan(request) != *plan {
            // Another call of the run has already adjusted a parameter: retry with that.
            return true;
        }
        let mut learned = self.learned();
        let param = rejection.param.as_str();
        let what = match param {
            "temperature" | "top_p" if plan.temperature.is_some() => {
                learned.no_temperature = true;
                // Only reasoning models refuse a temperature (reference §10.1): send the rest of
                // their parameters too, from this retry on.
                if self.parameters.family.is_none() {
                    learned.family = Some((
                        ModelFamily::Reasoning,
                        "the service refusing `temperature`".to_owned(),
                    ));
                }
                "dropped `temperature`".to_owned()
            }
            "max_tokens" if plan.cap.is_some() && plan.field == TokenCapField::MaxTokens => {
                learned.token_field = Some(TokenCapField::MaxCompletionTokens);
                "sent `max_completion_tokens` instead of `max_tokens`".to_owned()
            }
            "max_completion_tokens"
                if plan.cap.is_some() && plan.field == TokenCapField::MaxCompletionTokens =>
            {
                learned.token_field = Some(TokenCapField::MaxTokens);
                "sent `max_tokens` instead of `max_completion_tokens`".to_owned()
            }
            "reasoning_effort" if plan.effort.is_some() => {
                if rejection.code == "unsupported_value"
                    && plan.effort != Some(ReasoningEffort::Low)
                {
                    learned.effort = Some(ReasoningEffort::Low);
                    "sent `reasoning_effort` low instead".to_owned()
                } else {
                    learned.no_reasoning_effort = true;
                    "dropped `reasoning_effort`".to_owned()
                }
            }
            p if p.starts_with("response_format")
                && plan.local_schema.is_none()
                && matches!(
                    request.response_format,
                    Some(ResponseFormat::JsonSchema { .. })
                ) =>
            {
                learned.structured = StructuredOutput::JsonObjectFallback;
                "asked for `json_object` instead of a strict `json_schema`, checking answers locally".to_owned()
            }
            _ => return false,
        };
        tracing::info!(
            deployment = %text::log_field(&self.name, 80),
            parameter = %text::log_field(param, 60),
            code = %text::log_field(&rejection.code, 40),
            adjustment = %what,
            "the model rejected a request parameter; adjusted for the rest of the run, retrying once"
        );
        learned.adjustments.push(format!(
            "{} ({}): {what}",
            text::log_field(param, 60),
            text::log_field(&rejection.code, 40)
        ));
        true
    }

    /// Sends the request through the shared retry driver ([`pim_http::retry::run`]), retrying
    /// throttling, 5xx, timeouts and transport failures per [`RetryPolicy`]. When the policy
    /// gives up the last failure is returned as it is; a server wait longer than the call's
    /// remaining budget fails at once with [`Error::ServerWaitTooLong`].
    async fn send(&self, body: &[u8]) -> Result<Answer, Failure> {
        match pim_http::retry::run(&self.retry, "model call", |_| self.attempt(body)).await {
            Ok((answer, _retries)) => Ok(answer),
            Err(Stop::ServerWaitTooLong {
                last,
                asked,
                remaining,
                ..
            }) => Err(Failure {
                error: Error::ServerWaitTooLong {
                    asked,
                    remaining,
                    source: Box::new(last.error),
                },
                retry_after: last.retry_after,
                rejection: last.rejection,
            }),
            Err(stop) => Err(stop.into_last()),
        }
    }

    async fn attempt(&self, body: &[u8]) -> Result<Answer, Failure> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        match &self.credentials {
            Credentials::None => {}
            Credentials::ApiKeyHeader(key) => {
                headers.insert("api-key", secret_header(key.secret())?);
            }
            Credentials::StaticBearer(key) => {
                headers.insert(AUTHORIZATION, bearer(key.secret())?);
            }
            Credentials::Entra { credential, scope } => {
                // Bounded like the HTTP call: a credential probing an unreachable endpoint
                // (IMDS off Azure) must not hang the scan.
                let token = tokio::time::timeout(
                    self.request_timeout,
                    credential.get_token(&[scope], None),
                )
                .await
                .map_err(|_| {
                    Error::Credential(format!(
                        "no Entra token for {scope} within {:?}",
                        self.request_timeout
                    ))
                })?
                .map_err(|e| Error::Credential(format!("no Entra token for {scope}: {e}")))?;
                headers.insert(AUTHORIZATION, bearer(token.token.secret())?);
            }
        }
        let response = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .timeout(self.request_timeout)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;

        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = pim_http::retry_after::from_headers(response.headers());
        let request_id = header("apim-request-id")
            .or_else(|| header("x-request-id"))
            .or_else(|| header("x-ms-request-id"))
            .map(|id| text::log_field(&id, 100));
        let bytes = self.read_body(response).await?;

        if (200..300).contains(&status) {
            return parse_answer(&bytes).map_err(Failure::from);
        }
        let error = self.status_error(status, &bytes, request_id.as_deref(), retry_after);
        let rejection = (status == 400)
            .then(|| ErrorDetail::parse(&bytes).rejection())
            .flatten();
        Err(Failure {
            error,
            retry_after,
            rejection,
        })
    }

    /// Reads the body with a size cap (the request timeout still covers this part).
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if bytes.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
                return Err(Error::InvalidResponse(format!(
                    "the body is larger than {} MiB",
                    MAX_BODY_BYTES / (1024 * 1024)
                ))
                .into());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn transport_error(&self, error: reqwest::Error) -> Failure {
        if TransportKind::of(&error) == TransportKind::Timeout {
            Error::Timeout(self.request_timeout).into()
        } else {
            // reqwest's error names the URL, which holds no secret: keys travel in headers.
            Error::Transport(Box::new(error)).into()
        }
    }

    fn status_error(
        &self,
        status: u16,
        body: &[u8],
        request_id: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Error {
        if status == 429 {
            return Error::RateLimited { retry_after };
        }
        let detail = ErrorDetail::parse(body);
        let secrets = self.static_secret();
        if status == 400 && detail.is_content_filter() {
            let mut message = detail
                .message
                .clone()
                .unwrap_or_else(|| "no message from the service".to_owned());
            if !detail.filtered.is_empty() {
                message.push_str(&format!(" (filtered: {})", detail.filtered.join(", ")));
            }
            push_request_id(&mut message, request_id);
            return Error::ContentFilter {
                message: redact(&message, secrets),
            };
        }
        let summary = detail.summary();
        let mut message = match status {
            401 => format!("{}; the service says: {summary}", self.advice_401),
            403 => format!("{}; the service says: {summary}", self.advice_403),
            _ => summary,
        };
        push_request_id(&mut message, request_id);
        Error::Http {
            status,
            message: redact(&message, secrets),
        }
    }

    fn static_secret(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::ApiKeyHeader(s) | Credentials::StaticBearer(s) => Some(s.secret()),
            Credentials::None | Credentials::Entra { .. } => None,
        }
    }
}

fn push_request_id(message: &mut String, request_id: Option<&str>) {
    if let Some(id) = request_id {
        message.push_str(&format!(" [request id {id}]"));
    }
}

/// A header value marked sensitive, so that `http`'s Debug prints `Sensitive` instead of it.
fn secret_header(value: &str) -> Result<HeaderValue, Failure> {
    pim_http::secret::sensitive_header(value).map_err(|_| {
        Error::Credential("the key or token contains characters not allowed in a header".into())
            .into()
    })
}

fn bearer(token: &str) -> Result<HeaderValue, Failure> {
    secret_header(&format!("Bearer {token}"))
}

/// Checks that a configured base URL is usable and returns it without a trailing slash.
pub(crate) fn parse_base(raw: &str, what: &str) -> Result<Url, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::Config(format!("the {what} is empty")));
    }
    let mut url = Url::parse(raw).map_err(|e| {
        Error::Config(format!(
            "the {what} {:?} is not a URL: {e}",
            text::log_field(raw, 200)
        ))
    })?;
    // Checked before anything echoes the URL: user info may hold a password.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(format!(
            "the {what} must not contain a user name or password; pass the key separately"
        )));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Config(format!(
            "the {what} {:?} must be an http or https URL with a host",
            text::log_field(raw, 200)
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "the {what} {:?} must not have a query or fragment",
            text::log_field(url.as_str(), 200)
        )));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// The URL as shown to people: no trailing slash.
pub(crate) fn display_url(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Appends path segments (percent-encoding each) to a base URL.
pub(crate) fn join_segments(base: &Url, segments: &[&str]) -> Result<Url, Error> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::Config(format!("{} cannot take a path", display_url(base))))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Checks a JSON-mode answer against the schema and returns it with the bare JSON as content.
fn check_local(response: &ChatResponse, schema: &Value) -> Result<ChatResponse, String> {
    if response.finish_reason == FinishReason::ContentFilter {
        // The caller decides about a filtered answer; there is nothing to check.
        return Ok(response.clone());
    }
    let text = response.content.as_deref().unwrap_or_default();
    let json = crate::schema::strip_reasoning_preamble(text);
    if json.is_empty() {
        return Err("the answer is empty".to_owned());
    }
    let value: Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "the answer is not JSON ({})",
            text::log_field(&e.to_string(), 120)
        )
    })?;
    crate::schema::validate(&value, schema)?;
    Ok(ChatResponse {
        content: Some(json.to_owned()),
        ..response.clone()
    })
}

/// Reads a successful chat-completions body.
#[cfg(test)]
pub(crate) fn parse_success(body: &[u8]) -> Result<ChatResponse, Error> {
    parse_answer(body).map(|a| a.response)
}

/// Reads a successful chat-completions body and the model name in it.
fn parse_answer(body: &[u8]) -> Result<Answer, Error> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidResponse(format!("the body is not JSON ({e})")))?;
    let invalid = |reason: &str| Error::InvalidResponse(reason.to_owned());
    let Some(choices) = root.get("choices") else {
        // Some self-hosted servers answer 200 with an error object.
        let detail = ErrorDetail::from_value(&root);
        return Err(match detail.message {
            Some(m) => Error::InvalidResponse(format!("no `choices` in the body; it says: {m}")),
            None => invalid("no `choices` in the body"),
        });
    };
    let first = match choices {
        Value::Array(list) => list.first().ok_or_else(|| invalid("`choices` is empty"))?,
        _ => return Err(invalid("`choices` is not a list")),
    };
    if !first.is_object() {
        return Err(invalid("`choices[0]` is not an object"));
    }
    let finish_reason = match first.get("finish_reason") {
        Some(Value::String(s)) => match s.as_str() {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            other => FinishReason::Other(text::log_field(other, 64)),
        },
        None | Some(Value::Null) => FinishReason::Other("none".to_owned()),
        Some(_) => return Err(invalid("`choices[0].finish_reason` is not a string")),
    };
    let content = match first.get("message") {
        Some(Value::Object(message)) => match message.get("content") {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(invalid("`choices[0].message.content` is not a string")),
        },
        // A filtered answer may come without a message at all.
        None | Some(Value::Null) if finish_reason == FinishReason::ContentFilter => None,
        None | Some(Value::Null) => return Err(invalid("`choices[0]` has no `message`")),
        Some(_) => return Err(invalid("`choices[0].message` is not an object")),
    };
    Ok(Answer {
        response: ChatResponse {
            content,
            finish_reason,
            usage: parse_usage(root.get("usage")),
        },
        model: root
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.trim().is_empty())
            .map(str::to_owned),
    })
}

/// Token counts, leniently: some self-hosted servers omit `usage` or `total_tokens`, and a
/// missing count must not fail an otherwise good answer.
fn parse_usage(usage: Option<&Value>) -> Usage {
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    let prompt_tokens = count("prompt_tokens").unwrap_or(0);
    let completion_tokens = count("completion_tokens").unwrap_or(0);
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: count("total_tokens")
            .unwrap_or_else(|| prompt_tokens.saturating_add(completion_tokens)),
    }
}

/// What an error body says, from the outermost `error` object down to the innermost
/// `innererror`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ErrorDetail {
    pub(crate) code: Option<String>,
    /// `error.param`: the request parameter at fault.
    pub(crate) param: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) inner_code: Option<String>,
    pub(crate) inner_message: Option<String>,
    /// Content-filter categories marked `"filtered": true`.
    pub(crate) filtered: Vec<String>,
    /// The body's start when it is not JSON.
    pub(crate) raw: Option<String>,
}

impl ErrorDetail {
    pub(crate) fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => Self::from_value(&value),
            Err(_) => {
                let text = text::log_field(&String::from_utf8_lossy(body), MAX_MESSAGE_CHARS);
                Self {
                    raw: (!text.trim().is_empty()).then_some(text),
                    ..Self::default()
                }
            }
        }
    }

    fn from_value(root: &Value) -> Self {
        let mut detail = Self::default();
        // Azure OpenAI and OpenAI: {"error":{...}}; API Management: {"statusCode":401,"message":..};
        // some self-hosted servers: {"error":"text"}.
        let error = match root.get("error") {
            Some(Value::String(s)) => {
                detail.message = Some(text::log_field(s, MAX_MESSAGE_CHARS));
                return detail;
            }
            Some(e @ Value::Object(_)) => e,
            _ => root,
        };
        detail.code = text_field(error, "code");
        detail.param = text_field(error, "param");
        detail.message =
            text_field(error, "message").map(|m| text::log_field(&m, MAX_MESSAGE_CHARS));
        collect_filtered(error, &mut detail.filtered);
        let mut inner = error.get("innererror");
        // Bounded: a hostile body could nest without end.
        for _ in 0..16 {
            let Some(node @ Value::Object(_)) = inner else {
                break;
            };
            if let Some(code) = text_field(node, "code") {
                detail.inner_code = Some(code);
            }
            if let Some(message) = text_field(node, "message") {
                detail.inner_message = Some(text::log_field(&message, MAX_MESSAGE_CHARS));
            }
            collect_filtered(node, &mut detail.filtered);
            inner = node.get("innererror");
        }
        detail
    }

    /// The parameter this 400 rejects, if it names one: a parameter code of reference §10.2,
    /// or any error about `response_format` / `json_schema` (Foundry models that lack strict
    /// structured output, reference §10.5).
    fn rejection(&self) -> Option<Rejection> {
        let code = self.code.clone().unwrap_or_default();
        if let Some(param) = &self.param
            && (PARAMETER_CODES.contains(&code.as_str()) || param.starts_with("response_format"))
        {
            return Some(Rejection {
                param: param.clone(),
                code,
            });
        }
        let text = [&self.message, &self.inner_message, &self.raw]
            .into_iter()
            .flatten()
            .map(|m| m.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        // Azure's wording for a field the API version does not know.
        if let Some(rest) = text
            .split("unrecognized request argument supplied: ")
            .nth(1)
        {
            let param: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !param.is_empty() {
                return Some(Rejection {
                    param,
                    code: "unknown_parameter".to_owned(),
                });
            }
        }
        (text.contains("json_schema") || text.contains("response_format")).then(|| Rejection {
            param: "response_format".to_owned(),
            code: if code.is_empty() {
                "unsupported_value".to_owned()
            } else {
                code
            },
        })
    }

    fn is_content_filter(&self) -> bool {
        self.code.as_deref() == Some("content_filter")
            || self.inner_code.as_deref() == Some("ResponsibleAIPolicyViolation")
    }

    /// The innermost message with its codes, for [`Error::Http`].
    fn summary(&self) -> String {
        let message = self
            .inner_message
            .as_ref()
            .or(self.message.as_ref())
            .or(self.raw.as_ref())
            .cloned()
            .unwrap_or_else(|| "no details in the body".to_owned());
        let codes: Vec<String> = [&self.code, &self.inner_code]
            .into_iter()
            .flatten()
            .map(|c| text::log_field(c, 80))
            .collect();
        if codes.is_empty() {
            message
        } else {
            format!("{message} (code {})", codes.join(" / "))
        }
    }
}

/// A string or number field as text.
fn text_field(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(text::log_field(s, MAX_MESSAGE_CHARS)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Azure documents `content_filter_results` (plural) but clients observe
/// `content_filter_result` (singular) inside `innererror`, so both are read.
fn collect_filtered(node: &Value, out: &mut Vec<String>) {
    for key in ["content_filter_result", "content_filter_results"] {
        if let Some(Value::Object(categories)) = node.get(key) {
            for (name, result) in categories.iter().take(32) {
                if result.get("filtered") == Some(&Value::Bool(true)) {
                    let name = text::log_field(name, 40);
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
    }
}

/// A service could echo the key it rejected; never pass it on.
/// `text` with the static key scrubbed; keys shorter than 4 characters are left alone, as
/// scrubbing them would mangle ordinary text without protecting anything.
fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if s.len() >= 4 => pim_http::secret::scrub(text, &[s]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_lenient_and_sums_a_missing_total() {
        let u = parse_usage(Some(
            &serde_json::json!({"prompt_tokens": 3, "completion_tokens": 4}),
        ));
        assert_eq!(u.total_tokens, 7);
        let u = parse_usage(Some(&serde_json::json!({"prompt_tokens": "x"})));
        assert_eq!(u, Usage::default());
        assert_eq!(parse_usage(None), Usage::default());
    }

    #[test]
    fn error_detail_reads_the_innermost_message_and_both_filter_spellings() {
        let d = ErrorDetail::parse(
            br#"{"error":{"code":"content_filter","message":"outer","innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"jailbreak":{"filtered":true,"detected":true},"hate":{"filtered":false}}}}}"#,
        );
        assert!(d.is_content_filter());
        assert_eq!(d.filtered, ["jailbreak"]);
        let d = ErrorDetail::parse(
            br#"{"error":{"code":"content_filter","message":"m","innererror":{"content_filter_results":{"violence":{"filtered":true}}}}}"#,
        );
        assert_eq!(d.filtered, ["violence"]);
        let d = ErrorDetail::parse(br#"{"statusCode":401,"message":"Access denied"}"#);
        assert_eq!(d.summary(), "Access denied");
        let d = ErrorDetail::parse(br#"{"error":"model not found"}"#);
        assert_eq!(d.summary(), "model not found");
        let d = ErrorDetail::parse(b"<html>\r\nBad Gateway</html>");
        assert_eq!(d.summary(), "<html> Bad Gateway</html>");
        assert_eq!(ErrorDetail::parse(b"").summary(), "no details in the body");
    }

    #[test]
    fn rejections_name_the_parameter() {
        let r = |body: &str| ErrorDetail::parse(body.as_bytes()).rejection();
        assert_eq!(
            r(
                r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#
            ),
            Some(Rejection {
                param: "max_tokens".into(),
                code: "unsupported_parameter".into()
            })
        );
        assert_eq!(
            r(
                r#"{"error":{"message":"Unrecognized request argument supplied: reasoning_effort","type":"invalid_request_error","param":null,"code":null}}"#
            ),
            Some(Rejection {
                param: "reasoning_effort".into(),
                code: "unknown_parameter".into()
            })
        );
        assert_eq!(
            r(r#"{"error":{"code":"BadRequest","message":"response_format of type 'json_schema' is not supported for model x."}}"#)
                .map(|r| r.param),
            Some("response_format".into())
        );
        assert_eq!(
            r(
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","param":"messages","code":"context_length_exceeded"}}"#
            ),
            None
        );
    }

    #[test]
    fn hostile_error_bodies_do_not_panic_or_flood() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            ErrorDetail::parse(deep.as_bytes())
                .summary()
                .chars()
                .count(),
            // The shared log-field rule keeps the `…` inside the bound (issue 11).
            400
        );
        let mut nested = String::from(r#"{"error":{"message":"m""#);
        for _ in 0..40 {
            nested.push_str(r#","innererror":{"message":"x""#);
        }
        nested.push_str(&"}".repeat(42));
        assert_eq!(ErrorDetail::parse(nested.as_bytes()).summary(), "x");
        let huge = format!(
            r#"{{"error":{{"message":"{}\u0007"}}}}"#,
            "é".repeat(10_000)
        );
        let s = ErrorDetail::parse(huge.as_bytes()).summary();
        assert_eq!(s.chars().count(), MAX_MESSAGE_CHARS);
        assert!(s.ends_with('…'));
        assert!(!s.contains('\u{7}'));
    }

    #[test]
    fn success_bodies_with_wrong_types_give_specific_reasons() {
        let reason = |body: &str| match parse_success(body.as_bytes()) {
            Err(Error::InvalidResponse(r)) => r,
            other => format!("unexpected: {other:?}"),
        };
        assert!(reason("not json").starts_with("the body is not JSON"));
        assert_eq!(reason("{}"), "no `choices` in the body");
        assert_eq!(reason(r#"{"choices":{}}"#), "`choices` is not a list");
        assert_eq!(reason(r#"{"choices":[]}"#), "`choices` is empty");
        assert_eq!(
            reason(r#"{"choices":[1]}"#),
            "`choices[0]` is not an object"
        );
        assert_eq!(
            reason(r#"{"choices":[{"finish_reason":"stop","message":{"content":5}}]}"#),
            "`choices[0].message.content` is not a string"
        );
        assert_eq!(
            reason(r#"{"choices":[{"finish_reason":7,"message":{}}]}"#),
            "`choices[0].finish_reason` is not a string"
        );
        assert_eq!(
            reason(r#"{"error":{"message":"boom"}}"#),
            "no `choices` in the body; it says: boom"
        );
        let ok = parse_success(br#"{"choices":[{"finish_reason":"content_filter"}]}"#).unwrap();
        assert_eq!(ok.finish_reason, FinishReason::ContentFilter);
        assert_eq!(ok.content, None);
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            display_url(&parse_base("https://res.openai.azure.com/", "endpoint").unwrap()),
            "https://res.openai.azure.com"
        );
        for bad in [
            "",
            "res.openai.azure.com",
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=1",
        ] {
            assert!(
                matches!(parse_base(bad, "endpoint"), Err(Error::Config(_))),
                "{bad}"
            );
        }
        let err = parse_base("https://user:hunter22@x", "endpoint").unwrap_err();
        assert!(!err.to_string().contains("hunter22"));
    }
}
