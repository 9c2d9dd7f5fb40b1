//! The HTTP engine shared by [`AzureOpenAi`](crate::AzureOpenAi) and
//! [`OpenAiCompatible`](crate::OpenAiCompatible): the chat-completions request body, the retry
//! loop, and the reading of answers and error bodies.
//!
//! Both adapters speak the same wire format and differ only in the URL, the auth header, whether
//! the model name goes in the body, and which token-cap field they send, so those are the
//! fields of [`Wire`].

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use pim_domain::retry::{RetryPolicy, parse_retry_after};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::{ChatMessage, ChatRequest, ChatResponse, Error, FinishReason, ResponseFormat, Usage};

/// Answers larger than this are refused rather than buffered: a chat completion is a few KiB,
/// so anything this large is a misrouted download or a hostile server.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Service messages are cut to this many characters before they reach an error's text.
const MAX_MESSAGE_CHARS: usize = 400;

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

/// Which request field carries [`ChatRequest::max_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub(crate) token_cap: TokenCapField,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    /// What to tell the operator on 401 and 403 (already free of secrets).
    pub(crate) advice_401: String,
    pub(crate) advice_403: String,
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
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl Wire {
    /// Encodes the request body once; every attempt sends the same bytes.
    pub(crate) fn encode(&self, request: &ChatRequest) -> Result<Vec<u8>, Error> {
        let cap = request.max_tokens;
        let body = WireRequest {
            model: self.model.as_deref(),
            messages: &request.messages,
            // A NaN would be sent as `null` and rejected with a confusing 400; leave it out so
            // the service default applies.
            temperature: request
                .temperature
                .is_finite()
                .then_some(request.temperature),
            max_tokens: cap.filter(|_| self.token_cap == TokenCapField::MaxTokens),
            max_completion_tokens: cap
                .filter(|_| self.token_cap == TokenCapField::MaxCompletionTokens),
            response_format: request.response_format.as_ref().map(WireFormat::from),
        };
        serde_json::to_vec(&body).map_err(|e| Error::InvalidRequest(e.to_string()))
    }

    /// Sends the request, retrying throttling, 5xx, timeouts and transport failures per
    /// [`RetryPolicy`].
    pub(crate) async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, Error> {
        let body = self.encode(request)?;
        let started = tokio::time::Instant::now();
        let mut attempt: u32 = 1;
        loop {
            let failure = match self.attempt(&body).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            if !failure.error.is_retryable() {
                return Err(failure.error);
            }
            let Ok(delay) = self
                .retry
                .next(attempt, failure.retry_after, pim_domain::retry::jitter(), started.elapsed())
                .inspect_err(|why| tracing::warn!(attempt, %why, error = %failure.error, "model call not retried"))
            else {
                return Err(failure.error);
            };
            tracing::warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %failure.error,
                "model call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt = attempt.saturating_add(1);
        }
    }

    async fn attempt(&self, body: &[u8]) -> Result<ChatResponse, Failure> {
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
        let retry_after = parse_retry_after(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
        );
        let request_id = header("apim-request-id")
            .or_else(|| header("x-request-id"))
            .or_else(|| header("x-ms-request-id"))
            .map(|id| clean(&id, 100));
        let bytes = self.read_body(response).await?;

        if (200..300).contains(&status) {
            return parse_success(&bytes).map_err(Failure::from);
        }
        let error = self.status_error(status, &bytes, request_id.as_deref(), retry_after);
        Err(Failure { error, retry_after })
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
        if error.is_timeout() {
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
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        Error::Credential("the key or token contains characters not allowed in a header".into())
    })?;
    header.set_sensitive(true);
    Ok(header)
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
            clean(raw, 200)
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
            clean(raw, 200)
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "the {what} {:?} must not have a query or fragment",
            clean(url.as_str(), 200)
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

/// Reads a successful chat-completions body.
pub(crate) fn parse_success(body: &[u8]) -> Result<ChatResponse, Error> {
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
            other => FinishReason::Other(clean(other, 64)),
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
    Ok(ChatResponse {
        content,
        finish_reason,
        usage: parse_usage(root.get("usage")),
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
                let text = clean(&String::from_utf8_lossy(body), MAX_MESSAGE_CHARS);
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
                detail.message = Some(clean(s, MAX_MESSAGE_CHARS));
                return detail;
            }
            Some(e @ Value::Object(_)) => e,
            _ => root,
        };
        detail.code = text_field(error, "code");
        detail.message = text_field(error, "message").map(|m| clean(&m, MAX_MESSAGE_CHARS));
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
                detail.inner_message = Some(clean(&message, MAX_MESSAGE_CHARS));
            }
            collect_filtered(node, &mut detail.filtered);
            inner = node.get("innererror");
        }
        detail
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
            .map(|c| clean(c, 80))
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
        Value::String(s) if !s.trim().is_empty() => Some(clean(s, MAX_MESSAGE_CHARS)),
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
                    let name = clean(name, 40);
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
    }
}

/// Makes untrusted service text safe to put in an error: control characters become spaces
/// (no forged log lines), and the length is capped.
pub(crate) fn clean(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A service could echo the key it rejected; never pass it on.
fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if s.len() >= 4 => text.replace(s, "[REDACTED]"),
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
        assert_eq!(d.summary(), "<html>  Bad Gateway</html>");
        assert_eq!(ErrorDetail::parse(b"").summary(), "no details in the body");
    }

    #[test]
    fn hostile_error_bodies_do_not_panic_or_flood() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            ErrorDetail::parse(deep.as_bytes())
                .summary()
                .chars()
                .count(),
            401
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
        assert_eq!(s.chars().count(), MAX_MESSAGE_CHARS + 1);
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
