//! Forward auth (G2): the endpoints a reverse proxy calls before passing a request on.
//!
//! - `/auth/forward`, any method (Traefik `forwardAuth`, Caddy `forward_auth`): the original
//!   request is `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri` (all but the URI required: the
//!   CSRF check depends on the original method, so it is never guessed).
//! - `/auth/nginx` (nginx `auth_request`): `X-Original-URL` and `X-Original-Method` (required). nginx
//!   cannot pass a redirect from an auth subrequest, so a browser needing sign-in gets 401 with
//!   `Location`, which the nginx configuration turns into a redirect (docs/GATEWAY.md).
//! - `/auth/envoy/<original path>` (Envoy `ext_authz` HTTP service): the path suffix (with
//!   the query) is the original path, the method is the request's own, the host comes from
//!   `X-Forwarded-Host` or `Host`.
//!
//! Answers: 200 with the identity headers (`Remote-*`, `X-Tessera-*` with the assertion, every
//! one present, empty when it does not apply, and `X-RateLimit-*`); 401 with `WWW-Authenticate` for an API client without a valid credential;
//! for a browser (it accepts `text/html` and is no XHR/`fetch` call) a redirect to the sign-in
//! page with `rd=<original URL>` (302 for GET/HEAD, 303 otherwise; 401 + `Location` at
//! `/auth/nginx`); 403 when `GATEWAY_RULES` refuse or CSRF fails (cookie + unsafe original
//! method); 400 for missing or malformed forwarded headers; 429 when the API limit is spent.
//!
//! The forwarded headers describe a request Tessera never saw, so they are believed from
//! TRUSTED_PROXIES only. Any other peer gets 403 `forbidden` (`untrusted_proxy`): answering it
//! would mean guessing what the original request was, and a client able to reach this endpoint
//! directly could otherwise probe rules for hosts of its choosing.
//!
//! These routes are for proxies, not API clients, and are not in the OpenAPI document; their
//! reference is docs/GATEWAY.md.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tessera_core::gateway::{self, AbsoluteUrl, GatewayError, Requirement};

use super::AppState;
use super::auth::authenticate_request;
use super::error::{AppError, ErrorCode, RenderedError};
use super::extract::ClientIp;
use crate::app::forward_auth::ForwardOutcome;
use crate::app::identity::{REMOTE_HEADERS, TESSERA_HEADERS};

/// Where Envoy's `ext_authz` sends its checks; the rest of the path is the original path.
const ENVOY_PREFIX: &str = "/auth/envoy";

/// The forward-auth routes.
pub fn router(_state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/auth/forward", any(forward))
        .route("/auth/nginx", any(nginx))
        .route(ENVOY_PREFIX, any(envoy))
        .route("/auth/envoy/", any(envoy))
        .route("/auth/envoy/{*path}", any(envoy))
}

/// Which proxy contract a request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// Traefik / Caddy.
    Forward,
    /// nginx `auth_request`.
    Nginx,
    /// Envoy `ext_authz`.
    Envoy,
}

impl Endpoint {
    /// The metric label.
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Forward => "forward",
            Endpoint::Nginx => "nginx",
            Endpoint::Envoy => "envoy",
        }
    }
}

async fn forward(State(state): State<AppState>, request: Request) -> Response {
    answer(&state, Endpoint::Forward, request.into_parts().0).await
}

async fn nginx(State(state): State<AppState>, request: Request) -> Response {
    answer(&state, Endpoint::Nginx, request.into_parts().0).await
}

async fn envoy(State(state): State<AppState>, request: Request) -> Response {
    answer(&state, Endpoint::Envoy, request.into_parts().0).await
}

/// The original request as the proxy describes it.
struct Original {
    method: Method,
    url: AbsoluteUrl,
    /// The path normalised for the rules.
    path: String,
}

/// The forwarded headers are missing or malformed: 400 `bad_request`.
struct BadForwardedRequest;

fn bad_forwarded_request() -> BadForwardedRequest {
    BadForwardedRequest
}

/// A header's value as text: `None` when absent, a refusal when not visible ASCII (or too
/// long to be a URL).
fn text_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, BadForwardedRequest> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    if value.len() > gateway::MAX_URL_LEN {
        return Err(bad_forwarded_request());
    }
    value.to_str().map(Some).map_err(|_| bad_forwarded_request())
}

/// The original method: required, since CSRF is judged on it (a missing header must not make a
/// cookie-authenticated POST look like the auth request's own GET).
fn method_header(headers: &HeaderMap, name: &str) -> Result<Method, BadForwardedRequest> {
    let text = text_header(headers, name)?.ok_or_else(bad_forwarded_request)?;
    Method::from_bytes(text.trim().as_bytes()).map_err(|_| bad_forwarded_request())
}

/// Reads the original request from the proxy's headers.
fn original_request(endpoint: Endpoint, parts: &Parts) -> Result<Original, BadForwardedRequest> {
    let headers = &parts.headers;
    let url = |result: Result<AbsoluteUrl, GatewayError>| result.map_err(|_| bad_forwarded_request());
    let (method, url) = match endpoint {
        Endpoint::Forward => {
            let method = method_header(headers, "x-forwarded-method")?;
            let proto = text_header(headers, "x-forwarded-proto")?.ok_or_else(bad_forwarded_request)?;
            let host = text_header(headers, "x-forwarded-host")?.ok_or_else(bad_forwarded_request)?;
            let uri = text_header(headers, "x-forwarded-uri")?.unwrap_or("/");
            (method, url(AbsoluteUrl::from_parts(proto, host, uri))?)
        }
        Endpoint::Nginx => {
            let method = method_header(headers, "x-original-method")?;
            let original = text_header(headers, "x-original-url")?.ok_or_else(bad_forwarded_request)?;
            (method, url(AbsoluteUrl::parse(original.trim()))?)
        }
        Endpoint::Envoy => {
            let proto = text_header(headers, "x-forwarded-proto")?.unwrap_or("https");
            let host = match text_header(headers, "x-forwarded-host")? {
                Some(host) => host,
                None => text_header(headers, header::HOST.as_str())?.ok_or_else(bad_forwarded_request)?,
            };
            let suffix = parts.uri.path().strip_prefix(ENVOY_PREFIX).unwrap_or_default();
            let path = if suffix.is_empty() { "/" } else { suffix };
            let target = match parts.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            (
                parts.method.clone(),
                url(AbsoluteUrl::from_parts(proto, host, &target))?,
            )
        }
    };
    let path = gateway::normalize_path(url.path()).map_err(|_| bad_forwarded_request())?;
    Ok(Original { method, url, path })
}

/// Whether the peer is a trusted proxy (TRUSTED_PROXIES).
fn is_trusted_peer(state: &AppState, parts: &Parts) -> bool {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| state.config.is_trusted_proxy(peer.ip()))
}

/// Whether the caller is a browser navigating (it will follow a redirect to a sign-in page),
/// not a script: it accepts HTML, is no XHR, and is no `fetch` (whose `Sec-Fetch-Mode` is
/// `cors`, `no-cors` or `same-origin`, never `navigate`).
fn is_browser(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let accepts_html = text(header::ACCEPT.as_str()).to_ascii_lowercase().contains("text/html");
    let is_xhr = text("x-requested-with").eq_ignore_ascii_case("xmlhttprequest");
    let fetch_mode = text("sec-fetch-mode");
    let is_script_fetch = !fetch_mode.is_empty() && !fetch_mode.eq_ignore_ascii_case("navigate");
    accepts_html && !is_xhr && !is_script_fetch
}

/// The path for logs: at most 200 characters, never the query (it may carry secrets).
fn loggable_path(path: &str) -> String {
    path.chars().take(200).collect()
}

async fn answer(state: &AppState, endpoint: Endpoint, parts: Parts) -> Response {
    let ClientIp(ip) = parts.extensions.get::<ClientIp>().cloned().unwrap_or_else(|| {
        ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |ConnectInfo(peer)| peer.ip().to_string()),
        )
    });
    let count = |outcome: &str| {
        state
            .metrics
            .forward_auth
            .with_label_values(&[endpoint.as_str(), outcome])
            .inc();
    };
    if !is_trusted_peer(state, &parts) {
        count("untrusted_proxy");
        tracing::warn!(
            event = "forward_auth_denied",
            endpoint = endpoint.as_str(),
            outcome = "untrusted_proxy",
            ip_address = %ip,
            "forward auth asked by a peer that is not in TRUSTED_PROXIES"
        );
        return RenderedError {
            message_key: Some("untrusted_proxy"),
            ..RenderedError::plain(ErrorCode::Forbidden)
        }
        .into_response_in(super::i18n::Lang::En);
    }
    let original = match original_request(endpoint, &parts) {
        Ok(original) => original,
        Err(BadForwardedRequest) => {
            count("bad_request");
            tracing::info!(
                event = "forward_auth_denied",
                endpoint = endpoint.as_str(),
                outcome = "bad_request",
                ip_address = %ip,
                "forward auth got missing or malformed forwarded headers"
            );
            return AppError::BadRequest("invalid_forwarded_request").into_response();
        }
    };
    let host = original.url.host.as_str();
    let path = loggable_path(&original.path);

    let user = match authenticate_request(state, &parts.headers, &original.method, &ip).await {
        Ok(user) => user,
        Err(error) => {
            let is_unauthenticated = matches!(
                error,
                AppError::Code(ErrorCode::NotAuthenticated) | AppError::Token { .. }
            );
            if is_unauthenticated && is_browser(&parts.headers) {
                count("redirected");
                tracing::info!(
                    event = "forward_auth_denied",
                    endpoint = endpoint.as_str(),
                    outcome = "redirected",
                    ip_address = %ip,
                    host,
                    path,
                    "browser sent to sign in"
                );
                return signin_redirect(state, endpoint, &original, error);
            }
            let outcome = match &error {
                _ if is_unauthenticated => "unauthenticated",
                AppError::RateLimited(_) | AppError::QuotaExceeded(_) => "rate_limited",
                AppError::Internal(_) | AppError::Unavailable { .. } | AppError::StorageUnavailable { .. } => "error",
                _ => "forbidden",
            };
            count(outcome);
            if is_unauthenticated {
                tracing::info!(
                    event = "forward_auth_denied",
                    endpoint = endpoint.as_str(),
                    outcome,
                    ip_address = %ip,
                    host,
                    path,
                    "no valid credential"
                );
            } else {
                tracing::warn!(
                    event = "forward_auth_denied",
                    endpoint = endpoint.as_str(),
                    outcome,
                    ip_address = %ip,
                    host,
                    path,
                    error = %error,
                    "credential refused"
                );
            }
            return error.into_response();
        }
    };
    let user_id = user.claims.user_id;
    match state
        .forward_auth(&user.authenticated(), &original.url, &original.path, &ip)
        .await
    {
        Ok(ForwardOutcome::Allowed {
            identity,
            assertion,
            limit,
        }) => {
            count("allowed");
            let mut response = StatusCode::OK.into_response();
            let headers = response.headers_mut();
            for (name, value) in identity
                .remote_headers()
                .into_iter()
                .chain(identity.tessera_headers())
                .chain([("x-tessera-assertion", assertion)])
            {
                if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                    headers.insert(HeaderName::from_static(name), value);
                }
            }
            // Every identity header is always sent, empty when it does not apply (no session
            // for an API key, no email for a service account): a proxy copying the answer's
            // headers then replaces a client's own copy of each, instead of keeping it (or,
            // Caddy 2.6, writing its unresolved placeholder) when the answer lacks one.
            for name in REMOTE_HEADERS.iter().chain(TESSERA_HEADERS.iter()) {
                if !headers.contains_key(*name) {
                    headers.insert(HeaderName::from_static(name), HeaderValue::from_static(""));
                }
            }
            headers.extend(super::limits::headers(&limit));
            response
        }
        Ok(ForwardOutcome::Forbidden { requirement, limit }) => {
            count("forbidden");
            tracing::warn!(
                event = "forward_auth_denied",
                endpoint = endpoint.as_str(),
                outcome = "forbidden",
                user_id,
                ip_address = %ip,
                host,
                path,
                required = %requirement,
                "a gateway rule refused the caller"
            );
            let error = match requirement {
                Requirement::Scope(scope) => AppError::InsufficientScope(scope),
                Requirement::Role(role) => AppError::MissingRole(role),
                // `authenticated` is always met; kept total for the type.
                Requirement::Authenticated => AppError::Code(ErrorCode::Forbidden),
            };
            let mut response = error.into_response();
            response.headers_mut().extend(super::limits::headers(&limit));
            response
        }
        Err(error) => {
            let error = AppError::from(error);
            let outcome = match &error {
                AppError::RateLimited(_) | AppError::QuotaExceeded(_) => "rate_limited",
                AppError::Token { .. } => "unauthenticated",
                _ => "error",
            };
            count(outcome);
            tracing::warn!(
                event = "forward_auth_denied",
                endpoint = endpoint.as_str(),
                outcome,
                user_id,
                ip_address = %ip,
                host,
                path,
                "forward auth refused an authenticated caller"
            );
            error.into_response()
        }
    }
}

/// The sign-in redirect for a browser: 302 (GET, HEAD) or 303 to the sign-in page, or at
/// `/auth/nginx` the 401 itself with `Location` (nginx turns it into the redirect).
fn signin_redirect(state: &AppState, endpoint: Endpoint, original: &Original, error: AppError) -> Response {
    let location = state.signin_location(&original.url);
    let Ok(location) = HeaderValue::from_str(&location) else {
        return error.into_response();
    };
    if endpoint == Endpoint::Nginx {
        let mut response = error.into_response();
        response.headers_mut().insert(header::LOCATION, location);
        return response;
    }
    let status = if matches!(original.method, Method::GET | Method::HEAD) {
        StatusCode::FOUND
    } else {
        StatusCode::SEE_OTHER
    };
    (status, [(header::LOCATION, location)]).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn only_html_navigations_count_as_browsers() {
        assert!(is_browser(&headers(&[(
            "accept",
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )])));
        assert!(is_browser(&headers(&[
            ("accept", "text/html"),
            ("sec-fetch-mode", "navigate")
        ])));
        assert!(!is_browser(&headers(&[("accept", "application/json")])));
        assert!(!is_browser(&headers(&[("accept", "*/*")])));
        assert!(!is_browser(&headers(&[
            ("accept", "text/html"),
            ("x-requested-with", "XMLHttpRequest")
        ])));
        assert!(!is_browser(&headers(&[
            ("accept", "text/html"),
            ("sec-fetch-mode", "cors")
        ])));
        assert!(!is_browser(&HeaderMap::new()));
    }

    #[test]
    fn logged_paths_are_bounded() {
        assert_eq!(loggable_path(&"a".repeat(1000)).len(), 200);
        assert_eq!(loggable_path("/x"), "/x");
    }
}
