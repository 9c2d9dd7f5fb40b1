//! Loopback fake Azure servers for tests and benchmarks.
//!
//! Each fake is a [`wiremock`] server on 127.0.0.1 (the Log Analytics fake is a multi-threaded
//! hyper server of its own, so that large answers are made and sent concurrently) that speaks
//! the real wire format (see `shared/azure-reference.md` §3, §4, §5.5), records what it
//! received, and can inject the failures real services produce:
//!
//! - [`LogAnalyticsFake`]: `POST /v1/workspaces/{id}/query`, tables chosen by KQL text
//!   ([`LogAnalyticsFake::with_table_for`], [`LogAnalyticsFake::with_demo_tenant`]), failures
//!   from [`Failure`] (429 with `Retry-After`, 5xx, `PartialError`, `SYN0002` bad query, …);
//!   rows filtered by time and identity and cut at the service's [`Limits`] with its exact
//!   truncation response, from tables or a lazy [`RowGenerator`];
//! - [`OpenAiFake`]: Azure OpenAI / Foundry chat completions on both URL styles (and under a
//!   Foundry project), answers from a [`Responder`] ([`aligned_responder`],
//!   [`injection_obeying_responder`], [`scripted`]) as [`FakeReply`]s; deployments registered
//!   as a [`FakeModel`] (gpt-4o, gpt-4.1, o3-mini, o4-mini, gpt-5-mini, a Foundry Llama) follow
//!   that family's parameter rules and error bodies (reference §10);
//! - [`ManagedIdentityFake`]: the App Service token endpoint for `IDENTITY_ENDPOINT`, issuing
//!   [`token_for`] tokens;
//! - [`LogsIngestionFake`]: the Azure Monitor Logs Ingestion API (data collection rule
//!   streams), with 413/429/5xx/401/403 from [`IngestionFailure`];
//! - [`WebhookFake`]: a Logic App / Teams workflow trigger URL with a signature;
//! - [`OtlpReceiver`]: an OpenTelemetry collector's OTLP/HTTP receiver (`/v1/traces`,
//!   `/v1/metrics`, protobuf), decoding what it receives into [`ReceivedSpan`]s and
//!   [`MetricPoint`]s;
//! - [`TicketFake`]: ServiceNow's Table API and Jira REST (v3 Cloud, v2 Data Center) on one
//!   server (reference §11), records and issues from [`FakeRecord`] / [`FakeIssue`], the
//!   systems' own 401 bodies for a wrong credential ([`FakeAuth`]), and 401/403/404/429 with
//!   `Retry-After`/500/slow answers from [`TicketFailure`], counting lookups per ticket;
//! - [`OidcFake`]: an Entra ID authority (OIDC metadata + JWKS) whose RSA keys are generated at
//!   test time, minting RS256 tokens for `pim-chat serve`'s sign-in tests.
//!
//! [`report_schema`] validates JSON reports against the report's JSON Schema (`jsonschema`).
//!
//! Every fake keeps a log of [`RecordedRequest`]s so tests can assert on path, headers and body,
//! and that a secret did not travel where it must not. Configuration methods take `&self`, so
//! failures can be injected while the code under test holds the URL.
//!
//! ```
//! use pim_testkit::{Failure, LogAnalyticsFake, token_for};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let la = LogAnalyticsFake::start().await;
//! la.with_demo_tenant().await.unwrap()
//!     .fail_next(1, Failure::TooManyRequests { retry_after_secs: 1 });
//! let endpoint = la.uri(); // hand this to the Log Analytics adapter
//! assert!(endpoint.starts_with("http://127.0.0.1:"));
//! assert!(la.requests().is_empty());
//! assert_ne!(token_for("https://api.loganalytics.io"), token_for("https://cognitiveservices.azure.com"));
//! # });
//! ```

mod common;
mod ingestion;
mod loganalytics;
mod msi;
mod oidc;
mod openai;
mod otlp;
pub mod report_schema;
mod tickets;
mod webhook;

pub use common::{RecordedRequest, token_for};
pub use ingestion::{IngestionFailure, LogsIngestionFake, MONITOR_RESOURCE};
pub use loganalytics::{
    AnswerTiming, DynamicCells, Failure, KqlMatcher, Limits, LogAnalyticsFake, QueryCall,
    RowGenerator, RowScope, demo_tables, reads_table,
};
pub use msi::{ManagedIdentityFake, MsiFailure};
pub use oidc::{OidcFake, unix_now};
pub use openai::{
    ChatAuth, ChatCall, ChatMessage, ChatRoute, FakeModel, FakeReply, OpenAiFake, Responder,
    aligned_responder, assessment_json, injection_obeying_responder, scripted,
};
pub use otlp::{MetricPoint, OtlpReceiver, PointValue, ReceivedSpan};
pub use tickets::{
    FakeAuth, FakeIssue, FakeRecord, FakeUser, JIRA_API_TOKEN, JIRA_EMAIL, SERVICENOW_PASSWORD,
    SERVICENOW_USER, TicketFailure, TicketFake,
};
pub use webhook::{WebhookFailure, WebhookFake};

/// What can go wrong while setting up a fake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded demo tenant could not be loaded or queried.
    #[error("demo tenant unavailable: {0}")]
    Demo(#[from] pim_loganalytics::Error),
    /// The demo tenant answered a table query with no table.
    #[error("demo tenant returned no {table} table")]
    DemoEmpty {
        /// The table that was asked for.
        table: &'static str,
    },
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
