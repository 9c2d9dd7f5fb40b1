//! Keeping secrets out of `Debug`, errors and logs.
//!
//! Keys and tokens are held as [`Secret`] (azure_core's, whose `Debug` prints `Secret` and
//! never the value; the adapters already receive tokens in it from `azure_core` credentials),
//! sent only in headers marked sensitive (see [`sensitive_header`]), and scrubbed with
//! [`scrub`] from any text an answer echoes back before that text reaches an error.

use reqwest::Url;
use reqwest::header::{HeaderValue, InvalidHeaderValue};

pub use azure_core::credentials::Secret;

/// What replaces a secret in text.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every occurrence of each non-empty secret in `text` with `[REDACTED]`.
///
/// ```
/// assert_eq!(pim_http::secret::scrub("bad sig=abc", &["abc", ""]), "bad sig=[REDACTED]");
/// ```
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |acc, s| acc.replace(s, REDACTED))
}

/// How a URL whose query may hold a secret (a webhook's signature, a SAS token) is shown:
/// `scheme://host[:port]/path`, with `?[REDACTED]` when there was a query. User info and the
/// fragment are never shown.
///
/// ```
/// let url = reqwest::Url::parse("https://u:p@x.example:8443/hook?sig=abc#f").unwrap();
/// assert_eq!(pim_http::secret::redacted_url(&url), "https://x.example:8443/hook?[REDACTED]");
/// ```
pub fn redacted_url(url: &Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let query = if url.query().is_some() {
        "?[REDACTED]"
    } else {
        ""
    };
    format!(
        "{}://{}{port}{}{query}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.path()
    )
}

/// A header value marked sensitive, so that reqwest's and hyper's `Debug` print `Sensitive`.
///
/// # Errors
///
/// The value holds a character a header cannot carry (a newline, for instance).
pub fn sensitive_header(value: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut header = HeaderValue::from_str(value)?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let secret = Secret::new("sk-very-secret");
        assert!(!format!("{secret:?}").contains("very-secret"));
        let header = sensitive_header("Bearer sk-very-secret").unwrap();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("very-secret"));
        assert!(sensitive_header("a\nb").is_err());
        assert_eq!(
            scrub("x sk-very-secret y", &["sk-very-secret"]),
            "x [REDACTED] y"
        );
        assert_eq!(scrub("nothing", &[]), "nothing");
    }
}
