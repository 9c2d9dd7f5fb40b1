//! What both adapters share: URL checks, credentials, one GET through `pim-http`'s retry
//! driver, reading answers defensively, and the words for a failed call.

use std::fmt;
use std::time::Duration;

use pim_domain::retry::RetryPolicy;
use pim_http::retry::{Retryable, Stop};
use pim_http::secret::{Redacted, Secret};
use pim_http::transport::TransportKind;
use reqwest::Url;
use serde_json::Value;

use crate::{Error, Result};

/// Service text kept in a reason is cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// How a request authenticates.
#[derive(Clone)]
pub(crate) enum Auth {
    /// HTTP Basic.
    Basic { user: String, password: Secret },
    /// `Authorization: Bearer`.
    Bearer(Secret),
}

impl Auth {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        // reqwest marks both headers sensitive, so they never show in its own Debug.
        match self {
            Self::Basic { user, password } => request.basic_auth(user, Some(password.secret())),
            Self::Bearer(token) => request.bearer_auth(token.secret()),
        }
    }

    fn secrets(&self) -> Vec<String> {
        match self {
            Self::Basic { password, .. } => vec![password.secret().to_owned()],
            Self::Bearer(token) => vec![token.secret().to_owned()],
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &Redacted)
                .finish(),
            Self::Bearer(_) => f.debug_tuple("Bearer").field(&Redacted).finish(),
        }
    }
}

/// Checks `raw` is an https URL (plain http only on loopback, for tests) with a host, no user
/// info, query or fragment, and makes its path end in `/` so joins append to it.
pub(crate) fn base_url(raw: &str, variable: &'static str) -> Result<Url> {
    let bad = |problem: String| Error::Config { variable, problem };
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(format!("not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if host.is_empty() || !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err(bad(
            "must be an https URL (plain http only on a loopback host)".to_owned(),
        ));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad(
            "must be the instance's base URL, without user info, query or fragment".to_owned(),
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Whether `raw` is usable as a ticket system's base URL (`variable` names the setting):
/// https (plain http only on a loopback host), with a host, and no user info, query or
/// fragment. What is wrong, when it is not.
///
/// # Errors
///
/// The problem, in words.
pub fn check_base_url(raw: &str, variable: &'static str) -> std::result::Result<(), String> {
    match base_url(raw, variable) {
        Ok(_) => Ok(()),
        Err(Error::Config { problem, .. }) => Err(problem),
        Err(e) => Err(e.to_string()),
    }
}

/// One configured HTTP client of a ticket system.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) auth: Auth,
    pub(crate) retry: RetryPolicy,
    /// What the system is called in reasons (`ServiceNow`, `Jira`).
    pub(crate) system: &'static str,
}

impl fmt::Debug for Client {
    // The caller's reqwest client is never printed: its default headers may hold a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A reply the adapter reads (any status it did not treat as a failure).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    /// The body as text, cut and scrubbed, for reasons.
    pub(crate) text: String,
}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// The service answered with a status the adapter does not read.
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// No answer.
    Transport {
        kind: TransportKind,
        message: String,
    },
}

impl Retryable for AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            Self::Transport { kind, .. } => *kind != TransportKind::Request,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            Self::Transport { .. } => None,
        }
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            Self::Transport { kind, message } => write!(f, "{kind}: {message}"),
        }
    }
}

impl Client {
    /// GETs `url` under the retry policy. Statuses in `readable` come back as a [`Reply`];
    /// 408, 429 and 5xx are retried; anything else fails at once.
    pub(crate) async fn get(
        &self,
        url: Url,
        readable: &[u16],
        what: &str,
    ) -> std::result::Result<Reply, Stop<AttemptError>> {
        let secrets = self.auth.secrets();
        let (reply, _retries) = pim_http::retry::run(&self.retry, what, |_| {
            let request = self
                .auth
                .apply(self.http.get(url.clone()))
                .header(reqwest::header::ACCEPT, "application/json");
            let secrets = &secrets;
            async move {
                let response = request.send().await.map_err(|e| AttemptError::Transport {
                    kind: TransportKind::of(&e),
                    message: clean(&pim_http::transport::without_url(e).to_string(), secrets),
                })?;
                let status = response.status().as_u16();
                let retry_after = pim_http::retry_after::from_headers(response.headers());
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| AttemptError::Transport {
                        kind: TransportKind::Body,
                        message: clean(&pim_http::transport::without_url(e).to_string(), secrets),
                    })?;
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let text = clean(&String::from_utf8_lossy(&bytes), secrets);
                if readable.contains(&status) {
                    return Ok(Reply { status, body, text });
                }
                Err(AttemptError::Status {
                    status,
                    message: service_message(&body).map_or(text, |m| clean(&m, secrets)),
                    retry_after,
                })
            }
        })
        .await?;
        Ok(reply)
    }

    /// A failed call in words: what the service said, and how the retries ended.
    pub(crate) fn describe(&self, stop: &Stop<AttemptError>) -> String {
        let system = self.system;
        match stop {
            Stop::Fatal(e) => format!("{system} answered {e}{}", status_hint(e, system)),
            Stop::Exhausted { last, attempts, .. } => {
                format!("{system} failed {attempts} attempt(s); the last: {last}")
            }
            Stop::ServerWaitTooLong {
                last,
                asked,
                remaining,
                ..
            } => format!(
                "{system} asked to wait {} before a retry, more than the {} left of the retry budget ({last})",
                pim_http::retry::seconds(*asked),
                pim_http::retry::seconds(*remaining)
            ),
        }
    }
}

/// The status a stop ended on, if the service answered.
pub(crate) fn stop_status(stop: &Stop<AttemptError>) -> Option<u16> {
    let last = match stop {
        Stop::Fatal(e)
        | Stop::Exhausted { last: e, .. }
        | Stop::ServerWaitTooLong { last: e, .. } => e,
    };
    match last {
        AttemptError::Status { status, .. } => Some(*status),
        AttemptError::Transport { .. } => None,
    }
}

fn status_hint(e: &AttemptError, system: &str) -> String {
    match e {
        AttemptError::Status { status: 401, .. } => {
            format!(" (the credentials were refused; run --check to test the {system} settings)")
        }
        AttemptError::Status { status: 403, .. } => {
            " (the integration user may not read this ticket's table or project)".to_owned()
        }
        _ => String::new(),
    }
}

/// A service's own error message: ServiceNow `error.message` (+ `detail`), Jira
/// `errorMessages[0]`, else `message`.
pub(crate) fn service_message(body: &Value) -> Option<String> {
    if let Some(e) = body.get("error") {
        let message = e.get("message").and_then(Value::as_str);
        let detail = e.get("detail").and_then(Value::as_str);
        return match (message, detail) {
            (Some(m), Some(d)) if !d.is_empty() => Some(format!("{m}: {d}")),
            (Some(m), _) => Some(m.to_owned()),
            (None, Some(d)) => Some(d.to_owned()),
            (None, None) => None,
        };
    }
    if let Some(m) = body
        .get("errorMessages")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
    {
        return Some(m.to_owned());
    }
    body.get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Untrusted service text as one short line, with any configured secret scrubbed out.
pub(crate) fn clean(text: &str, secrets: &[String]) -> String {
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let text =
        pim_domain::text::log_field(&pim_http::secret::scrub(text, &refs), MAX_MESSAGE_CHARS);
    if text.is_empty() {
        "(no message)".to_owned()
    } else {
        text
    }
}

/// A timestamp as the ticket systems write it: ServiceNow `2026-11-30 08:00:00` (UTC), Jira
/// `2026-11-30T08:00:00.000+0000` (an offset without a colon, which RFC 3339 lacks).
pub(crate) fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let b = t.as_bytes();
    let n = b.len();
    let fixed;
    let t = if n > 5
        && matches!(b[n - 5], b'+' | b'-')
        && b[n - 4..].iter().all(u8::is_ascii_digit)
        && b.get(n.wrapping_sub(6)).is_some_and(u8::is_ascii_digit)
    {
        fixed = format!("{}:{}", &t[..n - 2], &t[n - 2..]);
        fixed.as_str()
    } else {
        t
    };
    pim_domain::timestamp::parse_timestamp(t).ok()
}

/// The timeout every request gets unless the options say otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A reqwest client with the adapter's timeouts, unless the caller brought one.
pub(crate) fn http_client(
    given: Option<reqwest::Client>,
    timeout: Duration,
) -> Result<reqwest::Client> {
    match given {
        Some(c) => Ok(c),
        None => reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| Error::Client(pim_http::transport::without_url(e).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_timestamp_shapes_parse_as_utc() {
        let sn = parse_time("2026-11-30 08:00:00").unwrap();
        let jira = parse_time("2026-11-30T09:00:00.000+0100").unwrap();
        assert_eq!(sn, jira);
        assert_eq!(parse_time("2026-11-30T08:00:00Z"), Some(sn));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn base_urls_are_https_and_bare() {
        assert_eq!(
            base_url("https://acme.service-now.com", "V")
                .unwrap()
                .as_str(),
            "https://acme.service-now.com/"
        );
        assert_eq!(
            base_url("http://127.0.0.1:9/jira", "V").unwrap().as_str(),
            "http://127.0.0.1:9/jira/"
        );
        for bad in [
            "http://acme.service-now.com",
            "https://u:p@acme.service-now.com",
            "https://acme.service-now.com/?x=1",
            "acme",
        ] {
            let e = base_url(bad, "PIM_SERVICENOW_URL").unwrap_err();
            assert!(e.to_string().contains("PIM_SERVICENOW_URL"), "{e}");
        }
    }

    #[test]
    fn service_messages_of_both_systems() {
        let sn = serde_json::json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"});
        assert_eq!(
            service_message(&sn).unwrap(),
            "User Not Authenticated: Required to provide Auth information"
        );
        let jira = serde_json::json!({"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}});
        assert!(
            service_message(&jira)
                .unwrap()
                .starts_with("Issue does not exist")
        );
        assert_eq!(
            clean("a s3cret b", &["s3cret".to_owned()]),
            "a [REDACTED] b"
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let basic = Auth::Basic {
            user: "svc".into(),
            password: Secret::new("pw-123"),
        };
        let bearer = Auth::Bearer(Secret::new("tok-456"));
        let text = format!("{basic:?} {bearer:?}");
        assert!(
            !text.contains("pw-123") && !text.contains("tok-456"),
            "{text}"
        );
        assert!(text.contains("svc"));
    }
}
