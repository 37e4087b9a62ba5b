//! Shared, deterministic fixtures for the tessera-core fuzz targets and the seed generator.
//!
//! Every target needs the same key ring and the same valid tokens, and the committed seeds in
//! `fuzz/seeds/` must verify against exactly that ring, so they are defined once here. All key
//! material is fixed bytes (HMAC secret, Ed25519 seed, P-256 scalar) and every algorithm used
//! signs deterministically (HMAC, Ed25519, RFC 6979 ECDSA), so the same tokens come out on every
//! run and every machine. The clock is the constant [`NOW`]; nothing here reads the real time.

use std::sync::LazyLock;

use rand_core::OsRng;
use tessera_core::jwt::{self, Claims, TokenKind, Validation};
use tessera_core::keys::{Key, KeyRing, KeyState, Kid};
use tessera_core::Algorithm;

/// The fixed "current time" (Unix seconds) tokens are issued and verified at.
pub const NOW: i64 = 1_800_000_000;
/// Lifetime of the tokens in [`TOKENS`], in seconds.
pub const LIFETIME: i64 = 900;
/// Issuer and audience the [`validation`] requires.
pub const ISSUER: &str = "tessera";
/// See [`ISSUER`].
pub const AUDIENCE: &str = "tessera-api";

const HS256_SECRET: [u8; 32] = *b"tessera fuzz hs256 secret 32 b!!";
const RETIRED_SECRET: [u8; 32] = *b"tessera fuzz retired secret 32 b";
const ED25519_SEED: [u8; 32] = [0x11; 32];
const ES256_SCALAR: [u8; 32] = [0x22; 32];

/// The keys of the verification ring, with their lifecycle state in that ring. Each state that
/// verifies appears once; the retired key must verify nothing.
const KEYS: [(Algorithm, KeyState); 4] = [
    (Algorithm::HS256, KeyState::Signing),
    (Algorithm::EdDSA, KeyState::VerifyOnly),
    (Algorithm::ES256, KeyState::Published),
    (Algorithm::HS256, KeyState::Retired),
];

/// Builds one fixture key. `retired` selects the second HS256 key (its own secret and kid).
fn make_key(alg: Algorithm, state: KeyState, retired: bool) -> Key {
    let key = match alg {
        Algorithm::HS256 => {
            let secret = if retired { &RETIRED_SECRET } else { &HS256_SECRET };
            Key::from_secret(alg, secret, None, state, 0)
        }
        Algorithm::EdDSA => {
            let kid = Kid::new("fuzz-eddsa").expect("valid kid");
            Key::import_private(alg, kid, state, 1, None, &ED25519_SEED)
        }
        Algorithm::ES256 => {
            let kid = Kid::new("fuzz-es256").expect("valid kid");
            Key::import_private(alg, kid, state, 2, None, &ES256_SCALAR)
        }
        other => unreachable!("no fixture key for {other}"),
    };
    key.expect("fixture key material is valid")
}

/// Fixture key `index` of the verification ring (0: HS256, 1: EdDSA, 2: ES256, 3: the retired
/// HS256 key), rebuilt in `state`. Keys are not `Clone`, so each caller gets a fresh one.
pub fn fixture_key(index: usize, state: KeyState) -> Key {
    let (alg, _) = KEYS[index];
    make_key(alg, state, index == RETIRED_KEY_INDEX)
}

/// The ring tokens are verified against: HS256 (signing), EdDSA (verify-only), ES256
/// (published) and a retired HS256 key.
pub fn verify_ring() -> KeyRing {
    let keys = (0..KEYS.len()).map(|i| fixture_key(i, KEYS[i].1)).collect();
    KeyRing::new(keys).expect("fixture kids are unique")
}

/// A ring holding only key `index` of the verification ring, in the signing state, so that
/// `jwt::issue` signs with that key (a ring signs with its newest signing key only).
fn signer_ring(index: usize) -> KeyRing {
    KeyRing::new(vec![fixture_key(index, KeyState::Signing)]).expect("one key")
}

/// The validation every target applies.
pub fn validation() -> Validation {
    Validation::new(ISSUER, AUDIENCE)
}

/// Claims valid at [`NOW`] for [`LIFETIME`] seconds.
pub fn claims() -> Claims {
    Claims {
        sub: "42".into(),
        user_id: 42,
        username: "alice".into(),
        sid: "fuzz-session".into(),
        jti: "fuzz-jti".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + LIFETIME,
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        roles: Vec::new(),
        scope: None,
    }
}

/// Signs `claims` as a token of `kind` with fixture key `index` (see [`KEYS`]).
pub fn issue_with(index: usize, kind: TokenKind, claims: &Claims) -> String {
    // The RNG is only used by RS256 (blinding), which no fixture key uses.
    jwt::issue(&signer_ring(index), kind, claims, &mut OsRng).expect("fixture key signs")
}

/// One valid token: which key signed it, its kind, and the text.
pub struct ValidToken {
    /// Algorithm of the signing key.
    pub alg: Algorithm,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The compact JWS.
    pub token: String,
}

/// Everything a target needs, built once per process.
pub struct Fixtures {
    /// The verification ring.
    pub ring: KeyRing,
    /// The validation rules.
    pub validation: Validation,
    /// One valid token per verifying key and kind (3 keys x 2 kinds), checked at start-up.
    pub tokens: Vec<ValidToken>,
}

/// The fixtures, built on first use (key import and signing are too slow to repeat per input).
pub static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let ring = verify_ring();
    let validation = validation();
    let mut tokens = Vec::new();
    for (index, (alg, state)) in KEYS.into_iter().enumerate() {
        if !state.is_verifying() {
            continue;
        }
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            let token = issue_with(index, kind, &claims());
            // A fixture that does not verify would make every property vacuous.
            assert_eq!(
                jwt::verify(&ring, &token, kind, &validation, NOW),
                Ok(claims()),
                "fixture token for {alg} {kind:?} must verify"
            );
            tokens.push(ValidToken { alg, kind, token });
        }
    }
    Fixtures { ring, validation, tokens }
});

/// Index of the retired key for [`fixture_key`] and [`issue_with`].
pub const RETIRED_KEY_INDEX: usize = 3;

/// The session id the CSRF property is checked for.
pub const CSRF_SESSION: &str = "fuzz-session";
/// The CSRF key material (32 bytes, the minimum).
pub const CSRF_SECRET: &[u8; 32] = b"tessera fuzz csrf key of 32 byte";
