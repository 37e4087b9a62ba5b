//! The typed outcomes of the application services: what went wrong, in domain terms. The HTTP
//! layer maps each variant to a status and error code in one place (`http::error`); the CLI
//! maps them to messages and exit codes.

use tessera_core::limits::Decision;
use tessera_core::store::{StorageFault, StoreError};

use crate::hashing::HashError;

/// One field problem of a refused input (`details.errors` of a 422 on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field (`password`, `email`, ...).
    pub field: String,
    /// A stable code (`password_too_short`, `missing`, ...).
    pub code: &'static str,
    /// The English message; the HTTP layer translates known codes.
    pub message: String,
}

impl FieldError {
    /// A field problem.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Well formed and authentic, but past its `exp`.
    Expired,
    /// Anything else: bad signature, unknown key, wrong type, revoked, spent.
    Invalid,
}

/// Why a service refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule; one entry per problem.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    /// Login failed: unknown account or wrong password (the same answer for both). The limit
    /// decision that counted the attempt travels along for the `X-RateLimit-*` headers.
    #[error("invalid credentials")]
    InvalidCredentials {
        /// The per-IP/per-account decision of this attempt.
        limit: Option<Decision>,
    },
    /// The account is disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// Over a rate limit.
    #[error("rate limited")]
    RateLimited(Decision),
    /// An API key used up its quota (G3); the decision says when it resets.
    #[error("quota exceeded")]
    QuotaExceeded(Decision),
    /// No credentials were presented.
    #[error("not authenticated")]
    NotAuthenticated,
    /// A presented token was refused.
    #[error("token rejected")]
    Token(TokenRejection),
    /// A cookie-authenticated unsafe request without the session's CSRF token.
    #[error("csrf check failed")]
    CsrfFailed,
    /// A cookie-setting request from another site (login CSRF).
    #[error("cross-site request refused")]
    CrossSite,
    /// The action needs a person's signed-in session, not an API key (a password change).
    #[error("session required")]
    SessionRequired,
    /// Login before the address is verified (EMAIL_VERIFICATION=required).
    #[error("email not verified")]
    EmailNotVerified,
    /// A mailed link's token is unknown, used or expired.
    #[error("invalid mail token")]
    InvalidMailToken,
    /// An `mfa_token` is unknown, used, expired or out of attempts (C3): sign in again.
    #[error("invalid mfa token")]
    MfaTokenInvalid,
    /// A wrong (or replayed) second-factor code at login; the token allows `attempts_left` more.
    #[error("invalid mfa code")]
    InvalidMfaCode {
        /// Codes the challenge still accepts.
        attempts_left: i64,
    },
    /// A passkey `ceremony_id` is unknown, used, expired or belongs to another flow (C3).
    #[error("invalid passkey ceremony")]
    PasskeyCeremonyInvalid,
    /// A passkey answer was refused (unknown credential, signature, origin, challenge, counter).
    #[error("passkey refused")]
    PasskeyRefused,
    /// A TOTP factor is enrolled already (remove it before enrolling again).
    #[error("mfa already enrolled")]
    MfaAlreadyEnrolled,
    /// The action needs a TOTP factor (pending for a confirmation, confirmed for new recovery
    /// codes) that the account does not have.
    #[error("mfa not enrolled")]
    MfaNotEnrolled,
    /// Nothing of that id belongs to the caller.
    #[error("not found")]
    NotFound,
    /// The email or username is taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A dependency is down or the server sheds load; retry after `retry_after` seconds.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Seconds after which a retry makes sense.
        retry_after: u64,
        /// For the log only.
        reason: String,
    },
    /// The database answers but cannot store data (disk full, read-only, I/O error): nothing
    /// was stored.
    #[error("storage unavailable ({fault}): {detail}")]
    StorageUnavailable {
        /// What is wrong with the storage.
        fault: StorageFault,
        /// For the log only.
        detail: String,
    },
    /// A fault; logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        match error {
            StoreError::Conflict(field) => Error::Conflict(field),
            StoreError::Unavailable(reason) => Error::Unavailable { retry_after: 5, reason },
            StoreError::StorageUnavailable { fault, detail } => Error::StorageUnavailable { fault, detail },
            StoreError::Internal(reason) => Error::Internal(anyhow::anyhow!(reason)),
        }
    }
}

impl From<HashError> for Error {
    fn from(error: HashError) -> Error {
        match error {
            // B8: shed load instead of queueing without bound.
            HashError::Busy => Error::Unavailable {
                retry_after: 1,
                reason: "password hashing queue full".into(),
            },
            HashError::Failed(reason) => Error::Internal(anyhow::anyhow!(reason)),
        }
    }
}

/// Result of a service call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
