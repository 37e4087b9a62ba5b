//! The unified error response (S5): every error, whether raised by a handler or by the framework
//! (404, 405, 413, 415, malformed JSON), reaches the client as
//! `{"error": code, "message": text, "details": object|null}`, in English or, when the client
//! prefers it, in Chinese.
//!
//! Handlers return [`AppError`]. Its `IntoResponse` holds the whole status mapping in one match
//! and attaches the error to the response as an extension; the outermost middleware
//! ([`crate::http::unify_errors`]) renders the body in the client's language and turns bare
//! framework errors into the same shape. A 5xx body never carries internals: the cause is
//! logged with the request id and the body says only "internal server error".

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_core::store::{StorageFault, StoreError};

use super::i18n::Lang;
use crate::app::{self, error::TokenRejection};

/// What kind of error, with its code and status. One variant per `error` code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the request is malformed (bad JSON syntax, credentials in the URL, ...).
    BadRequest,
    /// 401: no credentials were presented.
    NotAuthenticated,
    /// 401: a token was presented and is not valid.
    InvalidToken,
    /// 401: a token was presented and has expired.
    TokenExpired,
    /// 401: login failed (same answer for unknown user and wrong password).
    InvalidCredentials,
    /// 403: the account is disabled.
    AccountDisabled,
    /// 403: cookie-authenticated unsafe request without a matching X-CSRF-Token.
    CsrfFailed,
    /// 403: the credential is valid but its scopes do not grant the route's (G4).
    InsufficientScope,
    /// 403: the action needs a person's signed-in session, not an API key (C1).
    SessionRequired,
    /// 403: login before the address is verified, with EMAIL_VERIFICATION=required (C2).
    EmailNotVerified,
    /// 400: a mailed link's token is unknown, used or expired (C2).
    InvalidLink,
    /// 401: an `mfa_token` is unknown, used, expired or out of attempts (C3).
    InvalidMfaToken,
    /// 401: a wrong or replayed second-factor code at login (C3); `details.attempts_left`.
    InvalidMfaCode,
    /// 400: a passkey `ceremony_id` is unknown, used, expired or of another flow (C3).
    InvalidPasskeyCeremony,
    /// 401: a passkey answer was refused: unknown credential, bad signature, wrong origin,
    /// challenge or counter (C3).
    PasskeyRefused,
    /// 409: a TOTP factor is enrolled already (C3).
    MfaAlreadyEnrolled,
    /// 409: the action needs a TOTP factor the account does not have (C3).
    MfaNotEnrolled,
    /// 403: refused for another reason: a forward-auth role rule is not met, or forward auth
    /// was asked by a peer that is not a trusted proxy (G2); the message says which.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408: the request took longer than the request timeout.
    RequestTimeout,
    /// 409: e.g. email already registered.
    Conflict,
    /// 413: body over MAX_BODY_BYTES.
    PayloadTooLarge,
    /// 415: not JSON (or form, where accepted).
    UnsupportedMediaType,
    /// 422: the body parsed but a field is missing or invalid.
    ValidationError,
    /// 429.
    RateLimited,
    /// 429: an API key used up its quota (G3).
    QuotaExceeded,
    /// 500.
    InternalServerError,
    /// 502: the gateway's upstream refused the connection or broke the exchange (G1).
    BadGateway,
    /// 503: a dependency is down or the server sheds load.
    ServiceUnavailable,
    /// 503: the database answers but cannot store data (disk full, read-only, I/O error).
    StorageUnavailable,
    /// 504: the gateway's upstream did not answer in time (G1).
    GatewayTimeout,
}

impl ErrorCode {
    /// Every code, for the OpenAPI document.
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::BadRequest,
        ErrorCode::NotAuthenticated,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::InvalidCredentials,
        ErrorCode::AccountDisabled,
        ErrorCode::CsrfFailed,
        ErrorCode::InsufficientScope,
        ErrorCode::SessionRequired,
        ErrorCode::EmailNotVerified,
        ErrorCode::InvalidLink,
        ErrorCode::InvalidMfaToken,
        ErrorCode::InvalidMfaCode,
        ErrorCode::InvalidPasskeyCeremony,
        ErrorCode::PasskeyRefused,
        ErrorCode::MfaAlreadyEnrolled,
        ErrorCode::MfaNotEnrolled,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ValidationError,
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::InternalServerError,
        ErrorCode::BadGateway,
        ErrorCode::ServiceUnavailable,
        ErrorCode::StorageUnavailable,
        ErrorCode::GatewayTimeout,
    ];

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidLink | ErrorCode::InvalidPasskeyCeremony => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::NotAuthenticated
            | ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::InvalidCredentials
            | ErrorCode::InvalidMfaToken
            | ErrorCode::InvalidMfaCode
            | ErrorCode::PasskeyRefused => StatusCode::UNAUTHORIZED,
            ErrorCode::AccountDisabled
            | ErrorCode::CsrfFailed
            | ErrorCode::InsufficientScope
            | ErrorCode::SessionRequired
            | ErrorCode::EmailNotVerified => StatusCode::FORBIDDEN,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Conflict | ErrorCode::MfaAlreadyEnrolled | ErrorCode::MfaNotEnrolled => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited | ErrorCode::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorCode::ServiceUnavailable | ErrorCode::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The `error` code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::SessionRequired => "session_required",
            ErrorCode::EmailNotVerified => "email_not_verified",
            ErrorCode::InvalidLink => "invalid_link",
            ErrorCode::InvalidMfaToken => "invalid_mfa_token",
            ErrorCode::InvalidMfaCode => "invalid_mfa_code",
            ErrorCode::InvalidPasskeyCeremony => "invalid_passkey_ceremony",
            ErrorCode::PasskeyRefused => "passkey_refused",
            ErrorCode::MfaAlreadyEnrolled => "mfa_already_enrolled",
            ErrorCode::MfaNotEnrolled => "mfa_not_enrolled",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::ValidationError => "validation_error",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::InternalServerError => "internal_server_error",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::GatewayTimeout => "gateway_timeout",
        }
    }

    /// The code a bare framework response of this status becomes.
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 => ErrorCode::NotAuthenticated,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::ValidationError,
            429 => ErrorCode::RateLimited,
            502 => ErrorCode::BadGateway,
            503 => ErrorCode::ServiceUnavailable,
            504 => ErrorCode::GatewayTimeout,
            400..=499 => ErrorCode::BadRequest,
            _ => ErrorCode::InternalServerError,
        }
    }
}

pub use crate::app::error::FieldError;

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A plain error of this code, with its standard message.
    #[error("{}", .0.as_str())]
    Code(ErrorCode),
    /// 401 for a presented token, with the reason for RFC 6750's `error_description`.
    #[error("token rejected")]
    Token {
        /// `InvalidToken` or `TokenExpired`.
        code: ErrorCode,
        /// Whether the token was a refresh token (the message and `error_description` say
        /// which token was refused).
        refresh: bool,
    },
    /// 400 with a specific message key.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 422 with the field problems.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 409 naming what already exists.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// 401 for a failed login, with the limit decision that counted it (for the
    /// `X-RateLimit-*` headers).
    #[error("invalid credentials")]
    InvalidCredentials(Option<tessera_core::limits::Decision>),
    /// 403 for a cookie-setting request from another site (login CSRF).
    #[error("cross-site request")]
    CrossSite,
    /// 403 `insufficient_scope`: the credential does not grant this scope, which the response
    /// names in `WWW-Authenticate` and `details.scope`.
    #[error("insufficient scope: {0} needed")]
    InsufficientScope(tessera_core::Scope),
    /// 403 `forbidden`: forward auth's first matching rule needs a role the caller lacks
    /// (`details.role` names it, G2).
    #[error("role {0} needed")]
    MissingRole(String),
    /// 401 `invalid_mfa_code`, with the attempts the `mfa_token` has left.
    #[error("invalid mfa code")]
    InvalidMfaCode(i64),
    /// 429 with the decision that refused (for the headers).
    #[error("rate limited")]
    RateLimited(tessera_core::limits::Decision),
    /// 429 `quota_exceeded`: the key's quota is used up (details: when it resets).
    #[error("quota exceeded")]
    QuotaExceeded(tessera_core::limits::Decision),
    /// 503 with Retry-After seconds.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Seconds after which a retry makes sense.
        retry_after: u64,
        /// For the log only.
        reason: String,
    },
    /// 503 `storage_unavailable` with Retry-After: nothing was stored (disk full, read-only,
    /// I/O error). Logged at `error` level and counted in `tessera_storage_errors_total`.
    #[error("storage unavailable ({fault}): {detail}")]
    StorageUnavailable {
        /// What is wrong with the storage (the metric's `kind` label).
        fault: StorageFault,
        /// For the log only.
        detail: String,
    },
    /// 500; the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A store error reaching a handler directly maps as the application layer maps it.
impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        AppError::from(app::Error::from(error))
    }
}

/// Message key of a refused refresh token (not "the access token").
const INVALID_REFRESH_TOKEN: &str = "invalid_refresh_token";
/// Message key of an expired refresh token.
const REFRESH_TOKEN_EXPIRED: &str = "refresh_token_expired";

impl AppError {
    /// The same error, saying that the refused token was a refresh token.
    pub fn for_refresh_token(self) -> AppError {
        match self {
            AppError::Token { code, .. } => AppError::Token { code, refresh: true },
            other => other,
        }
    }
}

impl From<app::Error> for AppError {
    fn from(error: app::Error) -> AppError {
        match error {
            app::Error::Validation(errors) => AppError::Validation(errors),
            app::Error::InvalidCredentials { limit } => AppError::InvalidCredentials(limit),
            app::Error::AccountDisabled => AppError::Code(ErrorCode::AccountDisabled),
            app::Error::RateLimited(decision) => AppError::RateLimited(decision),
            app::Error::QuotaExceeded(decision) => AppError::QuotaExceeded(decision),
            app::Error::NotAuthenticated => AppError::Code(ErrorCode::NotAuthenticated),
            app::Error::Token(TokenRejection::Expired) => AppError::Token {
                code: ErrorCode::TokenExpired,
                refresh: false,
            },
            app::Error::Token(TokenRejection::Invalid) => AppError::Token {
                code: ErrorCode::InvalidToken,
                refresh: false,
            },
            app::Error::CsrfFailed => AppError::Code(ErrorCode::CsrfFailed),
            app::Error::CrossSite => AppError::CrossSite,
            app::Error::NotFound => AppError::Code(ErrorCode::NotFound),
            app::Error::SessionRequired => AppError::Code(ErrorCode::SessionRequired),
            app::Error::EmailNotVerified => AppError::Code(ErrorCode::EmailNotVerified),
            app::Error::InvalidMailToken => AppError::Code(ErrorCode::InvalidLink),
            app::Error::MfaTokenInvalid => AppError::Code(ErrorCode::InvalidMfaToken),
            app::Error::PasskeyCeremonyInvalid => AppError::Code(ErrorCode::InvalidPasskeyCeremony),
            app::Error::PasskeyRefused => AppError::Code(ErrorCode::PasskeyRefused),
            app::Error::InvalidMfaCode { attempts_left } => AppError::InvalidMfaCode(attempts_left),
            app::Error::MfaAlreadyEnrolled => AppError::Code(ErrorCode::MfaAlreadyEnrolled),
            app::Error::MfaNotEnrolled => AppError::Code(ErrorCode::MfaNotEnrolled),
            app::Error::Conflict(field) => AppError::Conflict(field),
            app::Error::Unavailable { retry_after, reason } => AppError::Unavailable { retry_after, reason },
            app::Error::StorageUnavailable { fault, detail } => AppError::StorageUnavailable { fault, detail },
            app::Error::Internal(error) => AppError::Internal(error),
        }
    }
}

/// Retry-After of a `storage_unavailable` answer: freeing disk space takes an operator, so
/// clients back off longer than for a restarting dependency.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 30;

/// The error as attached to the response, for the language-aware renderer.
#[derive(Debug, Clone)]
pub struct RenderedError {
    /// The code.
    pub code: ErrorCode,
    /// Message key for a specific message; `None` uses the code's standard message.
    pub message_key: Option<&'static str>,
    /// Field problems (422).
    pub field_errors: Vec<FieldError>,
    /// Extra details (409 field, 429 limit, ...).
    pub details: Option<Value>,
}

impl RenderedError {
    /// A rendered error with the standard message and no details.
    pub fn plain(code: ErrorCode) -> RenderedError {
        RenderedError {
            code,
            message_key: None,
            field_errors: Vec::new(),
            details: None,
        }
    }

    /// The JSON body in `lang`.
    pub fn body(&self, lang: Lang) -> Value {
        let message = super::i18n::message(self.message_key.unwrap_or(self.code.as_str()), lang);
        let details = if self.field_errors.is_empty() {
            self.details.clone()
        } else {
            let errors: Vec<Value> = self
                .field_errors
                .iter()
                .map(|e| {
                    json!({
                        "field": e.field,
                        "code": e.code,
                        "message": super::i18n::field_message(e.code, &e.message, lang),
                    })
                })
                .collect();
            Some(json!({ "errors": errors }))
        };
        // 5xx never carry details: nothing internal leaks.
        let details = if self.code.status().is_server_error() && self.code != ErrorCode::ServiceUnavailable {
            None
        } else {
            details
        };
        json!({ "error": self.code.as_str(), "message": message, "details": details })
    }

    /// The whole response in `lang`, with the headers the code requires.
    pub fn into_response_in(self, lang: Lang) -> Response {
        let status = self.code.status();
        let body = self.body(lang);
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, www_authenticate(self.code, self.message_key));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// RFC 6750 section 3: `Bearer` always; `error="invalid_token"` and a description only when a
/// token was presented.
fn www_authenticate(code: ErrorCode, message_key: Option<&str>) -> HeaderValue {
    let value = match (code, message_key) {
        (_, Some(INVALID_REFRESH_TOKEN)) => {
            r#"Bearer realm="tessera", error="invalid_token", error_description="The refresh token is invalid""#
        }
        (_, Some(REFRESH_TOKEN_EXPIRED)) => {
            r#"Bearer realm="tessera", error="invalid_token", error_description="The refresh token expired""#
        }
        (code, _) => match code {
            ErrorCode::InvalidToken => {
                r#"Bearer realm="tessera", error="invalid_token", error_description="The access token is invalid""#
            }
            ErrorCode::TokenExpired => {
                r#"Bearer realm="tessera", error="invalid_token", error_description="The access token expired""#
            }
            _ => r#"Bearer realm="tessera""#,
        },
    };
    HeaderValue::from_static(value)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let mut storage_fault = None;
        let mut extra_headers = axum::http::HeaderMap::new();
        let rendered = match self {
            AppError::InvalidCredentials(limit) => {
                if let Some(decision) = limit {
                    extra_headers = super::limits::headers(&decision);
                }
                RenderedError::plain(ErrorCode::InvalidCredentials)
            }
            AppError::CrossSite => RenderedError {
                message_key: Some("cross_site_request"),
                ..RenderedError::plain(ErrorCode::CsrfFailed)
            },
            AppError::RateLimited(decision) => {
                extra_headers = super::limits::headers(&decision);
                RenderedError {
                    details: Some(json!({
                        "limit": decision.limit.to_string(),
                        "retry_after": decision.retry_after_secs,
                    })),
                    ..RenderedError::plain(ErrorCode::RateLimited)
                }
            }
            AppError::InsufficientScope(scope) => {
                // RFC 6750 section 3.1: the scope needed, in the challenge.
                if let Ok(value) = HeaderValue::from_str(&format!(
                    r#"Bearer realm="tessera", error="insufficient_scope", scope="{scope}""#
                )) {
                    extra_headers.insert(header::WWW_AUTHENTICATE, value);
                }
                RenderedError {
                    details: Some(json!({ "scope": scope.as_str() })),
                    ..RenderedError::plain(ErrorCode::InsufficientScope)
                }
            }
            AppError::MissingRole(role) => RenderedError {
                message_key: Some("missing_role"),
                details: Some(json!({ "role": role })),
                ..RenderedError::plain(ErrorCode::Forbidden)
            },
            AppError::QuotaExceeded(decision) => {
                retry_after = Some(decision.retry_after_secs);
                RenderedError {
                    details: Some(json!({
                        "quota": decision.limit.to_string(),
                        "reset_at": super::rfc3339(decision.reset_at),
                        "retry_after": decision.retry_after_secs,
                    })),
                    ..RenderedError::plain(ErrorCode::QuotaExceeded)
                }
            }
            AppError::InvalidMfaCode(attempts_left) => RenderedError {
                details: Some(json!({ "attempts_left": attempts_left })),
                ..RenderedError::plain(ErrorCode::InvalidMfaCode)
            },
            AppError::Code(code) => RenderedError::plain(code),
            AppError::Token { code, refresh: false } => RenderedError::plain(code),
            AppError::Token { code, refresh: true } => RenderedError {
                message_key: Some(if code == ErrorCode::TokenExpired {
                    REFRESH_TOKEN_EXPIRED
                } else {
                    INVALID_REFRESH_TOKEN
                }),
                ..RenderedError::plain(code)
            },
            AppError::BadRequest(key) => RenderedError {
                message_key: Some(key),
                ..RenderedError::plain(ErrorCode::BadRequest)
            },
            AppError::Validation(field_errors) => RenderedError {
                field_errors,
                ..RenderedError::plain(ErrorCode::ValidationError)
            },
            AppError::Conflict(field) => RenderedError {
                message_key: Some(match field {
                    "email" => "conflict_email",
                    "username" => "conflict_username",
                    _ => "conflict",
                }),
                details: Some(json!({ "field": field })),
                ..RenderedError::plain(ErrorCode::Conflict)
            },
            AppError::Unavailable {
                retry_after: secs,
                reason,
            } => {
                tracing::warn!(reason = %reason, "service unavailable");
                retry_after = Some(secs);
                RenderedError::plain(ErrorCode::ServiceUnavailable)
            }
            AppError::StorageUnavailable { fault, detail } => {
                tracing::error!(
                    event = "storage_unavailable",
                    fault = %fault,
                    cause = %detail,
                    "the database cannot store data"
                );
                retry_after = Some(STORAGE_RETRY_AFTER_SECS);
                storage_fault = Some(fault);
                RenderedError::plain(ErrorCode::StorageUnavailable)
            }
            AppError::Internal(error) => {
                tracing::error!(error = ?error, "internal error");
                RenderedError::plain(ErrorCode::InternalServerError)
            }
        };
        // Rendered in English here; the outer middleware re-renders for Chinese clients.
        let mut response = rendered.into_response_in(Lang::En);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.headers_mut().extend(extra_headers);
        // For the request metrics middleware: `tessera_storage_errors_total{kind}`.
        if let Some(fault) = storage_fault {
            response.extensions_mut().insert(fault);
        }
        response
    }
}

/// Result type of handlers.
pub type AppResult<T> = Result<T, AppError>;
