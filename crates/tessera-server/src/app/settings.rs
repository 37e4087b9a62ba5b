//! Account settings a signed-in person changes (C1): the password, and deleting the account.
//!
//! A password change needs the current password (a stolen access token alone cannot lock the
//! owner out), counts against the account's login limit (RATE_LIMIT_LOGIN_ACCOUNT: the current
//! password cannot be guessed faster through this route than through `/login`), and, in one
//! transaction with the new hash, ends every other session of the account: on every instance at
//! once through the denylist. The session that asked stays signed in; API keys are untouched
//! (they are revoked one by one, `DELETE /api-keys/{id}`).
//!
//! Deleting the account also asks for the password; the account and everything that hangs on it
//! (sessions, API keys, roles) go in one transaction, and the credentials are refused at once on
//! every instance (denylist and key cache over Redis; a tombstone of their ids for instances that
//! poll the database).

use tessera_core::password::Verification;
use tessera_core::store::{DeletedAccount, User};
use zeroize::Zeroizing;

use super::App;
use super::api_keys::Authenticated;
use super::error::{Error, FieldError, TokenRejection};
use super::login::MAX_PASSWORD_BYTES;

/// `POST /account/password`.
pub struct PasswordChange {
    /// The password the account has now.
    pub current: Zeroizing<String>,
    /// The new one; the password policy applies.
    pub new: Zeroizing<String>,
}

impl App {
    /// Checks that `caller` is a person's session and that `password` is the account's: the
    /// re-authentication a password change and an account deletion ask for, counted against
    /// the account's login limit. `field` names the password field in a refusal.
    pub(super) async fn reauthenticate(
        &self,
        caller: &Authenticated,
        password: Zeroizing<String>,
        field: &'static str,
        action: &'static str,
        ip: &str,
    ) -> Result<User, Error> {
        let claims = &caller.claims;
        if caller.api_key_id.is_some() || claims.sid.is_empty() {
            return Err(Error::SessionRequired);
        }
        let user_id = claims.user_id;
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::Validation(vec![FieldError::new(field, "too_long", "too long")]));
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
        // A service account has no password: checked against the dummy hash, refused alike.
        let stored = (!user.service_account).then(|| user.password_hash.clone());
        let verification = self
            .accounts
            .hashing()
            .verify(password, stored)
            .await
            .map_err(|e| self.hashing_error(e))?;
        if !matches!(verification, Verification::Valid { .. }) || user.service_account {
            tracing::warn!(event = "reauthentication_failed", user_id, action, ip_address = %ip, reason = "wrong_password", "wrong password given to confirm an account change");
            return Err(Error::Validation(vec![FieldError::new(
                field,
                "incorrect_password",
                "the password is not correct",
            )]));
        }
        Ok(user)
    }

    /// Changes the caller's password; returns how many other sessions were ended. Only a
    /// person's session may (an API key gets [`Error::SessionRequired`]).
    pub async fn change_password(
        &self,
        caller: &Authenticated,
        change: PasswordChange,
        ip: &str,
    ) -> Result<usize, Error> {
        if change.new.len() > MAX_PASSWORD_BYTES {
            return Err(Error::Validation(vec![FieldError::new(
                "new_password",
                "too_long",
                "too long",
            )]));
        }
        let user = self
            .reauthenticate(caller, change.current, "current_password", "password_change", ip)
            .await?;
        if let Err(violations) = self.accounts.policy().check(&change.new, &user.email, &user.username) {
            return Err(Error::Validation(
                violations
                    .iter()
                    .map(|v| FieldError::new("new_password", v.code(), v.to_string()))
                    .collect(),
            ));
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
            .change_password(user.id, &hash, Some(&caller.claims.sid), now)
            .await?
            .ok_or(Error::AccountDisabled)?;
        self.deny_sessions(revoked.iter().map(String::as_str), now);
        tracing::info!(event = "password_changed", user_id = user.id, ip_address = %ip, sessions_revoked = revoked.len(), "password changed; other sessions ended");
        Ok(revoked.len())
    }

    /// Deletes the caller's account after checking its password: the account, its sessions,
    /// API keys and roles, in one transaction; every credential refused at once everywhere.
    pub async fn delete_account(
        &self,
        caller: &Authenticated,
        password: Zeroizing<String>,
        ip: &str,
    ) -> Result<DeletedAccount, Error> {
        let user = self
            .reauthenticate(caller, password, "password", "account_deletion", ip)
            .await?;
        let now = self.clock.now();
        // Tombstones outlive every token they could refuse: refresh tokens live longest.
        let purge_before = now - self.config.refresh_ttl_secs.max(self.config.access_ttl_secs) - 86_400;
        let deleted = self
            .users
            .delete_account(user.id, now, purge_before)
            .await?
            .ok_or(Error::Token(TokenRejection::Invalid))?;
        self.deny_sessions(
            deleted
                .sessions
                .iter()
                .map(String::as_str)
                .chain([caller.claims.sid.as_str()]),
            now,
        );
        for key in &deleted.api_keys {
            self.denylist.revoke_api_key(key);
        }
        self.profiles.forget(user.id);
        tracing::info!(
            event = "account_deleted",
            user_id = user.id,
            ip_address = %ip,
            sessions_revoked = deleted.sessions.len(),
            api_keys_deleted = deleted.api_keys.len(),
            "account deleted by its owner"
        );
        Ok(deleted)
    }
}
