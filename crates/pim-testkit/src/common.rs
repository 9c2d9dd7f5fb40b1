//! Pieces shared by the fakes: the request log, failure injection and fake tokens.

use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

/// Locks a mutex, recovering the data if a panicking test thread poisoned it: a fake server
/// must keep answering so that the test reports its own failure, not a second one.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One HTTP request as a fake received it, kept so tests can assert on its shape.
///
/// Header names are lower-case; values and the body are decoded lossily as UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// The URL path, still percent-encoded, e.g. `/v1/workspaces/ws-1/query`.
    pub path: String,
    /// The raw query string without `?`, if any.
    pub query: Option<String>,
    /// Every header in arrival order, as `(lower-case name, value)`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl RecordedRequest {
    pub(crate) fn from_wiremock(request: &wiremock::Request) -> Self {
        Self {
            method: request.method.as_str().to_owned(),
            path: request.url.path().to_owned(),
            query: request.url.query().map(str::to_owned),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
        }
    }

    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        let url = wiremock::http::Url::parse(&format!("http://localhost/?{query}")).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// Whether `needle` occurs anywhere in the request: path, query, a header name or value, or
    /// the body. Use it to prove a secret did *not* travel somewhere it must not.
    pub fn contains(&self, needle: &str) -> bool {
        self.path.contains(needle)
            || self.query.as_deref().is_some_and(|q| q.contains(needle))
            || self
                .headers
                .iter()
                .any(|(n, v)| n.contains(needle) || v.contains(needle))
            || self.body.contains(needle)
    }
}

/// The value of `Authorization: Bearer <token>`, if the request carries one.
pub(crate) fn bearer_token(request: &wiremock::Request) -> Option<String> {
    let value = request.headers.get("authorization")?;
    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let (scheme, token) = text.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// A header's value as text.
pub(crate) fn header_text(request: &wiremock::Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// One injection rule: which requests it applies to and how often.
#[derive(Debug, Clone)]
struct Rule<F> {
    /// `None` applies forever; `Some(n)` to the next `n` matching requests.
    remaining: Option<usize>,
    /// Applies only to requests whose text contains this, when set.
    needle: Option<String>,
    failure: F,
}

/// Injected failures, consulted in the order they were added; the first applicable rule wins
/// and is consumed by one use.
#[derive(Debug, Clone)]
pub(crate) struct Injections<F> {
    rules: Vec<Rule<F>>,
}

impl<F> Default for Injections<F> {
    fn default() -> Self {
        Self { rules: Vec::new() }
    }
}

impl<F: Clone> Injections<F> {
    pub(crate) fn add(&mut self, remaining: Option<usize>, needle: Option<String>, failure: F) {
        if remaining == Some(0) {
            return;
        }
        self.rules.push(Rule {
            remaining,
            needle,
            failure,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The failure for a request whose matchable text is `text`, consuming one use.
    pub(crate) fn take(&mut self, text: &str) -> Option<F> {
        let index = self.rules.iter().position(|r| {
            r.needle
                .as_deref()
                .is_none_or(|needle| text.contains(needle))
        })?;
        let rule = self.rules.get_mut(index)?;
        let failure = rule.failure.clone();
        if let Some(left) = rule.remaining.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.rules.remove(index);
            }
        }
        Some(failure)
    }
}

/// Turns a `u16` into a status a response can carry: values outside `100..=999` become 500,
/// because `wiremock` panics on them and a fake must never panic on test input.
pub(crate) fn safe_status(status: u16) -> u16 {
    if (100..=999).contains(&status) {
        status
    } else {
        500
    }
}

/// A deterministic fake access token for a resource (or scope).
///
/// The resource is normalised first: a trailing `/.default` and trailing slashes are removed, so
/// `token_for("https://api.loganalytics.io/.default")` equals
/// `token_for("https://api.loganalytics.io")`, just as managed identity turns a scope into a
/// resource. Tokens for different resources differ, so a test can tell which token reached which
/// server. The token is ASCII and valid in an HTTP header.
///
/// ```
/// use pim_testkit::token_for;
/// let la = token_for("https://api.loganalytics.io");
/// assert_eq!(la, token_for("https://api.loganalytics.io/.default"));
/// assert_ne!(la, token_for("https://cognitiveservices.azure.com"));
/// assert!(la.starts_with("fake-token-"));
/// ```
pub fn token_for(resource: &str) -> String {
    let normalized = normalize_resource(resource);
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in normalized.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let slug: String = normalized
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(48)
        .collect();
    format!("fake-token-{hash:016x}-{slug}")
}

/// A scope or resource reduced to the resource: no `/.default`, no trailing slash.
pub(crate) fn normalize_resource(resource: &str) -> &str {
    let trimmed = resource.trim();
    trimmed
        .strip_suffix("/.default")
        .unwrap_or(trimmed)
        .trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injections_apply_in_order_and_run_out() {
        let mut inj = Injections::default();
        inj.add(Some(2), None, "a");
        inj.add(None, Some("needle".to_owned()), "b");
        inj.add(Some(0), None, "never");
        assert_eq!(inj.take("x"), Some("a"));
        assert_eq!(inj.take("needle"), Some("a"));
        assert_eq!(inj.take("x"), None);
        assert_eq!(inj.take("a needle"), Some("b"));
        assert_eq!(inj.take("a needle"), Some("b"));
        inj.clear();
        assert_eq!(inj.take("a needle"), None);
    }

    #[test]
    fn tokens_are_deterministic_header_safe_and_distinct() {
        let weird = token_for("\u{0}ü\r\n/.default");
        assert!(weird.bytes().all(|b| b.is_ascii_graphic()), "{weird}");
        assert_eq!(token_for("https://x/"), token_for("https://x/.default"));
        assert_ne!(token_for("https://x"), token_for("https://y"));
        assert_eq!(safe_status(42), 500);
        assert_eq!(safe_status(429), 429);
    }

    #[test]
    fn recorded_request_helpers() {
        let r = RecordedRequest {
            method: "GET".into(),
            path: "/msi/token".into(),
            query: Some("resource=https%3A%2F%2Fa.b&api-version=1".into()),
            headers: vec![("x-identity-header".into(), "s3cr3t".into())],
            body: String::new(),
        };
        assert_eq!(r.query_param("resource").as_deref(), Some("https://a.b"));
        assert_eq!(r.header("X-Identity-Header"), Some("s3cr3t"));
        assert!(r.contains("s3cr3t"));
        assert!(!r.contains("other"));
        assert_eq!(r.body_json(), None);
    }
}
