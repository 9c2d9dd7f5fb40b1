//! Delivery of PIM audit findings to people: through an Azure Monitor Action Group, or a webhook.
//!
//! An application cannot post into an Action Group. The standard route (see
//! `docs/alerting.md`) is to write one [`AuditRow`] per assessed activation into a custom table
//! (`PimAudit_CL`) with the Logs Ingestion API ([`LogsIngestionClient`]), and let a log search
//! alert rule on that table fire the group. For a Logic App or a Teams workflow,
//! [`WebhookClient`] posts a [`FindingsSummary`] of the activations at or above a
//! [`Threshold`].
//!
//! - [`Destination`] is the port every destination implements (name, send, probe);
//!   [`destinations`] builds the configured ones from [`DeliverySettings`] (the
//!   [`DestinationSpec`]s that `--send` names, parsed once), so a binary only loops over them;
//! - [`rows`] turns a [`Report`](pim_domain::Report) into table rows ([`COLUMNS`] is the schema);
//! - [`LogsIngestionClient::send`] batches them under the 1 MB call limit, splits a batch the
//!   service calls too large (413), and retries throttling and transient failures with the
//!   shared [`RetryPolicy`](pim_domain::retry::RetryPolicy) through `pim-http`'s driver;
//! - [`RunRow`] is the heartbeat, one row per run into `PimRun_CL` ([`RUN_COLUMNS`]) through
//!   [`run_client`] on the run stream of the same rule, for the alerts on the job's own health;
//! - [`findings_summary`] and [`WebhookClient::send`] do the same for a webhook, keeping the
//!   URL's query string (its signature) out of every log, error and `Debug` output.
//!
//! ```
//! use pim_deliver::{Threshold, WebhookClient};
//!
//! let hook = WebhookClient::new(
//!     "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-10-01&sig=SECRET",
//!     None,
//! ).unwrap();
//! assert!(!format!("{hook:?}").contains("SECRET"));
//! assert_eq!("high".parse::<Threshold>().unwrap().to_string(), "high");
//! assert!(pim_deliver::COLUMNS.iter().any(|(name, _)| *name == "IsFinding"));
//! ```

mod destination;
mod error;
mod http;
mod ingestion;
mod row;
mod run_row;
mod webhook;

pub use destination::{
    DEFAULT_STREAM, Delivered, DeliverySettings, Destination, DestinationSpec,
    LogsIngestionDestination, LogsIngestionSettings, TokenNeed, WebhookDestination, destinations,
};
pub use error::{Error, Result};
pub use ingestion::{
    API_VERSION, DEFAULT_MAX_BODY_BYTES, IngestionOptions, LogsIngestionClient, MIN_MAX_BODY_BYTES,
    SERVICE_MAX_BODY_BYTES, SendSummary,
};
/// The Logs Ingestion scopes live with the cloud detection in `pim-domain`, so that `--check`
/// (which does not depend on this crate) requests exactly what the client requests.
pub use pim_domain::cloud::{
    MONITOR_SCOPE, MONITOR_SCOPE_CHINA, MONITOR_SCOPE_US_GOVERNMENT, monitor_scope,
};
/// How [`DeliverySettings`] and [`DestinationSpec`] hold a webhook URL: its `Debug` never
/// shows the value.
pub use pim_http::secret::Secret;
pub use row::{
    AuditRow, COLUMNS, JUSTIFICATION_MAX_CHARS, RATIONALE_MAX_CHARS, TEXT_MAX_CHARS, TICKETS_MAX,
    rows,
};
pub use run_row::{DEFAULT_RUN_STREAM, RUN_COLUMNS, RunRow, RunStatus, run_client};
pub use webhook::{
    Condition, FindingsSummary, MAX_LISTED, SummaryCounts, SummaryFinding, SummaryWindow,
    Threshold, WebhookClient, WebhookOptions, findings_summary,
};
