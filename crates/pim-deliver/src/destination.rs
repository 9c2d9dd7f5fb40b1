//! The [`Destination`] port: one place the findings of a report can be sent, whatever it is.
//!
//! A binary names its destinations once (`--send logs-ingestion`, `--send webhook=URL`), as
//! [`DestinationSpec`]s in [`DeliverySettings`]; [`destinations`] turns them into
//! `Arc<dyn Destination>`s, and from then on the caller only loops: [`Destination::send`] after
//! the scan, [`Destination::probe`] for `--check`. Nothing outside this module knows which kinds
//! exist, so a new destination (a ticket system, a queue) is a new impl here, not a new branch
//! in every binary.
//!
//! See: issue 11, "Destinations have a trait".

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use pim_domain::{ActivationReport, Report};
use pim_http::secret::Secret;

use crate::{Error, LogsIngestionClient, Result, Threshold, WebhookClient};

/// The stream `--send logs-ingestion` writes to unless `PIM_DCR_STREAM` says otherwise.
pub const DEFAULT_STREAM: &str = "Custom-PimAudit_CL";

/// What one [`Destination::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// This many items (table rows, listed findings) were accepted.
    Sent {
        /// Rows or findings the destination accepted.
        items: usize,
    },
    /// Nothing met the destination's threshold, so it was not called.
    NothingToSend,
}

/// An Azure token a destination asks for, so `--check` can fetch the same one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenNeed {
    /// The service as `--check` names it: the line is `token <service>`.
    pub service: &'static str,
    /// The endpoint the token is for (its host decides the cloud).
    pub endpoint: String,
    /// The scope requested.
    pub scope: String,
}

impl TokenNeed {
    /// The Azure Monitor (Logs Ingestion) token for a data collection `endpoint`, with the scope
    /// of the endpoint's cloud ([`crate::monitor_scope`]), as [`LogsIngestionClient`] asks.
    pub fn monitor(endpoint: &str) -> Self {
        Self {
            service: "azure-monitor",
            endpoint: endpoint.to_owned(),
            scope: crate::monitor_scope(endpoint).to_owned(),
        }
    }
}

/// A place the findings of a report are sent to.
///
/// Implementations keep their secrets (signed URLs, tokens) out of [`Destination::name`],
/// their `Debug` output, their errors and their logs.
#[async_trait]
pub trait Destination: Send + Sync + fmt::Debug {
    /// How the destination is named in logs, errors and `--check` (never a secret).
    fn name(&self) -> String;

    /// The Azure token the destination will ask for, if any.
    fn token_need(&self) -> Option<TokenNeed> {
        None
    }

    /// Sends what the destination takes of `report`, and logs what was sent.
    ///
    /// # Errors
    /// The destination's failure ([`Error`]); the clients have already retried what is safe to
    /// retry ([`Error::is_retryable`]), so an error here is final for this run.
    async fn send(&self, report: &Report) -> Result<Delivered>;

    /// Whether [`Destination::send`] would send `activation` (the destination's threshold), so
    /// a state store can keep exactly one delivery per revision of each activation this
    /// destination takes (issue 13). By default, every activation.
    fn selects(&self, activation: &ActivationReport) -> bool {
        let _ = activation;
        true
    }

    /// Whether the destination can be reached, without sending anything (for `--check`).
    ///
    /// # Errors
    /// A one-line reason, optionally followed by `; fix: <remedy>`.
    async fn probe(&self) -> std::result::Result<String, String>;
}

/// One `--send` value, parsed once: which kind of destination, and its inline settings.
#[derive(Clone, PartialEq, Eq)]
pub enum DestinationSpec {
    /// `logs-ingestion`: one row per activation into a custom table through a data collection
    /// rule ([`LogsIngestionSettings`]).
    LogsIngestion,
    /// `webhook` (the URL from [`DeliverySettings::webhook_url`]) or `webhook=URL`.
    Webhook {
        /// The URL given inline, if any (a secret: its query may hold a signature).
        url: Option<Secret>,
    },
}

impl fmt::Debug for DestinationSpec {
    // By hand: an inline webhook URL may carry its signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LogsIngestion => f.write_str("LogsIngestion"),
            Self::Webhook { url: None } => f.write_str("Webhook"),
            Self::Webhook { url: Some(_) } => f.write_str("Webhook(url: [redacted])"),
        }
    }
}

impl FromStr for DestinationSpec {
    type Err = String;

    /// `logs-ingestion`, `webhook` or `webhook=URL` (names case-insensitive).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("logs-ingestion") {
            return Ok(Self::LogsIngestion);
        }
        if s.eq_ignore_ascii_case("webhook") {
            return Ok(Self::Webhook { url: None });
        }
        match s.split_once('=') {
            Some((name, url)) if name.trim().eq_ignore_ascii_case("webhook") => Ok(Self::Webhook {
                url: Some(Secret::new(url.to_owned())),
            }),
            // Only the name is echoed: a mistyped `webhok=URL` must not print the signature.
            _ => {
                let name = s.split_once('=').map_or(s, |(name, _)| name);
                Err(format!(
                    "--send {:?}: expected logs-ingestion, webhook or webhook=URL",
                    name.chars().take(40).collect::<String>()
                ))
            }
        }
    }
}

impl DestinationSpec {
    /// Every destination named by repeated and comma-separated `--send` values, in order;
    /// empty items are skipped.
    ///
    /// # Errors
    /// The first value that names no destination.
    pub fn parse_list<S: AsRef<str>>(values: &[S]) -> std::result::Result<Vec<Self>, String> {
        values
            .iter()
            .flat_map(|v| v.as_ref().split(','))
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect()
    }

    /// Whether this destination needs an Azure credential (decided by its kind, never by
    /// what its URL happens to contain).
    pub fn needs_azure_credential(&self) -> bool {
        matches!(self, Self::LogsIngestion)
    }
}

/// The Logs Ingestion destination's settings (`PIM_DCR_ENDPOINT`, `PIM_DCR_RULE_ID`,
/// `PIM_DCR_STREAM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsIngestionSettings {
    /// The data collection endpoint (or the rule's logs ingestion endpoint).
    pub endpoint: Option<String>,
    /// The rule's immutable id (`dcr-…`).
    pub rule_id: Option<String>,
    /// The stream declared in the rule (default [`DEFAULT_STREAM`]).
    pub stream: String,
    /// The heartbeat stream in the same rule, one [`crate::RunRow`] per run (`PIM_DCR_RUN_STREAM`,
    /// default [`crate::DEFAULT_RUN_STREAM`]).
    pub run_stream: String,
}

impl Default for LogsIngestionSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            rule_id: None,
            stream: DEFAULT_STREAM.to_owned(),
            run_stream: crate::DEFAULT_RUN_STREAM.to_owned(),
        }
    }
}

/// Everything [`destinations`] needs: which destinations, and their settings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The destinations to send to, in order (from `--send`).
    pub targets: Vec<DestinationSpec>,
    /// Settings of a `logs-ingestion` destination.
    pub logs_ingestion: LogsIngestionSettings,
    /// The URL of a `webhook` destination without an inline URL (`PIM_WEBHOOK_URL`).
    pub webhook_url: Option<Secret>,
    /// Which activations a webhook summary lists (`--send-threshold`).
    pub threshold: Threshold,
}

impl fmt::Debug for DeliverySettings {
    // By hand: the webhook URL's query holds its signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliverySettings")
            .field("targets", &self.targets)
            .field("logs_ingestion", &self.logs_ingestion)
            .field(
                "webhook_url",
                &self.webhook_url.as_ref().map(|_| "[redacted]"),
            )
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl DeliverySettings {
    /// Whether any configured destination needs an Azure credential.
    pub fn needs_azure_credential(&self) -> bool {
        self.targets
            .iter()
            .any(DestinationSpec::needs_azure_credential)
    }
}

/// Builds every configured destination up front, so a misconfigured one stops the run before
/// the scan rather than after it. `credential` is needed only by destinations that say so
/// ([`DestinationSpec::needs_azure_credential`]); no token is fetched here.
///
/// # Errors
/// [`Error::MissingSetting`] naming the flag or variable to set, or [`Error::Setup`] wrapping
/// the client's own [`Error::InvalidConfig`].
pub fn destinations(
    settings: &DeliverySettings,
    credential: Option<Arc<dyn TokenCredential>>,
) -> Result<Vec<Arc<dyn Destination>>> {
    let mut out: Vec<Arc<dyn Destination>> = Vec::new();
    for target in &settings.targets {
        match target {
            DestinationSpec::LogsIngestion => {
                let li = &settings.logs_ingestion;
                let endpoint = li.endpoint.as_deref().ok_or_else(|| missing(
                    "--send logs-ingestion needs the data collection endpoint: --dcr-endpoint or PIM_DCR_ENDPOINT",
                ))?;
                let rule = li.rule_id.as_deref().ok_or_else(|| missing(
                    "--send logs-ingestion needs the data collection rule's immutable id: --dcr-rule-id or PIM_DCR_RULE_ID",
                ))?;
                let credential = credential
                    .clone()
                    .ok_or_else(|| missing("--send logs-ingestion needs Azure credentials"))?;
                let client = LogsIngestionClient::new(endpoint, rule, &li.stream, credential, None)
                    .map_err(|e| setup("logs-ingestion", e))?;
                out.push(Arc::new(LogsIngestionDestination { client }));
            }
            DestinationSpec::Webhook { url } => {
                let url = url.as_ref().or(settings.webhook_url.as_ref()).ok_or_else(|| missing(
                    "--send webhook needs the URL: PIM_WEBHOOK_URL, --webhook-url, or --send webhook=URL",
                ))?;
                // Never echo the URL: its query may carry a signature.
                let client =
                    WebhookClient::new(url.secret(), None).map_err(|e| setup("webhook", e))?;
                out.push(Arc::new(WebhookDestination {
                    client,
                    threshold: settings.threshold.clone(),
                }));
            }
        }
    }
    Ok(out)
}

fn missing(message: &str) -> Error {
    Error::MissingSetting {
        message: message.to_owned(),
    }
}

fn setup(destination: &'static str, source: Error) -> Error {
    Error::Setup {
        destination,
        source: Box::new(source),
    }
}

/// Azure Monitor Logs Ingestion: one [`crate::AuditRow`] per activation.
#[derive(Debug)]
pub struct LogsIngestionDestination {
    client: LogsIngestionClient,
}

impl LogsIngestionDestination {
    /// A destination over `client`.
    pub fn new(client: LogsIngestionClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Destination for LogsIngestionDestination {
    fn name(&self) -> String {
        format!("logs-ingestion {}", self.client.url())
    }

    fn token_need(&self) -> Option<TokenNeed> {
        Some(TokenNeed {
            service: "azure-monitor",
            endpoint: self.client.endpoint().to_owned(),
            scope: self.client.scope().to_owned(),
        })
    }

    async fn send(&self, report: &Report) -> Result<Delivered> {
        let rows = crate::rows(report);
        let sent = self.client.send(&rows).await?;
        tracing::info!(
            rows = sent.rows,
            batches = sent.batches,
            retries = sent.retries,
            "findings sent to Logs Ingestion"
        );
        Ok(Delivered::Sent { items: sent.rows })
    }

    async fn probe(&self) -> std::result::Result<String, String> {
        self.client.probe().await
    }
}

/// A webhook: a [`crate::FindingsSummary`] of the activations at the threshold, posted when
/// there is at least one.
#[derive(Debug)]
pub struct WebhookDestination {
    client: WebhookClient,
    threshold: Threshold,
}

impl WebhookDestination {
    /// A destination over `client` that lists the activations meeting `threshold`.
    pub fn new(client: WebhookClient, threshold: Threshold) -> Self {
        Self { client, threshold }
    }
}

#[async_trait]
impl Destination for WebhookDestination {
    fn name(&self) -> String {
        self.client.display_url()
    }

    fn selects(&self, activation: &ActivationReport) -> bool {
        self.threshold.matches(activation)
    }

    async fn send(&self, report: &Report) -> Result<Delivered> {
        let summary = crate::findings_summary(report, self.threshold.clone());
        if summary.is_empty() {
            tracing::info!(webhook = %self.client.display_url(), "no finding at the threshold; webhook not called");
            return Ok(Delivered::NothingToSend);
        }
        self.client.send(&summary).await?;
        tracing::info!(webhook = %self.client.display_url(), findings = summary.findings.len(), "findings sent to the webhook");
        Ok(Delivered::Sent {
            items: summary.findings.len(),
        })
    }

    async fn probe(&self) -> std::result::Result<String, String> {
        self.client.probe().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credential that is never asked: building destinations fetches no token.
    #[derive(Debug)]
    struct NeverAsked;

    #[async_trait]
    impl TokenCredential for NeverAsked {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            unreachable!("no token is fetched while destinations are built")
        }
    }

    /// The error and its sources, as `anyhow`'s `{:#}` prints them.
    fn chain(e: &Error) -> String {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }

    fn static_credential() -> Arc<dyn TokenCredential> {
        Arc::new(NeverAsked)
    }

    #[test]
    fn send_values_parse_once_into_typed_destinations() {
        let specs = DestinationSpec::parse_list(&[
            "logs-ingestion,webhook",
            " ",
            "Webhook=https://hooks.example/x?sig=abc",
        ])
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0], DestinationSpec::LogsIngestion);
        assert_eq!(specs[1], DestinationSpec::Webhook { url: None });
        assert!(
            matches!(&specs[2], DestinationSpec::Webhook { url: Some(u) } if u.secret() == "https://hooks.example/x?sig=abc")
        );
        assert!(!format!("{specs:?}").contains("sig=abc"));
        let err = DestinationSpec::parse_list(&["webhok=https://h/x?sig=SECRET"]).unwrap_err();
        assert_eq!(
            err,
            "--send \"webhok\": expected logs-ingestion, webhook or webhook=URL"
        );
    }

    #[test]
    fn a_webhook_url_naming_logs_ingestion_needs_no_azure_credential() {
        // The bug of issue 11: a substring test on "logs-ingestion" asked for a Monitor token.
        let url = "https://prod.example/logs-ingestion/hook?sig=abc";
        let settings = DeliverySettings {
            targets: DestinationSpec::parse_list(&[format!("webhook={url}")]).unwrap(),
            ..DeliverySettings::default()
        };
        assert!(!settings.needs_azure_credential());
        let built = destinations(&settings, None).unwrap();
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].token_need(), None);
        assert!(!built[0].name().contains("sig=abc"), "{}", built[0].name());

        let via_variable = DeliverySettings {
            targets: vec![DestinationSpec::Webhook { url: None }],
            webhook_url: Some(Secret::new(url)),
            ..DeliverySettings::default()
        };
        assert!(!via_variable.needs_azure_credential());
        assert!(destinations(&via_variable, None).is_ok());
    }

    #[test]
    fn logs_ingestion_needs_its_settings_and_a_credential() {
        let mut settings = DeliverySettings {
            targets: vec![DestinationSpec::LogsIngestion],
            ..DeliverySettings::default()
        };
        assert!(settings.needs_azure_credential());
        let e = destinations(&settings, Some(static_credential())).unwrap_err();
        assert!(e.to_string().contains("PIM_DCR_ENDPOINT"), "{e}");
        settings.logs_ingestion.endpoint =
            Some("https://dce.westeurope-1.ingest.monitor.azure.cn".into());
        let e = destinations(&settings, Some(static_credential())).unwrap_err();
        assert!(e.to_string().contains("PIM_DCR_RULE_ID"), "{e}");
        settings.logs_ingestion.rule_id = Some("dcr-00112233445566778899aabbccddeeff".into());
        let e = destinations(&settings, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--send logs-ingestion needs Azure credentials"
        );
        let built = destinations(&settings, Some(static_credential())).unwrap();
        let need = built[0].token_need().unwrap();
        assert_eq!(need.service, "azure-monitor");
        assert_eq!(need.scope, "https://monitor.azure.cn/.default");
        assert_eq!(
            need,
            TokenNeed::monitor("https://dce.westeurope-1.ingest.monitor.azure.cn")
        );
        assert!(
            built[0].name().starts_with("logs-ingestion https://dce."),
            "{}",
            built[0].name()
        );

        settings.logs_ingestion.stream = "PimAudit".into();
        let e = destinations(&settings, Some(static_credential())).unwrap_err();
        assert!(
            chain(&e).starts_with("--send logs-ingestion: invalid delivery settings: stream"),
            "{e}"
        );
    }

    #[test]
    fn a_webhook_without_a_url_says_where_to_put_one() {
        let settings = DeliverySettings {
            targets: vec![DestinationSpec::Webhook { url: None }],
            ..DeliverySettings::default()
        };
        let e = destinations(&settings, None).unwrap_err();
        assert!(e.to_string().contains("PIM_WEBHOOK_URL"), "{e}");
        let settings = DeliverySettings {
            targets: vec![DestinationSpec::Webhook {
                url: Some(Secret::new("http://example.com/x?sig=SECRET")),
            }],
            ..DeliverySettings::default()
        };
        let e = destinations(&settings, None).unwrap_err();
        assert!(chain(&e).starts_with("--send webhook: "), "{e}");
        assert!(!format!("{} {e:?}", chain(&e)).contains("SECRET"));
        assert!(!format!("{settings:?}").contains("SECRET"));
    }
}
