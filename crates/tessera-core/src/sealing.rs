//! Private keys encrypted at rest (issue "Keys": managed key ring, MASTER_KEY).
//!
//! When a master key is configured, every private key the store persists is sealed with
//! XChaCha20-Poly1305 under a key derived from it. The associated data binds the ciphertext to
//! the key's id, purpose and algorithm, so a sealed blob copied onto another row does not open.
//! The 24-byte nonce is an argument (random, from the caller): this crate does no I/O.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Marks a sealed blob. Long enough that a plain secret never starts with it by chance.
const MAGIC: &[u8; 18] = b"tessera-sealed-v1\0";
const NONCE_BYTES: usize = 24;

/// Why a sealed blob could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The master key is shorter than 32 bytes.
    #[error("master key must be at least 32 bytes")]
    MasterKeyTooShort,
    /// Wrong master key, tampered blob, or blob moved to another key's row.
    #[error("sealed key does not open with this master key")]
    CannotOpen,
    /// Not a sealed blob.
    #[error("not a sealed blob")]
    NotSealed,
}

/// The key that seals private keys at rest.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Derives the sealing key from at least 32 bytes of secret (MASTER_KEY).
    pub fn new(secret: &[u8]) -> Result<MasterKey, SealError> {
        if secret.len() < 32 {
            return Err(SealError::MasterKeyTooShort);
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| SealError::MasterKeyTooShort)?;
        let derived = Zeroizing::new(mac.chain_update(b"tessera master key v1").finalize().into_bytes());
        let cipher = XChaCha20Poly1305::new_from_slice(&derived).map_err(|_| SealError::MasterKeyTooShort)?;
        Ok(MasterKey { cipher })
    }

    /// Seals `plaintext`, bound to `context` (kid, purpose, algorithm).
    pub fn seal(&self, context: &[u8], plaintext: &[u8], nonce: [u8; NONCE_BYTES]) -> Vec<u8> {
        let mut sealed = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + plaintext.len() + 16);
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&nonce);
        // Encryption with a valid key and nonce cannot fail for inputs of this size.
        if let Ok(ciphertext) = self.cipher.encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        ) {
            sealed.extend_from_slice(&ciphertext);
        }
        sealed
    }

    /// Opens a blob made by [`MasterKey::seal`] with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let body = sealed.strip_prefix(MAGIC.as_slice()).ok_or(SealError::NotSealed)?;
        if body.len() < NONCE_BYTES + 16 {
            return Err(SealError::CannotOpen);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::CannotOpen)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::CannotOpen)
    }
}

/// Whether stored bytes are a sealed blob (rather than a plain private key).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_with_the_same_master_and_context_only() {
        let master = MasterKey::new(&[7u8; 32]).unwrap();
        let sealed = master.seal(b"kid-1/access/EdDSA", b"private bytes", [1u8; 24]);
        assert!(is_sealed(&sealed));
        assert_eq!(&*master.open(b"kid-1/access/EdDSA", &sealed).unwrap(), b"private bytes");
        assert_eq!(master.open(b"kid-2/access/EdDSA", &sealed), Err(SealError::CannotOpen));
        let other = MasterKey::new(&[8u8; 32]).unwrap();
        assert_eq!(other.open(b"kid-1/access/EdDSA", &sealed), Err(SealError::CannotOpen));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            master.open(b"kid-1/access/EdDSA", &tampered),
            Err(SealError::CannotOpen)
        );
        assert_eq!(master.open(b"x", b"plain"), Err(SealError::NotSealed));
        assert!(!is_sealed(b"plain secret"));
    }

    #[test]
    fn short_master_keys_are_refused() {
        assert_eq!(MasterKey::new(&[1u8; 31]).unwrap_err(), SealError::MasterKeyTooShort);
    }
}
