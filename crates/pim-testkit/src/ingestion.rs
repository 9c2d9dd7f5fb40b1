//! The fake Azure Monitor Logs Ingestion API (reference §6.1).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{Injections, RecordedRequest, bearer_token, header_text, lock, safe_status};
use crate::token_for;

/// The API version the fake insists on.
const API_VERSION: &str = "2023-01-01";

/// The resource whose token the fake expects by default.
pub const MONITOR_RESOURCE: &str = "https://monitor.azure.com";

/// A failure the fake Logs Ingestion API can inject. Error bodies use the common data-plane
/// shape `{"error":{"code","message"}}` and repeat the code in `x-ms-error-code`; the codes are
/// **\[constructed\]**, as the reference names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestionFailure {
    /// 413 `ContentLengthLimitExceeded`.
    PayloadTooLarge,
    /// 429 `TooManyRequests` with `Retry-After: <secs>`.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// 500 `InternalServerError`.
    InternalError,
    /// 503 `ServiceUnavailable`, with `Retry-After` when given.
    ServiceUnavailable {
        /// The `Retry-After` value in seconds, if any.
        retry_after_secs: Option<u64>,
    },
    /// 401 `InvalidToken`.
    Unauthorized,
    /// 403 `OperationFailed` ("The authentication token provided does not have access to ingest
    /// data for the data collection rule").
    Forbidden,
    /// Any status with this `x-ms-error-code` and message.
    Status {
        /// The HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The normal answer after this delay (for client timeouts).
    Delay(Duration),
}

struct State {
    dcr: String,
    stream: String,
    token: Option<String>,
    max_body_bytes: usize,
    success_status: u16,
    injections: Injections<IngestionFailure>,
    requests: Vec<RecordedRequest>,
    accepted: Vec<Vec<Value>>,
}

/// A fake Logs Ingestion endpoint on 127.0.0.1 for one DCR and one stream.
///
/// A request must be `POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`
/// with `Authorization: Bearer token_for("https://monitor.azure.com")` (see
/// [`expect_token`](Self::expect_token)), `Content-Type: application/json` and a body that
/// parses as a JSON array. Failures of those checks answer like the service would: 404 unknown
/// rule, 400 unknown stream / bad api-version / bad payload, 401 bad token, 415 wrong content
/// type. A body over [`set_max_body_bytes`](Self::set_max_body_bytes) (default 1,000,000) gets
/// 413. Accepted bodies are kept, in order, as [`batches`](Self::batches).
pub struct LogsIngestionFake {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for LogsIngestionFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("LogsIngestionFake")
            .field("endpoint", &self.server.uri())
            .field("dcr", &state.dcr)
            .field("stream", &state.stream)
            .field("requests", &state.requests.len())
            .finish_non_exhaustive()
    }
}

impl LogsIngestionFake {
    /// Starts a fake that accepts rows for `dcr` (an immutable id) on `stream`.
    pub async fn start(dcr: impl Into<String>, stream: impl Into<String>) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            dcr: dcr.into(),
            stream: stream.into(),
            token: Some(token_for(MONITOR_RESOURCE)),
            max_body_bytes: 1_000_000,
            success_status: 204,
            injections: Injections::default(),
            requests: Vec::new(),
            accepted: Vec::new(),
        }));
        Mock::given(method("POST"))
            .respond_with(IngestionResponder {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// The endpoint to configure: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    /// The bearer token requests must carry; `None` accepts any non-empty one.
    pub fn expect_token(&self, token: Option<String>) -> &Self {
        lock(&self.state).token = token;
        self
    }

    /// Bodies longer than this many bytes get 413.
    pub fn set_max_body_bytes(&self, bytes: usize) -> &Self {
        lock(&self.state).max_body_bytes = bytes;
        self
    }

    /// The status of an accepted call (default 204; the client also accepts 200 and 202).
    pub fn set_success_status(&self, status: u16) -> &Self {
        lock(&self.state).success_status = safe_status(status);
        self
    }

    /// Answers the next `n` well-formed calls with `failure`.
    pub fn fail_next(&self, n: usize, failure: IngestionFailure) -> &Self {
        lock(&self.state).injections.add(Some(n), None, failure);
        self
    }

    /// Answers every well-formed call with `failure`, until [`clear_failures`](Self::clear_failures).
    pub fn fail_always(&self, failure: IngestionFailure) -> &Self {
        lock(&self.state).injections.add(None, None, failure);
        self
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) -> &Self {
        lock(&self.state).injections.clear();
        self
    }

    /// Every request received, in arrival order (rejected ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// The accepted bodies, each parsed as a JSON array, in arrival order.
    pub fn batches(&self) -> Vec<Vec<Value>> {
        lock(&self.state).accepted.clone()
    }

    /// Every accepted row, batches concatenated in arrival order.
    pub fn rows(&self) -> Vec<Value> {
        lock(&self.state).accepted.concat()
    }
}

struct IngestionResponder {
    state: Arc<Mutex<State>>,
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(safe_status(status))
        .insert_header("x-ms-error-code", code)
        .set_body_json(json!({"error": {"code": code, "message": message}}))
}

impl Respond for IngestionResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        state.requests.push(RecordedRequest::from_wiremock(request));
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        let ["dataCollectionRules", dcr, "streams", stream] = segments.as_slice() else {
            return error(404, "NotFound", "The requested resource was not found.");
        };
        if *dcr != state.dcr {
            return error(
                404,
                "NotFound",
                &format!("Data collection rule with immutable Id '{dcr}' not found."),
            );
        }
        let api_version = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.into_owned());
        if api_version.as_deref() != Some(API_VERSION) {
            return error(
                400,
                "UnsupportedApiVersion",
                "The api-version query parameter is missing or not supported.",
            );
        }
        let Some(token) = bearer_token(request) else {
            return error(401, "InvalidToken", "Authorization header is missing.");
        };
        if state.token.as_ref().is_some_and(|want| *want != token) {
            return error(
                401,
                "InvalidToken",
                "The provided token is invalid or has the wrong audience.",
            );
        }
        let content_type = header_text(request, "content-type").unwrap_or_default();
        if !content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return error(
                415,
                "UnsupportedMediaType",
                "Content-Type must be application/json.",
            );
        }
        if *stream != state.stream {
            return error(
                400,
                "InvalidStream",
                &format!("Stream '{stream}' is not declared in the data collection rule."),
            );
        }
        if request.body.len() > state.max_body_bytes {
            return error(
                413,
                "ContentLengthLimitExceeded",
                "The request body exceeds the maximum size.",
            );
        }
        let rows = match serde_json::from_slice::<Value>(&request.body) {
            Ok(Value::Array(rows)) => rows,
            _ => {
                return error(
                    400,
                    "InvalidPayload",
                    "The request body must be a JSON array of objects.",
                );
            }
        };
        let mut delay = None;
        match state.injections.take("") {
            Some(IngestionFailure::PayloadTooLarge) => {
                return error(
                    413,
                    "ContentLengthLimitExceeded",
                    "The request body exceeds the maximum size.",
                );
            }
            Some(IngestionFailure::TooManyRequests { retry_after_secs }) => {
                return error(429, "TooManyRequests", "Rate limit exceeded.")
                    .insert_header("Retry-After", retry_after_secs.to_string().as_str());
            }
            Some(IngestionFailure::InternalError) => {
                return error(500, "InternalServerError", "An internal error occurred.");
            }
            Some(IngestionFailure::ServiceUnavailable { retry_after_secs }) => {
                let mut r = error(503, "ServiceUnavailable", "The service is unavailable.");
                if let Some(secs) = retry_after_secs {
                    r = r.insert_header("Retry-After", secs.to_string().as_str());
                }
                return r;
            }
            Some(IngestionFailure::Unauthorized) => {
                return error(401, "InvalidToken", "The provided token is invalid.");
            }
            Some(IngestionFailure::Forbidden) => {
                return error(
                    403,
                    "OperationFailed",
                    "The authentication token provided does not have access to ingest data for the data collection rule.",
                );
            }
            Some(IngestionFailure::Status {
                status,
                code,
                message,
            }) => return error(status, &code, &message),
            Some(IngestionFailure::Delay(d)) => delay = Some(d),
            None => {}
        }
        state.accepted.push(rows);
        let response = ResponseTemplate::new(state.success_status);
        match delay {
            Some(d) => response.set_delay(d),
            None => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(
        fake: &LogsIngestionFake,
        path: &str,
        token: &str,
        body: &str,
    ) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", fake.endpoint()))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    const OK_PATH: &str = "/dataCollectionRules/dcr-1/streams/Custom-T_CL?api-version=2023-01-01";

    #[tokio::test]
    async fn checks_path_version_token_and_body_then_records() {
        let fake = LogsIngestionFake::start("dcr-1", "Custom-T_CL").await;
        let good = token_for(MONITOR_RESOURCE);
        assert_eq!(
            post(&fake, OK_PATH, &good, r#"[{"A":1},{"A":2}]"#)
                .await
                .status(),
            204
        );
        let wrong_stream = "/dataCollectionRules/dcr-1/streams/Custom-X_CL?api-version=2023-01-01";
        let resp = post(&fake, wrong_stream, &good, "[]").await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["x-ms-error-code"], "InvalidStream");
        let wrong_dcr = "/dataCollectionRules/dcr-2/streams/Custom-T_CL?api-version=2023-01-01";
        assert_eq!(post(&fake, wrong_dcr, &good, "[]").await.status(), 404);
        let old = "/dataCollectionRules/dcr-1/streams/Custom-T_CL?api-version=2021-11-01-preview";
        assert_eq!(post(&fake, old, &good, "[]").await.status(), 400);
        assert_eq!(post(&fake, OK_PATH, "other", "[]").await.status(), 401);
        assert_eq!(
            post(&fake, OK_PATH, &good, r#"{"A":1}"#).await.status(),
            400
        );
        fake.set_max_body_bytes(10);
        assert_eq!(
            post(&fake, OK_PATH, &good, r#"[{"A":12345678}]"#)
                .await
                .status(),
            413
        );
        assert_eq!(fake.batches(), vec![vec![json!({"A":1}), json!({"A":2})]]);
        assert_eq!(fake.requests().len(), 7);
    }

    #[tokio::test]
    async fn injected_failures_run_out() {
        let fake = LogsIngestionFake::start("dcr-1", "Custom-T_CL").await;
        let good = token_for(MONITOR_RESOURCE);
        fake.fail_next(
            1,
            IngestionFailure::TooManyRequests {
                retry_after_secs: 7,
            },
        )
        .fail_next(1, IngestionFailure::Forbidden);
        let r = post(&fake, OK_PATH, &good, "[]").await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        let r = post(&fake, OK_PATH, &good, "[]").await;
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["x-ms-error-code"], "OperationFailed");
        fake.set_success_status(200);
        assert_eq!(post(&fake, OK_PATH, &good, "[]").await.status(), 200);
        assert_eq!(fake.rows(), Vec::<Value>::new());
        assert_eq!(fake.batches().len(), 1);
    }
}
