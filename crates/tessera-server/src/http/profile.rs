//! The profile routes (S9): `/profile` answers from the token's claims alone, with zero
//! database queries; `/profile/full` does one indexed lookup.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/profile",
            get(profile).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::rate_limit::api_limit,
            )),
        )
        .route(
            "/profile/full",
            get(profile_full).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::rate_limit::api_limit,
            )),
        )
}

/// Claims only: no store is touched.
async fn profile(user: AuthUser) -> Json<Value> {
    Json(json!({
        "user_id": user.claims.user_id,
        "username": user.claims.username,
        "session_id": user.claims.sid,
    }))
}

/// One query by primary key; a deleted account is 404.
async fn profile_full(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Value>> {
    let account = state
        .users
        .find_by_id(user.claims.user_id)
        .await?
        .ok_or(AppError::Code(ErrorCode::NotFound))?;
    Ok(Json(json!({
        "id": account.id,
        "email": account.email,
        "username": account.username,
        "created_at": crate::http::rfc3339(account.created_at),
    })))
}
