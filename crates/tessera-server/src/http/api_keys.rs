//! API keys on the wire (G3): `POST /api-keys`, `GET /api-keys`, `POST /api-keys/{id}/rotate`,
//! `DELETE /api-keys/{id}`. The key itself appears once, in the answer that created it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthUser;
use super::error::{AppError, AppResult};
use super::extract::{ApiJson, ClientIp, required};
use super::rfc3339;
use crate::app::api_keys::{CreatedKey, NewKeyRequest};
use tessera_core::store::ApiKey;

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = || axum::middleware::from_fn_with_state(state.clone(), super::limits::api_limit);
    Router::new()
        .route("/api-keys", post(create_key).get(list_keys).route_layer(limit()))
        .route("/api-keys/{id}/rotate", post(rotate_key).route_layer(limit()))
        .route("/api-keys/{id}", delete(revoke_key).route_layer(limit()))
}

/// `POST /api-keys`.
#[derive(Deserialize, ToSchema)]
pub(super) struct CreateKeyRequest {
    /// A label, 1 to 100 characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, example = "ci")]
    name: Option<String>,
    /// Scopes, within the caller's: `agent:chat`, `profile:read`, `sessions:write`,
    /// `keys:write`, `introspect`, `*`.
    #[schema(value_type = Vec<String>, required = true, example = json!(["profile:read"]))]
    scopes: Option<Vec<String>>,
    /// Seconds until the key expires (60 to 315360000); absent: never.
    #[schema(minimum = 60, maximum = 315_360_000)]
    expires_in: Option<i64>,
    /// The key's own API rate limit (slowapi syntax, e.g. `600/minute`); absent:
    /// RATE_LIMIT_API.
    #[schema(example = "600/minute")]
    rate_limit: Option<String>,
    /// A usage quota (slowapi syntax, e.g. `1000/day;20000/month`); absent: none.
    #[schema(example = "1000/day")]
    quota: Option<String>,
}

/// A key as listed (never the secret).
#[derive(Serialize, ToSchema)]
pub(super) struct KeyView {
    /// Key id.
    id: String,
    /// Label.
    name: String,
    /// The key's first characters (`tsk_` + 8).
    prefix: String,
    /// Granted scopes.
    scopes: Vec<String>,
    /// RFC 3339 UTC.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339 UTC; null: never.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// RFC 3339 UTC: when a rotated key stops working (the end of its grace period).
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
    /// The key that replaced this one by rotation.
    rotated_to: Option<String>,
    /// RFC 3339 UTC; up to a flush interval late.
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    /// Client address of the last use.
    last_used_ip: Option<String>,
    /// The key's own API rate limit; null: RATE_LIMIT_API.
    rate_limit: Option<String>,
    /// The key's usage quota; null: none.
    quota: Option<String>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> KeyView {
        KeyView {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            scopes: key
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            created_at: rfc3339(key.created_at),
            expires_at: key.expires_at.map(rfc3339),
            revoked_at: key.revoked_at.map(rfc3339),
            rotated_to: key.rotated_to,
            last_used_at: key.last_used_at.map(rfc3339),
            last_used_ip: key.last_used_ip,
            rate_limit: key.rate_limit,
            quota: key.quota,
        }
    }
}

/// A new key: the only answer that carries it.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedKeyView {
    /// The key (`tsk_` + 49 base62 characters). Shown once: store it now.
    #[schema(example = "tsk_...")]
    key: String,
    /// The stored key.
    #[serde(flatten)]
    details: KeyView,
}

impl From<CreatedKey> for CreatedKeyView {
    fn from(created: CreatedKey) -> CreatedKeyView {
        CreatedKeyView {
            key: created.secret.to_string(),
            details: KeyView::from(created.key),
        }
    }
}

/// `GET /api-keys`.
#[derive(Serialize, ToSchema)]
pub(super) struct KeyList {
    /// The caller's keys that work, oldest first.
    api_keys: Vec<KeyView>,
}

/// Creates an API key for the caller.
#[utoipa::path(
    post,
    path = "/api-keys",
    tag = "api-keys",
    request_body(content((CreateKeyRequest = "application/json"))),
    responses(
        (status = 201, description = "The key, shown this once.", body = CreatedKeyView),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn create_key(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<CreateKeyRequest>,
) -> AppResult<Response> {
    let mut missing = Vec::new();
    let name = required(request.name, "name", &mut missing);
    let scopes = required(request.scopes, "scopes", &mut missing);
    if !missing.is_empty() {
        return Err(AppError::Validation(missing));
    }
    let request = NewKeyRequest {
        name,
        scopes,
        expires_in: request.expires_in,
        rate_limit: request.rate_limit,
        quota: request.quota,
    };
    let created = state.create_api_key(&user.authenticated(), request, &ip).await?;
    Ok((StatusCode::CREATED, Json(CreatedKeyView::from(created))).into_response())
}

/// Lists the caller's keys (never the secrets).
#[utoipa::path(
    get,
    path = "/api-keys",
    tag = "api-keys",
    responses(
        (status = 200, description = "The caller's keys.", body = KeyList),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [])),
)]
pub(super) async fn list_keys(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<KeyList>> {
    let keys = state.list_api_keys(user.claims.user_id).await?;
    Ok(Json(KeyList {
        api_keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Replaces a key by a new one (same name, scopes and expiry); the old key keeps working for
/// 24 hours.
#[utoipa::path(
    post,
    path = "/api-keys/{id}/rotate",
    tag = "api-keys",
    params(("id" = String, Path, description = "A key id from `GET /api-keys`.")),
    responses(
        (status = 201, description = "The new key, shown this once.", body = CreatedKeyView),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn rotate_key(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let created = state.rotate_api_key(user.claims.user_id, &id, &ip).await?;
    Ok((StatusCode::CREATED, Json(CreatedKeyView::from(created))).into_response())
}

/// Revokes a key at once, on every instance.
#[utoipa::path(
    delete,
    path = "/api-keys/{id}",
    tag = "api-keys",
    params(("id" = String, Path, description = "A key id from `GET /api-keys`.")),
    responses(
        (status = 204, description = "The key is revoked."),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.revoke_api_key(user.claims.user_id, &id, &ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
