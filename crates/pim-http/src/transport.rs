//! What kind of failure a request that got no usable HTTP answer had.
//!
//! Every adapter tells the operator the same three things: the call timed out (say after how
//! long), the host could not be reached (DNS, refused, TLS), or the answer broke off while its
//! body was read. All three are worth another attempt.

use std::fmt;

/// The kind of a transport failure, from a [`reqwest::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The request timeout (or the connect timeout) passed.
    Timeout,
    /// No connection: DNS, refused, unreachable, TLS handshake.
    Connect,
    /// The connection broke while the answer's body was read, or the body was not readable.
    Body,
    /// Anything else the HTTP client reports (a redirect loop, a malformed answer head).
    Request,
}

impl TransportKind {
    /// Classifies `error`. A timeout wins over the phase it happened in.
    pub fn of(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else if error.is_connect() {
            Self::Connect
        } else if error.is_body() || error.is_decode() {
            Self::Body
        } else {
            Self::Request
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timed out",
            Self::Connect => "could not connect",
            Self::Body => "the answer broke off",
            Self::Request => "the request failed",
        })
    }
}

/// `error` without its URL: a webhook URL carries its signature in the query, and the error's
/// `Display` would print it. Adapters box this as their transport error's source.
pub fn without_url(error: reqwest::Error) -> reqwest::Error {
    error.without_url()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn timeouts_connect_failures_and_others_are_told_apart() {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let client = reqwest::Client::new();
        let slow = client
            .get(server.uri())
            .timeout(Duration::from_millis(50))
            .send()
            .await
            .unwrap_err();
        assert_eq!(TransportKind::of(&slow), TransportKind::Timeout);

        // A port that was just listening and is now closed refuses the connection.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let refused = client
            .get(format!("http://{closed}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(TransportKind::of(&refused), TransportKind::Connect);
        assert_eq!(TransportKind::Connect.to_string(), "could not connect");

        let secret = client
            .get(format!("http://{closed}/hook?sig=s3cret"))
            .send()
            .await
            .unwrap_err();
        assert!(secret.to_string().contains("s3cret"));
        assert!(!without_url(secret).to_string().contains("s3cret"));
    }
}
