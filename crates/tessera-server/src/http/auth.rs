//! Authentication of requests on the wire: the [`AuthUser`] extractor (S1, S2, B3).
//!
//! The access token comes from `Authorization: Bearer` or, failing that, from the
//! `access_token` cookie; the application checks it ([`crate::app::App::authenticate`]). A
//! cookie-authenticated request with an unsafe method must also carry `X-CSRF-Token` equal to
//! the token derived from its session id (S2): a cross-site form can make the browser send the
//! cookie, but cannot read the CSRF token. A Bearer request needs no CSRF token, because no
//! browser attaches that header on its own. `Authorization: Bearer tsk_...` is an API key
//! (G3), checked by [`crate::app::App::authenticate_api_key`] instead. The credential's scopes must then grant the scope
//! the route needs ([`super::scopes::ROUTE_SCOPES`]), or the answer is 403 `insufficient_scope`.

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use tessera_core::ScopeSet;
use tessera_core::jwt::Claims;

use super::AppState;
use super::cookies;
use super::error::{AppError, ErrorCode};
use super::extract::ClientIp;

/// The CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The verified claims.
    pub claims: Arc<Claims>,
    /// Whether the token came from the cookie (and so was CSRF-checked).
    pub via_cookie: bool,
    /// What the credential may do (G4), already checked against the route's scope.
    pub scopes: ScopeSet,
    /// The key id when the credential is an API key (G3); its `claims` are then synthesised
    /// (owner, no session: `sid` is empty).
    pub api_key_id: Option<String>,
    /// The verified key (its limits and quota), when the credential is an API key.
    pub api_key: Option<Arc<crate::api_key_cache::CachedKey>>,
}

impl AuthUser {
    /// The caller as the application services see it.
    pub fn authenticated(&self) -> crate::app::api_keys::Authenticated {
        crate::app::api_keys::Authenticated {
            claims: Arc::clone(&self.claims),
            scopes: self.scopes,
            api_key_id: self.api_key_id.clone(),
            api_key: self.api_key.clone(),
        }
    }
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

/// The `X-CSRF-Token` header's value, empty when missing.
pub fn presented_csrf(headers: &HeaderMap) -> &str {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
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
        let user = authenticate_request(state, &parts.headers, &parts.method, &ip).await?;
        let AuthUser { claims, scopes, .. } = &user;
        let path = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
        let needed = super::scopes::required(&parts.method, path);
        if !scopes.allows(needed) {
            tracing::warn!(
                event = "insufficient_scope",
                user_id = claims.user_id,
                ip_address = %ip,
                required = %needed,
                granted = %scopes,
                "credential lacks the route's scope"
            );
            return Err(AppError::InsufficientScope(needed));
        }
        Ok(user)
    }
}

/// Authenticates a request's credential: `Authorization: Bearer` (an access token, or an API
/// key `tsk_...`) or, failing that, the access cookie, which for an unsafe `method` must come
/// with the session's CSRF token. No scope is checked here: the route extractor checks the
/// route's scope ([`super::scopes::ROUTE_SCOPES`]), the gateway and forward auth their own
/// rules (`AuthUser::scopes`). `method` is the method to judge CSRF by: the request's own, or
/// the original request's at forward auth.
pub async fn authenticate_request(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    ip: &str,
) -> Result<AuthUser, AppError> {
    let (token, via_cookie) = match bearer_token(headers) {
        Some(token) => (token.to_owned(), false),
        None => match cookies::read(headers, cookies::CookieNames::for_config(&state.config).access) {
            Some(token) => (token, true),
            None => return Err(AppError::Code(ErrorCode::NotAuthenticated)),
        },
    };
    // `Bearer tsk_...` is an API key (G3); anything else an access token.
    let (claims, scopes, api_key) = if !via_cookie && tessera_core::apikey::is_api_key(&token) {
        let caller = state.authenticate_api_key(&token, ip).await?;
        (caller.claims, caller.scopes, caller.api_key)
    } else {
        let claims = state.authenticate(&token, ip).await?;
        let scopes = ScopeSet::from_claim(claims.scope.as_deref());
        (claims, scopes, None)
    };
    let api_key_id = api_key.as_ref().map(|key| key.id.clone());
    if via_cookie && is_unsafe(method) {
        state.check_csrf(&claims.sid, presented_csrf(headers), ip)?;
    }
    Ok(AuthUser {
        claims,
        via_cookie,
        scopes,
        api_key_id,
        api_key,
    })
}
