//! Mail-backed routes (C1, C2): `POST /password/forgot`, `POST /password/reset`,
//! `POST /email/verify`, `POST /email/verify/resend`, `POST /account/email`.
//!
//! The links in the mails open pages (`GET /password/reset?token=`, `GET /email/verify?token=`,
//! in `pages.rs`); only these POSTs redeem a token, so a mail scanner fetching a link burns
//! nothing. The flows themselves are in [`crate::app::email`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::AuthUser;
use super::error::{AppError, AppResult, ErrorCode};
use super::extract::{ApiJson, ClientIp, parse_json, required};
use super::i18n::{Lang, message};
use crate::app::email::{Resent, Verified};
use crate::mail::MailLang;

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = || axum::middleware::from_fn_with_state(state.clone(), super::limits::api_limit);
    Router::new()
        .route("/password/forgot", get(super::pages::forgot).post(forgot_password))
        .route("/password/reset", get(super::pages::reset).post(reset_password))
        .route("/email/verify", get(super::pages::verify).post(verify_email))
        .route("/email/verify/resend", post(resend_verification))
        .route("/account/email", post(change_email).route_layer(limit()))
}

/// The mail language of a request's language.
pub fn mail_lang(lang: Lang) -> MailLang {
    match lang {
        Lang::En => MailLang::En,
        Lang::Zh => MailLang::Zh,
    }
}

/// A message-only answer.
#[derive(Serialize, ToSchema)]
pub(super) struct MessageResponse {
    /// A human-readable message in the client's language.
    message: &'static str,
}

fn answer(status: StatusCode, key: &str, lang: Lang) -> Response {
    (
        status,
        axum::Json(MessageResponse {
            message: message(key, lang),
        }),
    )
        .into_response()
}

/// `POST /password/forgot`.
#[derive(Deserialize, ToSchema)]
pub(super) struct ForgotPasswordRequest {
    /// The account's email address.
    #[schema(value_type = String, required = true, format = Email, max_length = 254, example = "alice@example.com")]
    email: Option<String>,
}

/// Mails a password-reset link (30 minutes, single use) if an active account has this address.
/// The answer is the same, and as fast, whether or not one does; the mail is sent after the
/// answer. A new link voids the older ones. Limits: RATE_LIMIT_MAIL_IP (429) and
/// RATE_LIMIT_MAIL_ADDRESS (silently nothing sent).
#[utoipa::path(
    post,
    path = "/password/forgot",
    tag = "account",
    request_body(content((ForgotPasswordRequest = "application/json"))),
    responses(
        (status = 202, description = "If an account has the address, a mail is on its way.", body = MessageResponse),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
    )
)]
pub(super) async fn forgot_password(
    State(state): State<AppState>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<ForgotPasswordRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let email = required(request.email, "email", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    state.forgot_password(&email, mail_lang(lang), &ip).await?;
    Ok(answer(StatusCode::ACCEPTED, "mail_sent_if_account", lang))
}

/// `POST /password/reset`.
#[derive(Deserialize, ToSchema)]
pub(super) struct ResetPasswordRequest {
    /// The token from the mailed link.
    #[schema(value_type = String, required = true, max_length = 128)]
    token: Option<String>,
    /// The new password; the password policy applies.
    #[schema(value_type = String, required = true, format = Password, min_length = 8, max_length = 128,
        example = "correct horse battery staple")]
    new_password: Option<String>,
}

/// The password was reset.
#[derive(Serialize, ToSchema)]
struct ResetPasswordResponse {
    /// A human-readable message in the client's language.
    message: &'static str,
    /// How many sessions were signed out (all of the account's).
    sessions_revoked: usize,
}

/// Sets a new password with the token of a reset mail, and signs out every session of the
/// account (API keys keep working). The token is used up; an unknown, used or expired one is
/// 400 `invalid_link`.
#[utoipa::path(
    post,
    path = "/password/reset",
    tag = "account",
    request_body(content((ResetPasswordRequest = "application/json"))),
    responses(
        (status = 200, description = "Password set; every session signed out.", body = ResetPasswordResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub(super) async fn reset_password(
    State(state): State<AppState>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<ResetPasswordRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let token = required(request.token, "token", &mut errors);
    let new_password = Zeroizing::new(required(request.new_password, "new_password", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let revoked = state.reset_password(&token, new_password, &ip).await?;
    let body = ResetPasswordResponse {
        message: message("password_reset", lang),
        sessions_revoked: revoked,
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// `POST /email/verify`.
#[derive(Deserialize, ToSchema)]
pub(super) struct VerifyEmailRequest {
    /// The token from the mailed link.
    #[schema(value_type = String, required = true, max_length = 128)]
    token: Option<String>,
}

/// The address is verified.
#[derive(Serialize, ToSchema)]
struct VerifyEmailResponse {
    /// A human-readable message in the client's language.
    message: &'static str,
    /// The account's (verified) address.
    email: String,
    /// Whether the link changed the account's address (an email change) rather than verifying it.
    changed: bool,
}

/// Redeems the token of a verification mail (the address is verified) or of an email-change
/// mail (the new address replaces the old, which is told by mail). An unknown, used or expired
/// token is 400 `invalid_link`; a new address another account took meanwhile is 409.
#[utoipa::path(
    post,
    path = "/email/verify",
    tag = "account",
    request_body(content((VerifyEmailRequest = "application/json"))),
    responses(
        (status = 200, description = "Verified (or changed).", body = VerifyEmailResponse),
        (status = 400, response = super::openapi::BadRequest),
        (status = 409, response = super::openapi::Conflict),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub(super) async fn verify_email(
    State(state): State<AppState>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<VerifyEmailRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let token = required(request.token, "token", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let (email, changed) = match state.verify_email(&token, mail_lang(lang), &ip).await? {
        Verified::Address(email) => (email, false),
        Verified::Changed(email) => (email, true),
    };
    let key = if changed { "email_changed" } else { "email_verified" };
    let body = VerifyEmailResponse {
        message: message(key, lang),
        email,
        changed,
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// `POST /email/verify/resend`, signed out.
#[derive(Deserialize, ToSchema)]
pub(super) struct ResendRequest {
    /// The address to send a new link to, when not signed in (checked but not used when signed
    /// in; null or absent is the same).
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    email: Option<String>,
}

/// Mails a new verification link (24 hours; older links void). Signed in (cookie + CSRF, or
/// Bearer): to the caller's own address, 200 `already_verified` when it is. Signed out, with
/// `{email}`: the same 202 whether or not an account needs one (no enumeration). 404 with
/// EMAIL_VERIFICATION=off.
#[utoipa::path(
    post,
    path = "/email/verify/resend",
    tag = "account",
    request_body(content((ResendRequest = "application/json"))),
    responses(
        (status = 202, description = "A new link is on its way (signed out: if an account needs one).", body = MessageResponse),
        (status = 200, description = "The signed-in caller's address is verified already.", body = MessageResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
    ),
    security((), ("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn resend_verification(
    State(state): State<AppState>,
    user: Result<AuthUser, AppError>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    body: Bytes,
) -> AppResult<Response> {
    let user = match user {
        Ok(user) => Some(user.authenticated()),
        Err(AppError::Code(ErrorCode::NotAuthenticated)) => None,
        Err(error) => return Err(error),
    };
    let request: ResendRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResendRequest { email: None }
    } else {
        parse_json(&body)?
    };
    let resent = state
        .resend_verification(user.as_ref(), request.email.as_deref(), mail_lang(lang), &ip)
        .await?;
    Ok(match resent {
        Resent::Queued if user.is_some() => answer(StatusCode::ACCEPTED, "verification_sent", lang),
        Resent::Queued => answer(StatusCode::ACCEPTED, "mail_sent_if_account", lang),
        Resent::AlreadyVerified => answer(StatusCode::OK, "already_verified", lang),
    })
}

/// `POST /account/email`.
#[derive(Deserialize, ToSchema)]
pub(super) struct ChangeEmailRequest {
    /// The new address.
    #[schema(value_type = String, required = true, format = Email, max_length = 254, example = "alice@example.org")]
    new_email: Option<String>,
    /// The account's password now.
    #[schema(value_type = String, required = true, format = Password, max_length = 1024)]
    current_password: Option<String>,
}

/// Starts an email change: checks the password and mails a confirmation link (24 hours) to the
/// new address. The account keeps its address until the link's page is submitted
/// (`POST /email/verify`); then the old address is told. Needs a signed-in session. The answer
/// is the same when another account has the address (nothing is sent then).
#[utoipa::path(
    post,
    path = "/account/email",
    tag = "account",
    request_body(content((ChangeEmailRequest = "application/json"))),
    responses(
        (status = 202, description = "A confirmation link is on its way to the new address.", body = MessageResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn change_email(
    State(state): State<AppState>,
    user: AuthUser,
    lang: Lang,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<ChangeEmailRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let new_email = required(request.new_email, "new_email", &mut errors);
    let password = Zeroizing::new(required(request.current_password, "current_password", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    state
        .request_email_change(&user.authenticated(), &new_email, password, mail_lang(lang), &ip)
        .await?;
    Ok(answer(StatusCode::ACCEPTED, "email_change_sent", lang))
}
