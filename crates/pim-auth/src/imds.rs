//! The managed-identity probe: is the Azure Instance Metadata Service there?
//!
//! `azure_identity` retries IMDS for about 72 s (6 retries from 1.34 s, on 404/410/429/5xx,
//! reference §5.4), so asking it blindly stalls every run off Azure. The probe decides in at
//! most two [`AuthSettings::imds_probe_timeout`](crate::AuthSettings::imds_probe_timeout)s
//! (connect, then answer) whether the address is Azure IMDS:
//!
//! 1. a TCP connect; nothing listening, or no answer in time, is "not an Azure VM";
//! 2. a token request **without** the `Metadata: true` header, which Azure IMDS always refuses
//!    with `400 Bad Request` and "Required metadata header not specified" (its documented
//!    answer, and its protection against request forgery). Anything else — another cloud's
//!    metadata service (a 404 page, a 403 asking for `Metadata-Flavor: Google`, a 401), a
//!    service that hands out a token without the header, an answer that is not HTTP, or
//!    silence — is "not Azure IMDS", and the chain moves on at once.
//!
//! The request carries no secret and asks for no token: without the header IMDS issues none.

use std::net::SocketAddr;
use std::time::Duration;

use pim_domain::text;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

/// The path of the probe's request: the managed-identity token endpoint.
const PROBE_PATH: &str = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com";

/// The most of an answer the probe reads; Azure's refusal is about a hundred bytes.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Text of Azure IMDS's refusal of a request without `Metadata: true` (lower case).
const AZURE_REFUSAL: &str = "metadata header";

/// The probe of one address; its outcome is computed once and shared by every scope.
pub(crate) struct ImdsProbe {
    addr: SocketAddr,
    timeout: Duration,
    outcome: OnceCell<Result<(), String>>,
}

impl ImdsProbe {
    pub(crate) fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            outcome: OnceCell::new(),
        }
    }

    /// `Ok` when `addr` behaves like Azure IMDS, else why not (one line, for the attempt list).
    pub(crate) async fn check(&self) -> Result<(), String> {
        self.outcome.get_or_init(|| self.run()).await.clone()
    }

    async fn run(&self) -> Result<(), String> {
        let addr = self.addr;
        let ms = self.timeout.as_millis();
        let mut stream = match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                return Err(format!(
                    "the IMDS endpoint {addr} is not reachable ({err}): not an Azure VM?"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the IMDS endpoint {addr} did not accept a connection within {ms} ms: not an Azure VM?"
                ));
            }
        };
        match tokio::time::timeout(self.timeout, exchange(&mut stream, addr)).await {
            Ok(Ok(answer)) => classify(&answer, addr),
            Ok(Err(err)) => Err(format!(
                "{addr} accepted a connection but the probe request failed ({err}): not Azure IMDS"
            )),
            Err(_) => Err(format!(
                "{addr} accepted a connection but sent no HTTP answer within {ms} ms: not Azure IMDS"
            )),
        }
    }
}

/// Sends the probe request and reads the answer: to the end of the stream, or of the body
/// when its length is known, at most [`MAX_ANSWER_BYTES`].
async fn exchange(stream: &mut TcpStream, addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    let request = format!(
        "GET {PROBE_PATH} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pim-auth-imds-probe\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        addr.ip()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while answer.len() < MAX_ANSWER_BYTES {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if complete(&answer) {
            break;
        }
    }
    Ok(answer)
}

/// Whether `answer` holds the whole response (headers plus `Content-Length` bytes of body,
/// or the last chunk of a chunked body), so a server that keeps the connection open despite
/// `Connection: close` does not cost the timeout.
fn complete(answer: &[u8]) -> bool {
    let Some(end) = find(answer, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let body = answer.len() - (end + 4);
    for line in head.lines() {
        if let Some(value) = line.strip_prefix("content-length:") {
            return value.trim().parse::<usize>().is_ok_and(|len| body >= len);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return answer.ends_with(b"0\r\n\r\n");
        }
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Azure IMDS refuses a request without `Metadata: true` with 400 and "Required metadata
/// header not specified"; anything else is some other service.
fn classify(answer: &[u8], addr: SocketAddr) -> Result<(), String> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| {
            let mut parts = line.split_whitespace();
            let version = parts.next()?;
            version.starts_with("HTTP/").then_some(())?;
            parts.next()?.parse::<u16>().ok()
        })
        .ok_or_else(|| {
            format!("{addr} answered the probe with something that is not HTTP: not Azure IMDS")
        })?;
    if status == 400 && body.to_ascii_lowercase().contains(AZURE_REFUSAL) {
        return Ok(());
    }
    let header = |name: &str| {
        lines.clone().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| text::log_field(value, 60))
        })
    };
    let mut seen = format!("HTTP {status}");
    for (name, value) in [
        ("content-type", header("content-type")),
        ("server", header("server")),
        ("metadata-flavor", header("metadata-flavor")),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            seen.push_str(&format!(", {name} {value}"));
        }
    }
    Err(format!(
        "{addr} is a metadata service but not Azure IMDS: a token request without the Metadata: true header got {seen}, where Azure IMDS answers 400 \"Required metadata header not specified\" (another cloud's metadata service?)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "169.254.169.254:80";

    fn answer(status_line: &str, headers: &[&str], body: &str) -> Vec<u8> {
        let mut text = format!("{status_line}\r\n");
        for h in headers {
            text.push_str(h);
            text.push_str("\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text.into_bytes()
    }

    #[test]
    fn azure_imds_refusal_is_recognised() {
        let refusal = answer(
            "HTTP/1.1 400 Bad Request",
            &[
                "Content-Type: application/json; charset=utf-8",
                "Server: IMDS/150.870.65.1854",
            ],
            r#"{"error":"invalid_request","error_description":"Required metadata header not specified"}"#,
        );
        assert!(complete(&refusal));
        assert_eq!(classify(&refusal, ADDR.parse().unwrap()), Ok(()));
    }

    #[test]
    fn other_metadata_services_are_not_azure_imds() {
        let addr = ADDR.parse().unwrap();
        let cases = [
            (
                answer(
                    "HTTP/1.1 404 Not Found",
                    &["Content-Type: text/html", "Server: EC2ws"],
                    "<html><body><h1>404 - Not Found</h1></body></html>",
                ),
                "HTTP 404, content-type text/html, server EC2ws",
            ),
            (
                answer(
                    "HTTP/1.1 403 Forbidden",
                    &[
                        "Content-Type: text/html; charset=UTF-8",
                        "Metadata-Flavor: Google",
                    ],
                    "Missing Metadata-Flavor:Google header.",
                ),
                "HTTP 403, content-type text/html; charset=UTF-8, metadata-flavor Google",
            ),
            // A 400 without Azure's wording, and a token handed out without the header.
            (
                answer("HTTP/1.1 400 Bad Request", &[], "<html>Bad Request</html>"),
                "HTTP 400",
            ),
            (
                answer(
                    "HTTP/1.1 200 OK",
                    &["Content-Type: application/json"],
                    r#"{"access_token":"x","expires_on":"1"}"#,
                ),
                "HTTP 200, content-type application/json",
            ),
        ];
        for (answer, seen) in cases {
            let reason = classify(&answer, addr).unwrap_err();
            assert!(reason.contains("not Azure IMDS"), "{reason}");
            assert!(reason.contains(&format!("got {seen}, where")), "{reason}");
        }
        let reason = classify(b"SSH-2.0-OpenSSH_9.6\r\n", addr).unwrap_err();
        assert!(reason.contains("not HTTP"), "{reason}");
    }

    #[test]
    fn an_answer_is_complete_by_length_or_last_chunk() {
        assert!(!complete(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nabc"
        ));
        assert!(complete(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert!(!complete(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        ));
        assert!(complete(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        ));
        assert!(!complete(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n"
        ));
    }

    #[test]
    fn service_text_is_cleaned_and_cut() {
        // A header value comes from whatever answered: one clean line, cut visibly.
        let content_type = format!("Content-Type: {}", "x".repeat(200));
        let seen = classify(
            &answer(
                "HTTP/1.1 200 OK",
                &["Server: evil\u{1b}[31m\u{202e}", &content_type],
                "",
            ),
            ADDR.parse().unwrap(),
        )
        .unwrap_err();
        assert!(!seen.chars().any(text::is_unsafe), "{seen}");
        assert!(seen.contains("server evil [31m"), "{seen}");
        assert!(
            seen.contains(&format!("content-type {}…", "x".repeat(59))),
            "{seen}"
        );
    }
}
