//! The built-in reverse proxy (G1): `UPSTREAMS` routes path prefixes to upstream services, and
//! every request there is authenticated, scope-checked and rate-limited before it goes on.
//!
//! The proxying is hyper-util's client: bodies stream both ways frame by frame (an upstream's
//! server-sent events reach the client as sent), an `Upgrade` (WebSocket) is joined end to end
//! with `hyper::upgrade` and `copy_bidirectional`, hop-by-hop headers are dropped. What goes
//! upstream is decided here: the client's own identity and forwarding headers are removed
//! ([`is_identity_header`]), and so is the credential itself (the `Authorization` header it
//! authenticated with, Tessera's cookies, `X-CSRF-Token`): an upstream never holds a token it
//! could replay. In their place the upstream gets the identity headers and the signed assertion
//! ([`crate::app::identity`]), `X-Forwarded-For/-Proto/-Host` and `X-Request-Id`.
//!
//! The middleware sits outside the API's timeout and body-limit layers (the upstream has its own
//! limits: `timeout=`, `max_body=`, GATEWAY_IDLE_TIMEOUT_SECS) and inside CORS and the unified
//! errors; the upstream's own responses are marked [`Proxied`] so their error bodies pass
//! through untouched.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::{IntCounter, IntGauge};

use super::AppState;
use super::REQUEST_ID_HEADER;
use super::auth::{CSRF_HEADER, authenticate_request};
use super::cookies::CookieNames;
use super::error::{AppError, ErrorCode};
use super::extract::ClientIp;
use crate::app::identity::is_identity_header;
use crate::config::Config;
use crate::config::gateway::Upstream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Marks a response that came from an upstream: the unified-error layer leaves it as it is.
#[derive(Debug, Clone, Copy)]
pub struct Proxied;

/// The upstreams and the one connection pool they share.
pub struct Gateway {
    upstreams: Vec<Upstream>,
    client: Client<HttpConnector, Body>,
    idle_timeout: Duration,
}

impl Gateway {
    /// The gateway of `state`'s configuration, or `None` when UPSTREAMS is empty.
    pub fn new(state: &AppState) -> Option<Arc<Gateway>> {
        let config = &state.config;
        if config.upstreams.is_empty() {
            return None;
        }
        for upstream in &config.upstreams {
            state.metrics.register_upstream(&upstream.name);
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.gateway_connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Some(Arc::new(Gateway {
            upstreams: config.upstreams.clone(),
            client,
            idle_timeout: config.gateway_idle_timeout,
        }))
    }

    /// Whether an upstream takes `path` (the echo route steps aside for `/agent/chat`).
    pub fn takes(config: &Config, path: &str) -> bool {
        config.upstreams.iter().any(|u| u.matches(path))
    }

    fn find(&self, path: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.matches(path))
    }
}

/// The middleware: a request for an upstream's prefix is proxied (never reaching the routes);
/// any other goes on.
pub async fn route(State((state, gateway)): State<(AppState, Arc<Gateway>)>, request: Request, next: Next) -> Response {
    let Some(upstream) = gateway.find(request.uri().path()) else {
        return next.run(request).await;
    };
    let response = match proxy(&state, &gateway, upstream, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .metrics
        .gateway_requests
        .with_label_values(&[upstream.name.as_str(), class])
        .inc();
    response
}

/// Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The header names a `Connection` header lists (they are hop-by-hop too).
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// The protocol a request asks to upgrade to, when it does (`Connection: upgrade` + `Upgrade`).
fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = connection_listed(headers).iter().any(|token| token == "upgrade");
    asks.then(|| headers.get(header::UPGRADE).cloned()).flatten()
}

/// Removes hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for listed in connection_listed(headers) {
        headers.remove(listed.as_str());
    }
    let hop: Vec<HeaderName> = headers.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in hop {
        headers.remove(name);
    }
}

/// The `Cookie` header without Tessera's own cookies; `None` when nothing else is left.
fn foreign_cookies(value: &HeaderValue, names: &CookieNames) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("").trim();
            !pair.is_empty() && name != names.access && name != names.refresh
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        HeaderValue::from_str(&kept.join("; ")).ok()
    }
}

/// Removes the upstream's `Set-Cookie` headers that name Tessera's own cookies: an upstream
/// shares the origin, but it must not replace or clear the caller's session.
fn drop_tessera_cookies(headers: &mut HeaderMap, names: &CookieNames) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let name = text.split('=').next().unwrap_or("").trim();
            name != names.access && name != names.refresh
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

fn error_chain_has<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<E>() {
            return true;
        }
        current = e.source();
    }
    false
}

async fn proxy(
    state: &AppState,
    gateway: &Gateway,
    upstream: &Upstream,
    mut request: Request,
) -> Result<Response, AppError> {
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map_or_else(|| "unknown".to_owned(), |ClientIp(ip)| ip.clone());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let user = authenticate_request(state, request.headers(), request.method(), &ip).await?;
    if !user.scopes.allows(upstream.scope) {
        tracing::warn!(
            event = "insufficient_scope",
            user_id = user.claims.user_id,
            ip_address = %ip,
            upstream = %upstream.name,
            required = %upstream.scope,
            granted = %user.scopes,
            "credential lacks the upstream's scope"
        );
        return Err(AppError::InsufficientScope(upstream.scope));
    }
    let decision = state
        .enforce_api_limit(user.claims.user_id, user.api_key.as_deref(), &ip)
        .await?;
    if let Some(spec) = &upstream.rate_limit {
        let caller = user
            .api_key_id
            .clone()
            .unwrap_or_else(|| user.claims.user_id.to_string());
        state
            .enforce_limit("gateway", &format!("{}:{caller}", upstream.name), spec, &ip)
            .await?;
    }
    if content_length(request.headers()).is_some_and(|length| length > upstream.max_body_bytes) {
        return Err(AppError::Code(ErrorCode::PayloadTooLarge));
    }
    let identity = state.identity(&user.authenticated()).await?;
    let assertion = state.assertion(&identity, &upstream.name)?;

    let upgrade = requested_upgrade(request.headers());
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();

    // The headers that go upstream: the client's, less hop-by-hop, identity and forwarding
    // headers and the credential; then Tessera's.
    let names = CookieNames::for_config(&state.config);
    let listed = connection_listed(&parts.headers);
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 12);
    for (name, value) in &parts.headers {
        let drop = is_hop_by_hop(name)
            || listed.iter().any(|l| l == name.as_str())
            || is_identity_header(name.as_str())
            || name == header::HOST
            || name == CSRF_HEADER
            || name == REQUEST_ID_HEADER
            || (name == header::AUTHORIZATION && !user.via_cookie);
        if drop {
            continue;
        }
        if name == header::COOKIE {
            if let Some(kept) = foreign_cookies(value, &names) {
                headers.append(header::COOKIE, kept);
            }
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    for (name, value) in identity.tessera_headers() {
        set(&mut headers, name, &value);
    }
    set(&mut headers, "x-tessera-assertion", &assertion);
    let trusted_peer = peer.is_some_and(|peer| state.config.is_trusted_proxy(peer));
    let believed = |name: &str| {
        trusted_peer
            .then(|| parts.headers.get(name).and_then(|v| v.to_str().ok()))
            .flatten()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = believed("x-forwarded-proto").unwrap_or("http").to_owned();
    let host = believed("x-forwarded-host")
        .or_else(|| parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_owned();
    set(&mut headers, "x-forwarded-for", &ip);
    set(&mut headers, "x-forwarded-proto", &proto);
    set(&mut headers, "x-forwarded-host", &host);
    if let Some(id) = parts.headers.get(REQUEST_ID_HEADER) {
        headers.insert(REQUEST_ID_HEADER, id.clone());
    }
    if let Some(protocol) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }

    let Some(target) = upstream.target_path(parts.uri.path(), parts.uri.query()) else {
        return Err(AppError::BadRequest("path_dot_segment"));
    };
    let uri: Uri = format!("http://{}{target}", upstream.authority)
        .parse()
        .map_err(|_| AppError::Code(ErrorCode::BadRequest))?;
    let mut outgoing = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        // No body (most GETs): nothing to limit or watch, and no timer to allocate.
        .body(if body.is_end_stream() {
            Body::empty()
        } else {
            Body::new(Watched::new(
                Limited::new(body, usize::try_from(upstream.max_body_bytes).unwrap_or(usize::MAX)),
                gateway.idle_timeout,
                None,
            ))
        })
        .map_err(|e| AppError::Internal(e.into()))?;
    *outgoing.headers_mut() = headers;

    let metrics = &state.metrics;
    let name = upstream.name.as_str();
    let failed = |kind: &'static str, error: &dyn std::fmt::Display| {
        metrics.gateway_errors.with_label_values(&[name, kind]).inc();
        tracing::warn!(event = "upstream_failed", upstream = %name, kind, error = %error, "upstream request failed");
    };
    let started = crate::clock::Stopwatch::start();
    let mut response = match tokio::time::timeout(upstream.response_timeout, gateway.client.request(outgoing)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            return Err(if error_chain_has::<LengthLimitError>(&error) {
                failed("body_too_large", &error);
                AppError::Code(ErrorCode::PayloadTooLarge)
            } else if error.is_connect() {
                failed("connect", &error);
                AppError::Code(ErrorCode::BadGateway)
            } else {
                failed("broken", &error);
                AppError::Code(ErrorCode::BadGateway)
            });
        }
        Err(_) => {
            failed("timeout", &"no response headers in time");
            return Err(AppError::Code(ErrorCode::GatewayTimeout));
        }
    };
    metrics
        .gateway_duration
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            failed("broken", &"101 to a request that asked for no upgrade");
            return Err(AppError::Code(ErrorCode::BadGateway));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let upstream_name = upstream.name.clone();
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                        tracing::debug!(upstream = %upstream_name, %error, "upgraded connection ended");
                    }
                }
                Err(error) => tracing::debug!(upstream = %upstream_name, %error, "upgrade not completed"),
            }
        });
        let (mut parts, _) = response.into_parts();
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(protocol) = protocol {
            parts.headers.insert(header::UPGRADE, protocol);
        }
        parts.extensions.insert(Proxied);
        return Ok(Response::from_parts(parts, Body::empty()));
    }

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    drop_tessera_cookies(&mut parts.headers, &names);
    for (name, value) in &super::limits::headers(&decision) {
        if !parts.headers.contains_key(name) {
            parts.headers.insert(name.clone(), value.clone());
        }
    }
    parts.extensions = Default::default();
    parts.extensions.insert(Proxied);
    let stream = OpenStream::new(
        metrics.gateway_open_streams.with_label_values(&[name]),
        metrics.gateway_errors.with_label_values(&[name, "idle"]),
    );
    Ok(Response::from_parts(
        parts,
        Body::new(Watched::new(body, gateway.idle_timeout, Some(stream))),
    ))
}

/// Counts a streaming response in `tessera_gateway_open_streams` while it lives.
struct OpenStream {
    open: IntGauge,
    idle: IntCounter,
}

impl OpenStream {
    fn new(open: IntGauge, idle: IntCounter) -> OpenStream {
        open.inc();
        OpenStream { open, idle }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A body that ends with an error when no frame arrives for `idle` (a stalled client's upload,
/// a silent upstream's stream), frame by frame, with no buffering.
struct Watched<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    stream: Option<OpenStream>,
}

impl<B> Watched<B> {
    fn new(inner: B, idle: Duration, stream: Option<OpenStream>) -> Watched<B> {
        Watched {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            stream,
        }
    }
}

impl<B> HttpBody for Watched<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                if frame.is_none() {
                    this.stream = None;
                }
                Poll::Ready(frame.map(|result| result.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    if let Some(stream) = this.stream.take() {
                        stream.idle.inc();
                    }
                    Poll::Ready(Some(Err("no data for GATEWAY_IDLE_TIMEOUT_SECS".into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"]);
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(requested_upgrade(&headers).is_none());
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(requested_upgrade(&headers).unwrap(), "websocket");
    }

    #[test]
    fn upstreams_cannot_set_tesseras_cookies() {
        let names = CookieNames {
            access: "access_token",
            refresh: "refresh_token",
        };
        let mut headers = HeaderMap::new();
        for cookie in [
            "theme=dark; Path=/",
            "access_token=evil; Path=/; HttpOnly",
            " refresh_token=; Max-Age=0",
            "cart=1",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(cookie));
        }
        drop_tessera_cookies(&mut headers, &names);
        let left: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, ["theme=dark; Path=/", "cart=1"]);
    }

    #[test]
    fn only_tessera_cookies_are_kept_back() {
        let names = CookieNames {
            access: "access_token",
            refresh: "refresh_token",
        };
        let value = HeaderValue::from_static("theme=dark; access_token=abc;refresh_token=def; cart=1");
        assert_eq!(foreign_cookies(&value, &names).unwrap(), "theme=dark; cart=1");
        let value = HeaderValue::from_static("access_token=abc");
        assert!(foreign_cookies(&value, &names).is_none());
    }
}
