//! The fake App Service managed-identity token endpoint (reference §5.5).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{Injections, RecordedRequest, header_text, lock, normalize_resource};
use crate::token_for;

/// A failure the token endpoint can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiFailure {
    /// 500 with an error body.
    ServerError,
    /// 400 "identity not assigned" (`azure_identity` reports it as "The requested identity has
    /// not been assigned to this resource").
    IdentityNotAssigned,
}

struct State {
    header_secret: String,
    lifetime: Duration,
    injections: Injections<MsiFailure>,
    per_resource: BTreeMap<String, usize>,
    requests: Vec<RecordedRequest>,
}

/// A fake App Service managed-identity endpoint on 127.0.0.1: `GET /msi/token`.
///
/// Point `IDENTITY_ENDPOINT` at [`endpoint`](Self::endpoint) and `IDENTITY_HEADER` at the secret
/// given to [`start`](Self::start). A request needs `x-identity-header: <secret>` (else 401),
/// `api-version` and `resource` (else 400); `metadata: true` is accepted but not required. The
/// answer is `{"access_token": token_for(resource), "expires_on": "<unix secs>" (a string),
/// "token_type": "Bearer", "resource": resource}`.
pub struct ManagedIdentityFake {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for ManagedIdentityFake {
    // The header secret is a credential: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedIdentityFake")
            .field("endpoint", &self.endpoint())
            .field("header_secret", &pim_http::secret::Redacted)
            .field("requests", &lock(&self.state).requests.len())
            .finish()
    }
}

impl ManagedIdentityFake {
    /// Starts the fake; requests must send `x-identity-header: <header_secret>`.
    pub async fn start(header_secret: impl Into<String>) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            header_secret: header_secret.into(),
            lifetime: Duration::from_secs(3600),
            injections: Injections::default(),
            per_resource: BTreeMap::new(),
            requests: Vec::new(),
        }));
        Mock::given(method("GET"))
            .and(path("/msi/token"))
            .respond_with(TokenResponder {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// The value for `IDENTITY_ENDPOINT`: `http://127.0.0.1:<port>/msi/token`.
    pub fn endpoint(&self) -> String {
        format!("{}/msi/token", self.server.uri())
    }

    /// How long issued tokens live (default one hour).
    pub fn set_lifetime(&self, lifetime: Duration) -> &Self {
        lock(&self.state).lifetime = lifetime;
        self
    }

    /// Answers the next `n` token requests with `failure`.
    pub fn fail_next(&self, n: usize, failure: MsiFailure) -> &Self {
        lock(&self.state).injections.add(Some(n), None, failure);
        self
    }

    /// Answers every token request with `failure` (until [`clear_failures`](Self::clear_failures)).
    pub fn fail_always(&self, failure: MsiFailure) -> &Self {
        lock(&self.state).injections.add(None, None, failure);
        self
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) -> &Self {
        lock(&self.state).injections.clear();
        self
    }

    /// How many authenticated token requests named this resource (a scope with `/.default`
    /// counts as its resource), failed ones included.
    pub fn requests_for(&self, resource: &str) -> usize {
        lock(&self.state)
            .per_resource
            .get(normalize_resource(resource))
            .copied()
            .unwrap_or(0)
    }

    /// How many requests reached `/msi/token` (rejected ones included).
    pub fn request_count(&self) -> usize {
        lock(&self.state).requests.len()
    }

    /// Every request that reached `/msi/token`, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }
}

struct TokenResponder {
    state: Arc<Mutex<State>>,
}

impl Respond for TokenResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        state.requests.push(RecordedRequest::from_wiremock(request));
        if header_text(request, "x-identity-header").as_deref()
            != Some(state.header_secret.as_str())
        {
            return error(401, "x-identity-header is missing or does not match");
        }
        let param = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("api-version").is_none() {
            return error(400, "The api-version query parameter is required.");
        }
        let Some(resource) = param("resource").filter(|r| !r.is_empty()) else {
            return error(400, "The resource query parameter is required.");
        };
        let key = normalize_resource(&resource).to_owned();
        let count = state.per_resource.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        match state.injections.take(&resource) {
            Some(MsiFailure::ServerError) => return error(500, "An unexpected error occurred."),
            Some(MsiFailure::IdentityNotAssigned) => {
                return error(
                    400,
                    "No managed identity found for the specified client id, object id or resource id.",
                );
            }
            None => {}
        }
        // A real clock, unlike the rest of the workspace: credential caches compare expires_on
        // with the wall clock, so a fixed value would look expired (or never expire).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let expires_on = now.saturating_add(state.lifetime).as_secs();
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token_for(&resource),
            "expires_on": expires_on.to_string(),
            "token_type": "Bearer",
            "resource": resource,
        }))
    }
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"statusCode": status, "message": message}))
}
