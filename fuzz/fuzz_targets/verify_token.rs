//! Fuzz target `verify_token`: arbitrary text through the whole strict verification path.
//!
//! Tokens arrive from the network, so `jws::Compact::parse`, `jws::verify_with_key` and
//! `jwt::verify` must never panic on any input, and the ring's known-header fast path
//! (`Compact::parse_with` with `KeyRing::known_header`) must agree with full header parsing.
//! Beyond that, acceptance must imply that every check held: whenever `jwt::verify` returns
//! claims, this target re-checks independently that the header names a verifying key of the
//! right algorithm and carries the requested `typ`, that the token is refused as the other kind,
//! and that `exp`, `nbf`, `iat`, `iss` and `aud` satisfy the validation at the time used. The
//! fuzzer cannot forge signatures, so accepted inputs come from the valid seeds in
//! `fuzz/seeds/verify_token/` and the mutations of them that survive.
//!
//! Input that is not UTF-8 is skipped: the server only ever verifies `&str` tokens.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::jws::{self, Compact};
use tessera_core::jwt::{self, TokenError, TokenKind};
use tessera_fuzz::{FIXTURES, LIFETIME, NOW};

/// Times each input is verified at: before `nbf` beyond the leeway, the issue time, the last
/// second inside the leeway after the fixtures' `exp`, and the first second past it.
const TIMES: [i64; 4] = [NOW - 11, NOW, NOW + LIFETIME + 9, NOW + LIFETIME + 10];

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let fixtures = &*FIXTURES;
    let ring = &fixtures.ring;
    let validation = &fixtures.validation;

    // The known-header fast path (exact header segments the ring's keys write, taken as parsed
    // without decoding) must agree with full header parsing on every input.
    let parsed = Compact::parse(token);
    let fast = Compact::parse_with(token, |segment| ring.known_header(segment));
    match (&parsed, &fast) {
        (Ok(full), Ok(fast)) => assert_eq!(full.header, fast.header, "fast path header differs"),
        (Err(full), Err(fast)) => assert_eq!(full, fast, "fast path error differs"),
        (full, fast) => panic!("fast path disagrees: full {full:?}, fast {fast:?}"),
    }

    // The signature layer alone, with every key of the ring whatever the header's kid says: this
    // reaches each signature routine (HMAC, Ed25519, ECDSA) with fuzzed signature bytes.
    if parsed.is_ok() {
        for key in ring.keys() {
            let _ = jws::verify_with_key(token, key);
        }
    }

    for kind in [TokenKind::Access, TokenKind::Refresh] {
        for now in TIMES {
            let Ok(claims) = jwt::verify(ring, token, kind, validation, now) else {
                continue;
            };

            // Structure and header: acceptance implies the header rules and key pinning held.
            let compact = Compact::parse(token).expect("an accepted token parses");
            assert_eq!(compact.header.typ.as_deref(), Some(kind.typ()), "accepted with wrong typ");
            let kid = compact.header.kid.as_deref().expect("an accepted token names its key");
            let key = ring.find_verifier(kid).expect("an accepted token names a verifying key");
            assert_eq!(compact.header.alg, key.algorithm(), "accepted with an alg that is not the key's");
            assert!(jws::verify_with_key(token, key).is_ok(), "ring accepted what its key refuses");

            // Kinds never mix: the same token as the other kind must be a type error.
            let other = match kind {
                TokenKind::Access => TokenKind::Refresh,
                TokenKind::Refresh => TokenKind::Access,
            };
            assert_eq!(
                jwt::verify(ring, token, other, validation, now),
                Err(TokenError::WrongType),
                "accepted as both kinds"
            );

            // Claims: acceptance implies the time and identity checks held at `now`.
            let leeway = validation.leeway_secs;
            assert!(now < claims.exp.saturating_add(leeway), "accepted after exp + leeway: {claims:?} at {now}");
            assert!(claims.nbf <= now.saturating_add(leeway), "accepted before nbf - leeway: {claims:?} at {now}");
            assert!(claims.iat <= now.saturating_add(leeway), "accepted with iat in the future: {claims:?} at {now}");
            assert_eq!(claims.iss, validation.issuer, "accepted with the wrong issuer");
            assert_eq!(claims.aud, validation.audience, "accepted with the wrong audience");
        }
    }
});
