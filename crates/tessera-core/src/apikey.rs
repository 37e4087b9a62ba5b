//! API keys (G3): their format, checksum and keyed hash, decided without I/O.
//!
//! A key is `tsk_` + 43 base62 characters drawn uniformly (43 x log2(62) = 256.03 bits) + a
//! 6-character base62 checksum, the CRC32 of the 43 random characters: 53 characters that
//! secret scanners match offline with `tsk_[0-9A-Za-z]{49}` and confirm with the checksum.
//! [`check_format`] refuses a typo or junk before any lookup. Tessera never stores a key: it
//! stores the HMAC-SHA256 of the whole key under a server key ([`KeyHasher`]), looks the key up
//! by that, and compares hashes in constant time ([`hashes_equal`]).

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What every key starts with.
pub const PREFIX: &str = "tsk_";
/// Random characters after the prefix.
pub const RANDOM_LEN: usize = 43;
/// Checksum characters at the end.
pub const CHECKSUM_LEN: usize = 6;
/// The length of a whole key.
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// How much of a key listings show (`tsk_` + 8 characters: 47 bits, never enough to guess).
pub const DISPLAY_PREFIX_LEN: usize = PREFIX.len() + 8;
/// A regular expression matching a key (for secret scanners; confirm with the checksum).
pub const SCANNER_REGEX: &str = r"\btsk_[0-9A-Za-z]{49}\b";

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented string is not an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// It does not start with `tsk_`.
    #[error("not an API key")]
    WrongPrefix,
    /// Too short or too long.
    #[error("wrong length")]
    WrongLength,
    /// A character outside base62.
    #[error("character outside base62")]
    BadCharacter,
    /// The checksum does not match the random part (a typo, or made up).
    #[error("checksum mismatch")]
    BadChecksum,
}

/// Whether `text` looks like an API key (starts with the prefix); the caller then parses it as
/// one instead of as a JWT.
pub fn is_api_key(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// The checksum characters of a random part: its CRC32 in 6 base62 digits.
fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = u64::from(crc32fast::hash(random));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// A new key from `rng`. Returned once to its owner, then only its hash is kept.
pub fn generate(rng: &mut impl CryptoRngCore) -> Zeroizing<String> {
    let mut random = Zeroizing::new(Vec::with_capacity(RANDOM_LEN));
    let mut byte = [0u8; 1];
    while random.len() < RANDOM_LEN {
        rng.fill_bytes(&mut byte);
        // Rejection sampling: 248 = 4 x 62, so each accepted byte is uniform over the alphabet.
        if byte[0] < 248 {
            random.push(ALPHABET[usize::from(byte[0] % 62)]);
        }
    }
    let mut key = Zeroizing::new(String::with_capacity(KEY_LEN));
    key.push_str(PREFIX);
    key.extend(random.iter().map(|&b| char::from(b)));
    key.extend(checksum(&random).iter().map(|&b| char::from(b)));
    key
}

/// Checks the format and checksum of a presented key: prefix, length, alphabet, checksum.
pub fn check_format(key: &str) -> Result<(), KeyFormatError> {
    let rest = key.strip_prefix(PREFIX).ok_or(KeyFormatError::WrongPrefix)?;
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN {
        return Err(KeyFormatError::WrongLength);
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::BadCharacter);
    }
    let (random, sum) = rest.as_bytes().split_at(RANDOM_LEN);
    if checksum(random) != sum {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(())
}

/// The part of a key listings show.
pub fn display_prefix(key: &str) -> &str {
    key.get(..DISPLAY_PREFIX_LEN).unwrap_or(key)
}

/// HMAC-SHA256 of keys under a server secret: what is stored and looked up.
#[derive(Clone)]
pub struct KeyHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    /// A hasher under `secret` (32 bytes or more; every instance must use the same).
    pub fn new(secret: &[u8]) -> KeyHasher {
        // HMAC accepts a key of any length: this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable_mac());
        KeyHasher { mac }
    }

    /// The stored form of `key`.
    pub fn hash(&self, key: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[allow(clippy::panic, reason = "HMAC takes keys of every length; this is never reached")]
fn unreachable_mac() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 refused a key")
}

/// Compares two hashes in constant time.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn generated_keys_have_the_documented_format_and_pass_the_check() {
        let scanner =
            |k: &str| k.len() == KEY_LEN && k.starts_with("tsk_") && k[4..].bytes().all(|b| b.is_ascii_alphanumeric());
        for _ in 0..200 {
            let key = generate(&mut OsRng);
            assert!(scanner(&key), "{}", key.as_str());
            assert_eq!(check_format(&key), Ok(()));
            assert!(is_api_key(&key));
            assert_eq!(display_prefix(&key).len(), 12);
        }
        assert_ne!(*generate(&mut OsRng), *generate(&mut OsRng));
    }

    #[test]
    fn typos_and_junk_are_refused_by_the_format_check() {
        let key = generate(&mut OsRng);
        assert_eq!(check_format("Bearer x"), Err(KeyFormatError::WrongPrefix));
        assert_eq!(check_format("tsk_short"), Err(KeyFormatError::WrongLength));
        assert_eq!(
            check_format(&format!("{}x", key.as_str())),
            Err(KeyFormatError::WrongLength)
        );
        let mut bad = key.to_string();
        bad.replace_range(10..11, "-");
        assert_eq!(check_format(&bad), Err(KeyFormatError::BadCharacter));
        // Every single-character substitution in the random part or checksum is caught.
        let bytes = key.as_bytes();
        for (at, &original) in bytes.iter().enumerate().skip(PREFIX.len()) {
            let replacement = if original == b'a' { 'b' } else { 'a' };
            let mut typo = key.to_string();
            typo.replace_range(at..=at, &replacement.to_string());
            assert_eq!(check_format(&typo), Err(KeyFormatError::BadChecksum), "at {at}");
        }
        // Two adjacent characters swapped.
        let mut swapped: Vec<u8> = bytes.to_vec();
        let at = (PREFIX.len()..PREFIX.len() + RANDOM_LEN - 1)
            .find(|&i| bytes[i] != bytes[i + 1])
            .unwrap();
        swapped.swap(at, at + 1);
        assert_eq!(
            check_format(std::str::from_utf8(&swapped).unwrap()),
            Err(KeyFormatError::BadChecksum)
        );
    }

    #[test]
    fn the_hash_is_keyed_and_compared_in_constant_time() {
        let key = generate(&mut OsRng);
        let a = KeyHasher::new(&[1; 32]);
        let b = KeyHasher::new(&[2; 32]);
        assert_eq!(a.hash(&key), a.hash(&key));
        assert_ne!(a.hash(&key), b.hash(&key));
        assert!(hashes_equal(&a.hash(&key), &a.hash(&key)));
        assert!(!hashes_equal(&a.hash(&key), &b.hash(&key)));
        assert!(!hashes_equal(&a.hash(&key), &[0; 31]));
        assert_eq!(format!("{a:?}"), "KeyHasher(..)");
    }

    #[test]
    fn the_checksum_is_crc32_in_six_base62_digits() {
        // CRC-32/ISO-HDLC's check value: CRC32("123456789") = 0xCBF43926, written in base62
        // most significant digit first.
        let mut n = u64::from(0xCBF4_3926_u32);
        let mut digits = Vec::new();
        for _ in 0..6 {
            digits.push(ALPHABET[(n % 62) as usize]);
            n /= 62;
        }
        digits.reverse();
        assert_eq!(checksum(b"123456789").to_vec(), digits);
    }
}
