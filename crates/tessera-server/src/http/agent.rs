//! The API Tessera protects in the seed (S12): `POST /agent/chat`.

use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthUser;
use super::error::{AppError, AppResult, FieldError};
use super::extract::ApiJson;
use super::i18n::Lang;

/// Longest chat message accepted, in characters.
const MAX_MESSAGE_CHARS: usize = 4_000;

pub fn router(state: &AppState) -> Router<AppState> {
    // The API limit per user authenticates first; as a method-router layer it runs only for
    // a matched method, so a wrong method is still a plain 405.
    Router::new().route(
        "/agent/chat",
        post(chat).route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::limits::api_limit,
        )),
    )
}

/// `POST /agent/chat`.
#[derive(Deserialize, ToSchema)]
pub(super) struct ChatRequest {
    /// 1 to 4000 characters, not only whitespace.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 4000, example = "hello")]
    message: Option<String>,
}

/// The agent's answer.
#[derive(Serialize, ToSchema)]
pub(super) struct ChatResponse {
    /// `AI reply: <message>` (`AI回复: <message>` for Chinese clients).
    #[schema(example = "AI reply: hello")]
    response: String,
}

/// The protected API: an echoing agent.
#[utoipa::path(
    post,
    path = "/agent/chat",
    tag = "api",
    request_body(content((ChatRequest = "application/json"))),
    responses(
        (status = 200, description = "The agent's reply.", body = ChatResponse,
            headers(
                ("X-RateLimit-Limit" = u64, description = "Requests allowed in the window (RATE_LIMIT_API, per user)."),
                ("X-RateLimit-Remaining" = u64, description = "Requests left in the window."),
                ("X-RateLimit-Reset" = u64, description = "Unix time (seconds) when the window is full again."),
            )),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn chat(
    _user: AuthUser,
    lang: Lang,
    ApiJson(request): ApiJson<ChatRequest>,
) -> AppResult<Json<ChatResponse>> {
    let message = request
        .message
        .ok_or_else(|| AppError::Validation(vec![FieldError::new("message", "missing", "field required")]))?;
    if message.trim().is_empty() {
        return Err(AppError::Validation(vec![FieldError::new(
            "message",
            "empty",
            "must not be empty",
        )]));
    }
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::Validation(vec![FieldError::new(
            "message",
            "too_long",
            format!("must be at most {MAX_MESSAGE_CHARS} characters"),
        )]));
    }
    let prefix = match lang {
        Lang::En => "AI reply: ",
        Lang::Zh => "AI回复: ",
    };
    Ok(Json(ChatResponse {
        response: format!("{prefix}{message}"),
    }))
}
