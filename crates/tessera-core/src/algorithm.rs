//! The signature algorithms Tessera knows, by their JOSE names (RFC 7518).
//!
//! This is the second layer of the token stack (`b64` -> `algorithm`/`header` -> `keys` -> `jws`
//! -> `jwt`): keys pin one algorithm each, headers name one, and neither needs anything else from
//! the layers above to do so. The module depends on nothing in the crate.

use std::fmt;
use std::str::FromStr;

/// The signature algorithms Tessera signs and verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// Ed25519 signatures (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256, signature as `r || s` (RFC 7518 section 3.4).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

impl Algorithm {
    /// Every supported algorithm, symmetric first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
    ];

    /// The JOSE name of the algorithm (`"HS256"`, `"EdDSA"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    /// Looks an algorithm up by its exact JOSE name. Names are case-sensitive (RFC 7515 section
    /// 4.1.1), so `"hs256"` and every spelling of `none` are unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        Algorithm::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// Whether the algorithm uses a shared secret (HMAC) rather than a key pair.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an algorithm name Tessera does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?}: expected one of HS256, HS384, HS512, EdDSA, ES256, RS256")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(name).ok_or_else(|| UnknownAlgorithm(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_exact_and_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
        for name in ["none", "None", "NONE", "hs256", "eddsa", "PS256", "ES512", "RS384", ""] {
            assert_eq!(Algorithm::from_name(name), None, "{name}");
        }
    }
}
