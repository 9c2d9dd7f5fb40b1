//! Keeping secrets out of `Debug`, errors and logs.
//!
//! Keys and tokens are held as [`Secret`] (azure_core's, whose `Debug` prints `Secret` and
//! never the value; the adapters already receive tokens in it from `azure_core` credentials),
//! sent only in headers marked sensitive (see [`sensitive_header`]), and scrubbed with
//! [`scrub`] from any text an answer echoes back before that text reaches an error.
//!
//! Every adapter type that holds a secret (options, clients, credentials, settings) writes its
//! `Debug` by hand and shows each secret as [`Redacted`], the one stand-in for all of them, so
//! `{:?}` output reads the same everywhere and says *that* a secret is configured, never what it
//! is. A URL whose query carries a signature is shown with [`redacted_url`]. A caller's
//! `reqwest::Client` is never printed: its default headers may hold a key.
//!
//! ```
//! use std::fmt;
//! use pim_http::secret::{Redacted, Secret};
//!
//! struct Options { key: Secret, user: String }
//!
//! impl fmt::Debug for Options {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         f.debug_struct("Options").field("key", &Redacted).field("user", &self.user).finish()
//!     }
//! }
//!
//! let options = Options { key: Secret::new("sk-123"), user: "kim".into() };
//! assert_eq!(format!("{options:?}"), r#"Options { key: [REDACTED], user: "kim" }"#);
//! ```

use std::fmt;

use reqwest::Url;
use reqwest::header::{HeaderValue, InvalidHeaderValue};

pub use azure_core::credentials::Secret;

/// What replaces a secret in text.
pub const REDACTED: &str = "[REDACTED]";

/// What a hand-written `Debug` prints in place of a secret: `[REDACTED]` ([`REDACTED`]),
/// unquoted. See the [module docs](self).
///
/// ```
/// use pim_http::secret::Redacted;
/// assert_eq!(format!("{:?}", Redacted), "[REDACTED]");
/// assert_eq!(format!("{:?}", Redacted::if_some(Some(&"sk-123"))), "Some([REDACTED])");
/// assert_eq!(format!("{:?}", Redacted::if_some(None::<&String>)), "None");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Redacted;

impl Redacted {
    /// `Some(Redacted)` when an optional secret is set, `None` when not, so `Debug` still says
    /// whether one is configured.
    pub fn if_some<T: ?Sized>(secret: Option<&T>) -> Option<Redacted> {
        secret.map(|_| Redacted)
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// What [`client_with_a_secret_header`] puts in its default `Authorization` header.
#[cfg(any(test, feature = "test-support"))]
pub const TEST_HEADER_SECRET: &str = "header-secret-xyz";

/// For the adapters' `Debug` tests (feature `test-support`): a client whose default headers hold
/// [`TEST_HEADER_SECRET`]. A client's own `Debug` prints its default headers, so an options type
/// whose `Debug` printed the client would leak it.
///
/// # Errors
/// reqwest cannot build a client here (no TLS backend).
#[cfg(any(test, feature = "test-support"))]
pub fn client_with_a_secret_header() -> reqwest::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer header-secret-xyz"),
    );
    reqwest::Client::builder().default_headers(headers).build()
}

/// For the adapters' tests (feature `test-support`): builds a value around
/// [`client_with_a_secret_header`] and checks its `Debug`, which must not show
/// [`TEST_HEADER_SECRET`] and must say `custom_client: true` (how our options show a caller's
/// client).
///
/// # Errors
/// The `Debug` text when it fails the check, or the reason no client could be built.
#[cfg(any(test, feature = "test-support"))]
pub fn check_debug_hides_client<T: fmt::Debug>(
    build: impl FnOnce(reqwest::Client) -> T,
) -> Result<(), String> {
    let client = client_with_a_secret_header().map_err(|e| e.to_string())?;
    let shown = format!("{:?}", build(client));
    if shown.contains(TEST_HEADER_SECRET) || !shown.contains("custom_client: true") {
        return Err(shown);
    }
    Ok(())
}

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

    #[test]
    fn redacted_shows_the_one_marker() {
        assert_eq!(format!("{Redacted:?}"), REDACTED);
        assert_eq!(Redacted.to_string(), REDACTED);
        let key = Secret::new("sk-very-secret");
        let shown = format!("{:?}", Redacted::if_some(Some(&key)));
        assert_eq!(shown, "Some([REDACTED])");
        assert!(!shown.contains("very-secret"));
        assert_eq!(format!("{:?}", Redacted::if_some(None::<&Secret>)), "None");
    }

    // Why no adapter prints a caller's `reqwest::Client`: its `Debug` shows default headers.
    #[test]
    fn a_clients_debug_shows_its_default_headers() {
        let client = client_with_a_secret_header().unwrap();
        assert!(format!("{client:?}").contains(TEST_HEADER_SECRET));
        // So the check catches a derived Debug that prints the client.
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Derived {
            custom_client: bool,
            client: reqwest::Client,
        }
        let derived = |client| Derived {
            custom_client: true,
            client,
        };
        assert!(check_debug_hides_client(derived).is_err());
    }
}
