//! A JSON summary of the findings, posted to a webhook (a Logic App HTTP trigger or a Teams
//! workflow) (reference §6.2).
//!
//! Such URLs carry their credential in the query string (`sig=…`), so the client treats the
//! whole query as a secret: errors, logs and `Debug` show only scheme, host and path.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use pim_domain::retry::RetryPolicy;
use pim_domain::timestamp::format_utc;
use pim_domain::{ActivationReport, Report, Risk, UnknownValue, Verdict};
use pim_http::secret::{Secret, redacted_url};
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::http::{
    CONNECT_TIMEOUT, Failure, clean, config, parse_secure_url, transport_error, with_retries,
};
use crate::row::{RATIONALE_MAX_CHARS, TEXT_MAX_CHARS};

/// Most activations listed in one summary; the rest are counted in
/// [`FindingsSummary::omitted`]. Keeps a Teams card or a Logic App run readable.
pub const MAX_LISTED: usize = 100;

/// Rationale in a webhook summary is shorter than in the table: it lands in chat messages.
const SUMMARY_RATIONALE_CHARS: usize = 300;

/// One condition of a [`Threshold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The assessment has exactly this verdict.
    Verdict(Verdict),
    /// The assessment's risk is this level or above.
    RiskAtLeast(Risk),
}

/// Which activations a webhook summary lists. Parses from the words `--fail-on` takes: a
/// verdict (`not_aligned`, `partial`, `no_activity`, `unknown`, `aligned`) or a risk level (`low`,
/// `medium`, `high`, `critical`, meaning that level or above), comma-separated for several (any
/// may match), or `finding` for the default.
///
/// ```
/// use pim_deliver::{Condition, Threshold};
/// use pim_domain::{Risk, Verdict};
///
/// assert_eq!("finding".parse::<Threshold>().unwrap(), Threshold::AnyFinding);
/// assert_eq!(
///     "not_aligned, high".parse::<Threshold>().unwrap(),
///     Threshold::AnyOf(vec![Condition::Verdict(Verdict::NotAligned), Condition::RiskAtLeast(Risk::High)])
/// );
/// assert!("sometimes".parse::<Threshold>().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Threshold {
    /// Every activation that needs a human look ([`ActivationReport::is_finding`]).
    #[default]
    AnyFinding,
    /// Activations meeting at least one of the conditions.
    AnyOf(Vec<Condition>),
}

impl Threshold {
    /// Whether the activation meets the threshold.
    pub fn matches(&self, activation: &ActivationReport) -> bool {
        match self {
            Self::AnyFinding => activation.is_finding(),
            Self::AnyOf(conditions) => conditions.iter().any(|c| match c {
                Condition::Verdict(v) => activation.assessment.verdict == *v,
                Condition::RiskAtLeast(r) => activation.assessment.risk >= *r,
            }),
        }
    }
}

impl FromStr for Threshold {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &[&str] = &[
            "finding",
            "aligned",
            "partial",
            "not_aligned",
            "no_activity",
            "unknown",
            "low",
            "medium",
            "high",
            "critical",
        ];
        let words: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        let unknown = |value: &str| UnknownValue {
            kind: "threshold",
            value: value.to_owned(),
            expected: EXPECTED,
        };
        if words.is_empty() {
            return Err(unknown(s));
        }
        let mut conditions = Vec::new();
        for word in words {
            if word.eq_ignore_ascii_case("finding") || word.eq_ignore_ascii_case("findings") {
                return Ok(Self::AnyFinding);
            }
            let condition = if let Ok(v) = word.parse::<Verdict>() {
                Condition::Verdict(v)
            } else if let Ok(r) = word.parse::<Risk>() {
                Condition::RiskAtLeast(r)
            } else {
                return Err(unknown(word));
            };
            if !conditions.contains(&condition) {
                conditions.push(condition);
            }
        }
        Ok(Self::AnyOf(conditions))
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AnyFinding => f.write_str("finding"),
            Self::AnyOf(conditions) => {
                for (i, c) in conditions.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    match c {
                        Condition::Verdict(v) => write!(f, "{v}")?,
                        Condition::RiskAtLeast(r) => write!(f, "{r}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// The scan window of a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryWindow {
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
}

/// Counts in a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryCounts {
    /// Activations in the report.
    pub activations: usize,
    /// Activations that need a human look ([`ActivationReport::is_finding`]).
    pub findings: usize,
    /// Activations meeting the threshold.
    pub matching: usize,
}

/// One activation listed in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryFinding {
    /// The activation's stable id.
    pub activation_id: String,
    /// Who: UPN, else display name, else object id.
    pub principal: String,
    /// The role's display name.
    pub role: String,
    /// Where, e.g. `resource_group rg-prod-web`.
    pub scope: String,
    /// The verdict's snake_case name.
    pub verdict: String,
    /// The risk's snake_case name.
    pub risk: String,
    /// Flag names.
    pub flags: Vec<String>,
    /// A short rationale (one line, control, bidi and invisible characters made spaces, at most
    /// 300 characters; see `pim_domain::text::log_field`).
    pub rationale: String,
    /// When the role was activated, RFC 3339 UTC.
    pub activated_at: String,
    /// The assessment's revision in the state store (`--state`): 1 the first time the finding
    /// is sent, more when its verdict, risk or flags changed since; absent without a state
    /// store (issue 13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

/// The JSON posted to a webhook: what a Logic App's "Parse JSON" step or a Teams workflow reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingsSummary {
    /// Always `pim-audit.findings.v1`, so a receiver can tell this payload from others.
    pub schema: String,
    /// A one-line headline for chat messages and e-mail subjects.
    pub title: String,
    /// The report id.
    pub report_id: String,
    /// When the report was generated, RFC 3339 UTC.
    pub generated_at: String,
    /// The scan window.
    pub window: SummaryWindow,
    /// The threshold the list was filtered with, in `--fail-on` words.
    pub threshold: String,
    /// Counts.
    pub counts: SummaryCounts,
    /// The matching activations, in report order, at most [`MAX_LISTED`].
    pub findings: Vec<SummaryFinding>,
    /// Matching activations left out of `findings` because of [`MAX_LISTED`].
    pub omitted: usize,
}

impl FindingsSummary {
    /// Whether no activation meets the threshold (callers may skip posting).
    pub fn is_empty(&self) -> bool {
        self.counts.matching == 0
    }
}

/// The summary of a report's activations that meet `threshold`.
pub fn findings_summary(report: &Report, threshold: Threshold) -> FindingsSummary {
    let matching: Vec<&ActivationReport> = report
        .activations
        .iter()
        .filter(|a| threshold.matches(a))
        .collect();
    let findings: Vec<SummaryFinding> = matching
        .iter()
        .take(MAX_LISTED)
        .map(|a| SummaryFinding {
            activation_id: clean(&a.id, TEXT_MAX_CHARS),
            principal: clean(a.principal.label(), TEXT_MAX_CHARS),
            role: clean(&a.role.name, TEXT_MAX_CHARS),
            scope: clean(&a.scope.label(), TEXT_MAX_CHARS),
            verdict: a.assessment.verdict.as_str().to_owned(),
            risk: a.assessment.risk.as_str().to_owned(),
            flags: a
                .assessment
                .flags
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            rationale: clean(
                &a.assessment.rationale,
                SUMMARY_RATIONALE_CHARS.min(RATIONALE_MAX_CHARS),
            ),
            activated_at: format_utc(a.activated_at),
            revision: a.revision,
        })
        .collect();
    let activations = report.activations.len();
    let found = report.activations.iter().filter(|a| a.is_finding()).count();
    let title = format!(
        "PIM audit: {} of {activations} activations need review ({threshold})",
        matching.len()
    );
    FindingsSummary {
        schema: "pim-audit.findings.v1".to_owned(),
        title,
        report_id: clean(&report.report_id, TEXT_MAX_CHARS),
        generated_at: format_utc(report.generated_at),
        window: SummaryWindow {
            start: format_utc(report.window.start),
            end: format_utc(report.window.end),
        },
        threshold: threshold.to_string(),
        counts: SummaryCounts {
            activations,
            findings: found,
            matching: matching.len(),
        },
        omitted: matching.len().saturating_sub(findings.len()),
        findings,
    }
}

/// Settings of a [`WebhookClient`].
#[derive(Clone)]
pub struct WebhookOptions {
    /// Longest time one HTTP attempt may take (default 30 s).
    pub request_timeout: Duration,
    /// Retries of throttled (429) and failing (408, 5xx, timeout, transport) calls.
    pub retry: RetryPolicy,
    /// An HTTP client to use instead of a new one.
    pub client: Option<reqwest::Client>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            client: None,
        }
    }
}

impl fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("custom_client", &self.client.is_some())
            .finish()
    }
}

/// Posts a [`FindingsSummary`] to a webhook URL.
pub struct WebhookClient {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `webhook scheme://host/path`: the only form of the URL that is ever shown.
    target: String,
    /// Query parameter values, scrubbed from any text the receiver sends back (held as
    /// [`Secret`], whose `Debug` never shows them).
    secrets: Vec<Secret>,
    request_timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for WebhookClient {
    // By hand: the query string holds the signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookClient")
            .field("url", &redacted_url(&self.url))
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The part of a URL text before `?` and `#`, for messages about a URL that did not parse.
fn before_query(raw: &str) -> String {
    let cut = raw.find(['?', '#']).map_or(raw, |i| &raw[..i]);
    clean(cut, 200)
}

impl WebhookClient {
    /// A client for the webhook at `url` (a Logic App HTTP trigger URL, a Teams workflow URL, or
    /// any endpoint that accepts a JSON POST). The query string is kept secret.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when the URL does not parse, is not `https` (plain `http` only on
    /// loopback), carries user info or a fragment, the timeout is zero, or the HTTP client cannot
    /// be built. The message never contains the query string.
    pub fn new(url: &str, options: Option<WebhookOptions>) -> Result<Self> {
        let options = options.unwrap_or_default();
        let shown = before_query(url.trim());
        let url = parse_secure_url(url, "webhook URL", &shown)?;
        if options.request_timeout.is_zero() {
            return Err(config("request_timeout must be more than zero"));
        }
        let http = match options.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(options.request_timeout)
                .connect_timeout(CONNECT_TIMEOUT.min(options.request_timeout))
                // A redirect would carry the signed URL's payload elsewhere; refuse it.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?,
        };
        let mut secrets: Vec<String> = url
            .query_pairs()
            .map(|(_, v)| v.into_owned())
            .chain(url.query().map(str::to_owned))
            .filter(|v| v.len() >= 4)
            .collect();
        // Longest first, so a value containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let secrets = secrets.into_iter().map(Secret::new).collect();
        Ok(Self {
            http,
            target: format!("webhook {}", redacted_url(&url)),
            url,
            secrets,
            request_timeout: options.request_timeout,
            retry: options.retry,
        })
    }

    /// Whether the webhook's host answers (for `--check`): an HTTP GET of the host's root, so
    /// the trigger itself is not fired and its signature is not sent. Any HTTP answer means the
    /// host is reachable.
    ///
    /// # Errors
    /// A one-line reason with the fix, when the host cannot be reached.
    pub async fn probe(&self) -> std::result::Result<String, String> {
        match crate::http::probe_root(&self.http, &self.url, self.request_timeout).await {
            Ok(status) => Ok(format!("{} host answered HTTP {status}", self.target)),
            Err(e) => Err(format!(
                "cannot reach {}: {e}; fix: check the webhook URL and the network path to it",
                self.target
            )),
        }
    }

    /// The URL as it may be shown: scheme, host and path; the query (which may hold a
    /// signature) redacted.
    pub fn display_url(&self) -> String {
        redacted_url(&self.url)
    }

    /// Posts the summary as JSON. Any 2xx is success (Logic Apps answer 202, Teams workflows
    /// 202 or 200).
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`](crate::Error::Rejected) on a final 4xx (or a redirect), [`Error::RetriesExhausted`](crate::Error::RetriesExhausted) when
    /// throttling (429), 408/5xx, timeouts or transport failures outlast the retry policy.
    /// No error text contains the URL's query.
    pub async fn send(&self, summary: &FindingsSummary) -> Result<()> {
        let body = serde_json::to_vec(summary)?;
        let ((), retries) = with_retries(&self.retry, "webhook", |_| self.attempt(&body)).await?;
        tracing::info!(
            target_url = %self.display_url(),
            findings = summary.counts.matching,
            retries,
            "findings summary posted to webhook"
        );
        Ok(())
    }

    async fn attempt(&self, body: &[u8]) -> Result<()> {
        let response = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.request_timeout)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| transport_error(e, &self.target, self.request_timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, &self.target, self.request_timeout))?;
        tracing::debug!(status = status.as_u16(), target_url = %self.display_url(), "webhook answered");
        if status.is_success() {
            return Ok(());
        }
        let secrets: Vec<&str> = self.secrets.iter().map(Secret::secret).collect();
        let failure = Failure::read(status.as_u16(), &headers, &bytes, &secrets);
        Err(if failure.is_transient() {
            failure.unavailable(&self.target)
        } else {
            let hint = match failure.status {
                401 | 403 => Some(
                    "the URL's signature may be wrong or regenerated; copy the trigger URL again"
                        .to_owned(),
                ),
                404 => Some("the workflow or trigger does not exist (or is disabled)".to_owned()),
                300..=399 => Some("webhooks are not followed through redirects".to_owned()),
                _ => None,
            };
            failure.rejected(&self.target, hint)
        })
    }
}

#[cfg(test)]
mod tests;
