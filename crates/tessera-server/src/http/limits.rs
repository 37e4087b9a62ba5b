//! Rate limits on the wire (S7): the `X-RateLimit-*` headers of a decision, and the middleware
//! that counts API requests per user. The counting itself is the application's
//! ([`crate::app::limits`]).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_core::limits::Decision;

use super::AppState;
use super::auth::AuthUser;
use super::error::AppError;
use super::extract::ClientIp;

/// The X-RateLimit-* headers of a decision (and Retry-After when refused).
pub fn headers(decision: &Decision) -> HeaderMap {
    let mut headers = HeaderMap::new();
    set_headers(&mut headers, decision);
    headers
}

/// Sets the X-RateLimit-* headers of a decision (and Retry-After when refused) in `headers`:
/// numbers written straight into header values, no string or map per request.
pub fn set_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(decision.limit.count),
    );
    headers.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from(decision.remaining),
    );
    headers.insert(
        HeaderName::from_static("x-ratelimit-reset"),
        HeaderValue::from(decision.reset_at),
    );
    if !decision.allowed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after_secs));
    }
}

/// Middleware for the API routes: authenticates (the handler's `AuthUser` then comes from the
/// request extensions, verified once) and counts the request against RATE_LIMIT_API per user,
/// or per key for an API key.
pub async fn api_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let user = match AuthUser::from_request_parts(&mut parts, &state).await {
        Ok(user) => user,
        Err(error) => return error.into_response(),
    };
    let ClientIp(ip) = ClientIp::from_request_parts(&mut parts, &state)
        .await
        .unwrap_or_else(|e| match e {});
    let decision = match state
        .enforce_api_limit(user.claims.user_id, user.api_key.as_deref(), &ip)
        .await
    {
        Ok(decision) => decision,
        Err(error) => return AppError::from(error).into_response(),
    };
    parts.extensions.insert(user);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    set_headers(response.headers_mut(), &decision);
    response
}
