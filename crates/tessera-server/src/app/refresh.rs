//! Refresh (B2): rotation with reuse detection and a grace window for concurrent tabs, in one
//! conditional statement on the SQL stores that also checks the account.

use tessera_core::jwt::Claims;
use tessera_core::store::{RefreshRotation, Rotation, RotationOutcome};

use super::App;
use super::authenticate::reject_token;
use super::error::{Error, TokenRejection};
use super::login::SessionTokens;

/// Where the refresh token came from: a browser's cookie must come with the session's CSRF
/// token (S2); a token in a JSON body needs none.
pub enum RefreshSource<'a> {
    /// The JSON body.
    Body,
    /// The refresh cookie, with the `X-CSRF-Token` header's value (empty when missing).
    Cookie {
        /// The presented CSRF token.
        csrf: &'a str,
    },
}

impl App {
    /// Verifies a refresh token (signature, claims, type), logging a refusal.
    pub fn check_refresh_token(&self, token: &str, ip: &str) -> Result<Claims, Error> {
        self.verify_refresh(token, self.clock.now())
            .map_err(|e| reject_token(&e, token, ip))
    }

    /// Exchanges a refresh token for a new token pair.
    pub async fn refresh(&self, token: &str, source: RefreshSource<'_>, ip: &str) -> Result<SessionTokens, Error> {
        let now = self.clock.now();
        let claims = self.check_refresh_token(token, ip)?;
        if let RefreshSource::Cookie { csrf } = source {
            self.check_csrf(&claims.sid, csrf, ip)?;
        }
        let new_jti = super::random_id();
        let new_expires_at = now + self.config.refresh_ttl_secs;
        let rotation = Rotation {
            session_id: &claims.sid,
            presented_jti: &claims.jti,
            new_jti: &new_jti,
            now,
            new_expires_at,
            grace_secs: self.config.refresh_reuse_grace_secs,
        };
        let invalid = Error::Token(TokenRejection::Invalid);
        // The account check and the rotation, in one statement on the SQL stores.
        let (username, outcome) = match self
            .sessions
            .rotate_for_refresh(self.users.as_ref(), claims.user_id, rotation)
            .await?
        {
            RefreshRotation::Attempted { username, outcome } => (username, outcome),
            RefreshRotation::AccountInactive => {
                // The account is gone or disabled: end the session with it.
                self.sessions.revoke(claims.user_id, &claims.sid, now).await?;
                self.deny_sessions([claims.sid.as_str()], now);
                return Err(invalid);
            }
        };
        let user_id = claims.user_id;
        let (refresh_token, kind) = match outcome {
            RotationOutcome::Rotated(_) => (
                self.issue_refresh(user_id, &username, &claims.sid, &new_jti, now, new_expires_at),
                "rotated",
            ),
            // A concurrent refresh already rotated this token moments ago: hand back the token
            // it received (same jti, same times, same bytes), so one chain stays live (B2).
            RotationOutcome::WithinGrace(session) => (
                self.issue_refresh(
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
                self.deny_sessions([claims.sid.as_str()], now);
                self.metrics.refresh_reuse.inc();
                tracing::warn!(
                    event = "refresh_reuse_detected",
                    user_id = user_id,
                    session_id = %claims.sid,
                    ip_address = %ip,
                    "a spent refresh token was presented again; the whole session family is revoked"
                );
                return Err(invalid);
            }
            RotationOutcome::Invalid => {
                tracing::warn!(event = "invalid_token", ip_address = %ip, user_id = user_id, reason = "session revoked or expired", "refresh refused");
                return Err(invalid);
            }
        };
        let refresh_token = refresh_token.map_err(anyhow::Error::from)?;
        // Roles are read again at every refresh: a granted or removed role reaches the access
        // tokens within one access lifetime.
        let roles = self.users.roles(user_id).await?;
        let access = self
            .issue_access(user_id, &username, roles, &claims.sid, now)
            .map_err(anyhow::Error::from)?;
        self.metrics.token_refresh.inc();
        tracing::info!(event = "token_refresh", user_id = user_id, ip_address = %ip, rotation = kind, "tokens refreshed");
        Ok(SessionTokens {
            access_token: access.token,
            refresh_token,
            csrf_token: self.csrf_token(&claims.sid),
            session_id: claims.sid,
            limit: None,
        })
    }
}
