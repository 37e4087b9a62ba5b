//! Authentication of requests: the [`AuthUser`] extractor (S1, S2, B3).
//!
//! The access token comes from `Authorization: Bearer` or, failing that, from the
//! `access_token` cookie. It is verified from its claims alone (S9: no database), then checked
//! against the in-memory denylist (B3). A cookie-authenticated request with an unsafe method
//! must also carry `X-CSRF-Token` equal to the token derived from its session id (S2): a
//! cross-site form can make the browser send the cookie, but cannot read the CSRF token. A
//! Bearer request needs no CSRF token, because no browser attaches that header on its own.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use sha2::{Digest, Sha256};
use tessera_core::jwt::{Claims, TokenError};
use tessera_core::store::Denylist;

use crate::cookies::{self, ACCESS_COOKIE};
use crate::error::{AppError, ErrorCode};
use crate::extract::ClientIp;
use crate::state::{AppState, unix_now};

/// The CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The verified claims.
    pub claims: Arc<Claims>,
    /// Whether the token came from the cookie (and so was CSRF-checked).
    pub via_cookie: bool,
}

/// A short, non-secret fingerprint of a token for logs: never the token itself.
pub fn token_fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    format!(
        "sha256:{}",
        digest[..6].iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The Bearer token, if the request has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a method changes state and so needs CSRF protection under cookie auth.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Checks the `X-CSRF-Token` header against the session's CSRF token.
pub fn check_csrf(state: &AppState, headers: &HeaderMap, sid: &str, ip: &str) -> Result<(), AppError> {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if state.keys.csrf.verify(sid, presented) {
        Ok(())
    } else {
        state.metrics.csrf_failures.inc();
        tracing::warn!(
            event = "csrf_failure",
            ip_address = %ip,
            reason = if presented.is_empty() { "missing" } else { "mismatch" },
            "cookie-authenticated request without a valid CSRF token"
        );
        Err(AppError::Code(ErrorCode::CsrfFailed))
    }
}

/// Maps a token error to the response, logging it as the security event it is.
pub fn reject_token(error: &TokenError, token: &str, ip: &str) -> AppError {
    if let TokenError::Expired { user_id } = error {
        tracing::info!(
            event = "token_expired",
            user_id,
            ip_address = %ip,
            token_prefix = %token_fingerprint(token),
            "token expired"
        );
        AppError::Token {
            code: ErrorCode::TokenExpired,
        }
    } else {
        tracing::warn!(
            event = "invalid_token",
            ip_address = %ip,
            token_prefix = %token_fingerprint(token),
            reason = %error,
            "invalid token"
        );
        AppError::Token {
            code: ErrorCode::InvalidToken,
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Already authenticated by the API rate-limit middleware: verified once per request.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|e| match e {});
        let (token, via_cookie) = match bearer_token(&parts.headers) {
            Some(token) => (token.to_owned(), false),
            None => match cookies::read(&parts.headers, ACCESS_COOKIE) {
                Some(token) => (token, true),
                None => return Err(AppError::Code(ErrorCode::NotAuthenticated)),
            },
        };
        let now = unix_now();
        let claims = state.verify_access(&token, now).await.map_err(|e| {
            let result = if e.is_expired() { "expired" } else { "invalid" };
            state.metrics.token_verifications.with_label_values(&[result]).inc();
            reject_token(&e, &token, &ip)
        })?;
        if state.denylist.is_revoked(&claims.jti, &claims.sid, now) {
            state.metrics.token_verifications.with_label_values(&["revoked"]).inc();
            tracing::warn!(
                event = "invalid_token",
                ip_address = %ip,
                user_id = claims.user_id,
                token_prefix = %token_fingerprint(&token),
                reason = "revoked",
                "revoked token presented"
            );
            return Err(AppError::Token {
                code: ErrorCode::InvalidToken,
            });
        }
        state.metrics.token_verifications.with_label_values(&["valid"]).inc();
        if via_cookie && is_unsafe(&parts.method) {
            check_csrf(state, &parts.headers, &claims.sid, &ip)?;
        }
        Ok(AuthUser { claims, via_cookie })
    }
}
