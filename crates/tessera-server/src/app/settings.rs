//! Account settings a signed-in person changes (C1): the password, for now.
//!
//! A password change needs the current password (a stolen access token alone cannot lock the
//! owner out), counts against the account's login limit (RATE_LIMIT_LOGIN_ACCOUNT: the current
//! password cannot be guessed faster through this route than through `/login`), and, in one
//! transaction with the new hash, ends every other session of the account: on every instance at
//! once through the denylist. The session that asked stays signed in; API keys are untouched
//! (they are revoked one by one, `DELETE /api-keys/{id}`).

use zeroize::Zeroizing;

use super::App;
use super::api_keys::Authenticated;
use super::error::{Error, FieldError, TokenRejection};
use super::login::MAX_PASSWORD_BYTES;
use tessera_core::password::Verification;

/// `POST /account/password`.
pub struct PasswordChange {
    /// The password the account has now.
    pub current: Zeroizing<String>,
    /// The new one; the password policy applies.
    pub new: Zeroizing<String>,
}

impl App {
    /// Changes the caller's password; returns how many other sessions were ended. Only a
    /// person's session may (an API key gets [`Error::SessionRequired`]).
    pub async fn change_password(
        &self,
        caller: &Authenticated,
        change: PasswordChange,
        ip: &str,
    ) -> Result<usize, Error> {
        let claims = &caller.claims;
        if caller.api_key_id.is_some() || claims.sid.is_empty() {
            return Err(Error::SessionRequired);
        }
        let user_id = claims.user_id;
        for (field, value) in [("current_password", &change.current), ("new_password", &change.new)] {
            if value.len() > MAX_PASSWORD_BYTES {
                return Err(Error::Validation(vec![FieldError::new(field, "too_long", "too long")]));
            }
        }
        self.enforce_limit(
            "login_account",
            &format!("id:{user_id}"),
            &self.config.rate_limit_login_account,
            ip,
        )
        .await?;
        let user = self
            .users
            .find_by_id(user_id)
            .await?
            .ok_or(Error::Token(TokenRejection::Invalid))?;
        if user.disabled_at.is_some() {
            return Err(Error::AccountDisabled);
        }
        if let Err(violations) = self.accounts.policy().check(&change.new, &user.email, &user.username) {
            return Err(Error::Validation(
                violations
                    .iter()
                    .map(|v| FieldError::new("new_password", v.code(), v.to_string()))
                    .collect(),
            ));
        }
        // A service account has no password: checked against the dummy hash, refused alike.
        let stored = (!user.service_account).then(|| user.password_hash.clone());
        let verification = self
            .accounts
            .hashing()
            .verify(change.current, stored)
            .await
            .map_err(|e| self.hashing_error(e))?;
        if !matches!(verification, Verification::Valid { .. }) || user.service_account {
            tracing::warn!(event = "password_change_failed", user_id, ip_address = %ip, reason = "wrong_password", "password change refused: wrong current password");
            return Err(Error::Validation(vec![FieldError::new(
                "current_password",
                "incorrect_password",
                "the current password is not correct",
            )]));
        }
        let hash = self
            .accounts
            .hashing()
            .hash(change.new)
            .await
            .map_err(|e| self.hashing_error(e))?;
        let now = self.clock.now();
        let revoked = self
            .users
            .change_password(user_id, &hash, Some(&claims.sid), now)
            .await?
            .ok_or(Error::AccountDisabled)?;
        self.deny_sessions(revoked.iter().map(String::as_str), now);
        tracing::info!(event = "password_changed", user_id, ip_address = %ip, sessions_revoked = revoked.len(), "password changed; other sessions ended");
        Ok(revoked.len())
    }
}
