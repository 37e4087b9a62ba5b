//! Password hashing and policy (B6).
//!
//! Hashes are argon2id PHC strings with the OWASP parameters by default (m = 19456 KiB, t = 2,
//! p = 1). Verification uses the parameters stored in the hash, then reports whether the hash
//! should be upgraded to the current parameters (rehash on login). For unknown users the caller
//! runs [`PasswordHasher::dummy_verify`], which does the same work against a hash made at
//! start-up, so "no such user" and "wrong password" take the same time.
//!
//! The salt is an argument: this crate never asks the operating system for randomness.

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// A password hashing failure (bad parameters, or a stored hash that is not a PHC string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(String),
    /// A stored hash could not be parsed.
    #[error("stored password hash is not a valid PHC string")]
    InvalidHash,
    /// Hashing failed.
    #[error("password hashing failed")]
    Hashing,
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right; `needs_rehash` says the hash uses outdated parameters.
    Valid {
        /// Whether the hash should be replaced by one with the current parameters.
        needs_rehash: bool,
    },
    /// The password is wrong.
    Invalid,
}

/// Hashes and verifies passwords with fixed parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Argon2<'static>,
    params: PasswordParams,
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher for `params`. Computes the dummy hash once, with `dummy_salt`.
    pub fn new(params: PasswordParams, dummy_salt: &[u8; 16]) -> Result<PasswordHasher, PasswordError> {
        let argon_params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|e| PasswordError::InvalidParams(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut hasher = PasswordHasher {
            argon,
            params,
            dummy_hash: String::new(),
        };
        hasher.dummy_hash = hasher.hash("tessera dummy password", dummy_salt)?;
        Ok(hasher)
    }

    /// The parameters new hashes use.
    pub fn params(&self) -> PasswordParams {
        self.params
    }

    /// Hashes a password into a PHC string, with a 16-byte random salt supplied by the caller.
    pub fn hash(&self, password: &str, salt: &[u8; 16]) -> Result<String, PasswordError> {
        self.hash_in(password, salt, &mut HashMemory::default())
    }

    /// [`PasswordHasher::hash`] working in `memory`, which is kept for the next call.
    pub fn hash_in(&self, password: &str, salt: &[u8; 16], memory: &mut HashMemory) -> Result<String, PasswordError> {
        let salt = SaltString::encode_b64(salt).map_err(|_| PasswordError::Hashing)?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon.params()).map_err(|_| PasswordError::Hashing)?,
            salt: Some(salt.as_salt()),
            hash: Some(compute(
                &self.argon,
                password,
                &salt.as_salt(),
                Params::DEFAULT_OUTPUT_LEN,
                memory,
            )?),
        };
        Ok(hash.to_string())
    }

    /// Checks a password against a stored PHC string, using the parameters stored in it.
    pub fn verify(&self, password: &str, stored: &str) -> Result<Verification, PasswordError> {
        self.verify_in(password, stored, &mut HashMemory::default())
    }

    /// [`PasswordHasher::verify`] working in `memory`, which is kept for the next call.
    pub fn verify_in(
        &self,
        password: &str,
        stored: &str,
        memory: &mut HashMemory,
    ) -> Result<Verification, PasswordError> {
        let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::InvalidHash)?;
        // As argon2's own `verify_password`: no salt or no hash to compare is a wrong password.
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(Verification::Invalid);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|_| PasswordError::InvalidHash)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|_| PasswordError::InvalidHash)?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(|_| PasswordError::InvalidHash)?;
        let argon = Argon2::new(algorithm, version, params);
        let computed =
            compute(&argon, password, &salt, expected.len(), memory).map_err(|_| PasswordError::InvalidHash)?;
        // `Output`'s equality is constant-time.
        if computed == expected {
            Ok(Verification::Valid {
                needs_rehash: self.is_outdated(&parsed),
            })
        } else {
            Ok(Verification::Invalid)
        }
    }

    /// Does the work of a verification against the dummy hash and discards the result, so that
    /// a login for an unknown user costs what a wrong password costs.
    pub fn dummy_verify(&self, password: &str) {
        self.dummy_verify_in(password, &mut HashMemory::default());
    }

    /// [`PasswordHasher::dummy_verify`] working in `memory`.
    pub fn dummy_verify_in(&self, password: &str, memory: &mut HashMemory) {
        let _ = self.verify_in(password, &self.dummy_hash, memory);
    }

    /// Whether a stored hash was made with other parameters (or another algorithm) than the
    /// current ones.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        PasswordHash::new(stored).map_or(true, |parsed| self.is_outdated(&parsed))
    }

    fn is_outdated(&self, parsed: &PasswordHash<'_>) -> bool {
        if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(Version::V0x13.into()) {
            return true;
        }
        match Params::try_from(parsed) {
            Ok(stored) => {
                stored.m_cost() != self.params.memory_kib
                    || stored.t_cost() != self.params.iterations
                    || stored.p_cost() != self.params.parallelism
            }
            Err(_) => true,
        }
    }
}

/// Argon2 working memory (m KiB) that a hashing thread keeps from one hash to the next.
///
/// Allocating and freeing 19 MiB per hash costs page faults on every hash, and with glibc's
/// malloc the freed blocks stay in per-thread arenas anyway (its mmap threshold rises to the
/// size of the first block freed), so a process that hashed on many threads holds many such
/// blocks. One buffer per hashing thread bounds that memory and skips the faults. Grown on
/// first use (an idle server holds none), and further only for a stored hash with a larger m.
#[derive(Default)]
pub struct HashMemory {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for HashMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashMemory")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

/// The argon2 output of `password` and `salt` (base64, as in a PHC string), `len` bytes.
fn compute(
    argon: &Argon2<'_>,
    password: &str,
    salt: &argon2::password_hash::Salt<'_>,
    len: usize,
    memory: &mut HashMemory,
) -> Result<Output, PasswordError> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(|_| PasswordError::Hashing)?;
    let needed = argon.params().block_count();
    if memory.blocks.len() < needed {
        memory.blocks.resize(needed, Block::default());
    }
    Output::init_with(len, |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory.blocks[..needed])
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|_| PasswordError::Hashing)
}

static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
});

/// One rule a password breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// Fewer characters than the minimum.
    #[error("password must be at least {min} characters")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More characters than the maximum.
    #[error("password must be at most {max} characters")]
    TooLong {
        /// The maximum, in characters.
        max: usize,
    },
    /// On the common-password blocklist.
    #[error("password is too common")]
    Common,
    /// Equal to the account's email address.
    #[error("password must not be the email address")]
    SameAsEmail,
    /// Equal to the account's username.
    #[error("password must not be the username")]
    SameAsUsername,
}

impl PolicyViolation {
    /// A stable machine-readable code for the violation.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyViolation::TooShort { .. } => "password_too_short",
            PolicyViolation::TooLong { .. } => "password_too_long",
            PolicyViolation::Common => "password_too_common",
            PolicyViolation::SameAsEmail => "password_equals_email",
            PolicyViolation::SameAsUsername => "password_equals_username",
        }
    }
}

/// The password policy: length in characters (Unicode scalar values), a blocklist of common
/// passwords (case-insensitive), and not the account's own email or username.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (NIST SP 800-63B: at least 8).
    pub min_chars: usize,
    /// Maximum length in characters; bounds hashing work and request size.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: 8,
            max_chars: 128,
        }
    }
}

impl PasswordPolicy {
    /// Every rule `password` breaks, or `Ok` when it breaks none.
    pub fn check(&self, password: &str, email: &str, username: &str) -> Result<(), Vec<PolicyViolation>> {
        let mut violations = Vec::new();
        let chars = password.chars().count();
        if chars < self.min_chars {
            violations.push(PolicyViolation::TooShort { min: self.min_chars });
        }
        if chars > self.max_chars {
            violations.push(PolicyViolation::TooLong { max: self.max_chars });
        }
        let lowered = password.to_lowercase();
        if COMMON_PASSWORDS.contains(lowered.as_str()) {
            violations.push(PolicyViolation::Common);
        }
        if !email.is_empty() && lowered == email.trim().to_lowercase() {
            violations.push(PolicyViolation::SameAsEmail);
        }
        if !username.is_empty() && lowered == username.trim().to_lowercase() {
            violations.push(PolicyViolation::SameAsUsername);
        }
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so the tests run fast; the defaults are tested separately.
    fn fast() -> PasswordParams {
        PasswordParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn default_parameters_are_owasp() {
        assert_eq!(
            PasswordParams::default(),
            PasswordParams {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
        let hasher = PasswordHasher::new(PasswordParams::default(), &[1; 16]).unwrap();
        let hash = hasher.hash("correct horse battery", &[2; 16]).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    }

    #[test]
    fn reused_memory_gives_argon2s_own_hashes_and_verdicts() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(fast(), &[1; 16]).unwrap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 1, 1, None).unwrap(),
        );
        let mut memory = HashMemory::default();
        for (i, password) in ["first password", "second, longer password", ""].iter().enumerate() {
            let salt = [i as u8 + 3; 16];
            let ours = hasher.hash_in(password, &salt, &mut memory).unwrap();
            let theirs = reference
                .hash_password(password.as_bytes(), &SaltString::encode_b64(&salt).unwrap())
                .unwrap()
                .to_string();
            assert_eq!(ours, theirs);
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(reference.verify_password(password.as_bytes(), &parsed).is_ok());
            assert_eq!(
                hasher.verify_in(password, &theirs, &mut memory).unwrap(),
                Verification::Valid { needs_rehash: false }
            );
            assert_eq!(
                hasher.verify_in("wrong", &theirs, &mut memory).unwrap(),
                Verification::Invalid
            );
        }
        // A stored hash with a larger m grows the memory; a smaller one uses part of it.
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(512, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::encode_b64(&[9; 16]).unwrap())
        .unwrap()
        .to_string();
        assert_eq!(
            hasher.verify_in("pw", &bigger, &mut memory).unwrap(),
            Verification::Valid { needs_rehash: true }
        );
        assert_eq!(memory.blocks.len(), 512);
        let smaller = hasher.hash_in("pw", &[4; 16], &mut memory).unwrap();
        assert!(matches!(
            hasher.verify_in("pw", &smaller, &mut memory),
            Ok(Verification::Valid { .. })
        ));
    }

    #[test]
    fn hash_verifies_right_password_only() {
        let hasher = PasswordHasher::new(fast(), &[1; 16]).unwrap();
        let hash = hasher.hash("correct horse battery", &[2; 16]).unwrap();
        assert_eq!(
            hasher.verify("correct horse battery", &hash),
            Ok(Verification::Valid { needs_rehash: false })
        );
        assert_eq!(hasher.verify("correct horse batterY", &hash), Ok(Verification::Invalid));
    }

    #[test]
    fn hash_with_old_parameters_verifies_and_asks_for_rehash() {
        let old = PasswordHasher::new(fast(), &[1; 16]).unwrap();
        let hash = old.hash("correct horse battery", &[2; 16]).unwrap();
        let current = PasswordHasher::new(
            PasswordParams {
                memory_kib: 512,
                ..fast()
            },
            &[1; 16],
        )
        .unwrap();
        assert_eq!(
            current.verify("correct horse battery", &hash),
            Ok(Verification::Valid { needs_rehash: true })
        );
        assert!(current.needs_rehash(&hash));
        assert!(!old.needs_rehash(&hash));
    }

    #[test]
    fn non_argon2id_hashes_need_rehash_and_garbage_is_an_error() {
        let hasher = PasswordHasher::new(fast(), &[1; 16]).unwrap();
        assert!(hasher.needs_rehash("$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"));
        assert!(hasher.needs_rehash("not a hash"));
        assert_eq!(hasher.verify("x", "not a hash"), Err(PasswordError::InvalidHash));
    }

    #[test]
    fn dummy_verification_runs_without_error() {
        let hasher = PasswordHasher::new(fast(), &[1; 16]).unwrap();
        hasher.dummy_verify("whatever");
        assert!(hasher.dummy_hash.starts_with("$argon2id$"));
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(matches!(
            PasswordHasher::new(
                PasswordParams {
                    memory_kib: 1,
                    iterations: 1,
                    parallelism: 1
                },
                &[1; 16]
            ),
            Err(PasswordError::InvalidParams(_))
        ));
    }

    #[test]
    fn policy_reports_each_rule_once() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("Tr0ub4dor&3-horse", "a@example.com", "alice"), Ok(()));
        assert_eq!(
            policy.check("short", "a@example.com", "alice"),
            Err(vec![PolicyViolation::TooShort { min: 8 }])
        );
        assert_eq!(
            policy.check(&"x".repeat(129), "a@example.com", "alice"),
            Err(vec![PolicyViolation::TooLong { max: 128 }])
        );
        assert_eq!(
            policy.check("PassWord123", "a@example.com", "alice"),
            Err(vec![PolicyViolation::Common])
        );
        assert_eq!(
            policy.check("Alice@Example.com", "alice@example.com", "alice"),
            Err(vec![PolicyViolation::SameAsEmail])
        );
        assert_eq!(
            policy.check("AliceInChains", "a@example.com", "aliceinchains"),
            Err(vec![PolicyViolation::SameAsUsername])
        );
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        let policy = PasswordPolicy::default();
        // Eight characters, 24 bytes.
        assert_eq!(policy.check("密码密码密码密码", "a@example.com", "alice"), Ok(()));
        assert_eq!(
            policy.check("密码密码密码密", "a@example.com", "alice"),
            Err(vec![PolicyViolation::TooShort { min: 8 }])
        );
    }

    #[test]
    fn blocklist_is_loaded() {
        assert!(COMMON_PASSWORDS.len() > 8_000);
        assert!(COMMON_PASSWORDS.contains("password"));
        assert!(COMMON_PASSWORDS.contains("12345678"));
    }
}
