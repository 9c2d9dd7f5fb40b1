//! The Azure OpenAI and Azure AI Foundry chat-completions adapter: the `v1` path with the
//! deployment named in the body (the default), or the classic deployment path with a dated
//! `api-version`; on an Azure OpenAI, a Foundry resource or a Foundry project endpoint.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use pim_domain::cloud::AzureCloud;
use pim_domain::retry::RetryPolicy;
use pim_domain::text;
use pim_http::secret::Redacted;

use crate::wire::{self, Credentials, TokenCapField, Wire};
use crate::{ChatModel, ChatRequest, ChatResponse, Error, ModelParameters, ModelProfile};

/// The default [`ApiVersion`]: the version-less `v1` API, the only one the `gpt-5` family is
/// documented for (reference §10.4).
pub const DEFAULT_API_VERSION: &str = "v1";

/// The latest GA dated inference version of Azure OpenAI (for the deployment path).
pub const LATEST_DATED_API_VERSION: &str = "2024-10-21";

/// The first dated version that takes `max_completion_tokens` (2024-09-01-preview); older
/// dated versions get `max_tokens`.
const FIRST_MAX_COMPLETION_TOKENS_VERSION: &str = "2024-09-01";

/// The Entra scope for Azure OpenAI and Foundry resource endpoints (Cognitive Services) in the
/// public cloud (`*.openai.azure.com`, `*.services.ai.azure.com`).
pub const COGNITIVE_SERVICES_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// The Cognitive Services scope in Azure China (`*.openai.azure.cn`).
pub const COGNITIVE_SERVICES_SCOPE_CHINA: &str = "https://cognitiveservices.azure.cn/.default";

/// The Cognitive Services scope in Azure US Government (`*.openai.azure.us`).
pub const COGNITIVE_SERVICES_SCOPE_US_GOVERNMENT: &str =
    "https://cognitiveservices.azure.us/.default";

/// The Entra scope for Azure AI Foundry project endpoints
/// (`https://<resource>.services.ai.azure.com/api/projects/<project>`, reference §10.5).
pub const AI_FOUNDRY_SCOPE: &str = "https://ai.azure.com/.default";

/// The Foundry project scope in Azure China (`*.services.ai.azure.cn`).
pub const AI_FOUNDRY_SCOPE_CHINA: &str = "https://ai.azure.cn/.default";

/// The Foundry project scope in Azure US Government (`*.services.ai.azure.us`).
pub const AI_FOUNDRY_SCOPE_US_GOVERNMENT: &str = "https://ai.azure.us/.default";

/// The Entra scope a token for `endpoint` must carry, in the endpoint's cloud: the Foundry
/// scope ([`AI_FOUNDRY_SCOPE`] in the public cloud) for a Foundry project endpoint (its path
/// holds `/api/projects/<project>`), else the Cognitive Services scope
/// ([`COGNITIVE_SERVICES_SCOPE`] in the public cloud). The cloud comes from the host
/// (`*.azure.cn` China, `*.azure.us` US Government); a host of no known cloud gets the public
/// scope. The adapter and `--check` both call this, so they can never disagree.
///
/// ```
/// use pim_openai::{AI_FOUNDRY_SCOPE, COGNITIVE_SERVICES_SCOPE, entra_scope_for};
/// assert_eq!(entra_scope_for("https://res.services.ai.azure.com/api/projects/audit"), AI_FOUNDRY_SCOPE);
/// assert_eq!(entra_scope_for("https://res.services.ai.azure.com"), COGNITIVE_SERVICES_SCOPE);
/// assert_eq!(entra_scope_for("https://res.openai.azure.com/openai/v1/"), COGNITIVE_SERVICES_SCOPE);
/// assert_eq!(entra_scope_for("https://res.openai.azure.cn/"), "https://cognitiveservices.azure.cn/.default");
/// assert_eq!(entra_scope_for("https://res.openai.azure.us"), "https://cognitiveservices.azure.us/.default");
/// assert_eq!(entra_scope_for("https://res.services.ai.azure.us/api/projects/p"), "https://ai.azure.us/.default");
/// ```
pub fn entra_scope_for(endpoint: &str) -> &'static str {
    let project = matches!(
        reqwest::Url::parse(endpoint.trim()),
        Ok(url) if project_prefix(url.path()).is_some()
    );
    scope_in_cloud(endpoint, project)
}

fn scope_in_cloud(endpoint: &str, project: bool) -> &'static str {
    let scopes = if project {
        [
            AI_FOUNDRY_SCOPE,
            AI_FOUNDRY_SCOPE_CHINA,
            AI_FOUNDRY_SCOPE_US_GOVERNMENT,
        ]
    } else {
        [
            COGNITIVE_SERVICES_SCOPE,
            COGNITIVE_SERVICES_SCOPE_CHINA,
            COGNITIVE_SERVICES_SCOPE_US_GOVERNMENT,
        ]
    };
    AzureCloud::pick(AzureCloud::of_endpoint(endpoint), scopes)
}

/// `/api/projects/<project>` and what precedes it, when the path is a Foundry project's.
fn project_prefix(path: &str) -> Option<&str> {
    let start = path.find("/api/projects/")?;
    let after = &path[start + "/api/projects/".len()..];
    let name_len = after.find('/').unwrap_or(after.len());
    (name_len > 0).then(|| &path[..start + "/api/projects/".len() + name_len])
}

/// Which Azure OpenAI API to call.
///
/// ```
/// use pim_openai::ApiVersion;
/// assert_eq!("v1".parse::<ApiVersion>().unwrap(), ApiVersion::V1);
/// assert_eq!(ApiVersion::default().to_string(), "v1");
/// assert!("2025-04-01-preview".parse::<ApiVersion>().is_ok());
/// assert!("latest".parse::<ApiVersion>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersion {
    /// A dated version (`YYYY-MM-DD` or `YYYY-MM-DD-preview`) on the deployment path
    /// `/openai/deployments/{deployment}/chat/completions?api-version=…`.
    Dated(String),
    /// The version-less `v1` API: `/openai/v1/chat/completions`, deployment as `"model"`.
    V1,
}

impl Default for ApiVersion {
    /// [`DEFAULT_API_VERSION`]: `v1`.
    fn default() -> Self {
        Self::V1
    }
}

impl ApiVersion {
    /// The version as written in configuration: `v1` or the date.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Dated(v) => v,
            Self::V1 => "v1",
        }
    }

    /// Checks a dated version's shape; [`ApiVersion::Dated`] is public, so the adapter checks
    /// again rather than trusting that it came through [`FromStr`].
    fn validate(&self) -> Result<(), Error> {
        let Self::Dated(v) = self else {
            return Ok(());
        };
        let date = v.strip_suffix("-preview").unwrap_or(v);
        let b = date.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        let valid = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && digits(0..4)
            && digits(5..7)
            && digits(8..10)
            && matches!(
                &date[5..7],
                "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
            )
            && ("01"..="31").contains(&&date[8..10]);
        if valid {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "the api version {:?} is neither `v1` nor a date like {LATEST_DATED_API_VERSION} or 2025-04-01-preview",
                text::log_field(v, 60)
            )))
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiVersion {
    type Err = Error;

    /// `v1` (any case) selects [`ApiVersion::V1`]; anything else must be a dated version.
    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("v1") {
            return Ok(Self::V1);
        }
        let version = Self::Dated(s.to_owned());
        version.validate()?;
        Ok(version)
    }
}

/// How to authenticate to Azure OpenAI.
#[derive(Clone)]
pub enum OpenAiAuth {
    /// A resource key, sent as the `api-key` header.
    ApiKey(Secret),
    /// An Entra identity: a bearer token for [`entra_scope_for`] the endpoint
    /// ([`COGNITIVE_SERVICES_SCOPE`], or [`AI_FOUNDRY_SCOPE`] for a Foundry project), fetched
    /// per attempt (the credential is expected to cache). The identity needs the *Cognitive
    /// Services OpenAI User* role on the resource (*Azure AI User* for a project endpoint).
    Entra(Arc<dyn TokenCredential>),
}

impl fmt::Debug for OpenAiAuth {
    /// Never shows the key; a credential is shown by kind only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(_) => f.debug_tuple("ApiKey").field(&Redacted).finish(),
            Self::Entra(_) => f.write_str("Entra(TokenCredential)"),
        }
    }
}

/// Settings of [`AzureOpenAi`]; `Default` gives [`DEFAULT_API_VERSION`] (`v1`), a 60 s
/// per-request timeout, [`RetryPolicy::default`] and [`ModelParameters::default`] (family
/// `auto`, reasoning effort `low`). Its `Debug` never prints the client (see
/// [`pim_http::secret`]).
#[derive(Clone)]
pub struct AzureOpenAiOptions {
    /// Which API (URL style) to call.
    pub api_version: ApiVersion,
    /// Limit on one HTTP attempt, from connecting to the end of the body.
    pub request_timeout: Duration,
    /// Retries of 429, 5xx, timeouts and transport failures.
    pub retry: RetryPolicy,
    /// A client to share connection pools; by default one is built that never follows
    /// redirects (a redirect would carry the `api-key` header to wherever it points).
    pub client: Option<reqwest::Client>,
    /// The model family and its parameters.
    pub parameters: ModelParameters,
}

impl Default for AzureOpenAiOptions {
    fn default() -> Self {
        Self {
            api_version: ApiVersion::default(),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            client: None,
            parameters: ModelParameters::default(),
        }
    }
}

impl fmt::Debug for AzureOpenAiOptions {
    // By hand: a caller's client may carry default headers (an `api-key`), which we never print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureOpenAiOptions")
            .field("api_version", &self.api_version)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("custom_client", &self.client.is_some())
            .field("parameters", &self.parameters)
            .finish()
    }
}

/// A [`ChatModel`] backed by an Azure OpenAI or Azure AI Foundry deployment.
///
/// - [`ApiVersion::V1`] (the default): `POST {endpoint}/openai/v1/chat/completions` with
///   `"model": deployment`.
/// - [`ApiVersion::Dated`]: `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version={v}`.
///
/// The endpoint may be an Azure OpenAI resource (`https://<res>.openai.azure.com`), a Foundry
/// resource (`https://<res>.services.ai.azure.com`) or a Foundry project
/// (`…/api/projects/<project>`, v1 only, Entra scope [`AI_FOUNDRY_SCOPE`]), with or without a
/// trailing `/openai/v1/` or `/openai/`.
///
/// Parameters follow the model family ([`ModelParameters`], reference §10): reasoning models get
/// `max_completion_tokens` of at least [`ModelParameters::max_output_tokens`], a
/// `reasoning_effort` and no `temperature`; other models get the request's temperature and
/// its cap as `max_completion_tokens` on `v1` and dated versions from 2024-09-01 on, else as
/// `max_tokens`. A 400 that names a parameter the model does not take (`unsupported_parameter`,
/// `unsupported_value`, `unknown_parameter`) adjusts it for the rest of the run and retries once;
/// a rejected strict `json_schema` falls back to `json_object` with the answer checked against
/// the schema locally and one repair.
///
/// Outcomes: a 200 with `finish_reason: content_filter` is returned as `Ok` with
/// [`FinishReason::ContentFilter`](crate::FinishReason::ContentFilter) (the caller decides);
/// a 400 `content_filter` is [`Error::ContentFilter`]; 429 is retried per the policy (honouring
/// `retry-after-ms`, then `retry-after`) and ends as [`Error::RateLimited`]; 5xx, timeouts and
/// transport failures are retried; other statuses are [`Error::Http`] with the innermost
/// service message, its code and the `apim-request-id` / `x-request-id` for support.
///
/// ```
/// use azure_core::credentials::Secret;
/// use pim_openai::{AzureOpenAi, AzureOpenAiOptions, ApiVersion, ChatModel, OpenAiAuth};
///
/// let model = AzureOpenAi::new(
///     "https://res.openai.azure.com/openai/v1/",
///     "gpt-4o",
///     OpenAiAuth::ApiKey(Secret::new("not-a-real-key")),
///     Some(AzureOpenAiOptions { api_version: ApiVersion::V1, ..Default::default() }),
/// )?;
/// assert_eq!(model.describe(), "azure-openai deployment gpt-4o (api v1) at https://res.openai.azure.com");
/// assert!(!format!("{model:?}").contains("not-a-real-key"));
/// # Ok::<(), pim_openai::Error>(())
/// ```
pub struct AzureOpenAi {
    endpoint: String,
    deployment: String,
    api_version: ApiVersion,
    wire: Wire,
}

impl AzureOpenAi {
    /// An adapter for `deployment` on the resource at `endpoint`
    /// (e.g. `https://res.openai.azure.com`).
    ///
    /// # Errors
    /// [`Error::Config`] when the endpoint is not an http(s) URL (or carries a user, password,
    /// query or fragment), the deployment is empty, the api version is malformed, the key is
    /// empty or not a valid header value, or the HTTP client cannot be built. No network call
    /// is made here.
    pub fn new(
        endpoint: &str,
        deployment: &str,
        auth: OpenAiAuth,
        options: Option<AzureOpenAiOptions>,
    ) -> Result<Self, Error> {
        let options = options.unwrap_or_default();
        options.api_version.validate()?;
        let deployment = deployment.trim();
        if deployment.is_empty() {
            return Err(Error::Config(
                "the Azure OpenAI deployment name is empty".into(),
            ));
        }
        if deployment.chars().any(char::is_control) || deployment.chars().count() > 256 {
            return Err(Error::Config(
                "the Azure OpenAI deployment name has control characters or is too long".into(),
            ));
        }
        let mut base = wire::parse_base(endpoint, "Azure OpenAI endpoint")?;
        // Accept the v1 base URL that the portal shows, whichever API version is configured.
        let path = base.path().to_owned();
        let stripped = path
            .strip_suffix("/openai/v1")
            .or_else(|| path.strip_suffix("/openai"))
            .unwrap_or(&path)
            .to_owned();
        let project = project_prefix(&stripped).map(str::to_owned);
        if let Some(prefix) = &project {
            if prefix.len() != stripped.len() {
                return Err(Error::Config(format!(
                    "the Foundry project endpoint {:?} has more path after the project name; give it as https://<resource>.services.ai.azure.com/api/projects/<project>",
                    text::log_field(&stripped, 200)
                )));
            }
            if options.api_version != ApiVersion::V1 {
                return Err(Error::Config(
                    "a Foundry project endpoint serves the v1 API only: leave AZURE_OPENAI_API_VERSION unset or set it to v1".into(),
                ));
            }
        }
        base.set_path(&stripped);
        let display = wire::display_url(&base);
        let scope = scope_in_cloud(endpoint, project.is_some());
        let role = if project.is_some() {
            "'Azure AI User' role on the Foundry project (or 'Cognitive Services OpenAI User' on its resource)"
        } else {
            "'Cognitive Services OpenAI User' role on this Azure OpenAI or Foundry resource"
        };

        let (url, model, token_cap) = match &options.api_version {
            ApiVersion::Dated(v) => {
                let mut url = wire::join_segments(
                    &base,
                    &["openai", "deployments", deployment, "chat", "completions"],
                )?;
                url.query_pairs_mut().append_pair("api-version", v);
                let date = v.strip_suffix("-preview").unwrap_or(v);
                let cap = if date >= FIRST_MAX_COMPLETION_TOKENS_VERSION {
                    TokenCapField::MaxCompletionTokens
                } else {
                    TokenCapField::MaxTokens
                };
                (url, None, cap)
            }
            ApiVersion::V1 => (
                wire::join_segments(&base, &["openai", "v1", "chat", "completions"])?,
                Some(deployment.to_owned()),
                TokenCapField::MaxCompletionTokens,
            ),
        };

        let (credentials, advice_401, advice_403) = match auth {
            OpenAiAuth::ApiKey(key) => {
                check_key(&key)?;
                (
                    Credentials::ApiKeyHeader(key),
                    format!(
                        "the api key was rejected by {display}: check that it is a current key \
                         of this Azure OpenAI resource (Keys and Endpoint), not of another resource"
                    ),
                    format!(
                        "access to {display} was denied with an api key: check the resource's \
                         network rules (firewall, private endpoint) and that key access \
                         (local auth) is not disabled; if so, use Entra auth"
                    ),
                )
            }
            OpenAiAuth::Entra(credential) => (
                Credentials::Entra { credential, scope },
                format!(
                    "the Entra token was rejected by {display}: it must be issued for \
                     {scope} in the tenant that owns the resource"
                ),
                format!(
                    "the signed-in identity may not call {display}: grant it the {role} \
                     (new role assignments can take a few minutes to apply), and check the \
                     resource's network rules"
                ),
            ),
        };

        Ok(Self {
            endpoint: display,
            deployment: deployment.to_owned(),
            api_version: options.api_version,
            wire: Wire {
                client: client_or_default(options.client)?,
                url,
                credentials,
                model,
                token_cap,
                request_timeout: options.request_timeout,
                retry: options.retry,
                advice_401,
                advice_403,
                parameters: options.parameters,
                name: deployment.to_owned(),
                learned: Mutex::default(),
            },
        })
    }

    /// The URL every request is sent to.
    pub fn url(&self) -> &str {
        self.wire.url.as_str()
    }
}

impl fmt::Debug for AzureOpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureOpenAi")
            .field("endpoint", &self.endpoint)
            .field("deployment", &self.deployment)
            .field("api_version", &self.api_version)
            .field("auth", &self.wire.credentials)
            .field("request_timeout", &self.wire.request_timeout)
            .field("retry", &self.wire.retry)
            .finish()
    }
}

#[async_trait::async_trait]
impl ChatModel for AzureOpenAi {
    fn describe(&self) -> String {
        format!(
            "azure-openai deployment {} (api {}) at {}",
            self.deployment, self.api_version, self.endpoint
        )
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, Error> {
        self.wire.complete(request).await
    }

    fn profile(&self) -> ModelProfile {
        self.wire.profile()
    }
}

/// Rejects keys that could never work, at construction rather than on the first call.
pub(crate) fn check_key(key: &Secret) -> Result<(), Error> {
    let k = key.secret();
    if k.trim().is_empty() {
        return Err(Error::Config("the api key is empty".into()));
    }
    if reqwest::header::HeaderValue::from_str(k).is_err() {
        return Err(Error::Config(
            "the api key contains characters not allowed in an HTTP header (a stray newline?)"
                .into(),
        ));
    }
    Ok(())
}

/// The injected client, or one that follows no redirects: a redirect would carry our
/// `api-key` header (which reqwest does not know to strip) to another host.
pub(crate) fn client_or_default(client: Option<reqwest::Client>) -> Result<reqwest::Client, Error> {
    match client {
        Some(c) => Ok(c),
        None => reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("could not build the HTTP client: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChatMessage, FinishReason, ResponseFormat};
    use serde_json::{Value, json};
    use wiremock::matchers::{body_partial_json, header, header_exists, method, path, query_param};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const KEY: &str = "k3y-SUPER-secret-0123456789";
    const TOKEN: &str = "eyJ0eXAi.entra-TOKEN-secret.sig";

    #[derive(Debug)]
    struct FakeCredential;

    #[async_trait::async_trait]
    impl TokenCredential for FakeCredential {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            assert_eq!(scopes, [COGNITIVE_SERVICES_SCOPE]);
            Ok(azure_core::credentials::AccessToken::new(
                Secret::new(TOKEN),
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    #[derive(Debug)]
    struct HangingCredential;

    #[async_trait::async_trait]
    impl TokenCredential for HangingCredential {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "unreachable",
            ))
        }
    }

    #[tokio::test]
    async fn a_hanging_credential_is_cut_off_and_nothing_is_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(success("never", "stop"))
            .expect(0)
            .mount(&server)
            .await;
        let mut opts = options(ApiVersion::default());
        opts.request_timeout = Duration::from_millis(50);
        let model = AzureOpenAi::new(
            &server.uri(),
            "gpt-4o",
            OpenAiAuth::Entra(Arc::new(HangingCredential)),
            Some(opts),
        )
        .unwrap();
        let err = model.complete(&assessment_request()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Credential(m) if m.contains(COGNITIVE_SERVICES_SCOPE)),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }

    fn fast_retry(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(60),
            max_total: Duration::from_secs(120),
        }
    }

    fn options(api_version: ApiVersion) -> AzureOpenAiOptions {
        AzureOpenAiOptions {
            api_version,
            request_timeout: Duration::from_secs(5),
            retry: fast_retry(3),
            client: None,
            parameters: crate::ModelParameters::default(),
        }
    }

    fn key_model(server: &MockServer, api_version: ApiVersion) -> AzureOpenAi {
        AzureOpenAi::new(
            &server.uri(),
            "gpt-4o",
            OpenAiAuth::ApiKey(Secret::new(KEY)),
            Some(options(api_version)),
        )
        .unwrap()
    }

    /// The latest GA dated version (no longer the default: v1 is).
    fn ga() -> ApiVersion {
        ApiVersion::Dated(LATEST_DATED_API_VERSION.into())
    }

    fn dated_path() -> &'static str {
        "/openai/deployments/gpt-4o/chat/completions"
    }

    fn success(content: &str, finish: &str) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .insert_header("apim-request-id", "req-1")
            .set_body_json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-11-20",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
                    "hate": {"filtered": false, "severity": "safe"},
                    "jailbreak": {"filtered": false, "detected": false}}}],
                "choices": [{"index": 0, "finish_reason": finish,
                    "message": {"role": "assistant", "content": content},
                    "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}],
                "usage": {"prompt_tokens": 33, "completion_tokens": 557, "total_tokens": 590}
            }))
    }

    fn assessment_request() -> ChatRequest {
        let mut request = ChatRequest::new(vec![
            ChatMessage::system("judge"),
            ChatMessage::user("activation data"),
        ]);
        request.max_tokens = Some(800);
        request.temperature = 0.2;
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: "assessment".into(),
            schema: json!({"type": "object", "properties": {"verdict": {"type": "string"}},
                           "required": ["verdict"], "additionalProperties": false}),
            strict: true,
        });
        request
    }

    fn body_of(request: &Request) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    #[tokio::test]
    async fn dated_path_with_api_key_sends_the_documented_request_and_reads_usage() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(dated_path()))
            .and(query_param("api-version", "2024-10-21"))
            .and(header("api-key", KEY))
            .and(header("content-type", "application/json"))
            .respond_with(success(r#"{"verdict":"aligned"}"#, "stop"))
            .expect(1)
            .mount(&server)
            .await;
        let model = key_model(&server, ga());
        let reply = model.complete(&assessment_request()).await.unwrap();
        assert_eq!(reply.content.as_deref(), Some(r#"{"verdict":"aligned"}"#));
        assert_eq!(reply.finish_reason, FinishReason::Stop);
        assert_eq!(reply.usage.prompt_tokens, 33);
        assert_eq!(reply.usage.completion_tokens, 557);
        assert_eq!(reply.usage.total_tokens, 590);

        let received = server.received_requests().await.unwrap();
        let req = &received[0];
        assert!(req.headers.get("authorization").is_none());
        let body = body_of(req);
        assert_eq!(
            body,
            json!({
                "messages": [{"role": "system", "content": "judge"},
                             {"role": "user", "content": "activation data"}],
                "temperature": 0.2,
                "max_completion_tokens": 800,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "assessment", "strict": true,
                    "schema": {"type": "object", "properties": {"verdict": {"type": "string"}},
                               "required": ["verdict"], "additionalProperties": false}}}
            })
        );
        // The exact text, so the f32 0.2 is not widened to 0.20000000298023224.
        assert!(String::from_utf8_lossy(&req.body).contains(r#""temperature":0.2,"#));
    }

    #[tokio::test]
    async fn v1_path_with_entra_token_puts_the_deployment_in_the_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/openai/v1/chat/completions"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_partial_json(json!({"model": "gpt-4o"})))
            .respond_with(success("ok", "stop"))
            .expect(1)
            .mount(&server)
            .await;
        // The portal shows the v1 base with its path; accept it as given.
        let model = AzureOpenAi::new(
            &format!("{}/openai/v1/", server.uri()),
            "gpt-4o",
            OpenAiAuth::Entra(Arc::new(FakeCredential)),
            Some(options(ApiVersion::V1)),
        )
        .unwrap();
        let mut request = ChatRequest::new(vec![ChatMessage::user("hi")]);
        request.max_tokens = Some(50);
        request.response_format = Some(ResponseFormat::JsonObject);
        let reply = model.complete(&request).await.unwrap();
        assert_eq!(reply.content.as_deref(), Some("ok"));

        let received = server.received_requests().await.unwrap();
        let req = &received[0];
        assert_eq!(req.url.query(), None);
        assert!(req.headers.get("api-key").is_none());
        let body = body_of(req);
        assert_eq!(body["max_completion_tokens"], 50);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert_eq!(
            model.describe(),
            format!(
                "azure-openai deployment gpt-4o (api v1) at {}",
                server.uri()
            )
        );
    }

    #[tokio::test]
    async fn text_format_and_no_cap_are_sent_as_such() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(success("plain", "stop"))
            .mount(&server)
            .await;
        let model = key_model(&server, ApiVersion::Dated("2025-04-01-preview".into()));
        let mut request = ChatRequest::new(vec![ChatMessage::user("hi")]);
        request.response_format = Some(ResponseFormat::Text);
        model.complete(&request).await.unwrap();
        let req = &server.received_requests().await.unwrap()[0];
        assert_eq!(req.url.query(), Some("api-version=2025-04-01-preview"));
        let body = body_of(req);
        assert_eq!(body["response_format"], json!({"type": "text"}));
        assert!(body.get("max_tokens").is_none() && body.get("model").is_none());
    }

    #[tokio::test]
    async fn throttling_prefers_retry_after_ms_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after-ms", "20")
                    .insert_header("retry-after", "30")
                    .set_body_json(json!({"error": {"code": "429", "message":
                        "Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 30 seconds."}})),
            )
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(success("after throttling", "stop"))
            .expect(1)
            .mount(&server)
            .await;
        let model = key_model(&server, ApiVersion::default());
        let started = std::time::Instant::now();
        let reply = model.complete(&assessment_request()).await.unwrap();
        let took = started.elapsed();
        assert_eq!(reply.content.as_deref(), Some("after throttling"));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        // 20 ms asked in retry-after-ms; 30 s in retry-after would have made this take 30 s.
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn x_ms_retry_after_ms_is_honoured_and_a_wait_past_the_budget_fails_at_once() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header("x-ms-retry-after-ms", "25"))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "600"))
            .expect(1)
            .mount(&server)
            .await;
        let model = key_model(&server, ApiVersion::default());
        let started = std::time::Instant::now();
        let err = model.complete(&assessment_request()).await.unwrap_err();
        let took = started.elapsed();
        // 25 ms honoured before the second attempt; the 600 s asked after it are more than the
        // 120 s budget, so the call fails at once instead of sleeping.
        assert!(took >= Duration::from_millis(25), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        let Error::ServerWaitTooLong { asked, source, .. } = &err else {
            panic!("expected ServerWaitTooLong, got {err:?}");
        };
        assert_eq!(*asked, Duration::from_secs(600));
        assert!(
            matches!(**source, Error::Http { status: 503, .. }),
            "{source:?}"
        );
        assert!(err.to_string().contains("asked to wait 600000 ms"), "{err}");
        assert!(err.is_retryable());
        assert!(!format!("{err:?}").contains(KEY));
    }

    #[tokio::test]
    async fn throttling_that_outlasts_the_attempts_is_rate_limited() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0.005"))
            .expect(3)
            .mount(&server)
            .await;
        let model = key_model(&server, ApiVersion::default());
        let err = model.complete(&assessment_request()).await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_millis(5)),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn prompt_content_filter_is_not_retried_with_either_key_spelling() {
        for key in ["content_filter_result", "content_filter_results"] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(
                    ResponseTemplate::new(400)
                        .insert_header("apim-request-id", "apim-42")
                        .set_body_json(json!({"error": {
                            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                            "innererror": {"code": "ResponsibleAIPolicyViolation", key: {
                                "hate": {"filtered": false, "severity": "safe"},
                                "jailbreak": {"filtered": true, "detected": true}}}}})),
                )
                .expect(1)
                .mount(&server)
                .await;
            let model = key_model(&server, ApiVersion::default());
            let err = model.complete(&assessment_request()).await.unwrap_err();
            let Error::ContentFilter { message } = &err else {
                panic!("{key}: {err:?}");
            };
            assert!(message.starts_with("The response was filtered due to the prompt"));
            assert!(message.contains("(filtered: jailbreak)"), "{message}");
            assert!(message.contains("apim-42"), "{message}");
            assert!(!err.is_retryable());
        }
    }

    #[tokio::test]
    async fn filtered_and_truncated_answers_are_returned_for_the_caller_to_judge() {
        for (finish, expected, content) in [
            ("content_filter", FinishReason::ContentFilter, None),
            ("length", FinishReason::Length, Some("{\"verdict\":\"al")),
            ("tool_calls", FinishReason::ToolCalls, None),
            ("weird", FinishReason::Other("weird".into()), Some("x")),
        ] {
            let server = MockServer::start().await;
            let choice = match content {
                Some(c) => {
                    json!({"finish_reason": finish, "message": {"role": "assistant", "content": c}})
                }
                None => {
                    json!({"finish_reason": finish, "message": {"role": "assistant", "content": null}})
                }
            };
            Mock::given(method("POST"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"choices": [choice]})),
                )
                .expect(1)
                .mount(&server)
                .await;
            let reply = key_model(&server, ApiVersion::default())
                .complete(&assessment_request())
                .await
                .unwrap();
            assert_eq!(reply.finish_reason, expected);
            assert_eq!(reply.content.as_deref(), content);
            assert_eq!(reply.usage, crate::Usage::default());
        }
    }

    #[tokio::test]
    async fn malformed_bodies_are_invalid_responses_and_not_retried() {
        for (body, reason) in [
            ("<html>gateway</html>", "the body is not JSON"),
            (r#"{"id":"x","choices":[]}"#, "`choices` is empty"),
            (r#"{"id":"x"}"#, "no `choices` in the body"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(200).set_body_string(body))
                .expect(1)
                .mount(&server)
                .await;
            let err = key_model(&server, ApiVersion::default())
                .complete(&assessment_request())
                .await
                .unwrap_err();
            match err {
                Error::InvalidResponse(r) => assert!(r.starts_with(reason), "{r}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_succeed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(success("recovered", "stop"))
            .expect(1)
            .mount(&server)
            .await;
        let reply = key_model(&server, ApiVersion::default())
            .complete(&assessment_request())
            .await
            .unwrap();
        assert_eq!(reply.content.as_deref(), Some("recovered"));
    }

    #[tokio::test]
    async fn slow_servers_time_out_after_the_attempts() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(success("late", "stop").set_delay(Duration::from_secs(3)))
            .expect(2)
            .mount(&server)
            .await;
        let mut opts = options(ApiVersion::default());
        opts.request_timeout = Duration::from_millis(100);
        opts.retry = fast_retry(2);
        let model = AzureOpenAi::new(
            &server.uri(),
            "gpt-4o",
            OpenAiAuth::ApiKey(Secret::new(KEY)),
            Some(opts),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = model.complete(&assessment_request()).await.unwrap_err();
        assert!(
            matches!(err, Error::Timeout(d) if d == Duration::from_millis(100)),
            "{err:?}"
        );
        assert!(err.is_retryable());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn client_errors_carry_the_innermost_message_code_and_request_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(400)
                    .insert_header("x-request-id", "xr-7")
                    .set_body_json(json!({"error": {"message": "This model's maximum context length is 128000 tokens.",
                        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = key_model(&server, ApiVersion::default())
            .complete(&assessment_request())
            .await
            .unwrap_err();
        let Error::Http { status, message } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*status, 400);
        assert_eq!(
            message,
            "This model's maximum context length is 128000 tokens. (code context_length_exceeded) [request id xr-7]"
        );

        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(json!({"error": {"code": "DeploymentNotFound",
                "message": "The API deployment for this resource does not exist."}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = key_model(&server, ApiVersion::default())
            .complete(&assessment_request())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Http { status: 404, message } if message.contains("DeploymentNotFound") && message.contains("does not exist")),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn auth_failures_say_what_to_fix_and_never_echo_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header_exists("api-key"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"error": {"code": "401",
                "message": format!("Access denied due to invalid subscription key {KEY}.")}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(header_exists("authorization"))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_json(json!({"error": {"code": "PermissionDenied",
                "message": "The principal lacks the required data action."}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = key_model(&server, ApiVersion::default())
            .complete(&assessment_request())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("api key was rejected"), "{text}");
        assert!(!text.contains(KEY) && text.contains("[REDACTED]"), "{text}");

        let entra = AzureOpenAi::new(
            &server.uri(),
            "gpt-4o",
            OpenAiAuth::Entra(Arc::new(FakeCredential)),
            Some(options(ApiVersion::default())),
        )
        .unwrap();
        let err = entra.complete(&assessment_request()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Cognitive Services OpenAI User"), "{text}");
        assert!(
            text.contains("PermissionDenied") && !text.contains(TOKEN),
            "{text}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn debug_display_and_describe_never_show_secrets() {
        let model = AzureOpenAi::new(
            "https://res.openai.azure.com",
            "gpt-4o",
            OpenAiAuth::ApiKey(Secret::new(KEY)),
            None,
        )
        .unwrap();
        // v1 is the default.
        assert_eq!(
            model.describe(),
            "azure-openai deployment gpt-4o (api v1) at https://res.openai.azure.com"
        );
        assert_eq!(
            model.url(),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        let dated = AzureOpenAi::new(
            "https://res.openai.azure.com",
            "gpt-4o",
            OpenAiAuth::ApiKey(Secret::new(KEY)),
            Some(options(ga())),
        )
        .unwrap();
        assert_eq!(
            dated.url(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        for text in [
            format!("{model:?}"),
            format!("{:?}", OpenAiAuth::ApiKey(Secret::new(KEY))),
            format!("{:?}", OpenAiAuth::Entra(Arc::new(FakeCredential))),
            model.describe(),
        ] {
            assert!(!text.contains(KEY) && !text.contains("SUPER"), "{text}");
        }
        assert!(format!("{model:?}").contains("auth: ApiKeyHeader([REDACTED])"));
    }

    #[test]
    fn options_debug_never_prints_a_callers_client() {
        let options = |client| AzureOpenAiOptions {
            client: Some(client),
            ..Default::default()
        };
        pim_http::secret::check_debug_hides_client(options).unwrap();
    }

    #[test]
    fn construction_rejects_bad_settings() {
        let key = || OpenAiAuth::ApiKey(Secret::new(KEY));
        let bad_version = AzureOpenAiOptions {
            api_version: ApiVersion::Dated("2024-13-01".into()),
            ..Default::default()
        };
        assert!(matches!(
            AzureOpenAi::new("https://r.openai.azure.com", "d", key(), Some(bad_version)),
            Err(Error::Config(_))
        ));
        assert!(AzureOpenAi::new("https://r.openai.azure.com", " ", key(), None).is_err());
        assert!(AzureOpenAi::new("not a url", "d", key(), None).is_err());
        let err = AzureOpenAi::new(
            "https://r.openai.azure.com",
            "d",
            OpenAiAuth::ApiKey(Secret::new("abc\ndef")),
            None,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("abc"));
        assert!(
            AzureOpenAi::new(
                "https://r.openai.azure.com",
                "d",
                OpenAiAuth::ApiKey(Secret::new("")),
                None
            )
            .is_err()
        );
        // Odd deployment names are percent-encoded, never spliced raw into the path.
        let odd = AzureOpenAi::new(
            "https://r.openai.azure.com/openai/",
            "a/../b c",
            key(),
            Some(options(ga())),
        )
        .unwrap();
        assert_eq!(
            odd.url(),
            "https://r.openai.azure.com/openai/deployments/a%2F..%2Fb%20c/chat/completions?api-version=2024-10-21"
        );
    }

    fn rejection(param: &str, code: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": message, "type": "invalid_request_error", "param": param, "code": code}}))
    }

    fn answer_from(model: &str, content: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-2", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                "completion_tokens_details": {"reasoning_tokens": 3}}
        }))
    }

    fn named(server: &MockServer, deployment: &str, api_version: ApiVersion) -> AzureOpenAi {
        AzureOpenAi::new(
            &server.uri(),
            deployment,
            OpenAiAuth::ApiKey(Secret::new(KEY)),
            Some(options(api_version)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn families_get_their_parameters_from_the_deployment_name() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(success("ok", "stop"))
            .mount(&server)
            .await;
        for deployment in ["gpt-5-mini", "o4-mini", "gpt-4.1"] {
            named(&server, deployment, ApiVersion::V1)
                .complete(&assessment_request())
                .await
                .unwrap();
        }
        let bodies: Vec<Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(body_of)
            .collect();
        for body in &bodies[..2] {
            assert_eq!(body["max_completion_tokens"], 4000, "{body}");
            assert_eq!(body["reasoning_effort"], "low");
            for absent in ["temperature", "top_p", "max_tokens"] {
                assert!(body.get(absent).is_none(), "{absent} in {body}");
            }
        }
        assert_eq!(bodies[2]["max_completion_tokens"], 800);
        assert_eq!(bodies[2]["temperature"], json!(0.2));
        assert!(bodies[2].get("reasoning_effort").is_none());
        // An old dated version takes only max_tokens.
        let old = named(&server, "gpt-4o", ApiVersion::Dated("2024-06-01".into()));
        old.complete(&assessment_request()).await.unwrap();
        let last = body_of(server.received_requests().await.unwrap().last().unwrap());
        assert_eq!(last["max_tokens"], 800);
        assert!(last.get("max_completion_tokens").is_none());
    }

    #[tokio::test]
    async fn a_rejected_temperature_is_dropped_remembered_and_teaches_the_family() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"temperature": 0.2})))
            .respond_with(rejection(
                "temperature",
                "unsupported_value",
                "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported.",
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(answer_from("o4-mini-2025-04-16", "ok"))
            .expect(2)
            .mount(&server)
            .await;
        // The name says nothing about the family.
        let model = named(&server, "pim-judge", ApiVersion::V1);
        assert_eq!(model.profile().family, None);
        let reply = model.complete(&assessment_request()).await.unwrap();
        assert_eq!(reply.content.as_deref(), Some("ok"));
        model.complete(&assessment_request()).await.unwrap();
        let bodies: Vec<Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(body_of)
            .collect();
        assert_eq!(bodies.len(), 3, "one rejected, one retried, one straight");
        for body in &bodies[1..] {
            assert!(body.get("temperature").is_none(), "{body}");
            assert_eq!(body["max_completion_tokens"], 4000);
            assert_eq!(body["reasoning_effort"], "low");
        }
        let profile = model.profile();
        assert_eq!(profile.family, Some(crate::ModelFamily::Reasoning));
        assert!(
            profile
                .family_source
                .as_deref()
                .is_some_and(|s| s.contains("o4-mini-2025-04-16")),
            "{profile:?}"
        );
        assert_eq!(profile.adjustments.len(), 1);
        assert_eq!(
            profile.structured_output,
            crate::StructuredOutput::JsonSchema
        );
    }

    #[tokio::test]
    async fn a_rejected_token_field_or_effort_is_swapped_once_then_the_error_stands() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"max_tokens": 800})))
            .respond_with(rejection(
                "max_tokens",
                "unsupported_parameter",
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"reasoning_effort": "low"})))
            .respond_with(rejection(
                "reasoning_effort",
                "unknown_parameter",
                "Unknown parameter: 'reasoning_effort'.",
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(answer_from("judge", "fine"))
            .expect(2)
            .mount(&server)
            .await;
        let old = named(&server, "judge", ApiVersion::Dated("2024-06-01".into()));
        old.complete(&assessment_request()).await.unwrap();
        let reasoning = named(&server, "o3-mini", ApiVersion::Dated("2024-06-01".into()));
        reasoning.complete(&assessment_request()).await.unwrap();
        let bodies: Vec<Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(body_of)
            .collect();
        assert_eq!(bodies[1]["max_completion_tokens"], 800);
        assert!(bodies[1].get("max_tokens").is_none());
        assert!(bodies[3].get("reasoning_effort").is_none());
        assert_eq!(bodies[3]["max_completion_tokens"], 4000);

        // A parameter that cannot be adjusted is an ordinary 400, sent once.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(rejection(
                "messages",
                "unsupported_value",
                "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
            ))
            .expect(1)
            .mount(&server)
            .await;
        let err = named(&server, "gpt-4o", ApiVersion::V1)
            .complete(&assessment_request())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Http { status: 400, message } if message.contains("unsupported_value")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_rejected_json_schema_falls_back_to_json_object_checked_locally_with_one_repair() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(body_partial_json(
                json!({"response_format": {"type": "json_schema"}}),
            ))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
                "code": "invalid_request_error",
                "message": "response_format of type 'json_schema' is not supported with this model",
                "type": "invalid_request_error", "param": null}})))
            .expect(1)
            .mount(&server)
            .await;
        let answers = std::sync::Mutex::new(vec![
            "<think>\nThe user wants a verdict.\n</think>\n\n```json\n{\"verdict\":\"aligned\"}\n```",
            "{\"verdict\": 3}",
            "{\"verdict\":\"partial\"}",
            "still not json",
            "{\"verdict\":\"aligned\",\"extra\":1}",
        ]);
        Mock::given(method("POST"))
            .respond_with(move |_: &Request| {
                let next = answers.lock().unwrap().remove(0);
                answer_from("Llama-3.3-70B-Instruct", next)
            })
            .mount(&server)
            .await;
        let model = named(&server, "Llama-3.3-70B-Instruct", ApiVersion::V1);
        let first = model.complete(&assessment_request()).await.unwrap();
        assert_eq!(first.content.as_deref(), Some("{\"verdict\":\"aligned\"}"));
        let second = model.complete(&assessment_request()).await.unwrap();
        assert_eq!(second.content.as_deref(), Some("{\"verdict\":\"partial\"}"));
        let err = model.complete(&assessment_request()).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidResponse(r) if r.contains("after one repair") && r.contains("\"extra\" is not in the schema")),
            "{err:?}"
        );
        let bodies: Vec<Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(body_of)
            .collect();
        assert_eq!(bodies.len(), 6);
        for body in &bodies[1..] {
            assert_eq!(body["response_format"], json!({"type": "json_object"}));
            let last_system = body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .rfind(|m| m["role"] == "system")
                .unwrap();
            assert!(
                last_system["content"]
                    .as_str()
                    .unwrap()
                    .contains("JSON Schema exactly"),
                "{body}"
            );
        }
        // The repair shows the model its unusable answer and says why.
        let repair = bodies[3]["messages"].as_array().unwrap();
        assert_eq!(repair[repair.len() - 2]["role"], "assistant");
        assert!(
            repair[repair.len() - 1]["content"]
                .as_str()
                .unwrap()
                .contains("expected string, found number")
        );
        assert_eq!(
            model.profile().structured_output,
            crate::StructuredOutput::JsonObjectFallback
        );
    }

    #[derive(Debug, Default)]
    struct ScopeRecorder(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl TokenCredential for ScopeRecorder {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            self.0
                .lock()
                .unwrap()
                .extend(scopes.iter().map(|s| (*s).to_owned()));
            Ok(azure_core::credentials::AccessToken::new(
                Secret::new(TOKEN),
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test]
    async fn every_cloud_gets_the_scope_of_its_endpoint_host() {
        // A loopback listener stands in for each cloud's host (the client resolves the host
        // to it): it counts connections and closes them, so each call ends in a transport
        // error after the token was requested.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        let clouds = [
            ("res.openai.azure.com", "", COGNITIVE_SERVICES_SCOPE),
            ("res.openai.azure.cn", "", COGNITIVE_SERVICES_SCOPE_CHINA),
            (
                "res.openai.azure.us",
                "",
                COGNITIVE_SERVICES_SCOPE_US_GOVERNMENT,
            ),
            (
                "res.services.ai.azure.com",
                "/api/projects/p",
                AI_FOUNDRY_SCOPE,
            ),
            (
                "res.services.ai.azure.cn",
                "/api/projects/p",
                AI_FOUNDRY_SCOPE_CHINA,
            ),
            (
                "res.services.ai.azure.us",
                "/api/projects/p",
                AI_FOUNDRY_SCOPE_US_GOVERNMENT,
            ),
        ];
        for (n, (host, path, scope)) in clouds.into_iter().enumerate() {
            let endpoint = format!("https://{host}:{}{path}", addr.port());
            assert_eq!(entra_scope_for(&endpoint), scope, "{endpoint}");
            let credential = Arc::new(ScopeRecorder::default());
            let model = AzureOpenAi::new(
                &endpoint,
                "gpt-4o",
                OpenAiAuth::Entra(credential.clone()),
                Some(AzureOpenAiOptions {
                    retry: RetryPolicy::none(),
                    client: Some(
                        reqwest::Client::builder()
                            .resolve(host, addr)
                            .build()
                            .unwrap(),
                    ),
                    ..options(ApiVersion::V1)
                }),
            )
            .unwrap();
            let err = model.complete(&assessment_request()).await.unwrap_err();
            assert!(!matches!(err, Error::Credential(_)), "{endpoint}: {err}");
            assert_eq!(*credential.0.lock().unwrap(), [scope], "{endpoint}");
            assert_eq!(
                accepted.load(std::sync::atomic::Ordering::SeqCst),
                n + 1,
                "{endpoint}: the call did not reach the endpoint"
            );
        }
    }

    #[tokio::test]
    async fn foundry_project_endpoints_use_v1_under_the_project_and_the_foundry_scope() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/projects/audit/openai/v1/chat/completions"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(success("ok", "stop"))
            .expect(1)
            .mount(&server)
            .await;
        let credential = Arc::new(ScopeRecorder::default());
        let model = AzureOpenAi::new(
            &format!("{}/api/projects/audit/openai/v1/", server.uri()),
            "gpt-5-mini",
            OpenAiAuth::Entra(credential.clone()),
            Some(options(ApiVersion::V1)),
        )
        .unwrap();
        model.complete(&assessment_request()).await.unwrap();
        assert_eq!(*credential.0.lock().unwrap(), [AI_FOUNDRY_SCOPE]);
        // A resource endpoint keeps the Cognitive Services scope.
        let resource = AzureOpenAi::new(
            &server.uri(),
            "gpt-5-mini",
            OpenAiAuth::Entra(credential.clone()),
            None,
        )
        .unwrap();
        assert_eq!(
            resource.url(),
            format!("{}/openai/v1/chat/completions", server.uri())
        );
        // A project serves v1 only, and its path must end at the project.
        for (endpoint, version) in [
            ("https://r.services.ai.azure.com/api/projects/p", ga()),
            (
                "https://r.services.ai.azure.com/api/projects/p/agents",
                ApiVersion::V1,
            ),
        ] {
            assert!(
                matches!(
                    AzureOpenAi::new(
                        endpoint,
                        "d",
                        OpenAiAuth::ApiKey(Secret::new(KEY)),
                        Some(options(version))
                    ),
                    Err(Error::Config(_))
                ),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn api_versions_parse() {
        assert_eq!("V1".parse::<ApiVersion>().unwrap(), ApiVersion::V1);
        assert_eq!(
            " 2024-10-21 ".parse::<ApiVersion>().unwrap(),
            ApiVersion::Dated("2024-10-21".into())
        );
        for bad in [
            "",
            "2024-10-2",
            "2024-00-01",
            "2024-10-32",
            "2024-10-21-beta",
            "v2",
            "２０２４-10-21",
            "2024-10-21\n-preview",
        ] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad:?}");
        }
    }
}
