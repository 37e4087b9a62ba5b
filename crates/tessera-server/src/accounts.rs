//! Creating an account: the rules, the hashing and the insert that POST /register and
//! `tessera users create` share, so an operator cannot create an account the API would refuse
//! (a weak password, a malformed email) and both hash with the same argon2id parameters.

use tessera_core::password::PasswordPolicy;
use tessera_core::store::{NewUser, StoreError, User, UserStore};
use zeroize::Zeroizing;

use crate::error::FieldError;
use crate::hashing::{HashError, HashPool};
use crate::state::unix_now;

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

/// Checks the account data, hashes the password (argon2id, on the bounded hashing pool) and
/// inserts the account. `email` and `username` are taken as given: callers trim them first.
pub async fn create(
    users: &dyn UserStore,
    hashing: &HashPool,
    policy: &PasswordPolicy,
    email: &str,
    username: &str,
    password: Zeroizing<String>,
) -> Result<User, CreateError> {
    check_new_account(policy, email, username, &password).map_err(CreateError::Invalid)?;
    let password_hash = hashing.hash(password).await.map_err(CreateError::Hashing)?;
    users
        .create(NewUser {
            email: email.to_owned(),
            username: username.to_owned(),
            password_hash,
            created_at: unix_now(),
        })
        .await
        .map_err(CreateError::Store)
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
