//! The API Tessera protects in the seed (S12): `POST /agent/chat`.

use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::ApiJson;
use crate::i18n::Lang;
use crate::state::AppState;

/// Longest chat message accepted, in characters.
const MAX_MESSAGE_CHARS: usize = 4_000;

pub fn router(state: &AppState) -> Router<AppState> {
    // The API limit per user authenticates first; as a method-router layer it runs only for
    // a matched method, so a wrong method is still a plain 405.
    Router::new().route(
        "/agent/chat",
        post(chat).route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::rate_limit::api_limit,
        )),
    )
}

#[derive(Deserialize)]
struct ChatRequest {
    message: Option<String>,
}

async fn chat(_user: AuthUser, lang: Lang, ApiJson(request): ApiJson<ChatRequest>) -> AppResult<Json<Value>> {
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
    Ok(Json(json!({ "response": format!("{prefix}{message}") })))
}
