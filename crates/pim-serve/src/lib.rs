//! The HTTP API and web page of `pim-chat serve`: the chat agent for many analysts at once,
//! each signed in with Entra ID and each seeing only their own conversations.
//!
//! [`serve`] runs an axum server over one shared [`Agent`] (the same auditor, source, model and
//! options as the REPL, and one [`pim_agent::ScanCache`], so identical concurrent scans run
//! once). Each `POST /api/sessions` opens a [`pim_agent::Session`] owned by the caller's token
//! (`tid` + `oid`); any other caller's request for it answers 404.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /api/sessions` | 201 `{"id"}` |
//! | `POST /api/sessions/{id}/messages` `{"text"}` | 200 `{"reply", "kql"?, "activations"?}`; with `Accept: text/event-stream`, the events `working`, `answer` (the same JSON) and `done` |
//! | `GET /api/sessions/{id}` | 200 `{"id", "messages": [{"role", "text"}]}` |
//! | `DELETE /api/sessions/{id}` | 204 |
//! | `GET /api/sessions/{id}/report.md`, `report.json` | the last scan's report, as a download |
//! | `GET /healthz` | 200, no sign-in |
//! | `GET /readyz` | 200 when the source and the model answer, else 503; no sign-in |
//! | `GET /` | the web page (embedded; strict Content-Security-Policy) |
//!
//! Sign-in ([`AuthConfig`]): Entra ID tokens, as `Authorization: Bearer` or in the
//! `X-MS-TOKEN-AAD-ID-TOKEN` header App Service and Container Apps authentication inject,
//! validated by [`EntraValidator`] (RS256 against the authority's JWKS, issuer, audience,
//! `exp`/`nbf` with five minutes of skew, the app role); or none at all, on a loopback address
//! only. Limits ([`Limits`]): body size (413), sessions per user (429), messages per user per
//! minute (429 with `Retry-After`), idle expiry, sessions in all (503).
//!
//! ```
//! use std::sync::Arc;
//! use pim_agent::{ScanCache, SessionOptions};
//! use pim_core::{Auditor, KqlSource};
//! use pim_serve::{Agent, AuthConfig, Limits, ServeConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let source = pim_core::demo_source()?;
//!     let agent = Agent {
//!         auditor: Arc::new(Auditor::builder(source.clone()).build()),
//!         options: SessionOptions { end: source.info().default_end, ..SessionOptions::default() },
//!         source,
//!         model: None,
//!         scans: Arc::new(ScanCache::new(std::time::Duration::from_secs(60))),
//!         clock: Arc::new(time::OffsetDateTime::now_utc),
//!     };
//!     // No sign-in is accepted on loopback only.
//!     let config = ServeConfig { auth: AuthConfig::None, limits: Limits::default() };
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let url = format!("http://{}", listener.local_addr()?);
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     let server = tokio::spawn(pim_serve::serve(listener, config, agent, async {
//!         stopped.await.ok();
//!     }));
//!     let health = reqwest::get(format!("{url}/healthz")).await?;
//!     assert_eq!(health.status(), 200);
//!     stop.send(()).ok();
//!     server.await??;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```
//!
//! The page is tested in a real browser (Chromium driven by playwright-core, against the real
//! binary): `crates/pim-serve/browser/test.mjs`, described in `docs/serve.md`.
//!
//! See: issue 15.

mod api;
mod auth;
mod config;
mod entra;
mod error;
mod page;
mod ready;
mod rendered;
mod sessions;

pub use api::{Agent, Clock, serve};
pub use auth::{AuthError, Caller};
pub use config::{AuthConfig, EntraConfig, Limits, ServeConfig};
pub use entra::{EntraValidator, LEEWAY};
pub use error::{Error, Result};
pub use page::CSP;
/// The model port, as [`Agent::model`] holds it.
pub use pim_openai::ChatModel;
pub use ready::READY_TTL;
