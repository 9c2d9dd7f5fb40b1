//! Pieces both clients share: URL checks, retries, error bodies, request ids and text cleaning.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use pim_domain::retry::RetryPolicy;
use pim_http::retry::{Retryable, Stop};
use pim_http::transport::TransportKind;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::{Error, Result};

/// Service text kept in errors is cut to this many characters, so an HTML error page cannot
/// flood a terminal or a log line.
const MAX_MESSAGE_CHARS: usize = 1000;

/// The connection phase gets its own, shorter limit, so an unreachable host fails fast.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn config(message: impl Into<String>) -> Error {
    Error::InvalidConfig {
        message: message.into(),
    }
}

/// Whether a URL host is the local machine (where plain http cannot leak a secret).
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses `raw` and insists on https (plain http only on loopback) with a host and no
/// user info or fragment. `what` names the setting in messages; `shown` is how the URL may be
/// quoted (the caller redacts secrets first).
pub(crate) fn parse_secure_url(raw: &str, what: &str, shown: &str) -> Result<reqwest::Url> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| config(format!("{what} {shown:?} is not a URL: {e}")))?;
    let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !ok_scheme || url.host_str().is_none_or(str::is_empty) {
        return Err(config(format!(
            "{what} {shown:?} must be an https URL (plain http only on a loopback host)"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(config(format!(
            "{what} {shown:?} must not carry user info or a fragment"
        )));
    }
    Ok(url)
}

/// Untrusted text as one capped field (see [`pim_domain::text::log_field`]).
pub(crate) use pim_domain::text::log_field as clean;

/// A response that was not a success, reduced to what an error needs.
pub(crate) struct Failure {
    pub(crate) status: u16,
    pub(crate) code: Option<String>,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    /// Reads the error code (`x-ms-error-code`, else the body's `error.code` / `code`) and
    /// message (body's `error.message` / `message`, else the raw body) defensively.
    pub(crate) fn read(status: u16, headers: &HeaderMap, body: &[u8], secrets: &[&str]) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            json.as_ref().and_then(|j| {
                j.get("error")
                    .and_then(|e| e.get(name))
                    .or_else(|| j.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        };
        let code = header("x-ms-error-code")
            .map(str::to_owned)
            .or_else(|| field("code"))
            .map(|c| clean(&pim_http::secret::scrub(&c, secrets), 100))
            .filter(|c| !c.is_empty());
        let raw = field("message").unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        let mut message = clean(&pim_http::secret::scrub(&raw, secrets), MAX_MESSAGE_CHARS);
        if message.is_empty() {
            message = "(no message)".to_owned();
        }
        let retry_after = pim_http::retry_after::from_headers(headers);
        Self {
            status,
            code,
            message,
            retry_after,
        }
    }

    /// Throttling and server trouble are worth another attempt; other 4xx are not.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self.status, 408 | 429) || self.status >= 500
    }

    pub(crate) fn unavailable(self, target: &str) -> Error {
        Error::Unavailable {
            target: target.to_owned(),
            status: self.status,
            code: self.code,
            message: self.message,
            retry_after: self.retry_after,
        }
    }

    pub(crate) fn rejected(self, target: &str, hint: Option<String>) -> Error {
        Error::Rejected {
            target: target.to_owned(),
            status: self.status,
            code: self.code,
            message: self.message,
            hint,
        }
    }
}

/// Maps a reqwest error to ours, by [`TransportKind`]. The URL is removed first: a webhook URL
/// carries its signature in the query, and reqwest's Display would print it.
pub(crate) fn transport_error(e: reqwest::Error, target: &str, timeout: Duration) -> Error {
    match TransportKind::of(&e) {
        TransportKind::Timeout => Error::Timeout {
            target: target.to_owned(),
            after: timeout,
        },
        kind => Error::Transport {
            context: format!("{target}: the request could not be completed ({kind})"),
            source: Box::new(pim_http::transport::without_url(e)),
        },
    }
}

impl Retryable for Error {
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        Error::retry_after(self)
    }
}

/// Runs `attempt` through the shared retry driver ([`pim_http::retry::run`]) until it succeeds,
/// fails for good, or `policy` gives up. Returns the value and how many retries it took.
/// `attempt` gets the 1-based attempt number.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    attempt: F,
) -> Result<(T, u32)>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    pim_http::retry::run(policy, what, attempt)
        .await
        .map_err(|stop| match stop {
            Stop::Fatal(e) => e,
            Stop::Exhausted {
                last,
                attempts,
                elapsed,
            } => Error::RetriesExhausted {
                attempts,
                elapsed,
                last: Box::new(last),
            },
            Stop::ServerWaitTooLong {
                last,
                attempts,
                asked,
                remaining,
                ..
            } => Error::ServerWaitTooLong {
                attempts,
                asked,
                remaining,
                last: Box::new(last),
            },
        })
}

fn random_u64(seed: u128) -> u64 {
    // `RandomState` is seeded randomly per process and per instance: enough spread for backoff
    // jitter and request ids without a random-number crate.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(seed);
    hasher.finish()
}

/// The HTTP status of a plain GET of `url`'s host root (no path, no query, no credentials), for
/// reachability checks that must neither trigger nor authenticate anything.
pub(crate) async fn probe_root(
    http: &reqwest::Client,
    url: &reqwest::Url,
    timeout: Duration,
) -> std::result::Result<u16, reqwest::Error> {
    let mut root = url.clone();
    root.set_path("/");
    root.set_query(None);
    let response = http
        .get(root)
        .timeout(timeout)
        .send()
        .await
        .map_err(reqwest::Error::without_url)?;
    Ok(response.status().as_u16())
}

/// A random UUID-shaped (version 4) id for `x-ms-client-request-id`.
pub(crate) fn request_id() -> String {
    let hi = random_u64(1);
    let lo = random_u64(2);
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_controls_and_cuts_on_characters() {
        // Issue 11: the shared log-field rule folds the CR LF pair into one space, as it folds
        // every run of whitespace and neutralised characters.
        assert_eq!(clean(" a\u{0}b\r\nc\u{1b}[31m ", 100), "a b c [31m");
        assert_eq!(clean("sig\u{202e}\u{200b}ned", 100), "sig ned");
        let cut = clean(&"é".repeat(50), 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(clean("", 0), "");
        assert_eq!(clean("abc", 0), "…");
    }

    #[test]
    fn request_ids_are_uuid_shaped_and_differ() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn failures_read_header_code_body_code_and_plain_text() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-error-code", "InvalidStream".parse().unwrap());
        headers.insert("retry-after", "3".parse().unwrap());
        let f = Failure::read(
            400,
            &headers,
            br#"{"error":{"code":"Other","message":"bad sig=abc"}}"#,
            &["abc"],
        );
        assert_eq!(f.code.as_deref(), Some("InvalidStream"));
        assert_eq!(f.message, "bad sig=[REDACTED]");
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));
        let f = Failure::read(503, &HeaderMap::new(), b"<html>\n down</html>", &[]);
        assert_eq!(f.code, None);
        assert_eq!(f.message, "<html> down</html>");
        assert!(f.is_transient());
        let f = Failure::read(404, &HeaderMap::new(), br#"{"code":7}"#, &[]);
        assert_eq!(f.code, None);
        assert!(!f.is_transient());
    }

    #[test]
    fn urls_must_be_https_unless_loopback() {
        assert!(parse_secure_url("https://x.example/a", "url", "x").is_ok());
        assert!(parse_secure_url("http://127.0.0.1:9/a", "url", "x").is_ok());
        assert!(parse_secure_url("http://[::1]:9/a", "url", "x").is_ok());
        assert!(parse_secure_url("http://localhost/a", "url", "x").is_ok());
        assert!(parse_secure_url("http://x.example/a", "url", "x").is_err());
        assert!(parse_secure_url("https://u:p@x.example/a", "url", "x").is_err());
        assert!(parse_secure_url("ftp://x.example/", "url", "x").is_err());
        assert!(parse_secure_url("not a url", "url", "x").is_err());
    }
}
