//! The Log Analytics fake's own HTTP server: a hyper HTTP/1.1 server on 127.0.0.1, on a
//! multi-threaded tokio runtime of its own thread.
//!
//! `wiremock` (which the other fakes use) runs every connection on one current-thread runtime
//! and makes each answer synchronously in its responder, so while it builds one 100 MB answer no
//! other answer that is due goes out, and only one body is written to a socket at a time. The
//! real query API answers concurrent queries concurrently; a benchmark that measures a scan
//! against the bound `queries x latency / concurrency` needs the fake to do the same (issue 12,
//! item 3). Here each request is its own task, the handler is async (the body is made on a
//! blocking thread, the latency is a timer), and two worker threads write answers in parallel.
//!
//! The request handed to the handler is `wiremock`'s [`Request`], so the fake keeps recording
//! and matching requests as before.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use wiremock::Request;
use wiremock::http::Url;

/// One answer: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (lower-case names).
    pub headers: Vec<(&'static str, String)>,
    /// The `Content-Type`, when there is a body.
    pub content_type: Option<&'static str>,
    /// The body (empty for none).
    pub body: Vec<u8>,
}

impl Reply {
    /// An answer with no body.
    pub(crate) fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: None,
            body: Vec::new(),
        }
    }

    /// An answer with a JSON body.
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::raw(status, value.to_string().into_bytes(), "application/json")
    }

    /// An answer with this exact body.
    pub(crate) fn raw(status: u16, body: Vec<u8>, content_type: &'static str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: Some(content_type),
            body,
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_hyper(self) -> hyper::Response<Full<Bytes>> {
        let mut response = hyper::Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = hyper::StatusCode::from_u16(self.status)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if let Some(ct) = self.content_type
            && let Ok(v) = hyper::header::HeaderValue::from_str(ct)
        {
            headers.insert(hyper::header::CONTENT_TYPE, v);
        }
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                hyper::header::HeaderValue::from_str(&value),
            ) {
                headers.append(n, v);
            }
        }
        response
    }
}

/// The future a handler returns.
pub(crate) type Handled = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Answers one request.
pub(crate) type Handler = Arc<dyn Fn(Request) -> Handled + Send + Sync>;

/// A running server; dropping it stops accepting connections and shuts its runtime down.
pub(crate) struct Server {
    uri: String,
    _stop: Option<tokio::sync::watch::Sender<()>>,
}

impl Server {
    /// Binds 127.0.0.1 on a free port and serves `handler` from a thread of its own.
    ///
    /// A fake that cannot bind or build its runtime does not panic: its [`uri`](Self::uri)
    /// then names an address in the reserved `.invalid` domain, so the test that uses it fails
    /// on the first request and says why.
    pub(crate) fn start(handler: Handler) -> Self {
        match Self::try_start(handler) {
            Ok(server) => server,
            Err(e) => Self {
                uri: format!("http://log-analytics-fake-failed-to-start.invalid/{e}"),
                _stop: None,
            },
        }
    }

    fn try_start(handler: Handler) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("log-analytics-fake")
            .enable_all()
            .build()?;
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        std::thread::Builder::new()
            .name("log-analytics-fake".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let stream = tokio::select! {
                            biased;
                            // The sender is dropped with the fake: stop.
                            _ = stopped.changed() => break,
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => stream,
                                Err(_) => continue,
                            },
                        };
                        let handler = Arc::clone(&handler);
                        tokio::spawn(async move {
                            let service = service_fn(move |request| {
                                let handler = Arc::clone(&handler);
                                async move {
                                    let reply = match read(request).await {
                                        Some(request) => handler(request).await,
                                        None => Reply::empty(400),
                                    };
                                    Ok::<_, Infallible>(reply.into_hyper())
                                }
                            });
                            // A client that goes away mid-answer is not the fake's problem.
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
                // Connections still open and bodies still being made are dropped, not awaited.
                runtime.shutdown_background();
            })?;
        Ok(Self {
            uri: format!("http://{address}"),
            _stop: Some(stop),
        })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub(crate) fn uri(&self) -> String {
        self.uri.clone()
    }
}

/// Reads a whole request into `wiremock`'s request type (a body that cannot be read is
/// empty); `None` when its target does not make a URL.
async fn read(request: hyper::Request<Incoming>) -> Option<Request> {
    let (parts, body) = request.into_parts();
    let url = Url::parse(&format!("http://localhost{}", parts.uri)).ok()?;
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    Some(Request {
        url,
        method: parts.method,
        headers: parts.headers,
        body,
    })
}
