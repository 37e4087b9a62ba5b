//! Accounts: the rules, the hashing and the insert that POST /register and `tessera users
//! create` share (so an operator cannot create an account the API would refuse, and both hash
//! with the same argon2id parameters), and the operator's disable, enable and list, which the
//! CLI runs through the same [`Accounts`] service.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::limits::Decision;
use tessera_core::password::PasswordPolicy;
use tessera_core::store::{NewUser, SessionStore, StoreError, User, UserStore};
use zeroize::Zeroizing;

use super::App;
use super::error::{Error, FieldError};
use crate::clock::SharedClock;
use crate::hashing::{HashError, HashPool};

/// Why an account was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The email, username or password breaks a rule; one entry per problem.
    #[error("invalid account data")]
    Invalid(Vec<FieldError>),
    /// The password could not be hashed (queue full, pool stopped).
    #[error(transparent)]
    Hashing(HashError),
    /// The store refused: [`StoreError::Conflict`] names a taken email or username.
    #[error(transparent)]
    Store(StoreError),
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces,
/// at most 254 characters. Deliverability is not Tessera's concern.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// 3 to 32 characters of letters, digits, `.`, `_` and `-`.
pub fn is_valid_username(username: &str) -> bool {
    (3..=32).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Every rule the new account's (trimmed) email, username and password break.
pub fn check_new_account(
    policy: &PasswordPolicy,
    email: &str,
    username: &str,
    password: &str,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if !is_valid_email(email) {
        errors.push(FieldError::new("email", "invalid_email", "not a valid email address"));
    }
    if !is_valid_username(username) {
        errors.push(FieldError::new(
            "username",
            "invalid_username",
            "must be 3 to 32 letters, digits, dots, underscores or hyphens",
        ));
    }
    if let Err(violations) = policy.check(password, email, username) {
        errors.extend(
            violations
                .iter()
                .map(|v| FieldError::new("password", v.code(), v.to_string())),
        );
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The account service: what registration and the operator commands share.
pub struct Accounts {
    /// Accounts.
    pub users: Arc<dyn UserStore>,
    /// Sessions (ended when an account is disabled).
    pub sessions: Arc<dyn SessionStore>,
    hashing: HashPool,
    policy: PasswordPolicy,
    clock: SharedClock,
    /// How long after a revocation the sessions' access tokens must still be refused: the
    /// access lifetime plus the leeway.
    denial_secs: i64,
}

/// Tells running instances that sessions were revoked (the server's denylist, or the CLI's
/// Redis publication). Returns how the news travels, for the operator.
#[async_trait]
pub trait RevocationNotice: Send + Sync {
    /// `session_ids` were revoked; their access tokens must be refused until `until`.
    async fn sessions_revoked(&self, session_ids: &[String], until: i64) -> String;
}

/// What disabling an account did.
#[derive(Debug)]
pub struct Disabled {
    /// The account.
    pub user: User,
    /// Set when the account was already disabled (since then).
    pub already_since: Option<i64>,
    /// Sessions ended now.
    pub revoked: Vec<String>,
    /// How instances learn of it.
    pub delivery: String,
}

/// An operator command that could not be carried out, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// No account or an ambiguous name.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Accounts {
    /// The service over these stores.
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        hashing: HashPool,
        policy: PasswordPolicy,
        clock: SharedClock,
        denial_secs: i64,
    ) -> Accounts {
        Accounts {
            users,
            sessions,
            hashing,
            policy,
            clock,
            denial_secs,
        }
    }

    /// The hashing pool (login verifies on it too).
    pub fn hashing(&self) -> &HashPool {
        &self.hashing
    }

    /// Checks the account data, hashes the password (argon2id, on the bounded hashing pool)
    /// and inserts the account. `email` and `username` are taken as given: callers trim them.
    pub async fn create(&self, email: &str, username: &str, password: Zeroizing<String>) -> Result<User, CreateError> {
        check_new_account(&self.policy, email, username, &password).map_err(CreateError::Invalid)?;
        let password_hash = self.hashing.hash(password).await.map_err(CreateError::Hashing)?;
        self.users
            .create(NewUser {
                email: email.to_owned(),
                username: username.to_owned(),
                password_hash,
                created_at: self.clock.now(),
            })
            .await
            .map_err(CreateError::Store)
    }

    /// Finds the account an operator named by email, username or numeric id. A number that is
    /// both one account's id and another's username is refused as ambiguous.
    pub async fn find(&self, who: &str) -> Result<User, OperatorError> {
        let who = who.trim();
        let by_login = self.users.find_by_login(who).await?;
        let by_id = match who.parse::<i64>() {
            Ok(id) => self.users.find_by_id(id).await?,
            Err(_) => None,
        };
        match (by_id, by_login) {
            (Some(a), Some(b)) if a.id != b.id => Err(OperatorError::Refused(format!(
                "{who:?} is the id of user {} and the username of user {}; name the account by its email",
                a.id, b.id
            ))),
            (Some(user), _) | (None, Some(user)) => Ok(user),
            (None, None) => Err(OperatorError::Refused(format!(
                "no account with email, username or id {who:?}"
            ))),
        }
    }

    /// Disables an account and ends its sessions everywhere (B3, B13).
    pub async fn disable(
        &self,
        who: &str,
        notice: &dyn RevocationNotice,
        source: &str,
    ) -> Result<Disabled, OperatorError> {
        let user = self.find(who).await?;
        let now = self.clock.now();
        // Disabled first, then the sessions revoked: from here on a login or a refresh of this
        // account is refused, and a session insert is conditional on the account being
        // enabled, so no new session can appear after the revocation.
        if user.disabled_at.is_none() && !self.users.set_disabled(user.id, Some(now)).await? {
            return Err(OperatorError::Refused(format!(
                "user {} was deleted meanwhile",
                user.id
            )));
        }
        let revoked = self.sessions.revoke_all(user.id, now).await?;
        let delivery = notice.sessions_revoked(&revoked, now + self.denial_secs).await;
        tracing::info!(
            event = "user_disabled",
            user_id = user.id,
            sessions_revoked = revoked.len(),
            source,
            "account disabled by an operator"
        );
        Ok(Disabled {
            already_since: user.disabled_at,
            user,
            revoked,
            delivery,
        })
    }

    /// Re-enables a disabled account. Returns the account and whether it was disabled.
    pub async fn enable(&self, who: &str, source: &str) -> Result<(User, bool), OperatorError> {
        let user = self.find(who).await?;
        if user.disabled_at.is_none() {
            return Ok((user, false));
        }
        if !self.users.set_disabled(user.id, None).await? {
            return Err(OperatorError::Refused(format!(
                "user {} was deleted meanwhile",
                user.id
            )));
        }
        tracing::info!(
            event = "user_enabled",
            user_id = user.id,
            source,
            "account enabled by an operator"
        );
        Ok((user, true))
    }
}

/// `POST /register`'s input, trimmed and checked for presence by the caller.
pub struct Registration {
    /// Email address.
    pub email: String,
    /// Username.
    pub username: String,
    /// Password.
    pub password: Zeroizing<String>,
}

impl App {
    /// Registers an account: the per-IP registration limit, then the account rules, hashing
    /// and insert shared with `tessera users create`.
    pub async fn register(&self, registration: Registration, ip: &str) -> Result<(User, Decision), Error> {
        let decision = self
            .enforce_limit("register", ip, &self.config.rate_limit_register, ip)
            .await?;
        let user = self
            .accounts
            .create(&registration.email, &registration.username, registration.password)
            .await
            .map_err(|error| match error {
                CreateError::Invalid(errors) => Error::Validation(errors),
                CreateError::Hashing(error) => self.hashing_error(error),
                CreateError::Store(error) => Error::from(error),
            })?;
        tracing::info!(event = "register", user_id = user.id, username = %user.username, ip_address = %ip, "account registered");
        Ok((user, decision))
    }

    /// A hashing failure as the service's error, counting shed load (B8).
    pub(crate) fn hashing_error(&self, error: HashError) -> Error {
        if matches!(error, HashError::Busy) {
            self.metrics.hash_rejected.inc();
        }
        Error::from(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_check_accepts_plain_addresses_only() {
        for good in ["a@example.com", "first.last+tag@sub.example.co"] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@example.com",
            "a@@example.com",
            "a b@example.com",
            "a@.com",
            "a@example.",
            "a@exa mple.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn username_check_allows_a_safe_alphabet() {
        assert!(is_valid_username("alice_01"));
        assert!(!is_valid_username("al"));
        assert!(!is_valid_username("alice smith"));
        assert!(!is_valid_username(&"a".repeat(33)));
        assert!(!is_valid_username("<script>"));
    }
}
