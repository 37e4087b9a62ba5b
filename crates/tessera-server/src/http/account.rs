//! Registration, login, refresh and logout (S1, S2, S12, B2, B3, B6).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tessera_core::password::Verification;
use tessera_core::store::Denylist;
use tessera_core::store::{NewSession, RefreshRotation, Rotation, RotationOutcome, User};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::accounts::{self, CreateError};
use crate::auth::{AuthUser, check_csrf, reject_token};
use crate::cookies::{self, REFRESH_COOKIE};
use crate::error::{AppError, AppResult, ErrorCode, FieldError};
use crate::extract::{ApiJson, ClientIp, JsonOrForm, UserAgent, parse_json};
use crate::hashing::HashError;
use crate::i18n::{Lang, message};
use crate::rate_limit;
use crate::state::{AppState, random_id, unix_now};

/// Passwords longer than this (in bytes) are refused before any hashing work.
const MAX_PASSWORD_BYTES: usize = 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/refresh/csrf", get(refresh_csrf))
        .route("/logout", post(logout))
        .route("/logout/all", post(logout_all))
}

fn hash_error(state: &AppState, error: HashError) -> AppError {
    match error {
        // B8: shed load instead of queueing without bound.
        HashError::Busy => {
            state.metrics.hash_rejected.inc();
            AppError::Unavailable {
                retry_after: 1,
                reason: "password hashing queue full".into(),
            }
        }
        HashError::Failed(reason) => AppError::Internal(anyhow::anyhow!(reason)),
    }
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

fn required(value: Option<String>, field: &'static str, errors: &mut Vec<FieldError>) -> String {
    match value {
        Some(value) => value,
        None => {
            errors.push(FieldError::new(field, "missing", "field required"));
            String::new()
        }
    }
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
    ApiJson(request): ApiJson<RegisterRequest>,
) -> AppResult<Response> {
    let decision = rate_limit::enforce(&state, "register", &ip, &state.config.rate_limit_register, &ip).await?;
    let mut errors = Vec::new();
    let email = required(request.email, "email", &mut errors).trim().to_owned();
    let username = required(request.username, "username", &mut errors).trim().to_owned();
    let password = Zeroizing::new(required(request.password, "password", &mut errors));
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    // The same checks, hashing and insert as `tessera users create`: one function for both.
    let user = accounts::create(
        &*state.users,
        &state.hashing,
        &state.policy,
        &email,
        &username,
        password,
    )
    .await
    .map_err(|error| match error {
        CreateError::Invalid(errors) => AppError::Validation(errors),
        CreateError::Hashing(error) => hash_error(&state, error),
        CreateError::Store(error) => AppError::from(error),
    })?;
    tracing::info!(event = "register", user_id = user.id, username = %user.username, ip_address = %ip, "account registered");
    let body = RegisterResponse {
        user_id: user.id,
        email: user.email,
        username: user.username,
    };
    Ok((StatusCode::CREATED, rate_limit::headers(&decision), axum::Json(body)).into_response())
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
struct TokenResponse {
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
fn token_response(state: &AppState, lang: Lang, message_key: &str, access: &str, refresh: &str, sid: &str) -> Response {
    let delivery = state.config.token_delivery;
    let body = TokenResponse {
        message: message(message_key, lang),
        access_token: delivery.uses_body().then(|| access.to_owned()),
        refresh_token: delivery.uses_body().then(|| refresh.to_owned()),
        token_type: "bearer",
        expires_in: state.config.access_ttl_secs,
        csrf_token: state.keys.csrf.token_for(sid),
    };
    let mut headers = HeaderMap::new();
    if delivery.uses_cookies() {
        for cookie in cookies::set_tokens(&state.config, access, refresh) {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
    // RFC 6749 section 5.1: token responses must not be cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}

/// Logs in: starts a session and returns its first token pair.
///
/// The account is named by `email` or `username`. Rate limited per client IP and per account.
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
            body = TokenResponse,
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
    JsonOrForm(request): JsonOrForm<LoginRequest>,
) -> AppResult<Response> {
    let started = std::time::Instant::now();
    let result = login_attempt(&state, lang, ip, user_agent, request).await;
    state.metrics.login_duration.observe(started.elapsed().as_secs_f64());
    let status = if result.is_ok() { "success" } else { "failure" };
    state.metrics.login_attempts.with_label_values(&[status]).inc();
    result
}

async fn login_attempt(
    state: &AppState,
    lang: Lang,
    ip: String,
    user_agent: Option<String>,
    request: LoginRequest,
) -> AppResult<Response> {
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
    if password.len() > MAX_PASSWORD_BYTES {
        errors.push(FieldError::new("password", "too_long", "too long"));
    }
    let (Some(login), true) = (login, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    if login.len() > 254 {
        return Err(AppError::Validation(vec![FieldError::new(
            "email", "too_long", "too long",
        )]));
    }

    // Per client IP (S7) first, before any database work. Then per account whatever the IP
    // (B7), keyed by the account id when the login names one, so its email and its username
    // share one bucket; unknown logins are keyed by the text. Both before any hashing work.
    // The X-RateLimit-* headers describe whichever leaves fewer attempts: the one the client
    // runs into first.
    // The reason tells the two apart: `rate_limited` (this client IP is over its limit) or
    // `locked` (the account is throttled after too many attempts, whatever the IP).
    let refused = |reason: &'static str| {
        let (login, ip) = (&login, &ip);
        move |error: AppError| {
            tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason, "login refused by the rate limit");
            error
        }
    };
    let per_ip = rate_limit::enforce(state, "login", &ip, &state.config.rate_limit_login, &ip)
        .await
        .map_err(refused("rate_limited"))?;
    let started = std::time::Instant::now();
    let user = state.users.find_by_login(&login).await?;
    let account_key = match &user {
        Some(user) => format!("id:{}", user.id),
        None => format!("login:{}", login.to_lowercase()),
    };
    let per_account = rate_limit::enforce(
        state,
        "login_account",
        &account_key,
        &state.config.rate_limit_login_account,
        &ip,
    )
    .await
    .map_err(refused("locked"))?;
    let decision = if per_account.remaining < per_ip.remaining {
        per_account
    } else {
        per_ip
    };
    // Unknown user or not, the same hashing work happens (dummy hash), so the answer and its
    // timing do not tell whether the account exists (B6).
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verification = state
        .hashing
        .verify(password.clone(), stored)
        .await
        .map_err(|e| hash_error(state, e))?;
    let elapsed_ms = started.elapsed().as_millis() as u64;

    let user = match (user, verification) {
        (Some(user), Verification::Valid { needs_rehash }) => {
            if needs_rehash {
                rehash_in_background(state, user.id, password);
            }
            user
        }
        (user, _) => {
            let reason = if user.is_some() {
                "wrong_password"
            } else {
                "user_not_found"
            };
            tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason, elapsed_ms, "login failed");
            return Err(AppError::Code(ErrorCode::InvalidCredentials));
        }
    };
    if user.disabled_at.is_some() {
        tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason = "disabled", "login to a disabled account");
        return Err(AppError::Code(ErrorCode::AccountDisabled));
    }
    let mut response = start_session(state, lang, &user, &ip, user_agent).await?;
    response.headers_mut().extend(rate_limit::headers(&decision));
    tracing::info!(event = "login_success", user_id = user.id, username = %user.username, ip_address = %ip, elapsed_ms, "login succeeded");
    Ok(response)
}

/// Upgrades a password hash made with old parameters, after the response has gone.
fn rehash_in_background(state: &AppState, user_id: i64, password: Zeroizing<String>) {
    let state = state.clone();
    tokio::spawn(async move {
        let result = match state.hashing.hash(password).await {
            Ok(hash) => state
                .users
                .update_password_hash(user_id, &hash)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => tracing::info!(
                event = "password_rehashed",
                user_id,
                "password hash upgraded to current parameters"
            ),
            Err(error) => {
                tracing::warn!(event = "password_rehash_failed", user_id, %error, "password rehash failed; will retry at next login")
            }
        }
    });
}

/// Creates a session and answers with its first token pair.
async fn start_session(
    state: &AppState,
    lang: Lang,
    user: &User,
    ip: &str,
    user_agent: Option<String>,
) -> AppResult<Response> {
    let now = unix_now();
    let sid = random_id();
    let refresh_jti = random_id();
    let expires_at = now + state.config.refresh_ttl_secs;
    // Sign first: if signing failed after the insert, a session would exist that no client holds.
    let access = state
        .issue_access(user.id, &user.username, &sid, now)
        .map_err(anyhow::Error::from)?;
    let refresh = state
        .issue_refresh(user.id, &user.username, &sid, &refresh_jti, now, expires_at)
        .map_err(anyhow::Error::from)?;
    let created = state
        .sessions
        .create(NewSession {
            id: sid.clone(),
            user_id: user.id,
            refresh_jti,
            now,
            expires_at,
            ip_address: Some(ip.to_owned()),
            user_agent,
        })
        .await?;
    // Disabled (or deleted) after the login's check: the insert was conditional on it.
    if created.is_none() {
        return Err(AppError::Code(ErrorCode::AccountDisabled));
    }
    Ok(token_response(
        state,
        lang,
        "login_success",
        &access.token,
        &refresh,
        &sid,
    ))
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
    let Some(token) = cookies::read(&headers, REFRESH_COOKIE) else {
        return Err(AppError::Code(ErrorCode::NotAuthenticated));
    };
    let claims = state
        .verify_refresh(&token, unix_now())
        .map_err(|e| reject_token(&e, &token, &ip))?;
    Ok(axum::Json(CsrfResponse {
        csrf_token: state.keys.csrf.token_for(&claims.sid),
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
        None => match cookies::read(&headers, REFRESH_COOKIE) {
            Some(token) => (token, true),
            None => return Err(AppError::Code(ErrorCode::NotAuthenticated)),
        },
    };
    let now = unix_now();
    let claims = state
        .verify_refresh(&token, now)
        .map_err(|e| reject_token(&e, &token, &ip))?;
    if via_cookie {
        check_csrf(&state, &headers, &claims.sid, &ip)?;
    }
    let new_jti = random_id();
    let new_expires_at = now + state.config.refresh_ttl_secs;
    let rotation = Rotation {
        session_id: &claims.sid,
        presented_jti: &claims.jti,
        new_jti: &new_jti,
        now,
        new_expires_at,
        grace_secs: state.config.refresh_reuse_grace_secs,
    };
    // The account check and the rotation, in one statement on the SQL stores.
    let (username, outcome) = match state
        .sessions
        .rotate_for_refresh(state.users.as_ref(), claims.user_id, rotation)
        .await?
    {
        RefreshRotation::Attempted { username, outcome } => (username, outcome),
        RefreshRotation::AccountInactive => {
            // The account is gone or disabled: end the session with it.
            state.sessions.revoke(claims.user_id, &claims.sid, now).await?;
            state.deny_sessions([claims.sid.as_str()], now);
            return Err(AppError::Token {
                code: ErrorCode::InvalidToken,
            });
        }
    };
    let user_id = claims.user_id;
    let (refresh_token, kind) = match outcome {
        RotationOutcome::Rotated(_) => (
            state.issue_refresh(user_id, &username, &claims.sid, &new_jti, now, new_expires_at),
            "rotated",
        ),
        // A concurrent refresh already rotated this token moments ago: hand back the token it
        // received (same jti, same times, same bytes), so one chain stays live (B2).
        RotationOutcome::WithinGrace(session) => (
            state.issue_refresh(
                user_id,
                &username,
                &claims.sid,
                &session.current_jti,
                session.refresh_issued_at,
                session.expires_at,
            ),
            "grace",
        ),
        RotationOutcome::ReuseDetected(_) => {
            state.deny_sessions([claims.sid.as_str()], now);
            state.metrics.refresh_reuse.inc();
            tracing::warn!(
                event = "refresh_reuse_detected",
                user_id = user_id,
                session_id = %claims.sid,
                ip_address = %ip,
                "a spent refresh token was presented again; the whole session family is revoked"
            );
            return Err(AppError::Token {
                code: ErrorCode::InvalidToken,
            });
        }
        RotationOutcome::Invalid => {
            tracing::warn!(event = "invalid_token", ip_address = %ip, user_id = user_id, reason = "session revoked or expired", "refresh refused");
            return Err(AppError::Token {
                code: ErrorCode::InvalidToken,
            });
        }
    };
    let refresh_token = refresh_token.map_err(anyhow::Error::from)?;
    let access = state
        .issue_access(user_id, &username, &claims.sid, now)
        .map_err(anyhow::Error::from)?;
    state.metrics.token_refresh.inc();
    tracing::info!(event = "token_refresh", user_id = user_id, ip_address = %ip, rotation = kind, "tokens refreshed");
    Ok(token_response(
        &state,
        lang,
        "refresh_success",
        &access.token,
        &refresh_token,
        &claims.sid,
    ))
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
    let now = unix_now();
    let claims = &user.claims;
    // B3: the refresh cookie (Path=/refresh) never reaches /logout, so the session is revoked
    // by its id, and the access token presented is refused from this moment on.
    state.sessions.revoke(claims.user_id, &claims.sid, now).await?;
    state
        .denylist
        .revoke_token(&claims.jti, claims.exp + state.config.leeway_secs, now);
    state.deny_sessions([claims.sid.as_str()], now);
    tracing::info!(event = "logout", user_id = claims.user_id, ip_address = %ip, "logged out");
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
    let now = unix_now();
    let claims = &user.claims;
    let revoked = state.sessions.revoke_all(claims.user_id, now).await?;
    state
        .denylist
        .revoke_token(&claims.jti, claims.exp + state.config.leeway_secs, now);
    state.deny_sessions(revoked.iter().map(String::as_str).chain([claims.sid.as_str()]), now);
    tracing::info!(event = "logout_all", user_id = claims.user_id, ip_address = %ip, sessions_revoked = revoked.len(), "logged out everywhere");
    let body = LogoutAllResponse {
        message: message("logout_all_success", lang),
        sessions_revoked: revoked.len(),
    };
    Ok((
        StatusCode::OK,
        cookies::clear_tokens_headers(&state.config),
        axum::Json(body),
    )
        .into_response())
}
