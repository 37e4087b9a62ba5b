//! Benchmarks of the token hot paths: issuing and verifying a JWT with every algorithm, the CSRF
//! token, and a bare HMAC-SHA256 as the floor that HS256 verification is compared with.
//!
//! The number to watch is `verify` of `HS256` over `raw_hmac_sha256`: both MAC exactly the same
//! bytes (the token's `header.payload`) under the same 32-byte key, so the ratio is what the
//! strict parsing and the claims checks cost on top of the cryptography. The `breakdown` group
//! splits that overhead into its steps. Run with `cargo bench -p tessera-core --bench tokens`;
//! `docs/BENCHMARKS.md` has the numbers of the last recorded run.
//!
//! Keys, tokens and claims are built once, outside the timed closures. Setup failures abort the
//! run (a benchmark of a token that does not verify would time the error path).
#![allow(
    clippy::expect_used,
    reason = "fixture setup: a benchmark that cannot build its inputs must stop, not measure"
)]

use std::sync::{LazyLock, OnceLock};

use divan::{Bencher, black_box};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use tessera_core::csrf::CsrfKey;
use tessera_core::jws::{self, Compact};
use tessera_core::jwt::{self, Claims, TokenKind, Validation};
use tessera_core::keys::{Key, KeyRing, KeyState};
use tessera_core::{Algorithm, b64};

fn main() {
    divan::main();
}

/// The issue time of every benchmarked token (2026-11-28T00:00:00Z); verification runs one
/// second later, well inside the token's life.
const NOW: i64 = 1_795_824_000;

/// Lifetime of the benchmarked access tokens, in seconds.
const ACCESS_TTL: i64 = 900;

/// A random 22-character id (16 bytes as base64url), the shape of Tessera's `sid` and `jti`.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    b64::encode(&bytes)
}

/// The claims of a typical access token.
fn claims() -> Claims {
    Claims {
        sub: "1048576".into(),
        user_id: 1_048_576,
        username: "alice.lindqvist".into(),
        sid: random_id(),
        jti: random_id(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + ACCESS_TTL,
        iss: "tessera".into(),
        aud: "tessera-api".into(),
        roles: Vec::new(),
        scope: None,
    }
}

fn validation() -> Validation {
    Validation::new("tessera", "tessera-api")
}

/// The 32-byte secret shared by the HS256 key and the raw HMAC benchmarks.
static HS256_SECRET: LazyLock<[u8; 32]> = LazyLock::new(|| {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    secret
});

/// One algorithm's key ring (holding only its signing key), claims and a valid access token.
struct Fixture {
    ring: KeyRing,
    claims: Claims,
    token: String,
}

impl Fixture {
    fn new(alg: Algorithm) -> Fixture {
        // HS256 uses a configured-style 32-byte secret so that it matches `raw_hmac_sha256`
        // byte for byte; the others use freshly generated keys as rotation would make them.
        let key = if alg == Algorithm::HS256 {
            Key::from_secret(alg, &*HS256_SECRET, None, KeyState::Signing, 0)
        } else {
            Key::generate(alg, KeyState::Signing, 0, &mut OsRng)
        }
        .expect("benchmark key");
        let ring = KeyRing::new(vec![key]).expect("benchmark key ring");
        let claims = claims();
        let token = jwt::issue(&ring, TokenKind::Access, &claims, &mut OsRng).expect("benchmark token");
        let verified = jwt::verify(&ring, &token, TokenKind::Access, &validation(), NOW + 1);
        assert_eq!(verified.as_ref(), Ok(&claims), "{alg} token must verify");
        Fixture { ring, claims, token }
    }

    /// The bytes the signature covers: `header.payload`.
    fn signing_input(&self) -> &str {
        let end = self.token.rfind('.').expect("three segments");
        &self.token[..end]
    }

    /// The three base64url segments.
    fn segments(&self) -> (&str, &str, &str) {
        let (header, rest) = self.token.split_once('.').expect("three segments");
        let (payload, signature) = rest.split_once('.').expect("three segments");
        (header, payload, signature)
    }

    /// The decoded claims JSON.
    fn payload_json(&self) -> Vec<u8> {
        b64::decode(self.segments().1).expect("payload decodes")
    }
}

/// The fixture for `alg`, built on first use (RSA key generation takes a moment).
fn fixture(alg: Algorithm) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; Algorithm::ALL.len()] = [const { OnceLock::new() }; Algorithm::ALL.len()];
    let index = Algorithm::ALL
        .iter()
        .position(|a| *a == alg)
        .expect("algorithm is in ALL");
    FIXTURES[index].get_or_init(|| Fixture::new(alg))
}

/// `jwt::issue`: serialise the claims and header, base64url-encode, sign.
#[divan::bench(args = Algorithm::ALL)]
fn issue(bencher: Bencher, alg: Algorithm) {
    let fixture = fixture(alg);
    bencher.bench(|| {
        jwt::issue(
            black_box(&fixture.ring),
            TokenKind::Access,
            black_box(&fixture.claims),
            &mut OsRng,
        )
    });
}

/// `jwt::verify` of a valid access token: parse, header rules, key by kid, signature,
/// claims JSON and the time and identity checks.
#[divan::bench(args = Algorithm::ALL)]
fn verify(bencher: Bencher, alg: Algorithm) {
    let fixture = fixture(alg);
    let validation = validation();
    bencher.bench(|| {
        jwt::verify(
            black_box(&fixture.ring),
            black_box(&fixture.token),
            TokenKind::Access,
            black_box(&validation),
            black_box(NOW + 1),
        )
    });
}

/// Checks once that the raw MAC is the token's signature, i.e. that the same bytes are MACed.
fn hs256_signing_input() -> &'static [u8] {
    let fixture = fixture(Algorithm::HS256);
    let input = fixture.signing_input().as_bytes();
    let expected = b64::decode(fixture.segments().2).expect("signature decodes");
    let tag = Hmac::<Sha256>::new_from_slice(&*HS256_SECRET)
        .expect("any key length")
        .chain_update(input)
        .finalize()
        .into_bytes();
    assert_eq!(&tag[..], &expected[..], "raw HMAC must reproduce the HS256 signature");
    input
}

/// Keys HMAC-SHA256 with the 32-byte secret, then MACs `header.payload` (what a naive HS256
/// verifier does per token).
#[divan::bench]
fn raw_hmac_sha256(bencher: Bencher) {
    let input = hs256_signing_input();
    let key: &[u8] = &*HS256_SECRET;
    bencher.bench(|| {
        Hmac::<Sha256>::new_from_slice(black_box(key))
            .expect("any key length")
            .chain_update(black_box(input))
            .finalize()
            .into_bytes()
    });
}

/// Clones a pre-keyed HMAC-SHA256 state (as `Key` keeps one), then MACs `header.payload`:
/// saves the two key-block compressions.
#[divan::bench]
fn raw_hmac_sha256_prekeyed(bencher: Bencher) {
    let input = hs256_signing_input();
    let keyed = Hmac::<Sha256>::new_from_slice(&*HS256_SECRET).expect("any key length");
    bencher.bench(|| {
        black_box(&keyed)
            .clone()
            .chain_update(black_box(input))
            .finalize()
            .into_bytes()
    });
}

/// A random 32-byte CSRF key and a session id.
fn csrf_key_and_session() -> (CsrfKey, String) {
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut secret);
    (CsrfKey::new(&secret).expect("32-byte csrf key"), random_id())
}

/// `CsrfKey::token_for`: HMAC of the session id, base64url-encoded.
#[divan::bench]
fn csrf_token_for(bencher: Bencher) {
    let (key, session) = csrf_key_and_session();
    bencher.bench(|| black_box(&key).token_for(black_box(&session)));
}

/// `CsrfKey::verify` of the right token: decode, HMAC, constant-time compare.
#[divan::bench]
fn csrf_verify(bencher: Bencher) {
    let (key, session) = csrf_key_and_session();
    let token = key.token_for(&session);
    assert!(key.verify(&session, &token), "csrf token must verify");
    bencher.bench(|| black_box(&key).verify(black_box(&session), black_box(&token)));
}

/// Where HS256 `jwt::verify` spends its time, step by step, on the same token. Each step is
/// timed on its own; together they roughly add up to the full `verify` of `HS256`.
mod breakdown {
    use super::*;

    fn hs256() -> &'static Fixture {
        fixture(Algorithm::HS256)
    }

    /// `Compact::parse`: split, decode and parse the header, check the payload alphabet, decode
    /// the signature.
    #[divan::bench]
    fn jws_compact_parse(bencher: Bencher) {
        let token = hs256().token.as_str();
        bencher.bench(|| Compact::parse(black_box(token)));
    }

    /// `jws::verify_with_ring`: everything up to and including the payload decode.
    #[divan::bench]
    fn jws_verify_with_ring(bencher: Bencher) {
        let fixture = hs256();
        bencher.bench(|| jws::verify_with_ring(black_box(&fixture.token), black_box(&fixture.ring)));
    }

    /// `Key::verify_signature`: the pre-keyed HMAC and the constant-time tag comparison.
    #[divan::bench]
    fn key_verify_signature(bencher: Bencher) {
        let fixture = hs256();
        let key = fixture.ring.signing_key().expect("signing key");
        let input = fixture.signing_input().as_bytes();
        let signature = b64::decode(fixture.segments().2).expect("signature decodes");
        assert!(key.verify_signature(input, &signature));
        bencher.bench(|| black_box(key).verify_signature(black_box(input), black_box(&signature)));
    }

    /// Base64url decode of the header segment.
    #[divan::bench]
    fn b64_decode_header(bencher: Bencher) {
        let header = hs256().segments().0;
        bencher.bench(|| b64::decode(black_box(header)));
    }

    /// Base64url decode of the payload segment (the claims).
    #[divan::bench]
    fn b64_decode_payload(bencher: Bencher) {
        let payload = hs256().segments().1;
        bencher.bench(|| b64::decode(black_box(payload)));
    }

    /// Base64url decode of the signature segment.
    #[divan::bench]
    fn b64_decode_signature(bencher: Bencher) {
        let signature = hs256().segments().2;
        bencher.bench(|| b64::decode(black_box(signature)));
    }

    /// Base64url decode of the payload into a buffer allocated beforehand (the cost of the
    /// decode alone, as with a reused or stack buffer).
    #[divan::bench]
    fn b64_decode_payload_into(bencher: Bencher) {
        let payload = hs256().segments().1;
        bencher
            .with_inputs(|| Vec::with_capacity(payload.len()))
            .bench_local_refs(|buffer| b64::decode_into(black_box(payload), buffer));
    }

    /// A copy of the private `header::RawHeader`, so that the header's JSON parse can be timed on
    /// its own. Keep it in step with `src/header.rs`.
    #[derive(serde::Deserialize)]
    #[allow(dead_code, reason = "fields are only parsed, as in the original")]
    struct RawHeader {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
        #[serde(default)]
        typ: Option<String>,
        #[serde(default, deserialize_with = "present")]
        crit: bool,
        #[serde(default, deserialize_with = "present")]
        b64: bool,
        #[serde(default, deserialize_with = "present")]
        jwk: bool,
        #[serde(default, deserialize_with = "present")]
        jku: bool,
        #[serde(default, deserialize_with = "present")]
        x5u: bool,
        #[serde(default, deserialize_with = "present")]
        x5c: bool,
    }

    /// Marks a header member as present whatever its value (copy of `header::present`).
    fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        <serde::de::IgnoredAny as serde::Deserialize>::deserialize(deserializer).map(|_| true)
    }

    /// `serde_json` parse of the decoded header into (a copy of) `header::RawHeader`.
    #[divan::bench]
    fn header_json(bencher: Bencher) {
        let json = b64::decode(hs256().segments().0).expect("header decodes");
        assert!(serde_json::from_slice::<RawHeader>(&json).is_ok());
        bencher.bench(|| serde_json::from_slice::<RawHeader>(black_box(&json)));
    }

    /// The payload alphabet pre-check `Compact::parse` runs before the signature (a copy of
    /// `jws::is_base64url_byte` over every payload byte).
    #[divan::bench]
    fn payload_alphabet_check(bencher: Bencher) {
        let payload = hs256().segments().1;
        bencher.bench(|| {
            black_box(payload)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    }

    /// Experiment: the same alphabet check without short-circuiting, which the compiler can
    /// vectorise. Same answer as `payload_alphabet_check`.
    #[divan::bench]
    fn payload_alphabet_check_fold(bencher: Bencher) {
        let payload = hs256().segments().1;
        let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        for bad in [payload.to_owned(), format!("{payload}="), format!("={payload}")] {
            let folded = bad.bytes().fold(true, |ok, b| {
                ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_'))
            });
            assert_eq!(folded, bad.bytes().all(valid), "fold and all must agree");
        }
        bencher.bench(|| {
            black_box(payload).bytes().fold(true, |ok, b| {
                ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_'))
            })
        });
    }

    /// Experiment: the claims with borrowed strings, as a verifier that only compares `iss` and
    /// `aud` and hands out views could parse them (no allocation when nothing is escaped).
    #[derive(serde::Deserialize)]
    #[allow(dead_code, reason = "fields are only parsed")]
    struct BorrowedClaims<'a> {
        sub: &'a str,
        user_id: i64,
        username: &'a str,
        sid: &'a str,
        jti: &'a str,
        iat: i64,
        nbf: i64,
        exp: i64,
        iss: &'a str,
        aud: &'a str,
    }

    /// Experiment: `serde_json` parse of the claims into borrowed `&str` fields.
    #[divan::bench]
    fn claims_json_borrowed(bencher: Bencher) {
        let json = hs256().payload_json();
        assert!(serde_json::from_slice::<BorrowedClaims<'_>>(&json).is_ok());
        bencher.bench(|| serde_json::from_slice::<BorrowedClaims<'_>>(black_box(&json)));
    }

    /// `serde_json` parse of the claims into `Claims` (six owned strings).
    #[divan::bench]
    fn claims_json(bencher: Bencher) {
        let json = hs256().payload_json();
        bencher.bench(|| serde_json::from_slice::<Claims>(black_box(&json)));
    }

    /// Prototype of a leaner HS256 verification built from public pieces, to measure what the
    /// suggested changes would buy (see docs/BENCHMARKS.md). For a valid token it makes the same
    /// decisions as `jwt::verify`: size bound, three segments, a header byte-identical to the
    /// one the key itself emits for `at+jwt` (so the header rules, `kid`, `alg` and `typ` hold
    /// by construction; anything else would take the strict path), payload alphabet, canonical
    /// signature, MAC, canonical payload, claims object, claims checks. Not a replacement: it
    /// exists to measure.
    fn lean_verify(key: &Key, access_header: &str, token: &str, validation: &Validation, now: i64) -> Option<Claims> {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;

        if token.len() > jws::MAX_TOKEN_BYTES {
            return None;
        }
        let (header, rest) = token.split_once('.')?;
        let (payload, signature_b64) = rest.split_once('.')?;
        if header != access_header || signature_b64.contains('.') {
            return None;
        }
        let alphabet_ok = payload.bytes().fold(true, |ok, b| {
            ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_'))
        });
        if !alphabet_ok {
            return None;
        }
        let mut signature = [0u8; 64];
        let len = URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature).ok()?;
        if !key.verify_signature(&token.as_bytes()[..header.len() + 1 + payload.len()], &signature[..len]) {
            return None;
        }
        let json = b64::decode(payload)?;
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&json).ok()?;
        jwt::check_claims(&claims, validation, now).ok()?;
        Some(claims)
    }

    /// Experiment: `lean_verify` of the HS256 token, the same work as `verify` of `HS256` with
    /// the header fast path, the branchless alphabet check and a stack buffer for the signature.
    /// Returns owned `Claims`, like `jwt::verify`.
    #[divan::bench]
    fn lean_verify_prototype(bencher: Bencher) {
        let fixture = hs256();
        let key = fixture.ring.signing_key().expect("signing key");
        // The header segment this key emits for access tokens, as a ring would precompute it.
        let probe = jws::sign(key, Some(TokenKind::Access.typ()), b"{}", &mut OsRng).expect("probe token");
        let access_header = probe.split_once('.').expect("three segments").0.to_owned();
        let validation = validation();
        assert_eq!(
            lean_verify(key, &access_header, &fixture.token, &validation, NOW + 1).as_ref(),
            Some(&fixture.claims),
            "the prototype must accept the token with the same claims"
        );
        bencher.bench(|| {
            lean_verify(
                black_box(key),
                black_box(&access_header),
                black_box(&fixture.token),
                black_box(&validation),
                black_box(NOW + 1),
            )
        });
    }

    /// `jwt::check_claims`: the time, issuer and audience comparisons.
    #[divan::bench]
    fn check_claims(bencher: Bencher) {
        let claims = &hs256().claims;
        let validation = validation();
        bencher.bench(|| jwt::check_claims(black_box(claims), black_box(&validation), black_box(NOW + 1)));
    }
}
