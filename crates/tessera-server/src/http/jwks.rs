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
use utoipa::ToSchema;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// An RFC 7517 JWK set (the schema of `tessera_core::keys::JwkSet`).
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: the set is `tessera_core::keys::JwkSet`.
struct JwkSet {
    /// The public keys that verify access tokens and identity assertions: signing,
    /// pre-published and still verifying.
    keys: Vec<Jwk>,
}

/// One public key (RFC 7517, 7518, 8037).
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: the key is `tessera_core::keys::Jwk`.
struct Jwk {
    /// `OKP` (Ed25519), `EC` (P-256) or `RSA`.
    kty: String,
    /// The key id, as in the tokens' `kid` header.
    kid: Option<String>,
    /// `EdDSA`, `ES256` or `RS256`.
    alg: Option<String>,
    /// `sig`.
    #[schema(rename = "use")]
    use_: Option<String>,
    /// Permitted operations.
    key_ops: Option<Vec<String>>,
    /// `Ed25519` or `P-256`.
    crv: Option<String>,
    /// Base64url public key (OKP) or x coordinate (EC).
    x: Option<String>,
    /// Base64url y coordinate (EC).
    y: Option<String>,
    /// Base64url modulus (RSA).
    n: Option<String>,
    /// Base64url exponent (RSA).
    e: Option<String>,
}

/// The public keys that verify access tokens (RFC 7517 JWK set).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "operations",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier response.")),
    responses(
        (status = 200, description = "The public keys (never HMAC keys).", body = JwkSet,
            content_type = "application/jwk-set+json",
            headers(
                ("ETag" = String, description = "Changes when the key set changes."),
                ("Cache-Control" = String, description = "`public, max-age=N`: short enough to see a new key before it signs."),
            )),
        (status = 304, description = "Not modified: the ETag matches.",
            headers(("ETag" = String, description = "The current ETag."))),
    ),
)]
pub(super) async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Access keys and identity keys (the gateway's assertions): both verify with this set;
    // tokens of each carry their own `typ`, so one is never taken for the other.
    let mut set = state.keys.access.load().jwks();
    set.keys.extend(state.keys.identity.load().jwks().keys);
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
