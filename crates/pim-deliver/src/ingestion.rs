//! The Azure Monitor Logs Ingestion API client (reference §6.1).
//!
//! Rows go to `POST {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`
//! as JSON arrays, each body at most [`IngestionOptions::max_body_bytes`] (the service refuses
//! calls over 1 MB). A 413 splits the batch in half and sends both halves; throttling (429),
//! server errors, timeouts and transport failures are retried with the shared [`RetryPolicy`].

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{Secret, TokenCredential};
use pim_domain::cloud::monitor_scope;
use pim_domain::retry::RetryPolicy;
use reqwest::header::CONTENT_TYPE;

use crate::http::{
    CONNECT_TIMEOUT, Failure, config, parse_secure_url, request_id, transport_error, with_retries,
};
use crate::{AuditRow, Error, Result};

/// The Logs Ingestion API version this client speaks.
pub const API_VERSION: &str = "2023-01-01";

/// The service's hard limit for one call, compressed or not.
pub const SERVICE_MAX_BODY_BYTES: usize = 1_000_000;

/// The default body limit: the service's limit minus a margin for the request line and
/// headers, so that the rounding of "1 MB" can never bite.
pub const DEFAULT_MAX_BODY_BYTES: usize = SERVICE_MAX_BODY_BYTES - 25_000;

/// Smallest configurable body limit (tests use small limits to force batching).
pub const MIN_MAX_BODY_BYTES: usize = 1_024;

/// Settings of a [`LogsIngestionClient`]; `Default` suits the public cloud.
#[derive(Clone)]
pub struct IngestionOptions {
    /// The token scope; `None` (the default) takes [`monitor_scope`] of the endpoint, the
    /// audience of the endpoint's cloud. Set it only for a cloud this crate does not know.
    pub scope: Option<String>,
    /// Largest JSON body of one call in bytes, default [`DEFAULT_MAX_BODY_BYTES`]; between
    /// [`MIN_MAX_BODY_BYTES`] and [`SERVICE_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Longest time one HTTP attempt may take (default 60 s).
    pub request_timeout: Duration,
    /// Retries of throttled and transiently failing calls.
    pub retry: RetryPolicy,
    /// An HTTP client to use instead of a new one (proxies, shared pools). The request timeout
    /// is still applied to every request.
    pub client: Option<reqwest::Client>,
}

impl Default for IngestionOptions {
    fn default() -> Self {
        Self {
            scope: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            client: None,
        }
    }
}

impl fmt::Debug for IngestionOptions {
    // By hand: a caller's client may carry default headers, which we never print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestionOptions")
            .field("scope", &self.scope)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("custom_client", &self.client.is_some())
            .finish()
    }
}

/// What one [`LogsIngestionClient::send`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendSummary {
    /// Rows accepted by the service.
    pub rows: usize,
    /// Calls the service accepted (one per delivered batch).
    pub batches: usize,
    /// Attempts repeated after throttling or a transient failure.
    pub retries: usize,
    /// Batches split in half after a 413.
    pub splits: usize,
}

/// Sends [`AuditRow`]s to a custom table through a data collection rule.
pub struct LogsIngestionClient {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    endpoint: String,
    dcr: String,
    stream: String,
    url: reqwest::Url,
    target: String,
    scope: String,
    max_body_bytes: usize,
    request_timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for LogsIngestionClient {
    // By hand: the credential is left out (its Debug might show a secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogsIngestionClient")
            .field("endpoint", &self.endpoint)
            .field("dcr", &self.dcr)
            .field("stream", &self.stream)
            .field("scope", &self.scope)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What one attempt at one batch came to, apart from errors.
enum Outcome {
    Accepted,
    TooLarge,
}

impl LogsIngestionClient {
    /// A client for the data collection rule `dcr_immutable_id` (`dcr-` and 32 hex digits, the
    /// rule's `immutableId`) reached at `endpoint` (the DCR's `logsIngestion` endpoint, or a DCE's),
    /// writing to `stream` (e.g. `Custom-PimAudit_CL`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the endpoint is not an `https` base URL (plain `http` only
    /// on loopback), the DCR id is not `dcr-` plus letters and digits, the stream is not
    /// `Custom-` plus a name of letters, digits and `_`, the body limit or timeout is out of
    /// range, or the HTTP client cannot be built.
    pub fn new(
        endpoint: &str,
        dcr_immutable_id: &str,
        stream: &str,
        credential: Arc<dyn TokenCredential>,
        options: Option<IngestionOptions>,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        let trimmed = endpoint.trim().trim_end_matches('/');
        let base = parse_secure_url(trimmed, "data collection endpoint", trimmed)?;
        if base.query().is_some() {
            return Err(config(format!(
                "data collection endpoint {trimmed:?} must be a base URL without a query, e.g. https://my-dcr-abcd.westeurope-1.ingest.monitor.azure.com"
            )));
        }
        let dcr = dcr_immutable_id.trim();
        let dcr_ok = dcr.strip_prefix("dcr-").is_some_and(|rest| {
            (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !dcr_ok {
            return Err(config(format!(
                "data collection rule id {:?} is not an immutable id: expected dcr- followed by 32 hex digits (the rule's immutableId property, not its name or ARM id)",
                crate::http::clean(dcr, 200)
            )));
        }
        let stream = stream.trim();
        let stream_ok = stream.strip_prefix("Custom-").is_some_and(|name| {
            (1..=100).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        if !stream_ok {
            return Err(config(format!(
                "stream {:?} is not a custom stream name: expected Custom- followed by letters, digits and _, e.g. Custom-PimAudit_CL",
                crate::http::clean(stream, 200)
            )));
        }
        if !(MIN_MAX_BODY_BYTES..=SERVICE_MAX_BODY_BYTES).contains(&options.max_body_bytes) {
            return Err(config(format!(
                "max_body_bytes must be between {MIN_MAX_BODY_BYTES} and {SERVICE_MAX_BODY_BYTES}, got {}",
                options.max_body_bytes
            )));
        }
        if options.request_timeout.is_zero() {
            return Err(config("request_timeout must be more than zero"));
        }
        let scope = match &options.scope {
            Some(scope) if scope.trim().is_empty() => {
                return Err(config("the token scope is empty"));
            }
            Some(scope) => scope.trim().to_owned(),
            None => monitor_scope(trimmed).to_owned(),
        };
        let url = reqwest::Url::parse(&format!(
            "{trimmed}/dataCollectionRules/{dcr}/streams/{stream}?api-version={API_VERSION}"
        ))
        .map_err(|e| config(format!("cannot build the ingestion URL: {e}")))?;
        let http = match options.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(options.request_timeout)
                .connect_timeout(CONNECT_TIMEOUT.min(options.request_timeout))
                // The API never redirects; refusing keeps the token on the configured host.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?,
        };
        Ok(Self {
            http,
            credential,
            target: format!("logs ingestion at {trimmed}"),
            endpoint: trimmed.to_owned(),
            dcr: dcr.to_owned(),
            stream: stream.to_owned(),
            url,
            scope,
            max_body_bytes: options.max_body_bytes,
            request_timeout: options.request_timeout,
            retry: options.retry,
        })
    }

    /// The token scope requested for every call ([`monitor_scope`] of the endpoint, unless
    /// [`IngestionOptions::scope`] set one).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The data collection endpoint, as configured (without a trailing `/`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The full request URL (it holds no secret).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The body limit in force.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Whether the data collection endpoint answers at all (for `--check`): an HTTP GET of the
    /// endpoint's root, without credentials, so nothing is ingested. Any HTTP answer means the
    /// host is reachable; whether the identity may write is shown by the Monitor token check
    /// and, finally, by the first `--send`.
    ///
    /// # Errors
    /// A one-line reason with the fix, when the endpoint cannot be reached.
    pub async fn probe(&self) -> std::result::Result<String, String> {
        match crate::http::probe_root(&self.http, &self.url, self.request_timeout).await {
            Ok(status) => Ok(format!(
                "{} answered HTTP {status} (DCR {}, stream {})",
                self.endpoint, self.dcr, self.stream
            )),
            Err(e) => Err(format!(
                "cannot reach {}: {e}; fix: check PIM_DCR_ENDPOINT (the DCR's logs ingestion endpoint) and the network path to it",
                self.endpoint
            )),
        }
    }

    /// Sends every row, in order, in as few calls as the body limit allows.
    ///
    /// Nothing is sent when `rows` is empty or when a row alone exceeds the limit.
    ///
    /// # Errors
    ///
    /// - [`Error::RowTooLarge`] names the activation whose row cannot fit in one call (found
    ///   before sending, or when the service answers 413 to that row alone);
    /// - [`Error::AccessDenied`] on 401/403, saying which role to grant on which rule;
    /// - [`Error::Rejected`] on 400/404 and other final 4xx, with the service's
    ///   `x-ms-error-code` and what to check (stream name, DCR id, endpoint);
    /// - [`Error::RetriesExhausted`] when throttling or transient failures outlast the policy;
    /// - [`Error::ServerWaitTooLong`] at once when the service asks to wait longer than what is
    ///   left of the policy's `max_total`;
    /// - [`Error::Credential`] when no token could be had.
    ///
    /// When earlier batches were already accepted the error is wrapped in
    /// [`Error::PartlyDelivered`], saying how many rows reached the table.
    pub async fn send(&self, rows: &[AuditRow]) -> Result<SendSummary> {
        self.send_rows(rows, |r| r.activation_id.clone()).await
    }

    /// [`send`](Self::send) for rows of any table: `id` names a row in the error when it is
    /// too large on its own (the heartbeat's [`RunRow`](crate::RunRow) is named by its run id).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn send_rows<T: serde::Serialize>(
        &self,
        rows: &[T],
        id: impl Fn(&T) -> String,
    ) -> Result<SendSummary> {
        let too_large = |index: usize, bytes: usize| Error::RowTooLarge {
            activation_id: rows.get(index).map(&id).unwrap_or_default(),
            bytes,
            limit: self.max_body_bytes,
        };
        let encoded = rows
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()?;
        // An array of one row is the row plus two brackets.
        if let Some((i, row)) = encoded
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() + 2 > self.max_body_bytes)
        {
            return Err(too_large(i, row.len()));
        }
        let mut queue: VecDeque<Range<usize>> = self.plan(&encoded).into();
        let mut summary = SendSummary::default();
        while let Some(range) = queue.pop_front() {
            let body = join(&encoded[range.clone()]);
            let attempt = with_retries(&self.retry, "logs ingestion", |n| {
                self.attempt(&body, range.len(), n)
            })
            .await;
            let outcome = match attempt {
                Ok((outcome, retries)) => {
                    summary.retries += retries as usize;
                    outcome
                }
                Err(e) => return Err(partly(summary.rows, rows.len(), e)),
            };
            match outcome {
                Outcome::Accepted => {
                    summary.rows += range.len();
                    summary.batches += 1;
                }
                Outcome::TooLarge if range.len() == 1 => {
                    let e = too_large(range.start, encoded[range.start].len());
                    return Err(partly(summary.rows, rows.len(), e));
                }
                Outcome::TooLarge => {
                    // The service counts differently from us (or sits behind a proxy with a
                    // lower limit): halve and keep the order by putting both halves first.
                    let mid = range.start + range.len() / 2;
                    tracing::warn!(
                        rows = range.len(),
                        "logs ingestion answered 413; splitting the batch"
                    );
                    queue.push_front(mid..range.end);
                    queue.push_front(range.start..mid);
                    summary.splits += 1;
                }
            }
        }
        tracing::info!(
            rows = summary.rows,
            batches = summary.batches,
            retries = summary.retries,
            splits = summary.splits,
            stream = %self.stream,
            "audit rows delivered to logs ingestion"
        );
        Ok(summary)
    }

    /// Greedy batches of consecutive rows, each body within the limit.
    fn plan(&self, encoded: &[Vec<u8>]) -> Vec<Range<usize>> {
        let mut batches = Vec::new();
        let mut start = 0;
        let mut size = 2; // the brackets
        for (i, row) in encoded.iter().enumerate() {
            let extra = row.len() + usize::from(i > start);
            if i > start && size + extra > self.max_body_bytes {
                batches.push(start..i);
                start = i;
                size = 2 + row.len();
            } else {
                size += extra;
            }
        }
        if start < encoded.len() {
            batches.push(start..encoded.len());
        }
        batches
    }

    async fn token(&self) -> Result<Secret> {
        self.credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map(|t| t.token)
            .map_err(|e| Error::Credential {
                scope: self.scope.clone(),
                message: e.to_string(),
            })
    }

    async fn attempt(&self, body: &[u8], rows: usize, attempt: u32) -> Result<Outcome> {
        let token = self.token().await?;
        let id = request_id();
        tracing::debug!(rows, bytes = body.len(), attempt, request_id = %id, "logs ingestion call");
        let response = self
            .http
            .post(self.url.clone())
            // `bearer_auth` marks the header sensitive, so no Debug output shows the token.
            .bearer_auth(token.secret())
            .header(CONTENT_TYPE, "application/json")
            .header("x-ms-client-request-id", &id)
            .timeout(self.request_timeout)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| transport_error(e, &self.target, self.request_timeout))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, &self.target, self.request_timeout))?;
        tracing::debug!(status, request_id = %id, "logs ingestion answered");
        match status {
            200 | 202 | 204 => return Ok(Outcome::Accepted),
            413 => return Ok(Outcome::TooLarge),
            _ => {}
        }
        let failure = Failure::read(status, &headers, &bytes, &[token.secret()]);
        Err(match status {
            401 | 403 => Error::AccessDenied {
                status,
                dcr: self.dcr.clone(),
                code: failure.code,
                message: failure.message,
            },
            _ if failure.is_transient() => failure.unavailable(&self.target),
            400 => failure.rejected(
                &self.target,
                Some(format!(
                    "check that the stream {} is declared in the rule's streamDeclarations and has a dataFlow to the table, and that its columns match the rows (see docs/alerting.md)",
                    self.stream
                )),
            ),
            404 => failure.rejected(
                &self.target,
                Some(format!(
                    "check the data collection rule immutable id {} (the rule's immutableId, dcr-…) and that {} is that rule's logs ingestion endpoint",
                    self.dcr, self.endpoint
                )),
            ),
            _ => failure.rejected(&self.target, None),
        })
    }
}

fn join(rows: &[Vec<u8>]) -> Vec<u8> {
    let len = rows.iter().map(Vec::len).sum::<usize>() + rows.len() + 1;
    let mut body = Vec::with_capacity(len);
    body.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(row);
    }
    body.push(b']');
    body
}

fn partly(delivered: usize, rows: usize, error: Error) -> Error {
    if delivered == 0 {
        error
    } else {
        Error::PartlyDelivered {
            delivered,
            rows,
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests;
