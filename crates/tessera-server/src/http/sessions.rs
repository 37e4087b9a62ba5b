//! Listing and ending one's own sessions (B3).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Serialize;
use utoipa::ToSchema;

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

/// One live session.
#[derive(Serialize, ToSchema)]
struct SessionView {
    /// The session id (the `sid` claim).
    id: String,
    /// RFC 3339 UTC.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339 UTC: the last login or refresh.
    #[schema(format = DateTime)]
    last_used_at: String,
    /// The client address at login.
    ip_address: Option<String>,
    /// The User-Agent at login.
    user_agent: Option<String>,
    /// Whether this is the session of the token making the request.
    current: bool,
}

/// `GET /sessions`.
#[derive(Serialize, ToSchema)]
struct SessionList {
    /// The user's live sessions.
    sessions: Vec<SessionView>,
}

/// Lists the user's live sessions.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    responses(
        (status = 200, description = "The user's live sessions.", body = SessionList,
            headers(
                ("X-RateLimit-Limit" = u64, description = "Requests allowed in the window (RATE_LIMIT_API, per user)."),
                ("X-RateLimit-Remaining" = u64, description = "Requests left in the window."),
                ("X-RateLimit-Reset" = u64, description = "Unix time (seconds) when the window is full again."),
            )),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [])),
)]
pub(super) async fn list_sessions(State(state): State<AppState>, user: AuthUser) -> AppResult<Response> {
    let sessions = state.sessions.list_active(user.claims.user_id, unix_now()).await?;
    let sessions = sessions
        .into_iter()
        .map(|s| SessionView {
            current: s.id == user.claims.sid,
            id: s.id,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            ip_address: s.ip_address,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(axum::Json(SessionList { sessions }).into_response())
}

/// Ends one of the user's sessions (another user's id is 404).
#[utoipa::path(
    delete,
    path = "/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "A session id from `GET /sessions`.")),
    responses(
        (status = 204, description = "The session is ended. Ending the current session also clears the cookies.",
            headers(
                ("Set-Cookie" = String, description = "Both token cookies, cleared (current session, cookie delivery)."),
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
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn delete_session(
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
