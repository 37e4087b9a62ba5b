//! Stateless CSRF tokens (S2).
//!
//! The seed keeps CSRF tokens in a process dictionary ("use Redis in production"). Tessera
//! derives the token from the session id with HMAC-SHA256 under a key used for nothing else, so
//! any instance can check it, a restart loses nothing, and there is no store to keep in sync.
//! The session id is not secret, the CSRF key is: an attacker who cannot read the victim's
//! login response cannot compute the token. The token lives as long as the session.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::b64;

/// Minimum CSRF key length in bytes.
pub const MIN_CSRF_KEY_BYTES: usize = 32;

/// Domain separator, so the same key material could never produce a CSRF token that is also a
/// valid MAC in another context.
const CONTEXT: &[u8] = b"tessera csrf v1\0";

/// The key CSRF tokens are derived with.
#[derive(Clone)]
pub struct CsrfKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

/// The CSRF key is too short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("csrf key must be at least 32 bytes")]
pub struct CsrfKeyTooShort;

impl CsrfKey {
    /// A CSRF key from at least [`MIN_CSRF_KEY_BYTES`] bytes of secret material.
    pub fn new(secret: &[u8]) -> Result<CsrfKey, CsrfKeyTooShort> {
        if secret.len() < MIN_CSRF_KEY_BYTES {
            return Err(CsrfKeyTooShort);
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| CsrfKeyTooShort)?;
        Ok(CsrfKey { mac })
    }

    fn mac_for(&self, session_id: &str) -> Hmac<Sha256> {
        self.mac
            .clone()
            .chain_update(CONTEXT)
            .chain_update(session_id.as_bytes())
    }

    /// The CSRF token for a session: 43 characters of base64url.
    pub fn token_for(&self, session_id: &str) -> String {
        b64::encode(&self.mac_for(session_id).finalize().into_bytes())
    }

    /// Whether `presented` is the token for `session_id`. Compared in constant time; any
    /// malformed value is simply false.
    pub fn verify(&self, session_id: &str, presented: &str) -> bool {
        if presented.len() != 43 {
            return false;
        }
        match b64::decode(presented) {
            Some(bytes) => self.mac_for(session_id).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CsrfKey {
        CsrfKey::new(&[3u8; 32]).unwrap()
    }

    #[test]
    fn token_verifies_for_its_session_only() {
        let key = key();
        let token = key.token_for("session-a");
        assert_eq!(token.len(), 43);
        assert!(key.verify("session-a", &token));
        assert!(!key.verify("session-b", &token));
    }

    #[test]
    fn token_is_stable_across_key_instances() {
        // Statelessness: another instance with the same key computes the same token.
        assert_eq!(key().token_for("s"), CsrfKey::new(&[3u8; 32]).unwrap().token_for("s"));
        assert_ne!(key().token_for("s"), CsrfKey::new(&[4u8; 32]).unwrap().token_for("s"));
    }

    #[test]
    fn malformed_or_tampered_tokens_are_refused() {
        let key = key();
        let token = key.token_for("s");
        let mut tampered = token.clone().into_bytes();
        tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::new(),
            "x".into(),
            format!("{token}="),
            String::from_utf8(tampered).unwrap(),
            token[..42].to_string(),
            " ".repeat(43),
        ] {
            assert!(!key.verify("s", &bad), "{bad:?}");
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(CsrfKey::new(&[1u8; 31]).unwrap_err(), CsrfKeyTooShort);
    }
}
