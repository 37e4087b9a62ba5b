//! The scope each protected route needs (G4), declared once.
//!
//! [`ROUTE_SCOPES`] is the one table: the [`super::auth::AuthUser`] extractor looks the matched
//! route up in it after authenticating, and refuses a credential whose scopes do not grant the
//! route's with 403 `insufficient_scope` (RFC 6750 section 3.1). A protected route missing from
//! the table needs `*` (fail closed); `tests/api/scopes.rs` checks that every operation the
//! OpenAPI document marks as Bearer-protected is listed here.

use axum::http::Method;
use tessera_core::Scope;

/// `(method, route pattern, scope)` of every protected route.
pub const ROUTE_SCOPES: &[(&str, &str, Scope)] = &[
    ("GET", "/profile", Scope::ProfileRead),
    ("GET", "/profile/full", Scope::ProfileRead),
    ("GET", "/sessions", Scope::ProfileRead),
    ("DELETE", "/sessions/{id}", Scope::SessionsWrite),
    ("POST", "/logout", Scope::SessionsWrite),
    ("POST", "/logout/all", Scope::SessionsWrite),
    ("POST", "/account/password", Scope::SessionsWrite),
    ("DELETE", "/account", Scope::SessionsWrite),
    ("GET", "/account/mfa", Scope::ProfileRead),
    ("POST", "/account/mfa/totp", Scope::SessionsWrite),
    ("DELETE", "/account/mfa/totp", Scope::SessionsWrite),
    ("POST", "/account/mfa/totp/confirm", Scope::SessionsWrite),
    ("POST", "/account/mfa/recovery-codes", Scope::SessionsWrite),
    ("GET", "/account/passkeys", Scope::ProfileRead),
    ("POST", "/account/passkeys/register/start", Scope::SessionsWrite),
    ("POST", "/account/passkeys/register/finish", Scope::SessionsWrite),
    ("DELETE", "/account/passkeys/{id}", Scope::SessionsWrite),
    ("POST", "/account/email", Scope::SessionsWrite),
    ("POST", "/email/verify/resend", Scope::SessionsWrite),
    ("POST", "/agent/chat", Scope::AgentChat),
    ("GET", "/api-keys", Scope::ProfileRead),
    ("POST", "/api-keys", Scope::KeysWrite),
    ("POST", "/api-keys/{id}/rotate", Scope::KeysWrite),
    ("DELETE", "/api-keys/{id}", Scope::KeysWrite),
    ("POST", "/introspect", Scope::Introspect),
];

/// The scope a request to `path` (the matched route pattern) with `method` needs; `*` for a
/// protected route the table does not list.
pub fn required(method: &Method, path: Option<&str>) -> Scope {
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    path.and_then(|path| {
        ROUTE_SCOPES
            .iter()
            .find(|(m, p, _)| *m == method && *p == path)
            .map(|(_, _, scope)| *scope)
    })
    .unwrap_or(Scope::All)
}
