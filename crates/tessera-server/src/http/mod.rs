//! The HTTP surface: one router per feature, merged here, and the middleware every request
//! passes through.
//!
//! Layers, outermost first: [`front`] (request id and span, credentials-in-URL guard, unified
//! errors: renders every error body, in the client's language), CORS, panic catcher, timeout,
//! security headers, body limits, then the routes. The first three are one middleware, and the
//! security headers one `map_response`: each `from_fn` layer boxes a future and clones the
//! whole stack inside it per request (docs/PERFORMANCE.md).

mod account;
mod agent;
mod api_keys;
pub mod auth;
pub mod cookies;
mod demo;
mod email;
pub mod error;
pub mod extract;
mod forward_auth;
pub mod gateway;
mod health;
pub mod i18n;
mod introspect;
mod jwks;
pub mod limits;
mod metrics;
mod mfa;
pub mod openapi;
mod page_text;
mod pages;
mod passkeys;
mod profile;
pub mod scopes;
pub mod serve;
mod sessions;
mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use self::error::{AppError, ErrorCode, RenderedError};
use self::extract::{ClientIp, has_credentials_in_query};
use self::i18n::Lang;
use crate::app::App;

/// The router type the server is made of (re-exported so the composition root need not name
/// axum itself).
pub use axum::Router;

/// The state every handler gets: the application, behind one `Arc`.
pub type AppState = Arc<App>;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let config = &state.config;
    // No origins configured: no CORS layer at all, so browsers apply the same-origin policy.
    let cors = (!config.cors_origins.is_empty()).then(|| cors_layer(&config.cors_origins));
    // With METRICS_ADDR set, /metrics lives only on its own listener (see `metrics_router`).
    let metrics = config.metrics_addr.is_none().then(metrics::router);
    // With an upstream at /agent/, the seed's echo steps aside (the gateway answers first anyway).
    let echo = (!gateway::Gateway::takes(config, "/agent/chat")).then(|| agent::router(&state));
    let gateway = gateway::Gateway::new(&state)
        .map(|gateway| middleware::from_fn_with_state((state.clone(), gateway), gateway::route));
    Router::new()
        .merge(metrics.unwrap_or_default())
        .merge(account::router())
        .merge(sessions::router(&state))
        .merge(settings::router(&state))
        .merge(mfa::router(&state))
        .merge(passkeys::router(&state))
        .merge(email::router(&state))
        .merge(profile::router(&state))
        .merge(echo.unwrap_or_default())
        .merge(api_keys::router(&state))
        .merge(introspect::router(&state))
        .merge(forward_auth::router(&state))
        .merge(health::router())
        .merge(jwks::router())
        .merge(demo::router())
        .merge(pages::router())
        .merge(openapi::router())
        .fallback(|| async { AppError::Code(ErrorCode::NotFound) })
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(tower::util::MapResponseLayer::new(
            security_headers as fn(Response) -> Response,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            AppError::Code(ErrorCode::InternalServerError).into_response()
        }))
        .layer(tower::util::option_layer(gateway))
        .layer(tower::util::option_layer(cors))
        .layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// The router of the separate metrics listener (METRICS_ADDR): `GET /metrics` and nothing
/// else, with the same unified errors.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .merge(metrics::router())
        .fallback(|| async { AppError::Code(ErrorCode::NotFound) })
        .layer(middleware::from_fn(unify_errors))
        .with_state(state)
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::ACCEPT_LANGUAGE,
            HeaderName::from_static("x-csrf-token"),
            HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([HeaderName::from_static(REQUEST_ID_HEADER), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// A fresh request id: 128 random bits from the thread's CSPRNG (ChaCha, seeded from the OS),
/// not the OS source itself: one `getrandom` system call per request was ~2% of `GET /profile`
/// (docs/PERFORMANCE.md). Session ids and token ids keep [`crate::app::random_id`].
fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    tessera_core::b64::encode(&bytes)
}

/// Sets the security headers on every response the routes and body limits answer:
/// `Cache-Control: no-store` unless the handler chose one; `X-Content-Type-Options`,
/// `X-Frame-Options` and `Referrer-Policy` always (overriding).
fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The outermost middleware, three steps in one (one `from_fn` instead of three):
///
/// 1. Gives every request an id and a span carrying it and the client IP (so every log line of
///    the request has both), and echoes the id in the response.
/// 2. Inside the span, refuses any request that carries credentials in its query string (B6).
/// 3. Renders every other error answer in the unified format ([`unify`]).
async fn front(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let client_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|value| is_sane_request_id(value));
    let (id, id_value) = match client_id {
        // Sane means plain ASCII, so the header is valid UTF-8 and can be kept as it is.
        Some(value) => (value.to_str().unwrap_or_default().to_owned(), value.clone()),
        None => {
            let id = new_request_id();
            let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static(""));
            req.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
            (id, value)
        }
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let ip = ClientIp(ClientIp::resolve(peer, req.headers(), &state.config.trusted_proxies));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        ip_address = %ip.0,
        method = %req.method(),
        path = %req.uri().path()
    );
    req.extensions_mut().insert(ip);
    let mut response = async move {
        let lang = Lang::from_headers(req.headers());
        if req.uri().query().is_some_and(has_credentials_in_query) && !is_link_page(&req) {
            return refused_credentials_in_query(lang);
        }
        unify(lang, next.run(req).await)
    }
    .instrument(span)
    .await;
    response.headers_mut().insert(REQUEST_ID_HEADER, id_value);
    response
}

/// A client-supplied request id is kept when it is short and plain; otherwise one is made.
fn is_sane_request_id(value: &HeaderValue) -> bool {
    let text = value.as_bytes();
    !text.is_empty()
        && text.len() <= 64
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The pages a mailed link opens (C2): `GET` with `?token=` is how a link works, and the page
/// redeems nothing (only its POST does, with the token in the body). The only exemptions from
/// the credentials-in-URL guard of [`front`].
pub const LINK_PAGES: [&str; 2] = ["/password/reset", "/email/verify"];

/// Whether a request is a mailed link being opened: `GET`/`HEAD` of a [`LINK_PAGES`] path whose
/// query is just `token=...` and `lang=...` (anything else credential-like is still refused).
/// Methods those paths do not serve (anything but `POST`, the JSON handler, which reads the
/// token from the body only) pass too, so they get their 405 like on every other route:
/// nothing would read the token.
fn is_link_page(req: &Request) -> bool {
    *req.method() != Method::POST
        && LINK_PAGES.contains(&req.uri().path())
        && req.uri().query().is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).all(|(key, _)| key == "token" || key == "lang")
        })
}

/// The refusal of a request with credentials in its query string (B6).
fn refused_credentials_in_query(lang: Lang) -> Response {
    RenderedError {
        message_key: Some("credentials_in_query"),
        ..RenderedError::plain(ErrorCode::BadRequest)
    }
    .into_response_in(lang)
}

/// Renders every error response in the unified format and the client's language (the
/// middleware of the separate metrics listener; the main router does the same in [`front`]).
pub async fn unify_errors(req: Request, next: Next) -> Response {
    let lang = Lang::from_headers(req.headers());
    unify(lang, next.run(req).await)
}

/// The unified error format in `lang`. Errors from handlers arrive with a [`RenderedError`]
/// extension; bare framework responses (404 from routing, 405, 408 from the timeout, 413 from
/// the body limit, a panic's 500) are rebuilt from their status, keeping their headers (Allow,
/// Retry-After).
fn unify(lang: Lang, response: Response) -> Response {
    if response.extensions().get::<gateway::Proxied>().is_some() {
        return response;
    }
    if let Some(rendered) = response.extensions().get::<RenderedError>().cloned() {
        if lang == Lang::En {
            return response;
        }
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = serde_json::to_vec(&rendered.body(lang)).unwrap_or_default();
        return Response::from_parts(parts, Body::from(body));
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut unified = RenderedError::plain(ErrorCode::for_status(status)).into_response_in(lang);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            unified.headers_mut().insert(name.clone(), value.clone());
        }
    }
    unified
}

/// Unix seconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
