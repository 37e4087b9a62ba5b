//! The second factor's account routes (C3): `GET /account/mfa`, `POST /account/mfa/totp`,
//! `POST /account/mfa/totp/confirm`, `DELETE /account/mfa/totp`,
//! `POST /account/mfa/recovery-codes`. The login step itself is `POST /login/mfa` (`account`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::AuthUser;
use super::error::{AppError, AppResult};
use super::extract::{ApiJson, ClientIp, required};
use super::i18n::{Lang, message};

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = || axum::middleware::from_fn_with_state(state.clone(), super::limits::api_limit);
    Router::new()
        .route("/account/mfa", get(status).route_layer(limit()))
        .route(
            "/account/mfa/totp",
            post(start_totp).delete(remove_totp).route_layer(limit()),
        )
        .route("/account/mfa/totp/confirm", post(confirm_totp).route_layer(limit()))
        .route(
            "/account/mfa/recovery-codes",
            post(new_recovery_codes).route_layer(limit()),
        )
}

/// Secrets and recovery codes must not be kept by caches on the way.
fn no_store() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers
}

/// The caller's second factor.
#[derive(Serialize, ToSchema)]
struct MfaStatusResponse {
    /// Whether a TOTP app is set up (logins ask for a code).
    totp_enrolled: bool,
    /// Whether an enrolment is waiting for its first code.
    totp_pending: bool,
    /// Unused recovery codes (0 without a confirmed factor).
    recovery_codes_left: u32,
}

/// Tells whether the caller has a second factor and how many recovery codes are left.
#[utoipa::path(
    get,
    path = "/account/mfa",
    tag = "account",
    responses(
        (status = 200, description = "The caller's second factor.", body = MfaStatusResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [])),
)]
pub(super) async fn status(State(state): State<AppState>, user: AuthUser) -> AppResult<Response> {
    let status = state.mfa_status(&user.authenticated()).await?;
    let body = MfaStatusResponse {
        totp_enrolled: status.totp_enrolled,
        totp_pending: status.totp_pending,
        recovery_codes_left: status.recovery_codes_left,
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// A request confirmed with the account's password.
#[derive(Deserialize, ToSchema)]
pub(super) struct PasswordConfirmation {
    /// The account's password (recent re-authentication).
    #[schema(value_type = String, required = true, format = Password, max_length = 1024)]
    password: Option<String>,
}

impl PasswordConfirmation {
    pub(super) fn password(self) -> Result<Zeroizing<String>, AppError> {
        let mut errors = Vec::new();
        let password = Zeroizing::new(required(self.password, "password", &mut errors));
        if errors.is_empty() {
            Ok(password)
        } else {
            Err(AppError::Validation(errors))
        }
    }
}

/// A TOTP enrolment just started: shown once.
#[derive(Serialize, ToSchema)]
struct TotpEnrollmentResponse {
    /// The secret in base32, for typing into an authenticator app.
    #[schema(example = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")]
    secret: String,
    /// The `otpauth://totp/...` URI the QR code holds.
    otpauth_uri: String,
    /// The QR code of `otpauth_uri`, an SVG document.
    qr_svg: String,
}

/// Starts setting up an authenticator app (TOTP: SHA-1, 6 digits, 30 s).
///
/// Needs the password and a signed-in session. The new secret is pending until
/// `POST /account/mfa/totp/confirm` receives a first code; starting again replaces a pending
/// one. An account with a confirmed app gets 409 `mfa_already_enrolled` (remove it first).
#[utoipa::path(
    post,
    path = "/account/mfa/totp",
    tag = "account",
    request_body(content((PasswordConfirmation = "application/json"))),
    responses(
        (status = 200, description = "The secret, its URI and QR code (shown once).", body = TotpEnrollmentResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn start_totp(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> AppResult<Response> {
    let enrollment = state
        .start_totp(&user.authenticated(), request.password()?, &ip)
        .await?;
    let body = TotpEnrollmentResponse {
        secret: enrollment.secret.to_string(),
        otpauth_uri: enrollment.otpauth_uri.to_string(),
        qr_svg: enrollment.qr_svg,
    };
    Ok((StatusCode::OK, no_store(), axum::Json(body)).into_response())
}

/// `POST /account/mfa/totp/confirm`.
#[derive(Deserialize, ToSchema)]
pub(super) struct ConfirmTotpRequest {
    /// The code the authenticator app shows now (6 digits).
    #[schema(value_type = String, required = true, example = "123456")]
    code: Option<String>,
}

/// A new set of recovery codes: shown once.
#[derive(Serialize, ToSchema)]
struct RecoveryCodesResponse {
    /// Ten one-time codes, `xxxx-xxxx-xxxx-xxxx`; each signs in once instead of a TOTP code.
    recovery_codes: Vec<String>,
}

fn recovery_codes_response(codes: Vec<Zeroizing<String>>) -> Response {
    let body = RecoveryCodesResponse {
        recovery_codes: codes.iter().map(|code| code.to_string()).collect(),
    };
    (StatusCode::OK, no_store(), axum::Json(body)).into_response()
}

/// Confirms the pending authenticator app with a first code; from now on logins ask for a
/// code. Answers the ten recovery codes, shown this once.
///
/// A wrong code is 422 `code` / `incorrect_code`; nothing pending is 409 `mfa_not_enrolled`.
#[utoipa::path(
    post,
    path = "/account/mfa/totp/confirm",
    tag = "account",
    request_body(content((ConfirmTotpRequest = "application/json"))),
    responses(
        (status = 200, description = "Enrolled; the recovery codes (shown once).", body = RecoveryCodesResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn confirm_totp(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<ConfirmTotpRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let code = Zeroizing::new(required(request.code, "code", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let codes = state.confirm_totp(&user.authenticated(), &code, &ip).await?;
    Ok(recovery_codes_response(codes))
}

/// `{"message"}`.
#[derive(Serialize, ToSchema)]
struct MfaRemovedResponse {
    /// A human-readable message in the client's language.
    message: &'static str,
}

/// Removes the authenticator app and the recovery codes (password required); logins no longer
/// ask for a code. 404 when there is none.
#[utoipa::path(
    delete,
    path = "/account/mfa/totp",
    tag = "account",
    request_body(content((PasswordConfirmation = "application/json"))),
    responses(
        (status = 200, description = "Removed.", body = MfaRemovedResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn remove_totp(
    State(state): State<AppState>,
    user: AuthUser,
    lang: Lang,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> AppResult<Response> {
    state
        .remove_mfa(&user.authenticated(), request.password()?, &ip)
        .await?;
    let body = MfaRemovedResponse {
        message: message("mfa_removed", lang),
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Replaces the recovery codes with a new set of ten (password required); the old ones stop
/// working. 409 `mfa_not_enrolled` without an authenticator app.
#[utoipa::path(
    post,
    path = "/account/mfa/recovery-codes",
    tag = "account",
    request_body(content((PasswordConfirmation = "application/json"))),
    responses(
        (status = 200, description = "The new recovery codes (shown once).", body = RecoveryCodesResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn new_recovery_codes(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> AppResult<Response> {
    let codes = state
        .new_recovery_codes(&user.authenticated(), request.password()?, &ip)
        .await?;
    Ok(recovery_codes_response(codes))
}
