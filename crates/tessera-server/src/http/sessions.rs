//! Listing and ending one's own sessions (B3).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthUser;
use super::cookies;
use super::error::AppResult;
use super::extract::ClientIp;
use super::rfc3339;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/sessions",
            get(list_sessions).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                super::limits::api_limit,
            )),
        )
        .route(
            "/sessions/{id}",
            delete(delete_session).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                super::limits::api_limit,
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
        (status = 403, response = super::openapi::Forbidden),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [])),
)]
pub(super) async fn list_sessions(State(state): State<AppState>, user: AuthUser) -> AppResult<Response> {
    let sessions = state.list_sessions(user.claims.user_id).await?;
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
    state.end_session(&user.claims, &id, &ip).await?;
    let headers = if id == user.claims.sid && state.config.token_delivery.uses_cookies() {
        cookies::clear_tokens_headers(&state.config)
    } else {
        HeaderMap::new()
    };
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
