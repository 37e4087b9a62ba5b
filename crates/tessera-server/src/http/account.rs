//! Registration, login, refresh and logout (S1, S2, S12, B2, B3, B6).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::{AuthUser, presented_csrf};
use super::cookies::{self, CookieNames};
use super::error::{AppError, AppResult, ErrorCode, FieldError};
use super::extract::{ApiJson, ClientIp, JsonOrForm, UserAgent, parse_json, required};
use super::i18n::{Lang, message};
use super::limits;
use crate::app::accounts::Registration;
use crate::app::login::{ClientInfo, LoginAttempt, SessionTokens};
use crate::app::mfa::{LoginOutcome, MfaRequired, SecondFactor};
use crate::app::origin::RequestOrigin;
use crate::app::refresh::RefreshSource;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/login/mfa", post(login_mfa))
        .route("/refresh", post(refresh))
        .route("/refresh/csrf", get(refresh_csrf))
        .route("/logout", post(logout))
        .route("/logout/all", post(logout_all))
}

/// `POST /register`.
#[derive(Deserialize, ToSchema)]
pub(super) struct RegisterRequest {
    /// An email address (at most 254 characters).
    #[schema(value_type = String, required = true, max_length = 254, format = Email, example = "alice@example.com")]
    email: Option<String>,
    /// 3 to 32 letters, digits, `.`, `_` and `-`.
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9._-]{3,32}$", example = "alice")]
    username: Option<String>,
    /// Must pass the password policy (length, not common, not the email or username).
    #[schema(value_type = String, required = true, format = Password, min_length = 8, max_length = 128,
        example = "correct horse battery staple")]
    password: Option<String>,
}

/// The account just created.
#[derive(Serialize, ToSchema)]
struct RegisterResponse {
    user_id: i64,
    email: String,
    username: String,
}

/// Creates an account.
#[utoipa::path(
    post,
    path = "/register",
    tag = "auth",
    request_body(content((RegisterRequest = "application/json"))),
    responses(
        (status = 201, description = "Account created.", body = RegisterResponse,
            headers(
                ("X-RateLimit-Limit" = u64, description = "Registrations allowed in the window (RATE_LIMIT_REGISTER, per IP)."),
                ("X-RateLimit-Remaining" = u64, description = "Registrations left in the window."),
                ("X-RateLimit-Reset" = u64, description = "Unix time (seconds) when the window is full again."),
            )),
        (status = 409, response = super::openapi::Conflict),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub(super) async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    lang: Lang,
    headers: HeaderMap,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> AppResult<Response> {
    state.check_same_site(request_origin(&headers), &ip)?;
    let mut errors = Vec::new();
    let email = required(request.email, "email", &mut errors).trim().to_owned();
    let username = required(request.username, "username", &mut errors).trim().to_owned();
    let password = Zeroizing::new(required(request.password, "password", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let registration = Registration {
        email,
        username,
        password,
    };
    let (user, decision) = state.register(registration, &ip).await?;
    state
        .send_sign_up_verification(&user, super::email::mail_lang(lang), &ip)
        .await;
    let body = RegisterResponse {
        user_id: user.id,
        email: user.email,
        username: user.username,
    };
    Ok((StatusCode::CREATED, limits::headers(&decision), axum::Json(body)).into_response())
}

/// What the browser says about the origin of a request (login CSRF check).
pub(super) fn request_origin(headers: &HeaderMap) -> RequestOrigin<'_> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    RequestOrigin {
        origin: text("origin"),
        fetch_site: text("sec-fetch-site"),
        host: text("host"),
        forwarded_host: text("x-forwarded-host"),
    }
}

/// `POST /login`, as JSON or form-encoded: `email` or `username` names the account.
#[derive(Deserialize, ToSchema)]
pub(super) struct LoginRequest {
    /// The account's email or username (`email` wins when both are given; at most 254
    /// characters).
    #[schema(example = "alice@example.com")]
    email: Option<String>,
    /// The account's username or email.
    username: Option<String>,
    /// At most 1024 bytes.
    #[schema(value_type = String, required = true, format = Password, example = "correct horse battery staple")]
    password: Option<String>,
}

/// The body of a successful login or refresh (the contract table). The two tokens are left out
/// when TOKEN_DELIVERY=cookie.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenResponse {
    /// "Login successful" or "Token refreshed", in the client's language.
    message: &'static str,
    /// The access token (a JWT).
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// The refresh token (a JWT); each refresh returns a new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// Lifetime of the access token in seconds.
    expires_in: i64,
    /// The CSRF token to send as `X-CSRF-Token` with cookie-authenticated POST and DELETE.
    csrf_token: String,
}

/// `{"message"}`.
#[derive(Serialize, ToSchema)]
pub(super) struct MessageResponse {
    /// A human-readable message in the client's language.
    pub(super) message: &'static str,
}

/// `POST /logout/all`.
#[derive(Serialize, ToSchema)]
struct LogoutAllResponse {
    /// A human-readable message in the client's language.
    message: &'static str,
    /// How many sessions were ended.
    sessions_revoked: usize,
}

/// The login response and the refresh response share this shape (S1, the contract table).
pub(super) fn token_response(state: &AppState, lang: Lang, message_key: &str, tokens: &SessionTokens) -> Response {
    let delivery = state.config.token_delivery;
    let body = TokenResponse {
        message: message(message_key, lang),
        access_token: delivery.uses_body().then(|| tokens.access_token.clone()),
        refresh_token: delivery.uses_body().then(|| tokens.refresh_token.clone()),
        token_type: "bearer",
        expires_in: state.config.access_ttl_secs,
        csrf_token: tokens.csrf_token.clone(),
    };
    let mut headers = HeaderMap::new();
    if delivery.uses_cookies() {
        for cookie in cookies::set_tokens(&state.config, &tokens.access_token, &tokens.refresh_token) {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
    // RFC 6749 section 5.1: token responses must not be cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some(decision) = &tokens.limit {
        headers.extend(limits::headers(decision));
    }
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}

/// Logs in: starts a session and returns its first token pair.
///
/// The account is named by `email` or `username`. Rate limited per client IP and per account.
/// For an account with a second factor, a right password answers 200 `{"mfa_required": true,
/// "mfa_token", "methods"}` instead, with no session and no cookies: `POST /login/mfa` completes
/// the login.
#[utoipa::path(
    post,
    path = "/login",
    tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in: a new session. Sets the `access_token` cookie \
            (Path=/) and the `refresh_token` cookie (Path=/refresh) unless TOKEN_DELIVERY=body.",
            body = LoginResponse,
            headers(
                ("Set-Cookie" = String, description = "`access_token` and `refresh_token`, HttpOnly, with COOKIE_SECURE and COOKIE_SAMESITE."),
                ("X-RateLimit-Limit" = u64, description = "Login attempts allowed in the window (the stricter of per IP and per account)."),
                ("X-RateLimit-Remaining" = u64, description = "Attempts left in the window."),
                ("X-RateLimit-Reset" = u64, description = "Unix time (seconds) when the window is full again."),
            )),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub(super) async fn login(
    State(state): State<AppState>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    UserAgent(user_agent): UserAgent,
    headers: HeaderMap,
    JsonOrForm(request): JsonOrForm<LoginRequest>,
) -> AppResult<Response> {
    state.check_same_site(request_origin(&headers), &ip)?;
    let mut errors = Vec::new();
    let login = request
        .email
        .or(request.username)
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    if login.is_none() {
        errors.push(FieldError::new("email", "missing", "email or username required"));
    }
    let password = Zeroizing::new(required(request.password, "password", &mut errors));
    let (Some(login), true) = (login, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let client = ClientInfo { ip, user_agent };
    match state.login(LoginAttempt { login, password }, &client).await? {
        LoginOutcome::Session(tokens) => Ok(token_response(&state, lang, "login_success", &tokens)),
        LoginOutcome::MfaRequired(challenge) => Ok(mfa_required_response(lang, &challenge)),
    }
}

/// What `POST /login` answers with 200 (for the document: the handler returns one of the two).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum LoginResponse {
    /// Logged in.
    Tokens(TokenResponse),
    /// The account has a second factor: `POST /login/mfa` next.
    MfaRequired(MfaRequiredResponse),
}

/// The answer of a login whose account has a second factor (C3): no session, no cookies.
#[derive(Serialize, ToSchema)]
struct MfaRequiredResponse {
    /// Always `true`.
    mfa_required: bool,
    /// "Password accepted: enter the code ...", in the client's language.
    message: &'static str,
    /// The challenge token for `POST /login/mfa`: single use, 5 minutes, at most 5 codes.
    mfa_token: String,
    /// Seconds the token lives.
    expires_in: i64,
    /// What `POST /login/mfa` accepts for this account: `totp` (`code`) and `recovery_code`
    /// with an authenticator app, `passkey` with passkeys.
    #[schema(example = json!(["totp", "recovery_code", "passkey"]))]
    methods: Vec<&'static str>,
    /// With passkeys: the ceremony to run with `navigator.credentials.get` (its
    /// `allowCredentials` are the account's passkeys); the answer goes to `POST /login/mfa` as
    /// `passkey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    passkey: Option<super::passkeys::PasskeyCeremonyResponse>,
}

fn mfa_required_response(lang: Lang, challenge: &MfaRequired) -> Response {
    let body = MfaRequiredResponse {
        mfa_required: true,
        message: message("mfa_required", lang),
        mfa_token: challenge.mfa_token.to_string(),
        expires_in: challenge.expires_in,
        methods: challenge.methods.clone(),
        passkey: challenge
            .passkey
            .as_ref()
            .map(|start| super::passkeys::PasskeyCeremonyResponse {
                ceremony_id: start.ceremony_id.to_string(),
                public_key: start.public_key.clone(),
            }),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some(decision) = &challenge.limit {
        headers.extend(limits::headers(decision));
    }
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}

/// `POST /login/mfa`: the second step of a login that answered `mfa_required`.
#[derive(Deserialize, ToSchema)]
pub(super) struct LoginMfaRequest {
    /// The `mfa_token` of the login's answer.
    #[schema(value_type = String, required = true)]
    mfa_token: Option<String>,
    /// A 6-digit code from the authenticator app (spaces allowed). Give this or `recovery_code`.
    #[schema(example = "123456")]
    code: Option<String>,
    /// One of the recovery codes (`xxxx-xxxx-xxxx-xxxx`; case, spaces and hyphens do not matter);
    /// each works once.
    #[schema(example = "7k3m-q9x2-hh4d-0pzc")]
    recovery_code: Option<String>,
    /// A passkey's answer to the login's `passkey` ceremony.
    passkey: Option<PasskeyMfaAnswer>,
}

/// A passkey as the second factor: the answer to the `passkey` ceremony of the login.
#[derive(Deserialize, ToSchema)]
pub(super) struct PasskeyMfaAnswer {
    /// The `passkey.ceremony_id` of the login's answer.
    #[schema(value_type = String, required = true)]
    ceremony_id: Option<String>,
    /// `PublicKeyCredential.toJSON()` (AuthenticationResponseJSON).
    #[schema(value_type = Object, required = true)]
    credential: Option<serde_json::Value>,
}

/// Completes a login with its second factor: a TOTP code or a recovery code.
///
/// Answers exactly as a login without a second factor does (same body and cookies). A wrong or
/// replayed code is 401 `invalid_mfa_code` with `details.attempts_left`; the token is void after
/// 5 codes, after its 5 minutes, and once it completed a login (401 `invalid_mfa_token`: sign in
/// again). Codes count against the account's login limit (RATE_LIMIT_LOGIN_ACCOUNT).
#[utoipa::path(
    post,
    path = "/login/mfa",
    tag = "auth",
    request_body(content((LoginMfaRequest = "application/json"))),
    responses(
        (status = 200, description = "Logged in: a new session, as from `POST /login`.", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "`access_token` and `refresh_token`, as from `POST /login`."))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 429, response = super::openapi::RateLimited),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
pub(super) async fn login_mfa(
    State(state): State<AppState>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    UserAgent(user_agent): UserAgent,
    headers: HeaderMap,
    ApiJson(request): ApiJson<LoginMfaRequest>,
) -> AppResult<Response> {
    state.check_same_site(request_origin(&headers), &ip)?;
    let mut errors = Vec::new();
    let token = Zeroizing::new(required(request.mfa_token, "mfa_token", &mut errors));
    let factor = match (request.code, request.recovery_code, request.passkey) {
        (Some(code), None, None) => Some(SecondFactor::Totp(Zeroizing::new(code))),
        (None, Some(code), None) => Some(SecondFactor::RecoveryCode(Zeroizing::new(code))),
        (None, None, Some(answer)) => {
            let ceremony_id = Zeroizing::new(required(answer.ceremony_id, "passkey.ceremony_id", &mut errors));
            let credential = required(answer.credential, "passkey.credential", &mut errors);
            if !credential.is_object() && errors.is_empty() {
                errors.push(FieldError::new(
                    "passkey.credential",
                    "invalid_type",
                    "the browser's PublicKeyCredential.toJSON()",
                ));
            }
            Some(SecondFactor::Passkey(crate::app::passkeys::PasskeyAnswer {
                ceremony_id,
                credential,
            }))
        }
        (None, None, None) => {
            errors.push(FieldError::new(
                "code",
                "missing",
                "code, recovery_code or passkey required",
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(
                "recovery_code",
                "conflicting_fields",
                "give one of code, recovery_code and passkey",
            ));
            None
        }
    };
    let (Some(factor), true) = (factor, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let client = ClientInfo { ip, user_agent };
    let tokens = state.login_mfa(&token, factor, &client).await?;
    Ok(token_response(&state, lang, "login_success", &tokens))
}

/// `POST /refresh` with the token in the body. With no body, the refresh cookie is used.
#[derive(Deserialize, ToSchema)]
struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    refresh_token: Option<String>,
}

/// `GET /refresh/csrf`: the CSRF token of the refresh cookie's session.
#[derive(Serialize, ToSchema)]
pub(super) struct CsrfResponse {
    /// Send it as `X-CSRF-Token` with cookie-authenticated POST/DELETE requests, `/refresh`
    /// included.
    csrf_token: String,
}

/// The CSRF token of the session whose refresh cookie the browser holds.
///
/// A page loaded afresh (a reload, a new tab) has the HttpOnly cookies but not the CSRF token
/// that came in the login's body; this gives it back, so the page can refresh and carry on. The
/// refresh cookie (Path=/refresh) reaches this path and no other outside `/refresh`. Safe as a
/// GET: it changes nothing, and another site can make the browser send it but cannot read the
/// answer (same-origin policy; CORS only for CORS_ORIGINS). A token for a session revoked since
/// is useless: `/refresh` still refuses it.
#[utoipa::path(
    get,
    path = "/refresh/csrf",
    tag = "auth",
    responses(
        (status = 200, description = "The session's CSRF token.", body = CsrfResponse),
        (status = 401, response = super::openapi::Unauthorized),
    ),
    security(("refresh_cookie" = [])),
)]
pub(super) async fn refresh_csrf(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> AppResult<axum::Json<CsrfResponse>> {
    let Some(token) = cookies::read(&headers, CookieNames::for_config(&state.config).refresh) else {
        return Err(AppError::Code(ErrorCode::NotAuthenticated));
    };
    let claims = state
        .check_refresh_token(&token, &ip)
        .map_err(|e| AppError::from(e).for_refresh_token())?;
    Ok(axum::Json(CsrfResponse {
        csrf_token: state.csrf_token(&claims.sid),
    }))
}

/// Exchanges a refresh token for a new token pair (rotation with reuse detection).
#[utoipa::path(
    post,
    path = "/refresh",
    tag = "auth",
    request_body(
        description = "The refresh token as JSON; or no body, and the `refresh_token` cookie with \
            `X-CSRF-Token`.",
        content((RefreshRequest = "application/json")),
    ),
    responses(
        (status = 200, description = "A new token pair; the refresh token presented is spent (a second use \
            revokes the whole session).", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "The new `access_token` and `refresh_token` cookies."))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 415, response = super::openapi::UnsupportedMediaType),
        (status = 422, response = super::openapi::ValidationFailed),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security((), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    lang: Lang,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    // The token comes from the JSON body (API clients) or from the refresh cookie (browsers,
    // which must then prove the request is their own with the CSRF header).
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Err(AppError::Code(ErrorCode::UnsupportedMediaType));
        }
        parse_json::<RefreshRequest>(&body)?.refresh_token
    };
    let (token, via_cookie) = match from_body {
        Some(token) => (token, false),
        None => match cookies::read(&headers, CookieNames::for_config(&state.config).refresh) {
            Some(token) => (token, true),
            None => return Err(AppError::Code(ErrorCode::NotAuthenticated)),
        },
    };
    let source = if via_cookie {
        RefreshSource::Cookie {
            csrf: presented_csrf(&headers),
        }
    } else {
        RefreshSource::Body
    };
    let tokens = state
        .refresh(&token, source, &ip)
        .await
        .map_err(|e| AppError::from(e).for_refresh_token())?;
    Ok(token_response(&state, lang, "refresh_success", &tokens))
}

/// Ends the current session.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "auth",
    responses(
        (status = 200, description = "The session is ended and the access token refused from now on.",
            body = MessageResponse,
            headers(("Set-Cookie" = String, description = "Both token cookies, cleared."))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    lang: Lang,
    ClientIp(ip): ClientIp,
) -> AppResult<Response> {
    state.logout(&user.claims, &ip).await?;
    let body = MessageResponse {
        message: message("logout_success", lang),
    };
    Ok((
        StatusCode::OK,
        cookies::clear_tokens_headers(&state.config),
        axum::Json(body),
    )
        .into_response())
}

/// Ends every session of the user.
#[utoipa::path(
    post,
    path = "/logout/all",
    tag = "auth",
    responses(
        (status = 200, description = "Every session of the user is ended.", body = LogoutAllResponse,
            headers(("Set-Cookie" = String, description = "Both token cookies, cleared."))),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 503, response = super::openapi::Unavailable),
    ),
    security(("bearer" = []), ("cookie" = [], "csrf" = [])),
)]
pub(super) async fn logout_all(
    State(state): State<AppState>,
    user: AuthUser,
    lang: Lang,
    ClientIp(ip): ClientIp,
) -> AppResult<Response> {
    let revoked = state.logout_all(&user.claims, &ip).await?;
    let body = LogoutAllResponse {
        message: message("logout_all_success", lang),
        sessions_revoked: revoked,
    };
    Ok((
        StatusCode::OK,
        cookies::clear_tokens_headers(&state.config),
        axum::Json(body),
    )
        .into_response())
}
