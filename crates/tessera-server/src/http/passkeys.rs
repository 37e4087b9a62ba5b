//! Passkey routes (C3): `GET /account/passkeys`, `POST /account/passkeys/register/start`,
//! `POST /account/passkeys/register/finish`, `DELETE /account/passkeys/{id}`, and the
//! password-less sign-in `POST /login/passkey/start`, `POST /login/passkey/finish`. A passkey as
//! the second factor goes through `POST /login` and `POST /login/mfa` (`account`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::AuthUser;
use super::error::{AppError, AppResult, FieldError};
use super::extract::{ApiJson, ClientIp, UserAgent, required};
use super::i18n::Lang;
use super::mfa::PasswordConfirmation;
use super::rfc3339;
use crate::app::login::ClientInfo;
use crate::app::passkeys::{PasskeyAnswer, PasskeyInfo, PasskeyStart};

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = || axum::middleware::from_fn_with_state(state.clone(), super::limits::api_limit);
    Router::new()
        .route("/account/passkeys", get(list).route_layer(limit()))
        .route(
            "/account/passkeys/register/start",
            post(register_start).route_layer(limit()),
        )
        .route(
            "/account/passkeys/register/finish",
            post(register_finish).route_layer(limit()),
        )
        .route("/account/passkeys/{id}", delete(remove).route_layer(limit()))
        .route("/login/passkey/start", post(login_start))
        .route("/login/passkey/finish", post(login_finish))
}

fn no_store() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers
}

/// A WebAuthn ceremony to run in the browser.
#[derive(Serialize, ToSchema)]
pub(super) struct PasskeyCeremonyResponse {
    /// Send it back with the browser's answer; single use, 5 minutes.
    pub(super) ceremony_id: String,
    /// The WebAuthn options in their JSON form: give them to
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` (registration) or
    /// `parseRequestOptionsFromJSON` (sign-in), then to `navigator.credentials.create/get`.
    #[schema(value_type = Object)]
    pub(super) public_key: serde_json::Value,
}

impl PasskeyCeremonyResponse {
    pub(super) fn from_start(start: PasskeyStart) -> PasskeyCeremonyResponse {
        PasskeyCeremonyResponse {
            ceremony_id: start.ceremony_id.to_string(),
            public_key: start.public_key,
        }
    }
}

/// A passkey of the caller.
#[derive(Serialize, ToSchema)]
struct PasskeyResponse {
    /// The credential id (base64url): the `{id}` of `DELETE /account/passkeys/{id}`.
    id: String,
    /// The name given when it was added.
    name: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339, or null before its first sign-in.
    last_used_at: Option<String>,
}

impl From<PasskeyInfo> for PasskeyResponse {
    fn from(info: PasskeyInfo) -> PasskeyResponse {
        PasskeyResponse {
            id: info.id,
            name: info.name,
            created_at: rfc3339(info.created_at),
            last_used_at: info.last_used_at.map(rfc3339),
        }
    }
}

/// The caller's passkeys.
#[derive(Serialize, ToSchema)]
struct PasskeyListResponse {
    /// Oldest first.
    passkeys: Vec<PasskeyResponse>,
}

/// Lists the caller's passkeys.
#[utoipa::path(
    get,
    path = "/account/passkeys",
    tag = "account",
    responses(
        (status = 200, description = "The caller's passkeys.", body = PasskeyListResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [])),
)]
pub(super) async fn list(State(state): State<AppState>, user: AuthUser) -> AppResult<Response> {
    let passkeys = state.list_passkeys(&user.authenticated()).await?;
    let body = PasskeyListResponse {
        passkeys: passkeys.into_iter().map(PasskeyResponse::from).collect(),
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Starts adding a passkey: needs the password and a signed-in session.
///
/// Answers the creation options (resident key required, user verification required,
/// attestation `none`, EdDSA/ES256/RS256) and a `ceremony_id` for
/// `POST /account/passkeys/register/finish`.
#[utoipa::path(
    post,
    path = "/account/passkeys/register/start",
    tag = "account",
    request_body(content((PasswordConfirmation = "application/json"))),
    responses(
        (status = 200, description = "The ceremony to run with `navigator.credentials.create`.", body = PasskeyCeremonyResponse),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn register_start(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> AppResult<Response> {
    let start = state
        .start_passkey_registration(&user.authenticated(), request.password()?, &ip)
        .await?;
    Ok((
        StatusCode::OK,
        no_store(),
        axum::Json(PasskeyCeremonyResponse::from_start(start)),
    )
        .into_response())
}

/// `POST /account/passkeys/register/finish`.
#[derive(Deserialize, ToSchema)]
pub(super) struct RegisterFinishRequest {
    /// The `ceremony_id` of the start.
    #[schema(value_type = String, required = true)]
    ceremony_id: Option<String>,
    /// A name for the passkey (1 to 64 characters), e.g. "Laptop".
    #[schema(value_type = String, required = true, max_length = 64, example = "Laptop")]
    name: Option<String>,
    /// The browser's answer: `PublicKeyCredential.toJSON()` (RegistrationResponseJSON).
    #[schema(value_type = Object, required = true)]
    credential: Option<serde_json::Value>,
}

/// Finishes adding a passkey with the browser's answer. 201 with the new passkey.
///
/// An unknown, used or expired `ceremony_id` is 400 `invalid_passkey_ceremony`; an answer that
/// fails the WebAuthn checks is 401 `passkey_refused`; a passkey registered already is 409.
#[utoipa::path(
    post,
    path = "/account/passkeys/register/finish",
    tag = "account",
    request_body(content((RegisterFinishRequest = "application/json"))),
    responses(
        (status = 201, description = "Added.", body = PasskeyResponse),
        (status = 400, response = super::openapi::BadRequest),
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
pub(super) async fn register_finish(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    ApiJson(request): ApiJson<RegisterFinishRequest>,
) -> AppResult<Response> {
    let mut errors = Vec::new();
    let ceremony_id = Zeroizing::new(required(request.ceremony_id, "ceremony_id", &mut errors));
    let name = required(request.name, "name", &mut errors);
    let credential = required(request.credential, "credential", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let info = state
        .finish_passkey_registration(
            &user.authenticated(),
            PasskeyAnswer {
                ceremony_id,
                credential,
            },
            &name,
            &ip,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(PasskeyResponse::from(info))).into_response())
}

/// Removes one of the caller's passkeys (password required). 404 when there is no such one.
#[utoipa::path(
    delete,
    path = "/account/passkeys/{id}",
    tag = "account",
    params(("id" = String, Path, description = "A passkey id from `GET /account/passkeys`.")),
    request_body(content((PasswordConfirmation = "application/json"))),
    responses(
        (status = 204, description = "Removed."),
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
pub(super) async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> AppResult<Response> {
    state
        .remove_passkey(&user.authenticated(), &id, request.password()?, &ip)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /login/passkey/start`: an empty object. (Documentation only: the handler reads a JSON
/// object, as serde would read an empty struct from `[]` too.)
#[derive(ToSchema)]
pub(super) struct LoginStartRequest {}

/// Starts a password-less sign-in with a passkey.
///
/// Answers request options with an empty `allowCredentials` (the browser offers the passkeys it
/// has for this site) and user verification required. Counted against the per-IP login limit.
#[utoipa::path(
    post,
    path = "/login/passkey/start",
    tag = "auth",
    request_body(content((LoginStartRequest = "application/json"))),
    responses(
        (status = 200, description = "The ceremony to run with `navigator.credentials.get`.", body = PasskeyCeremonyResponse),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub(super) async fn login_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    UserAgent(user_agent): UserAgent,
    headers: HeaderMap,
    ApiJson(_request): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> AppResult<Response> {
    state.check_same_site(super::account::request_origin(&headers), &ip)?;
    let start = state.start_passkey_login(&ClientInfo { ip, user_agent }).await?;
    Ok((
        StatusCode::OK,
        no_store(),
        axum::Json(PasskeyCeremonyResponse::from_start(start)),
    )
        .into_response())
}

/// `POST /login/passkey/finish`.
#[derive(Deserialize, ToSchema)]
pub(super) struct LoginFinishRequest {
    /// The `ceremony_id` of the start.
    #[schema(value_type = String, required = true)]
    ceremony_id: Option<String>,
    /// The browser's answer: `PublicKeyCredential.toJSON()` (AuthenticationResponseJSON).
    #[schema(value_type = Object, required = true)]
    credential: Option<serde_json::Value>,
}

/// Finishes a password-less sign-in: answers exactly as a successful `POST /login` (body and
/// cookies).
///
/// An unknown, used or expired `ceremony_id` is 400 `invalid_passkey_ceremony`; an unknown
/// passkey or an answer that fails the checks (signature, origin, challenge, user verification,
/// a signature counter that went backwards) is 401 `passkey_refused`.
#[utoipa::path(
    post,
    path = "/login/passkey/finish",
    tag = "auth",
    request_body(content((LoginFinishRequest = "application/json"))),
    responses(
        (status = 200, description = "Logged in: a new session, as from `POST /login`.", body = super::account::TokenResponse,
            headers(("Set-Cookie" = String, description = "`access_token` and `refresh_token`, as from `POST /login`."))),
        (status = 400, response = super::openapi::BadRequest),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub(super) async fn login_finish(
    State(state): State<AppState>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    UserAgent(user_agent): UserAgent,
    headers: HeaderMap,
    ApiJson(request): ApiJson<LoginFinishRequest>,
) -> AppResult<Response> {
    state.check_same_site(super::account::request_origin(&headers), &ip)?;
    let mut errors = Vec::new();
    let ceremony_id = Zeroizing::new(required(request.ceremony_id, "ceremony_id", &mut errors));
    let credential = required(request.credential, "credential", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if !credential.is_object() {
        return Err(AppError::Validation(vec![FieldError::new(
            "credential",
            "invalid_type",
            "the browser's PublicKeyCredential.toJSON()",
        )]));
    }
    let tokens = state
        .finish_passkey_login(
            PasskeyAnswer {
                ceremony_id,
                credential,
            },
            &ClientInfo { ip, user_agent },
        )
        .await?;
    Ok(super::account::token_response(&state, lang, "login_success", &tokens))
}
