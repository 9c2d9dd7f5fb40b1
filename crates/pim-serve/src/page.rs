//! The web page at `/`: one HTML file, one stylesheet, one script and an icon, embedded in the binary
//! (no CDN, no external fonts), served under a Content-Security-Policy that allows nothing
//! else: no inline script or style, no other origin, no framing.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/icon.svg");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /static/app.js`.
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /static/app.css`.
pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /static/icon.svg`, the page's icon (without one, every browser asks for
/// `/favicon.ico` and logs the 404 in the console).
pub async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() {
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("@import") && !text.contains("url("));
        }
        assert!(!INDEX.contains("<style") && !INDEX.contains("style="));
        assert_eq!(INDEX.matches("<script").count(), 1);
        assert!(INDEX.contains(r#"<link rel="icon" href="/static/icon.svg""#));
        // The icon is a picture only: no script, no reference to anything else.
        assert!(!ICON.contains("<script") && !ICON.contains("href") && !ICON.contains("url("));
        assert!(INDEX.contains(r#"<script src="/static/app.js" defer></script>"#));
        // Untrusted text goes in with textContent only.
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"));
        assert!(!SCRIPT.contains("eval("));
    }
}
