//! Who is calling (S1, S2, B3): an access token is checked from its claims alone (S9: no
//! database), then against the denylist; a cookie-authenticated unsafe request must also carry
//! the CSRF token derived from its session id. Where the token comes from (header or cookie) is
//! the HTTP layer's business; what it is worth is decided here.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tessera_core::jwt::{Claims, TokenError};
use tessera_core::store::Denylist;

use super::App;
use super::error::{Error, TokenRejection};

/// A short, non-secret fingerprint of a token for logs: never the token itself.
pub fn token_fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    format!(
        "sha256:{}",
        digest[..6].iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Maps a token error to the refusal, logging it as the security event it is.
pub fn reject_token(error: &TokenError, token: &str, ip: &str) -> Error {
    if let TokenError::Expired { user_id } = error {
        tracing::info!(
            event = "token_expired",
            user_id,
            ip_address = %ip,
            token_prefix = %token_fingerprint(token),
            "token expired"
        );
        Error::Token(TokenRejection::Expired)
    } else {
        tracing::warn!(
            event = "invalid_token",
            ip_address = %ip,
            token_prefix = %token_fingerprint(token),
            reason = %error,
            "invalid token"
        );
        Error::Token(TokenRejection::Invalid)
    }
}

impl App {
    /// Checks an access token: signature and claims (through the token cache), then the
    /// denylist. Counts the verification and logs a refusal.
    pub async fn authenticate(&self, token: &str, ip: &str) -> Result<Arc<Claims>, Error> {
        let now = self.clock.now();
        let claims = self.verify_access(token, now).await.map_err(|e| {
            let result = if e.is_expired() { "expired" } else { "invalid" };
            self.metrics.token_verifications.with_label_values(&[result]).inc();
            reject_token(&e, token, ip)
        })?;
        if self.denylist.is_revoked(&claims.jti, &claims.sid, now) {
            self.metrics.token_verifications.with_label_values(&["revoked"]).inc();
            tracing::warn!(
                event = "invalid_token",
                ip_address = %ip,
                user_id = claims.user_id,
                token_prefix = %token_fingerprint(token),
                reason = "revoked",
                "revoked token presented"
            );
            return Err(Error::Token(TokenRejection::Invalid));
        }
        self.metrics.token_valid.inc();
        Ok(claims)
    }

    /// Checks the CSRF token presented with a cookie-authenticated unsafe request against the
    /// session's (S2). `presented` is empty when the header is missing.
    pub fn check_csrf(&self, session_id: &str, presented: &str, ip: &str) -> Result<(), Error> {
        if self.keys.csrf.verify(session_id, presented) {
            Ok(())
        } else {
            self.metrics.csrf_failures.inc();
            tracing::warn!(
                event = "csrf_failure",
                ip_address = %ip,
                reason = if presented.is_empty() { "missing" } else { "mismatch" },
                "cookie-authenticated request without a valid CSRF token"
            );
            Err(Error::CsrfFailed)
        }
    }

    /// The CSRF token of a session.
    pub fn csrf_token(&self, session_id: &str) -> String {
        self.keys.csrf.token_for(session_id)
    }
}
