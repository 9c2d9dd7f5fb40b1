//! The adapter for self-hosted and other OpenAI-compatible chat-completions servers
//! (vLLM, Ollama, llama.cpp's server, LiteLLM, OpenAI itself).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use azure_core::credentials::Secret;
use pim_domain::retry::RetryPolicy;

use crate::azure::{check_key, client_or_default};
use crate::wire::{self, Credentials, TokenCapField, Wire};
use crate::{ChatModel, ChatRequest, ChatResponse, Error, ModelParameters, ModelProfile};

/// Settings of [`OpenAiCompatible`]; `Default` gives a 60 s per-request timeout and
/// [`RetryPolicy::default`]. Its `Debug` never prints the client (see [`pim_http::secret`]).
#[derive(Clone)]
pub struct OpenAiCompatibleOptions {
    /// Limit on one HTTP attempt, from connecting to the end of the body. Local models can be
    /// slow on long prompts: raise this rather than lowering the prompt budget.
    pub request_timeout: Duration,
    /// Retries of 429, 5xx, timeouts and transport failures.
    pub retry: RetryPolicy,
    /// A client to share connection pools; by default one that follows no redirects.
    pub client: Option<reqwest::Client>,
    /// The model family and its parameters.
    pub parameters: ModelParameters,
}

impl Default for OpenAiCompatibleOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            client: None,
            parameters: ModelParameters::default(),
        }
    }
}

impl fmt::Debug for OpenAiCompatibleOptions {
    // By hand: a caller's client may carry default headers (an `Authorization`), never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatibleOptions")
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("custom_client", &self.client.is_some())
            .field("parameters", &self.parameters)
            .finish()
    }
}

/// A [`ChatModel`] backed by any server that speaks OpenAI's chat-completions API:
/// `POST {base_url}/chat/completions` with `"model"` in the body and, when a key is given,
/// `Authorization: Bearer <key>`.
///
/// For standard models the token cap is sent as `max_tokens`, the field self-hosted servers
/// accept most widely; reasoning models (OpenAI's `o*` and `gpt-5*`) get `max_completion_tokens`,
/// `reasoning_effort` and no `temperature`. Parameter recovery, errors and retries behave as for
/// [`AzureOpenAi`](crate::AzureOpenAi).
///
/// ```
/// use pim_openai::{ChatModel, OpenAiCompatible};
///
/// let model = OpenAiCompatible::new("http://127.0.0.1:11434/v1/", None, "llama3.1:8b", None)?;
/// assert_eq!(model.describe(), "openai-compatible model llama3.1:8b at http://127.0.0.1:11434/v1");
/// # Ok::<(), pim_openai::Error>(())
/// ```
pub struct OpenAiCompatible {
    base_url: String,
    model: String,
    wire: Wire,
}

impl OpenAiCompatible {
    /// An adapter for `model` on the server whose API root is `base_url` (usually ending in
    /// `/v1`); a `base_url` that already ends in `/chat/completions` is accepted too.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL is not http(s) (or carries a user, password, query or
    /// fragment), the model name is empty, the key is empty or not a valid header value, or the
    /// HTTP client cannot be built. No network call is made here.
    pub fn new(
        base_url: &str,
        api_key: Option<Secret>,
        model: &str,
        options: Option<OpenAiCompatibleOptions>,
    ) -> Result<Self, Error> {
        let options = options.unwrap_or_default();
        let model = model.trim();
        if model.is_empty() {
            return Err(Error::Config("the model name is empty".into()));
        }
        if model.chars().any(char::is_control) || model.chars().count() > 256 {
            return Err(Error::Config(
                "the model name has control characters or is too long".into(),
            ));
        }
        let mut base = wire::parse_base(base_url, "OpenAI-compatible base URL")?;
        let path = base.path().to_owned();
        if let Some(root) = path.strip_suffix("/chat/completions") {
            let root = root.to_owned();
            base.set_path(&root);
        }
        let display = wire::display_url(&base);
        let url = wire::join_segments(&base, &["chat", "completions"])?;

        let credentials = match api_key {
            Some(key) => {
                check_key(&key)?;
                Credentials::StaticBearer(key)
            }
            None => Credentials::None,
        };
        let (advice_401, advice_403) = match credentials {
            Credentials::None => (
                format!("{display} requires an api key, and none is configured"),
                format!("{display} refused the request without an api key"),
            ),
            _ => (
                format!("{display} rejected the api key: check that it is current"),
                format!(
                    "{display} refused the request: check the key's permissions for model {model}"
                ),
            ),
        };

        Ok(Self {
            base_url: display,
            model: model.to_owned(),
            wire: Wire {
                client: client_or_default(options.client)?,
                url,
                credentials,
                model: Some(model.to_owned()),
                token_cap: TokenCapField::MaxTokens,
                request_timeout: options.request_timeout,
                retry: options.retry,
                advice_401,
                advice_403,
                parameters: options.parameters,
                name: model.to_owned(),
                learned: Mutex::default(),
            },
        })
    }

    /// The URL every request is sent to.
    pub fn url(&self) -> &str {
        self.wire.url.as_str()
    }
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("auth", &self.wire.credentials)
            .field("request_timeout", &self.wire.request_timeout)
            .field("retry", &self.wire.retry)
            .finish()
    }
}

#[async_trait::async_trait]
impl ChatModel for OpenAiCompatible {
    fn describe(&self) -> String {
        format!(
            "openai-compatible model {} at {}",
            self.model, self.base_url
        )
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, Error> {
        self.wire.complete(request).await
    }

    fn profile(&self) -> ModelProfile {
        self.wire.profile()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChatMessage, FinishReason, ResponseFormat};
    use serde_json::{Value, json};
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = "sk-local-SECRET-abcdef123456";

    fn fast() -> OpenAiCompatibleOptions {
        OpenAiCompatibleOptions {
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                max_attempts: 2,
                initial_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(10),
                max_total: Duration::from_secs(5),
            },
            client: None,
            parameters: crate::ModelParameters::default(),
        }
    }

    #[tokio::test]
    async fn a_reasoning_model_gets_max_completion_tokens_effort_and_no_temperature() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "model": "o4-mini-2025-04-16",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let model = OpenAiCompatible::new(
            &format!("{}/v1", server.uri()),
            None,
            "o4-mini",
            Some(fast()),
        )
        .unwrap();
        let mut request = ChatRequest::new(vec![ChatMessage::user("judge")]);
        request.max_tokens = Some(300);
        model.complete(&request).await.unwrap();
        let req = &server.received_requests().await.unwrap()[0];
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "o4-mini", "messages": [{"role": "user", "content": "judge"}],
                   "max_completion_tokens": 4000, "reasoning_effort": "low"})
        );
        let profile = model.profile();
        assert_eq!(profile.family, Some(crate::ModelFamily::Reasoning));
        assert_eq!(profile.service_model.as_deref(), Some("o4-mini-2025-04-16"));
    }

    #[tokio::test]
    async fn sends_model_and_bearer_key_to_chat_completions() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "{\"verdict\":\"partial\"}"}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5}
            })))
            .expect(1)
            .mount(&server)
            .await;
        let model = OpenAiCompatible::new(
            &format!("{}/v1/", server.uri()),
            Some(Secret::new(KEY)),
            "llama3.1:8b",
            Some(fast()),
        )
        .unwrap();
        let mut request = ChatRequest::new(vec![ChatMessage::user("judge")]);
        request.max_tokens = Some(300);
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "assessment".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
        let reply = model.complete(&request).await.unwrap();
        assert_eq!(reply.finish_reason, FinishReason::Stop);
        assert_eq!(reply.usage.total_tokens, 15);

        let req = &server.received_requests().await.unwrap()[0];
        assert!(req.headers.get("api-key").is_none());
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "llama3.1:8b", "messages": [{"role": "user", "content": "judge"}],
                   "temperature": 0.0, "max_tokens": 300,
                   "response_format": {"type": "json_schema", "json_schema":
                       {"name": "assessment", "strict": true, "schema": {"type": "object"}}}})
        );
    }

    #[tokio::test]
    async fn without_a_key_no_auth_header_is_sent_and_401_says_so() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({"error": {"message": "Missing bearer token", "code": "unauthorized"}}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        // Given with the full path: accepted as the same endpoint.
        let model = OpenAiCompatible::new(
            &format!("{}/chat/completions", server.uri()),
            None,
            "m",
            Some(fast()),
        )
        .unwrap();
        assert_eq!(model.url(), format!("{}/chat/completions", server.uri()));
        let err = model
            .complete(&ChatRequest::new(vec![ChatMessage::user("x")]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Http { status: 401, message } if message.contains("none is configured") && message.contains("Missing bearer token")),
            "{err:?}"
        );
        let req = &server.received_requests().await.unwrap()[0];
        assert!(req.headers.get("authorization").is_none());
    }

    #[test]
    fn debug_and_describe_hide_the_key() {
        let model = OpenAiCompatible::new(
            "http://localhost:8000/v1",
            Some(Secret::new(KEY)),
            "qwen",
            None,
        )
        .unwrap();
        for text in [format!("{model:?}"), model.describe()] {
            assert!(!text.contains(KEY) && !text.contains("SECRET"), "{text}");
        }
        assert!(format!("{model:?}").contains("auth: StaticBearer([REDACTED])"));
        assert_eq!(
            model.describe(),
            "openai-compatible model qwen at http://localhost:8000/v1"
        );
        assert!(OpenAiCompatible::new("http://localhost:8000/v1", None, "", None).is_err());
    }

    #[test]
    fn options_debug_never_prints_a_callers_client() {
        let options = |client| OpenAiCompatibleOptions {
            client: Some(client),
            ..Default::default()
        };
        pim_http::secret::check_debug_hides_client(options).unwrap();
    }
}
