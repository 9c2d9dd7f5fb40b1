//! A fake webhook receiver: a Logic App HTTP trigger or a Teams workflow (reference §6.2).

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{Injections, RecordedRequest, header_text, lock, safe_status};

/// The path of the fake trigger, shaped like a Logic App's.
const TRIGGER_PATH: &str = "/workflows/fake-workflow/triggers/manual/paths/invoke";

/// A failure the fake webhook can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFailure {
    /// 429 with `Retry-After: <secs>`.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// 500.
    InternalError,
    /// 503.
    ServiceUnavailable,
    /// Any other status.
    Status(u16),
}

struct State {
    sig: String,
    success_status: u16,
    injections: Injections<WebhookFailure>,
    requests: Vec<RecordedRequest>,
    accepted: Vec<Value>,
}

/// A fake webhook on 127.0.0.1 that accepts `POST` JSON at a Logic-App-shaped path.
///
/// [`url`](Self::url) includes `?api-version=2016-10-01&sp=…&sv=1.0&sig=<sig>`; a request with
/// another `sig` gets 401, a wrong path 404, a non-JSON body 400. Accepted bodies are kept as
/// [`payloads`](Self::payloads); the success status is 202 (see
/// [`set_success_status`](Self::set_success_status)).
pub struct WebhookFake {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for WebhookFake {
    // The signature is a credential: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookFake")
            .field("endpoint", &self.server.uri())
            .field("sig", &pim_http::secret::Redacted)
            .field("requests", &lock(&self.state).requests.len())
            .finish()
    }
}

impl WebhookFake {
    /// Starts a fake whose URL carries `sig` as its signature.
    pub async fn start(sig: impl Into<String>) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            sig: sig.into(),
            success_status: 202,
            injections: Injections::default(),
            requests: Vec::new(),
            accepted: Vec::new(),
        }));
        Mock::given(method("POST"))
            .respond_with(WebhookResponder {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// The full trigger URL, signature included.
    pub fn url(&self) -> String {
        let sig = lock(&self.state).sig.clone();
        format!(
            "{}{TRIGGER_PATH}?api-version=2016-10-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}",
            self.server.uri()
        )
    }

    /// The URL without its query: what may be shown.
    pub fn url_without_query(&self) -> String {
        format!("{}{TRIGGER_PATH}", self.server.uri())
    }

    /// The status of an accepted post (default 202).
    pub fn set_success_status(&self, status: u16) -> &Self {
        lock(&self.state).success_status = safe_status(status);
        self
    }

    /// Answers the next `n` authenticated posts with `failure`.
    pub fn fail_next(&self, n: usize, failure: WebhookFailure) -> &Self {
        lock(&self.state).injections.add(Some(n), None, failure);
        self
    }

    /// Answers every authenticated post with `failure`.
    pub fn fail_always(&self, failure: WebhookFailure) -> &Self {
        lock(&self.state).injections.add(None, None, failure);
        self
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// The accepted JSON bodies, in arrival order.
    pub fn payloads(&self) -> Vec<Value> {
        lock(&self.state).accepted.clone()
    }
}

struct WebhookResponder {
    state: Arc<Mutex<State>>,
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(safe_status(status))
        .set_body_json(json!({"error": {"code": code, "message": message}}))
}

impl Respond for WebhookResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        state.requests.push(RecordedRequest::from_wiremock(request));
        if request.url.path() != TRIGGER_PATH {
            return error(404, "WorkflowNotFound", "The workflow was not found.");
        }
        let sig = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "sig")
            .map(|(_, v)| v.into_owned());
        if sig.as_deref() != Some(state.sig.as_str()) {
            return error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided signature is not valid.",
            );
        }
        let json_type = header_text(request, "content-type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
        let Some(body) = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .filter(|_| json_type)
        else {
            return error(400, "InvalidRequestContent", "The body must be JSON.");
        };
        match state.injections.take("") {
            Some(WebhookFailure::TooManyRequests { retry_after_secs }) => {
                return error(429, "TooManyRequests", "Rate limit exceeded.")
                    .insert_header("Retry-After", retry_after_secs.to_string().as_str());
            }
            Some(WebhookFailure::InternalError) => {
                return error(500, "InternalServerError", "Internal error.");
            }
            Some(WebhookFailure::ServiceUnavailable) => {
                return error(503, "ServiceUnavailable", "Unavailable.");
            }
            Some(WebhookFailure::Status(status)) => {
                return error(status, "Injected", "Injected failure.");
            }
            None => {}
        }
        state.accepted.push(body);
        ResponseTemplate::new(state.success_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_signed_json_and_rejects_the_rest() {
        let fake = WebhookFake::start("s1g").await;
        let client = reqwest::Client::new();
        let send = |url: String, body: &'static str| {
            let client = client.clone();
            async move {
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(send(fake.url(), r#"{"a":1}"#).await, 202);
        assert_eq!(send(fake.url().replace("s1g", "bad"), "{}").await, 401);
        assert_eq!(send(fake.url_without_query(), "{}").await, 401);
        assert_eq!(send(fake.url(), "not json").await, 400);
        fake.fail_next(1, WebhookFailure::InternalError);
        assert_eq!(send(fake.url(), "{}").await, 500);
        fake.set_success_status(200);
        assert_eq!(send(fake.url(), "{}").await, 200);
        assert_eq!(fake.payloads(), vec![json!({"a":1}), json!({})]);
        assert_eq!(fake.requests().len(), 6);
        assert!(!format!("{fake:?}").contains("s1g"));
    }
}
