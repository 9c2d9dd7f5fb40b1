//! The routes (issue 15's table), their JSON shapes, and how refusals become statuses.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pim_agent::{Answer, ScanCache, Session, SessionOptions, render_text};
use pim_core::{Auditor, KqlSource, MarkdownOptions, ReportFormat};
use pim_openai::ChatModel;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{AuthError, Authenticator, Caller};
use crate::config::{AuthConfig, ServeConfig};
use crate::entra::EntraValidator;
use crate::ready::ReadyCheck;
use crate::rendered::{Rendered, json_array};
use crate::sessions::{Hosted, Message, Refusal, Sessions};
use crate::{Result, page};

/// The clock a server asks for "now" (library code never reads it itself).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// What every hosted session shares: the same auditor, source, model and options as the REPL,
/// one [`ScanCache`] (identical concurrent scans run once), and the clock.
#[derive(Clone)]
pub struct Agent {
    /// The auditor scans run on.
    pub auditor: Arc<Auditor>,
    /// The source free-form questions query.
    pub source: Arc<dyn KqlSource>,
    /// The model, when one is configured.
    pub model: Option<Arc<dyn ChatModel>>,
    /// Each session's options; [`SessionOptions::write_files`] is always turned off.
    pub options: SessionOptions,
    /// The scans shared by all sessions.
    pub scans: Arc<ScanCache>,
    /// "Now", for each line and the readiness probe.
    pub clock: Clock,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("source", &self.source.info().description)
            .field("model", &self.model.as_ref().map(|m| m.describe()))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AppState {
    config: ServeConfig,
    agent: Agent,
    auth: Authenticator,
    sessions: Sessions,
    ready: ReadyCheck,
    rendered: Rendered,
}

/// Serves the agent on `listener` until `shutdown` completes.
///
/// # Errors
/// [`crate::Error::Config`] when the configuration is unsafe on this address (see
/// [`ServeConfig::check`]); [`crate::Error::Io`] when the listener fails.
pub async fn serve(
    listener: TcpListener,
    config: ServeConfig,
    agent: Agent,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    config.check(addr)?;
    let auth = match &config.auth {
        AuthConfig::None => Authenticator::None,
        AuthConfig::Entra(entra) => {
            Authenticator::Entra(Box::new(EntraValidator::new(entra.clone())?))
        }
    };
    let mut agent = agent;
    agent.options.write_files = false;
    let state = Arc::new(AppState {
        sessions: Sessions::new(config.limits.clone()),
        config,
        agent,
        auth,
        ready: ReadyCheck::default(),
        rendered: Rendered::default(),
    });
    let sweeper = {
        let state = state.clone();
        let every = (state.config.limits.idle / 2)
            .clamp(Duration::from_millis(50), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                state.sessions.sweep();
            }
        })
    };
    tracing::info!(%addr, "pim-chat serve listening");
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    Ok(served?)
}

fn router(state: Arc<AppState>) -> Router {
    let limits = &state.config.limits;
    let api = Router::new()
        .route("/api/sessions", post(create_session))
        .route(
            "/api/sessions/{id}",
            get(show_session).delete(delete_session),
        )
        .route("/api/sessions/{id}/messages", post(post_message))
        .route("/api/sessions/{id}/report.md", get(report_markdown))
        .route("/api/sessions/{id}/report.json", get(report_json))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .route("/", get(page::index))
        .route("/static/app.js", get(page::script))
        .route("/static/app.css", get(page::style))
        .route("/static/icon.svg", get(page::icon))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api)
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // Spans carry the method and path only: headers (and so tokens) are never recorded.
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A refused request, as a status and a JSON `{"error": "..."}` body.
#[derive(Debug)]
enum ApiError {
    Auth(AuthError),
    NotFound,
    Refused(Refusal),
    BadBody(StatusCode, String),
    NoReport,
    Render(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        let (status, message) = match self {
            Self::Auth(e) => {
                let status = match e {
                    AuthError::Missing => {
                        headers
                            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                        StatusCode::UNAUTHORIZED
                    }
                    AuthError::Invalid(_) => {
                        headers.insert(
                            header::WWW_AUTHENTICATE,
                            HeaderValue::from_static("Bearer error=\"invalid_token\""),
                        );
                        StatusCode::UNAUTHORIZED
                    }
                    AuthError::MissingRole(_) => StatusCode::FORBIDDEN,
                    AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, e.to_string())
            }
            Self::NotFound => (StatusCode::NOT_FOUND, "no such session".to_owned()),
            Self::Refused(Refusal::SessionsPerUser(n)) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("you have {n} sessions open, the most allowed: delete one first"),
            ),
            Self::Refused(Refusal::ServerFull) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server holds as many sessions as it may; try again later".to_owned(),
                )
            }
            Self::Refused(Refusal::RateLimited(wait)) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many messages in the last minute; wait and send again".to_owned(),
                )
            }
            Self::BadBody(status, message) => (status, message),
            Self::NoReport => (
                StatusCode::NOT_FOUND,
                "no report yet: run `scan` first".to_owned(),
            ),
            Self::Render(reason) => (StatusCode::INTERNAL_SERVER_ERROR, reason),
        };
        (status, headers, Json(ErrorBody { error: message })).into_response()
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        state.auth.authenticate(&parts.headers).await.map_err(|e| {
            // The reason names the failed check; the token itself is never logged.
            tracing::info!(reason = %e, "request refused");
            ApiError::Auth(e)
        })
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let now = (state.agent.clock)();
    let r = state
        .ready
        .check(&state.agent.source, state.agent.model.as_ref(), now)
        .await;
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "failing" };
    (
        status,
        Json(serde_json::json!({
            "ready": r.ready(),
            "source": word(r.source),
            "model": if state.agent.model.is_some() { word(r.model) } else { "not configured" },
        })),
    )
        .into_response()
}

#[derive(Serialize)]
struct Created {
    id: String,
}

async fn create_session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let agent = &state.agent;
    let session = Session::new(
        agent.auditor.clone(),
        agent.source.clone(),
        agent.model.clone(),
        agent.options.clone(),
    )
    .with_scan_cache(agent.scans.clone());
    let id = state
        .sessions
        .create(&caller, session)
        .map_err(ApiError::Refused)?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Serialize)]
struct Transcript {
    id: String,
    messages: Vec<Message>,
}

async fn show_session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Transcript>, ApiError> {
    let hosted = state.sessions.get(&caller, &id).ok_or(ApiError::NotFound)?;
    let messages = hosted.lock().await.messages.iter().cloned().collect();
    Ok(Json(Transcript { id, messages }))
}

async fn delete_session(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.sessions.remove(&caller, &id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Deserialize)]
struct MessageIn {
    text: String,
}

/// The answer to one message: the agent's text, the last query, and (added by `run_turn`)
/// `activations` when the answer is about some, as in the JSON report.
#[derive(Serialize)]
struct Reply<'a> {
    reply: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kql: Option<&'a str>,
}

/// A JSON answer as the chunks that make it up, to send one after another (see `rendered`).
struct Chunks(Vec<Bytes>);

impl Chunks {
    /// The whole text, for a server-sent event (whose data is one string).
    fn into_string(self) -> String {
        // Every chunk is serde_json output, so the concatenation is UTF-8.
        String::from_utf8(self.0.concat()).unwrap_or_default()
    }

    /// A body that sends the chunks one after another, with their total as `Content-Length`.
    fn into_body(self) -> Body {
        let remaining = self.0.iter().map(|c| c.len() as u64).sum();
        Body::new(ChunkBody {
            chunks: self.0.into(),
            remaining,
        })
    }
}

/// [`Chunks`] as an HTTP body of known length.
struct ChunkBody {
    chunks: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        std::task::Poll::Ready(this.chunks.pop_front().map(|chunk| {
            this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
            Ok(http_body::Frame::data(chunk))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

async fn post_message(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<MessageIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let hosted = state.sessions.get(&caller, &id).ok_or(ApiError::NotFound)?;
    let Json(MessageIn { text }) =
        body.map_err(|e| ApiError::BadBody(e.status(), e.body_text()))?;
    state
        .sessions
        .admit_message(&caller)
        .map_err(ApiError::Refused)?;
    // The turn runs in its own task: a client that goes away mid-answer does not cut a scan
    // short or leave the transcript half-written.
    let turn = tokio::spawn(run_turn(state.clone(), hosted, caller, id, text));
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_events {
        use futures_util::StreamExt;
        let working = futures_util::stream::once(async {
            Ok::<_, std::convert::Infallible>(Event::default().event("working").data("{}"))
        });
        let answer = futures_util::stream::once(async move {
            let event = match turn.await {
                Ok(body) => Event::default().event("answer").data(body.into_string()),
                Err(_) => Event::default()
                    .event("error")
                    .data(r#"{"error":"the answer failed"}"#),
            };
            Ok(event)
        });
        let done =
            futures_util::stream::once(async { Ok(Event::default().event("done").data("{}")) });
        Ok(Sse::new(working.chain(answer).chain(done))
            .keep_alive(KeepAlive::default())
            .into_response())
    } else {
        let body = turn
            .await
            .map_err(|_| ApiError::Render("the answer failed".to_owned()))?;
        Ok((
            [(header::CONTENT_TYPE, "application/json")],
            body.into_body(),
        )
            .into_response())
    }
}

async fn run_turn(
    state: Arc<AppState>,
    hosted: Arc<tokio::sync::Mutex<Hosted>>,
    caller: Caller,
    id: String,
    text: String,
) -> Chunks {
    let mut h = hosted.lock().await;
    let now = (state.agent.clock)();
    let answer = h.session.handle_line(&text, now).await;
    let reply = render_text(&answer);
    let about_activations = matches!(
        answer,
        Answer::Scan(_) | Answer::Activity(_) | Answer::Assessment(_)
    );
    // Straight to text: a scan's answer holds every activation with all its operations (the
    // demo tenant's runaway script alone has 5,200, about 4 MB of JSON), so no intermediate
    // `serde_json::Value` tree of it is built, each activation of a shared report is
    // serialized once for all the sessions that list it, and the answer is sent as chunks
    // rather than copied into one body (see `rendered`).
    let head = serde_json::to_vec(&Reply {
        reply: &reply,
        kql: h.session.last_kql(),
    });
    let activations = about_activations
        .then(|| state.rendered.activations(&answer.report_activations()))
        .transpose();
    let body = match (head, activations) {
        (Ok(mut head), Ok(Some(activations))) => {
            // `{"reply":…}` becomes `{"reply":…,"activations":[…]}`.
            head.pop();
            head.extend_from_slice(br#","activations":"#);
            let mut chunks = vec![Bytes::from(head)];
            chunks.extend(json_array(activations));
            chunks.push(Bytes::from_static(b"}"));
            Chunks(chunks)
        }
        (Ok(head), Ok(None)) => Chunks(vec![Bytes::from(head)]),
        (Err(e), _) => Chunks(vec![Bytes::from(error_json(&reply, &e.to_string()))]),
        (_, Err(e)) => Chunks(vec![Bytes::from(error_json(&reply, &e))]),
    };
    let keep = state.config.limits.transcript_messages;
    h.messages.push_back(Message { role: "user", text });
    h.messages.push_back(Message {
        role: "agent",
        text: reply,
    });
    while h.messages.len() > keep {
        h.messages.pop_front();
    }
    drop(h);
    if answer.ends_session() {
        state.sessions.remove(&caller, &id);
    }
    body
}

/// An answer whose activations could not be serialized: the reply and why.
fn error_json(reply: &str, error: &str) -> String {
    serde_json::json!({ "reply": reply, "error": error }).to_string()
}

async fn report(
    state: &AppState,
    caller: &Caller,
    id: &str,
    format: ReportFormat,
) -> Result<String, ApiError> {
    let hosted = state.sessions.get(caller, id).ok_or(ApiError::NotFound)?;
    let report = hosted
        .lock()
        .await
        .session
        .last_report()
        .cloned()
        .ok_or(ApiError::NoReport)?;
    pim_core::render(&report, format, None, &MarkdownOptions::default())
        .map_err(|e| ApiError::Render(e.to_string()))
}

async fn report_markdown(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let text = report(&state, &caller, &id, ReportFormat::Markdown).await?;
    Ok(download(
        text,
        "text/markdown; charset=utf-8",
        "pim-report.md",
    ))
}

async fn report_json(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let text = report(&state, &caller, &id, ReportFormat::Json).await?;
    Ok(download(text, "application/json", "pim-report.json"))
}

fn download(text: String, content_type: &'static str, name: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        text,
    )
        .into_response()
}
