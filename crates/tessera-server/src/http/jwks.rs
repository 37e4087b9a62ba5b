//! `GET /.well-known/jwks.json` (B4): the public keys of the access-token ring, so other
//! services verify tokens with no shared secret. HMAC keys are never listed.
//!
//! Caching: a new key is published KEY_PUBLISH_DELAY before it signs, and every instance has it
//! within KEY_RELOAD_SECONDS. A verifier that caches this document for `max-age` therefore
//! sees the key before its first token as long as reload + max-age <= publish delay; max-age is
//! half of what that allows. The ETag lets verifiers revalidate cheaply.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let set = state.keys.access.load().jwks();
    let body = serde_json::to_vec(&set).unwrap_or_default();
    let digest = Sha256::digest(&body);
    let etag = format!(
        "\"{}\"",
        digest[..16].iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let config = &state.config;
    let max_age = (config.key_publish_delay_secs - config.key_reload_secs as i64).max(0) / 2;
    let cache_control = format!("public, max-age={max_age}");
    let mut response_headers = HeaderMap::new();
    if let (Ok(etag), Ok(cache)) = (HeaderValue::from_str(&etag), HeaderValue::from_str(&cache_control)) {
        response_headers.insert(header::ETAG, etag);
        response_headers.insert(header::CACHE_CONTROL, cache);
    }
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    (StatusCode::OK, response_headers, body).into_response()
}
