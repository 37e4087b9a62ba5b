//! The browser demo at `GET /` (B12): register, log in, chat, list and end sessions, log out;
//! and links to the hosted pages (C4: `/signin`, `/signup`, `/account/settings`, in `pages.rs`).
//!
//! Static files built into the binary with `include_str!` (no build step, no CDN). The page
//! authenticates with the HttpOnly cookies plus the `X-CSRF-Token` header only and keeps no
//! token in web storage; `assets/demo/app.js` says how it refreshes transparently. Every file
//! is served under a strict Content-Security-Policy: scripts and styles from this origin only,
//! no inline script, `fetch` to this origin only, no framing. The router's security headers
//! (nosniff, X-Frame-Options, Referrer-Policy, Cache-Control) apply as to every response.
//!
//! Over plain http on a host other than localhost/127.0.0.1 the cookies need
//! `COOKIE_SECURE=false` (browsers keep `Secure` cookies over http only on loopback); the
//! default SameSite=Lax works, as the page and the API share one origin.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

/// The demo's policy: nothing but same-origin scripts, styles, images and requests.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../../assets/demo/index.html");
const APP_JS: &str = include_str!("../../assets/demo/app.js");
const APP_CSS: &str = include_str!("../../assets/demo/app.css");
const FAVICON_SVG: &str = include_str!("../../assets/demo/favicon.svg");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/demo/app.js", get(script))
        .route("/demo/app.css", get(style))
        .route("/demo/favicon.svg", get(icon))
}

/// The browser demo (register, log in, chat, sessions, log out) over the cookie + CSRF flow.
#[utoipa::path(
    get,
    path = "/",
    tag = "demo",
    responses((status = 200, description = "The demo page.", body = String, content_type = "text/html")),
)]
pub(super) async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The demo's script.
#[utoipa::path(
    get,
    path = "/demo/app.js",
    tag = "demo",
    responses((status = 200, description = "The demo's script.", body = String, content_type = "text/javascript")),
)]
pub(super) async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The demo's style sheet.
#[utoipa::path(
    get,
    path = "/demo/app.css",
    tag = "demo",
    responses((status = 200, description = "The demo's style sheet.", body = String, content_type = "text/css")),
)]
pub(super) async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// The demo's icon.
#[utoipa::path(
    get,
    path = "/demo/favicon.svg",
    tag = "demo",
    responses((status = 200, description = "The demo's icon.", body = String, content_type = "image/svg+xml")),
)]
pub(super) async fn icon() -> impl IntoResponse {
    asset("image/svg+xml", FAVICON_SVG)
}

/// One embedded file with its content type and the demo's security policy.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_and_style_from_files_not_inline() {
        assert!(INDEX_HTML.contains(r#"<script type="module" src="/demo/app.js"></script>"#));
        assert!(INDEX_HTML.contains(r#"<link rel="stylesheet" href="/demo/app.css">"#));
        // No inline script or style the policy would block, and no inline event handlers.
        assert_eq!(INDEX_HTML.matches("<script").count(), 1);
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        assert!(!INDEX_HTML.to_ascii_lowercase().contains(" onclick="));
    }

    #[test]
    fn the_script_keeps_no_token_in_web_storage() {
        for forbidden in [
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "innerHTML",
            "eval(",
        ] {
            let uses = APP_JS
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .any(|line| line.contains(forbidden));
            assert!(!uses, "app.js uses {forbidden}");
        }
        assert!(APP_JS.contains("'X-CSRF-Token'"));
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    }
}
