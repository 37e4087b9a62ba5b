//! Listing and ending one's own sessions (B3).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::json;

use crate::auth::AuthUser;
use crate::cookies;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::extract::ClientIp;
use crate::http::rfc3339;
use crate::state::{AppState, unix_now};

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/sessions",
            get(list_sessions).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::rate_limit::api_limit,
            )),
        )
        .route(
            "/sessions/{id}",
            delete(delete_session).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::rate_limit::api_limit,
            )),
        )
}

async fn list_sessions(State(state): State<AppState>, user: AuthUser) -> AppResult<Response> {
    let sessions = state.sessions.list_active(user.claims.user_id, unix_now()).await?;
    let sessions: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "created_at": rfc3339(s.created_at),
                "last_used_at": rfc3339(s.last_used_at),
                "ip_address": s.ip_address,
                "user_agent": s.user_agent,
                "current": s.id == user.claims.sid,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "sessions": sessions })).into_response())
}

async fn delete_session(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let now = unix_now();
    // Only the owner's live sessions are visible: someone else's id is "not found", not
    // "forbidden", so ids cannot be probed.
    if id.len() > 64 || !state.sessions.revoke(user.claims.user_id, &id, now).await? {
        return Err(AppError::Code(ErrorCode::NotFound));
    }
    state.deny_sessions([id.as_str()], now);
    tracing::info!(event = "session_revoked", user_id = user.claims.user_id, session_id = %id, ip_address = %ip, "session ended by its owner");
    let headers = if id == user.claims.sid && state.config.token_delivery.uses_cookies() {
        cookies::clear_tokens_headers(&state.config)
    } else {
        HeaderMap::new()
    };
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
