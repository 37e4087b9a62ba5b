//! The profile routes (S9): `/profile` answers from the token's claims alone, with zero
//! database queries; `/profile/full` does one indexed lookup.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthUser;
use super::error::{AppError, AppResult, ErrorCode};

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/profile",
            get(profile).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                super::limits::api_limit,
            )),
        )
        .route(
            "/profile/full",
            get(profile_full).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                super::limits::api_limit,
            )),
        )
}

/// `GET /profile`: the token's claims.
#[derive(Serialize, ToSchema)]
pub(super) struct Profile {
    user_id: i64,
    username: String,
    /// The session of the access token; empty for an API key (no session).
    session_id: String,
}

/// `GET /profile/full`: the stored account.
#[derive(Serialize, ToSchema)]
pub(super) struct FullProfile {
    id: i64,
    #[schema(format = Email)]
    email: String,
    /// Whether the owner followed a verification link for `email` (C2).
    email_verified: bool,
    username: String,
    /// RFC 3339 UTC.
    #[schema(format = DateTime)]
    created_at: String,
}

/// The user, from the access token's claims alone (no database query).
#[utoipa::path(
    get,
    path = "/profile",
    tag = "api",
    responses(
        (status = 200, description = "From the token's claims alone.", body = Profile,
            headers(
                ("X-RateLimit-Limit" = u64, description = "Requests allowed in the window (RATE_LIMIT_API, per user)."),
                ("X-RateLimit-Remaining" = u64, description = "Requests left in the window."),
                ("X-RateLimit-Reset" = u64, description = "Unix time (seconds) when the window is full again."),
            )),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [])),
)]
pub(super) async fn profile(user: AuthUser) -> Json<Profile> {
    Json(Profile {
        user_id: user.claims.user_id,
        username: user.claims.username.clone(),
        session_id: user.claims.sid.clone(),
    })
}

/// The stored account: one query by primary key; a deleted account is 404.
#[utoipa::path(
    get,
    path = "/profile/full",
    tag = "api",
    responses(
        (status = 200, description = "The stored account.", body = FullProfile,
            headers(
                ("X-RateLimit-Limit" = u64, description = "Requests allowed in the window (RATE_LIMIT_API, per user)."),
                ("X-RateLimit-Remaining" = u64, description = "Requests left in the window."),
                ("X-RateLimit-Reset" = u64, description = "Unix time (seconds) when the window is full again."),
            )),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [])),
)]
pub(super) async fn profile_full(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<FullProfile>> {
    let account = state
        .users
        .find_by_id(user.claims.user_id)
        .await?
        .ok_or(AppError::Code(ErrorCode::NotFound))?;
    Ok(Json(FullProfile {
        id: account.id,
        email: account.email,
        email_verified: account.email_verified_at.is_some(),
        username: account.username,
        created_at: crate::http::rfc3339(account.created_at),
    }))
}
