//! The second factor (C3): time-based one-time passwords (RFC 6238) and recovery codes.
//!
//! Codes are what every authenticator app makes: HMAC-SHA-1, 6 digits, 30-second steps
//! (RFC 6238 section 4, its defaults), computed by the `totp-rs` crate without its `std` feature,
//! so it never reads the clock: `now` is an argument, like everywhere in this crate. A code is
//! accepted for the current step and one step either side (section 5.2's recommended network
//! delay), and [`TotpSecret::check`] returns the *step* it matched: the caller stores the last
//! accepted step and refuses any step not after it, which is what makes a code single use
//! (section 5.2: "the verifier MUST NOT accept the second attempt of the OTP").
//!
//! Recovery codes are 16 characters of Crockford's base32 (80 random bits), shown as
//! `xxxx-xxxx-xxxx-xxxx`; [`normalize_recovery_code`] forgives case, spaces, hyphens and the
//! letters Crockford maps to digits. They are stored as SHA-256 digests: a fast hash is enough
//! because each code carries 80 bits from a CSPRNG, far beyond what any offline search of a
//! leaked table can cover (a slow password hash protects low-entropy, human-chosen secrets;
//! these are not). The same holds for the login challenge tokens ([`challenge_token_hash`]),
//! 256 random bits each.

use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

/// Digits of a code (RFC 6238's default; what every authenticator app shows).
pub const DIGITS: u8 = 6;
/// Seconds per time step (RFC 6238's default X = 30).
pub const STEP_SECS: i64 = 30;
/// Steps accepted either side of the current one (RFC 6238 section 5.2 recommends one).
pub const SKEW_STEPS: u16 = 1;
/// Bytes of a shared secret: 160 bits, RFC 4226 section 4's recommendation.
pub const SECRET_BYTES: usize = 20;
/// How many recovery codes a set holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Characters of a recovery code (5 bits each: 80 bits).
pub const RECOVERY_CODE_CHARS: usize = 16;
/// Crockford's base32 alphabet, lower case: no `i`, `l`, `o`, `u`.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Random bytes of a login challenge token (256 bits).
const CHALLENGE_TOKEN_BYTES: usize = 32;

/// Why a secret or its URI could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// A stored secret is not 20 bytes (a corrupted row, or a blob that was not opened).
    #[error("a totp secret must be {SECRET_BYTES} bytes")]
    BadSecret,
    /// The otpauth URI could not be built (an empty account name).
    #[error("cannot build the otpauth uri: {0}")]
    Uri(String),
}

/// A TOTP shared secret: 20 random bytes, zeroed on drop, never in `Debug`.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A fresh secret from `rng`.
    pub fn generate(rng: &mut impl CryptoRngCore) -> TotpSecret {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    /// A stored secret (after opening it, when it was sealed).
    pub fn from_bytes(bytes: &[u8]) -> Result<TotpSecret, TotpError> {
        if bytes.len() != SECRET_BYTES {
            return Err(TotpError::BadSecret);
        }
        Ok(TotpSecret(Zeroizing::new(bytes.to_vec())))
    }

    /// A secret as [`TotpSecret::to_base32`] spells it (what an authenticator app is given).
    pub fn from_base32(text: &str) -> Result<TotpSecret, TotpError> {
        let secret = totp_rs::Secret::try_from_base32(text).map_err(|_| TotpError::BadSecret)?;
        TotpSecret::from_bytes(secret.as_bytes())
    }

    /// The raw bytes (to seal and store).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as people type it into an app: RFC 4648 base32 without padding.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(totp_rs::Secret::from(self.0.to_vec()).to_base32())
    }

    fn totp(&self, digits: u8) -> Totp {
        // `build_noncompliant` skips only checks that hold by construction here: the secret is
        // 20 bytes, the step non-zero, the digits 6 (or 8 for the RFC's own test vectors).
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(digits)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS.unsigned_abs())
            .with_secret(self.0.to_vec())
            .build_noncompliant()
    }

    /// The `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER` URI that authenticator apps
    /// read from a QR code (Key URI Format). A `:` in either part would split the label
    /// elsewhere, so it is dropped.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<Zeroizing<String>, TotpError> {
        let issuer = issuer.replace(':', "");
        let account = account.replace(':', "");
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS.unsigned_abs())
            .with_secret(self.0.to_vec())
            .with_issuer((!issuer.is_empty()).then_some(issuer))
            .with_account_name(account)
            .build()
            .map_err(|e| TotpError::Uri(e.to_string()))?;
        totp.to_url()
            .map(Zeroizing::new)
            .map_err(|e| TotpError::Uri(e.to_string()))
    }

    /// The code for the step holding `unix` (what an authenticator app shows then).
    pub fn code_at(&self, unix: i64) -> Zeroizing<String> {
        Zeroizing::new(self.totp(DIGITS).generate(unix.max(0).unsigned_abs()).to_string())
    }

    /// Checks `code` (already normalised, see [`normalize_code`]) at `now` against the current
    /// step and one step either side, in constant time per comparison; the step it matched.
    /// The caller must still refuse a step not after the last one accepted (replay).
    pub fn check(&self, code: &str, now: i64) -> Option<i64> {
        if now < 0 {
            return None;
        }
        let step = self.totp(DIGITS).check(code, now.unsigned_abs())?;
        i64::try_from(step).ok()
    }
}

/// The time step holding `unix`.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// A code as typed: spaces and hyphens (`123 456`, `123-456`) are dropped; anything but exactly
/// six ASCII digits is `None`.
pub fn normalize_code(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    (code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// A new set of [`RECOVERY_CODE_COUNT`] recovery codes, each `xxxx-xxxx-xxxx-xxxx`.
pub fn generate_recovery_codes(rng: &mut impl CryptoRngCore) -> Vec<Zeroizing<String>> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_CHARS]);
            rng.fill_bytes(bytes.as_mut());
            let mut code = Zeroizing::new(String::with_capacity(RECOVERY_CODE_CHARS + 3));
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 && i % 4 == 0 {
                    code.push('-');
                }
                // 256 is a multiple of 32: the low five bits of a uniform byte are uniform.
                code.push(char::from(RECOVERY_ALPHABET[usize::from(byte & 31)]));
            }
            code
        })
        .collect()
}

/// A recovery code as typed, in its one canonical spelling: lower case, without spaces and
/// hyphens, `o` read as `0` and `i`/`l` as `1` (Crockford's decoding). `None` unless that leaves
/// exactly 16 characters of the alphabet.
pub fn normalize_recovery_code(input: &str) -> Option<Zeroizing<String>> {
    let mut code = Zeroizing::new(String::with_capacity(RECOVERY_CODE_CHARS));
    for c in input.chars() {
        if c.is_whitespace() || c == '-' {
            continue;
        }
        let c = match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        };
        if !c.is_ascii() || !RECOVERY_ALPHABET.contains(&(c as u8)) || code.len() == RECOVERY_CODE_CHARS {
            return None;
        }
        code.push(c);
    }
    (code.len() == RECOVERY_CODE_CHARS).then_some(code)
}

/// The stored form of a normalised recovery code: SHA-256 (see the module docs for why a fast
/// hash suffices: 80 random bits per code).
pub fn recovery_code_hash(normalized: &str) -> Vec<u8> {
    Sha256::digest(normalized.as_bytes()).to_vec()
}

/// A login challenge token (`mfa_token`): 256 random bits, base64url.
pub fn generate_challenge_token(rng: &mut impl CryptoRngCore) -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; CHALLENGE_TOKEN_BYTES]);
    rng.fill_bytes(bytes.as_mut());
    Zeroizing::new(crate::b64::encode(bytes.as_ref()))
}

/// The stored form of a challenge token: SHA-256 (256 random bits: a fast hash suffices).
pub fn challenge_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    /// RFC 6238 appendix B's SHA-1 seed.
    const RFC_SEED: &[u8; 20] = b"12345678901234567890";

    #[test]
    fn the_rfc_6238_sha1_test_vectors_hold() {
        // Arrange: appendix B, SHA-1 rows (8 digits).
        let secret = TotpSecret::from_bytes(RFC_SEED).unwrap();
        let vectors: [(u64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, expected) in vectors {
            // Act
            let code = secret.totp(8).generate(time).to_string();
            // Assert
            assert_eq!(code, expected, "T = {time}");
            // The 6-digit code apps show is the same value's last six digits.
            assert_eq!(*secret.code_at(time as i64), expected[2..], "T = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_own_step_and_one_either_side_only() {
        let secret = TotpSecret::from_bytes(RFC_SEED).unwrap();
        let now = 1_111_111_111;
        let step = step_of(now);
        assert_eq!(secret.check(&secret.code_at(now), now), Some(step));
        assert_eq!(secret.check(&secret.code_at(now - 30), now), Some(step - 1));
        assert_eq!(secret.check(&secret.code_at(now + 30), now), Some(step + 1));
        assert_eq!(secret.check(&secret.code_at(now - 60), now), None);
        assert_eq!(secret.check(&secret.code_at(now + 60), now), None);
        assert_eq!(secret.check("12345", now), None);
        assert_eq!(secret.check("+12345", now), None);
        assert_eq!(secret.check("", -5), None);
    }

    #[test]
    fn codes_are_normalised_or_refused() {
        assert_eq!(normalize_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalize_code("123-456").as_deref(), Some("123456"));
        assert_eq!(normalize_code("12345"), None);
        assert_eq!(normalize_code("1234567"), None);
        assert_eq!(normalize_code("12345a"), None);
        assert_eq!(normalize_code("١٢٣٤٥٦"), None, "non-ASCII digits");
    }

    #[test]
    fn secrets_round_trip_and_refuse_wrong_lengths() {
        let mut rng = StdRng::seed_from_u64(7);
        let secret = TotpSecret::generate(&mut rng);
        assert_eq!(secret.as_bytes().len(), SECRET_BYTES);
        let again = TotpSecret::from_bytes(secret.as_bytes()).unwrap();
        assert_eq!(*again.code_at(1_000), *secret.code_at(1_000));
        assert_eq!(TotpSecret::from_bytes(&[0; 19]).unwrap_err(), TotpError::BadSecret);
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
        // RFC 4648 base32 of the RFC seed.
        let rfc = TotpSecret::from_bytes(RFC_SEED).unwrap();
        assert_eq!(*rfc.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let back = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(back.as_bytes(), RFC_SEED);
        assert_eq!(
            TotpSecret::from_base32("not base32!").unwrap_err(),
            TotpError::BadSecret
        );
        assert_eq!(TotpSecret::from_base32("GEZDGNBV").unwrap_err(), TotpError::BadSecret);
    }

    #[test]
    fn the_otpauth_uri_names_issuer_account_and_secret() {
        let secret = TotpSecret::from_bytes(RFC_SEED).unwrap();
        let uri = secret.otpauth_uri("Tessera", "alice@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Tessera:alice%40example.com?"),
            "{}",
            *uri
        );
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
        assert!(uri.contains("issuer=Tessera"));
        // A colon would move the label's split: it is dropped.
        let uri = secret.otpauth_uri("https://auth.example", "bob").unwrap();
        let label = uri["otpauth://totp/".len()..].split('?').next().unwrap();
        assert_eq!(label.matches(':').count(), 1, "{label}");
        assert!(label.ends_with(":bob"), "{label}");
        assert!(secret.otpauth_uri("Tessera", "").is_err());
    }

    #[test]
    fn recovery_codes_are_ten_distinct_80_bit_codes_in_the_display_format() {
        let mut rng = StdRng::seed_from_u64(1);
        let codes = generate_recovery_codes(&mut rng);
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        for code in &codes {
            assert_eq!(code.len(), 19);
            let parts: Vec<&str> = code.split('-').collect();
            assert_eq!(parts.len(), 4);
            assert!(parts.iter().all(|p| p.len() == 4));
            let normalized = normalize_recovery_code(code).unwrap();
            assert_eq!(normalized.len(), RECOVERY_CODE_CHARS);
            assert_eq!(*normalized, code.replace('-', ""));
        }
        let distinct: std::collections::HashSet<&str> = codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(distinct.len(), RECOVERY_CODE_COUNT);
    }

    #[test]
    fn recovery_codes_forgive_case_spacing_and_crockford_look_alikes() {
        let canonical = normalize_recovery_code("0123-4567-89ab-cdef").unwrap();
        for typed in [
            "0123 4567 89AB CDEF",
            "O123-4567-89ab-cdef",
            "0123456789abcdef",
            " 0123-4567-89ab-cdef\n",
        ] {
            assert_eq!(normalize_recovery_code(typed).as_deref(), Some(&*canonical), "{typed}");
        }
        assert_eq!(
            normalize_recovery_code("1111-1111-1111-1111"),
            normalize_recovery_code("iIlL-1111-1111-1111")
        );
        assert_eq!(normalize_recovery_code("0123-4567-89ab-cde"), None, "too short");
        assert_eq!(normalize_recovery_code("0123-4567-89ab-cdef0"), None, "too long");
        assert_eq!(
            normalize_recovery_code("0123-4567-89ab-cdeu"),
            None,
            "u is not in the alphabet"
        );
        assert_eq!(normalize_recovery_code("0123-4567-89ab-cdeé"), None);
        assert_eq!(
            recovery_code_hash(&canonical),
            recovery_code_hash(&normalize_recovery_code("0123 4567 89AB CDEF").unwrap())
        );
        assert_eq!(recovery_code_hash(&canonical).len(), 32);
    }

    #[test]
    fn challenge_tokens_are_256_random_bits_and_hash_stably() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = generate_challenge_token(&mut rng);
        let b = generate_challenge_token(&mut rng);
        assert_ne!(*a, *b);
        assert_eq!(crate::b64::decode(&a).unwrap().len(), 32);
        assert_eq!(challenge_token_hash(&a), challenge_token_hash(&a.clone()));
        assert_ne!(challenge_token_hash(&a), challenge_token_hash(&b));
    }

    #[test]
    fn steps_are_thirty_second_windows() {
        assert_eq!(step_of(0), 0);
        assert_eq!(step_of(29), 0);
        assert_eq!(step_of(30), 1);
        assert_eq!(step_of(59), 1);
        assert_eq!(step_of(-1), -1);
    }
}
