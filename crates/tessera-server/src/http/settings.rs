//! Account settings (C1): `POST /account/password`, `DELETE /account`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::AuthUser;
use super::cookies;
use super::error::{AppError, AppResult};
use super::extract::{ApiJson, ClientIp, required};
use super::i18n::{Lang, message};
use crate::app::settings::PasswordChange;

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = || axum::middleware::from_fn_with_state(state.clone(), super::limits::api_limit);
    Router::new()
        .route("/account/password", post(change_password).route_layer(limit()))
        .route("/account", delete(delete_account).route_layer(limit()))
}

/// `POST /account/password`.
#[derive(Deserialize, ToSchema)]
pub(super) struct PasswordChangeRequest {
    /// The account's password now.
    #[schema(value_type = String, required = true, format = Password, max_length = 1024)]
    current_password: Option<String>,
    /// The new password; the password policy applies (as at sign-up).
    #[schema(value_type = String, required = true, format = Password, min_length = 8, max_length = 128,
        example = "correct horse battery staple")]
    new_password: Option<String>,
}

/// The password was changed.
#[derive(Serialize, ToSchema)]
struct PasswordChangeResponse {
    /// A human-readable message in the client's language.
    message: &'static str,
    /// How many other sessions were ended (this one stays signed in).
    sessions_revoked: usize,
}

/// Changes the caller's password: the current one is required, every other session of the
/// account ends at once, this one stays signed in, API keys keep working. Needs a signed-in
/// session (an API key gets 403 `session_required`); a wrong current password is 422 with
/// `current_password` / `incorrect_password`, counted against RATE_LIMIT_LOGIN_ACCOUNT.
#[utoipa::path(
    post,
    path = "/account/password",
    tag = "account",
    request_body(content((PasswordChangeRequest = "application/json"))),
    responses(
        (status = 200, description = "Password changed; other sessions ended.", body = PasswordChangeResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    lang: Lang,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<PasswordChangeRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let current = Zeroizing::new(required(request.current_password, "current_password", &mut errors));
    let new = Zeroizing::new(required(request.new_password, "new_password", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let revoked = state
        .change_password(&user.authenticated(), PasswordChange { current, new }, &ip)
        .await?;
    let body = PasswordChangeResponse {
        message: message("password_changed", lang),
        sessions_revoked: revoked,
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// `DELETE /account`.
#[derive(Deserialize, ToSchema)]
pub(super) struct DeleteAccountRequest {
    /// The account's password, to confirm.
    #[schema(value_type = String, required = true, format = Password, max_length = 1024)]
    password: Option<String>,
}

/// Deletes the caller's account for good: the account, its sessions, API keys and roles, in one
/// transaction; every credential of it is refused at once, here and on every other instance.
/// Needs a signed-in session and the password (a wrong one is 422 `password` /
/// `incorrect_password`, counted against RATE_LIMIT_LOGIN_ACCOUNT).
#[utoipa::path(
    delete,
    path = "/account",
    tag = "account",
    request_body(content((DeleteAccountRequest = "application/json"))),
    responses(
        (status = 204, description = "The account is gone.",
            headers(("Set-Cookie" = String, description = "Both token cookies, cleared."))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn delete_account(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<DeleteAccountRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let password = Zeroizing::new(required(request.password, "password", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    state.delete_account(&user.authenticated(), password, &ip).await?;
    Ok((StatusCode::NO_CONTENT, cookies::clear_tokens_headers(&state.config)).into_response())
}
