//! `POST /introspect` on the wire (RFC 7662, G3): another service asks whether a credential it
//! was shown is active. The caller authenticates with a key holding the `introspect` scope
//! (a service account's, see [`crate::cli::service_accounts`]); the body is form-encoded
//! `token=...` (`token_type_hint` is accepted and ignored: both kinds are recognised by their
//! form). The answer is `{"active": false}` and nothing else for any credential that would not
//! authenticate a request, and never cached (`Cache-Control: no-store`).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthUser;
use super::error::AppResult;
use super::extract::{ClientIp, JsonOrForm};
use crate::app::introspect::Introspection;

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = || axum::middleware::from_fn_with_state(state.clone(), super::limits::api_limit);
    Router::new().route("/introspect", post(introspect).route_layer(limit()))
}

/// `POST /introspect` (RFC 7662 section 2.1).
#[derive(Deserialize, ToSchema)]
pub(super) struct IntrospectRequest {
    /// The credential to introspect: an access token or an API key (`tsk_...`).
    #[schema(example = "tsk_...")]
    token: String,
    /// `access_token`, `api_key` or anything else: a hint only, ignored.
    #[allow(dead_code, reason = "accepted as RFC 7662 allows; the token's form decides")]
    token_type_hint: Option<String>,
}

/// The answer (RFC 7662 section 2.2): only `active` when the credential is not active.
#[derive(Serialize, ToSchema)]
pub(super) struct IntrospectResponse {
    /// Whether the credential would be accepted now.
    active: bool,
    /// The owner's user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    /// Its scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// Unix seconds when it stops working (absent for a key that never expires).
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    /// The key id of an API key (absent for an access token).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// `access_token` or `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
}

impl From<Introspection> for IntrospectResponse {
    fn from(answer: Introspection) -> Self {
        match answer {
            Introspection::Active {
                sub,
                scope,
                exp,
                client_id,
                token_type,
            } => IntrospectResponse {
                active: true,
                sub: Some(sub),
                scope: Some(scope),
                exp,
                client_id,
                token_type: Some(token_type.to_owned()),
            },
            Introspection::Inactive => IntrospectResponse {
                active: false,
                sub: None,
                scope: None,
                exp: None,
                client_id: None,
                token_type: None,
            },
        }
    }
}

/// Introspects an access token or API key (RFC 7662). Needs the `introspect` scope.
#[utoipa::path(
    post,
    path = "/introspect",
    tag = "api",
    request_body(content((IntrospectRequest = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Whether the token is active; when it is not, only \
            `{\"active\": false}`.", body = IntrospectResponse,
            headers(("Cache-Control" = String, description = "`no-store`."))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn introspect(
    State(state): State<AppState>,
    _caller: AuthUser,
    ClientIp(ip): ClientIp,
    JsonOrForm(request): JsonOrForm<IntrospectRequest>,
) -> AppResult<Response> {
    let answer = state.introspect(&request.token, &ip).await?;
    let mut response = Json(IntrospectResponse::from(answer)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
