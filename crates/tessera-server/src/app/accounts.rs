//! Accounts: the rules, the hashing and the insert that POST /register and `tessera users
//! create` share (so an operator cannot create an account the API would refuse, and both hash
//! with the same argon2id parameters), and the operator's disable, enable and list, which the
//! CLI runs through the same [`Accounts`] service.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::identity::{Email, IdentityError, Username};
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

/// Every rule the new account's email, username and password break; on success the email and
/// username in their normalised forms (issue #13 finding 6: NFKC + case folding, invisible and
/// control characters refused, no mixed-script local parts), which is what gets stored.
pub fn check_new_account(
    policy: &PasswordPolicy,
    email: &str,
    username: &str,
    password: &str,
) -> Result<(Email, Username), Vec<FieldError>> {
    let mut errors = Vec::new();
    let email = Email::parse(email)
        .inspect_err(|error| errors.push(identity_error("email", error)))
        .ok();
    let username = Username::parse(username)
        .inspect_err(|error| errors.push(identity_error("username", error)))
        .ok();
    let (email_text, username_text) = (
        email.as_ref().map_or("", Email::as_str),
        username.as_ref().map_or("", Username::as_str),
    );
    if let Err(violations) = policy.check(password, email_text, username_text) {
        errors.extend(
            violations
                .iter()
                .map(|v| FieldError::new("password", v.code(), v.to_string())),
        );
    }
    match (email, username) {
        (Some(email), Some(username)) if errors.is_empty() => Ok((email, username)),
        _ => Err(errors),
    }
}

/// A refused email or username as a field problem.
fn identity_error(field: &str, error: &IdentityError) -> FieldError {
    // An empty value is simply not a valid address or name (the codes clients already know).
    let code = match (error, field) {
        (IdentityError::Empty, "email") => "invalid_email",
        (IdentityError::Empty, _) => "invalid_username",
        _ => error.code(),
    };
    let message = match code {
        "invalid_email" => "not a valid email address".to_owned(),
        "invalid_username" => "must be 3 to 32 letters, digits, dots, underscores or hyphens".to_owned(),
        _ => error.to_string(),
    };
    FieldError::new(field, code, message)
}

/// The form a login (email or username) is looked up by: an email in its normalised form, so
/// `ＡＤＡ@example.com` finds `ada@example.com`; anything else as typed (the store compares
/// case-insensitively).
pub fn login_lookup_key(login: &str) -> String {
    if login.contains('@')
        && let Ok(email) = Email::parse(login)
    {
        return email.into_string();
    }
    login.trim().to_owned()
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

    /// The password policy (a password change applies it too).
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// The hashing pool (login verifies on it too).
    pub fn hashing(&self) -> &HashPool {
        &self.hashing
    }

    /// Checks the account data, hashes the password (argon2id, on the bounded hashing pool)
    /// and inserts the account. `email` and `username` are taken as given: callers trim them.
    pub async fn create(&self, email: &str, username: &str, password: Zeroizing<String>) -> Result<User, CreateError> {
        let (normalized, username) =
            check_new_account(&self.policy, email, username, &password).map_err(CreateError::Invalid)?;
        let password_hash = self.hashing.hash(password).await.map_err(CreateError::Hashing)?;
        self.users
            .create(NewUser {
                // Shown back as typed; unique and looked up in its normal form.
                email: email.trim().to_owned(),
                email_normalized: normalized.into_string(),
                username: username.as_str().to_owned(),
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

    /// Grants a role (G4). Returns the account and whether it changed (false: already held).
    /// The role reaches the account's access tokens at their next refresh or login.
    pub async fn add_role(&self, who: &str, role: &str, source: &str) -> Result<(User, bool), OperatorError> {
        if !tessera_core::scope::is_valid_role(role) {
            return Err(OperatorError::Refused(format!(
                "{role:?} is not a role name: 1 to {} characters of a-z, 0-9, '_', '-', '.', ':'",
                tessera_core::scope::MAX_ROLE_LEN
            )));
        }
        let user = self.find(who).await?;
        let added = self.users.add_role(user.id, role, self.clock.now()).await?;
        if added {
            tracing::info!(
                event = "role_added",
                user_id = user.id,
                role,
                source,
                "role granted by an operator"
            );
        }
        Ok((user, added))
    }

    /// Takes a role away. Returns the account and whether it changed (false: not held).
    pub async fn remove_role(&self, who: &str, role: &str, source: &str) -> Result<(User, bool), OperatorError> {
        let user = self.find(who).await?;
        let removed = self.users.remove_role(user.id, role).await?;
        if removed {
            tracing::info!(
                event = "role_removed",
                user_id = user.id,
                role,
                source,
                "role taken away by an operator"
            );
        }
        Ok((user, removed))
    }

    /// The account and its roles.
    pub async fn roles(&self, who: &str) -> Result<(User, Vec<String>), OperatorError> {
        let user = self.find(who).await?;
        let roles = self.users.roles(user.id).await?;
        Ok((user, roles))
    }

    /// Brings the normal form of stored emails up to date (accounts created before
    /// normalisation were stored lower-cased only): a row whose email normalises to a form no
    /// account holds gets it; a row whose email no longer parses, or whose normal form another
    /// account already has, is left as it is and logged for the operator. Returns how many
    /// rows changed.
    pub async fn normalize_stored_emails(&self) -> Result<usize, StoreError> {
        const PAGE: i64 = 500;
        let mut changed = 0;
        let mut offset = 0;
        loop {
            let page = self.users.list(PAGE, offset).await?;
            for user in &page {
                let normalized = match Email::parse(&user.email) {
                    // Plain ASCII addresses normalise to their lower case, which is what was
                    // stored before: nothing to look up.
                    Ok(email) if email.as_str() == user.email.to_lowercase() => continue,
                    Ok(email) => email.into_string(),
                    Err(error) => {
                        tracing::warn!(event = "email_not_normalizable", user_id = user.id, reason = %error, "a stored email breaks the current rules; left as it is");
                        continue;
                    }
                };
                match self.users.find_by_normalized_email(&normalized).await? {
                    Some(holder) if holder.id == user.id => continue,
                    Some(holder) => {
                        tracing::warn!(
                            event = "email_normalization_conflict",
                            user_id = user.id,
                            other_user_id = holder.id,
                            "the normalised email belongs to another account; left as it is"
                        );
                        continue;
                    }
                    None => {}
                }
                match self.users.update_email(user.id, &user.email, &normalized).await {
                    Ok(true) => changed += 1,
                    Ok(false) => {}
                    Err(StoreError::Conflict(_)) => {
                        tracing::warn!(
                            event = "email_normalization_conflict",
                            user_id = user.id,
                            "the normalised email belongs to another account; left as it is"
                        );
                    }
                    Err(error) => return Err(error),
                }
            }
            if (page.len() as i64) < PAGE {
                break;
            }
            offset += PAGE;
        }
        if changed > 0 {
            tracing::info!(
                event = "emails_normalized",
                accounts = changed,
                "stored emails brought to their normal form"
            );
        }
        Ok(changed)
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

    fn check(email: &str, username: &str) -> Result<(Email, Username), Vec<FieldError>> {
        check_new_account(
            &PasswordPolicy::default(),
            email,
            username,
            "correct horse battery staple",
        )
    }

    #[test]
    fn email_check_accepts_plain_addresses_only() {
        for good in ["a@example.com", "first.last+tag@sub.example.co"] {
            assert!(check(good, "alice").is_ok(), "{good}");
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
            let errors = check(bad, "alice").unwrap_err();
            assert_eq!(errors[0].field, "email", "{bad}");
        }
    }

    #[test]
    fn username_check_allows_a_safe_alphabet() {
        assert!(check("a@example.com", "alice_01").is_ok());
        for bad in ["al", "alice smith", &"a".repeat(33), "<script>"] {
            let errors = check("a@example.com", bad).unwrap_err();
            assert_eq!(errors[0].code, "invalid_username", "{bad}");
        }
    }

    #[test]
    fn look_alike_emails_are_normalised_or_refused() {
        // Fullwidth letters fold to the same account.
        let (email, _) = check("\u{FF21}DA@Example.com", "alice").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
        // A Cyrillic a among Latin letters is refused, and so is a zero-width joiner.
        assert_eq!(
            check("\u{0430}da@example.com", "alice").unwrap_err()[0].code,
            "mixed_script"
        );
        assert_eq!(
            check("a\u{200D}da@example.com", "alice").unwrap_err()[0].code,
            "invisible_character"
        );
    }

    #[test]
    fn logins_are_looked_up_in_normal_form() {
        assert_eq!(login_lookup_key("\u{FF21}DA@example.com"), "ada@example.com");
        assert_eq!(login_lookup_key(" Alice "), "Alice");
        assert_eq!(login_lookup_key("not@valid@x"), "not@valid@x");
    }
}
