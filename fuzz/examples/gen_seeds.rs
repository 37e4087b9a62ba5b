//! Regenerates the committed seed inputs in `fuzz/seeds/` from the shared fixtures.
//!
//! Run from the repository root with
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`. Output is deterministic
//! (fixed keys, deterministic signatures), so rerunning leaves `git diff` empty unless the
//! fixtures or tessera-core's encoding changed.
//!
//! `verify_token` seeds: one valid token per verifying key and kind, tokens with a good signature
//! but failing claims (expired, not yet valid, issued in the future, wrong issuer or audience,
//! string `exp`, array payload), one signed by the retired key, and malformed tokens for the
//! header rules and the base64 strictness. `mutate_valid_token` seeds: each fixture token,
//! unedited. `limits_and_csrf` seeds: the limit syntaxes and the real CSRF token.

use std::fs;
use std::path::Path;

use rand_core::OsRng;
use tessera_core::b64;
use tessera_core::jws;
use tessera_core::jwt::{Claims, TokenKind};
use tessera_core::keys::KeyState;
use tessera_core::csrf::CsrfKey;
use tessera_fuzz::{
    claims, fixture_key, issue_with, CSRF_SECRET, CSRF_SESSION, FIXTURES, NOW, RETIRED_KEY_INDEX,
};

fn write(dir: &Path, name: &str, content: &str) {
    fs::write(dir.join(name), content).unwrap_or_else(|e| panic!("writing {name}: {e}"));
}

/// A token signed by fixture key 0 (HS256) over an arbitrary payload and header `typ`.
fn hs256_raw(typ: &str, payload: &str) -> String {
    let key = fixture_key(0, KeyState::Signing);
    jws::sign(&key, Some(typ), payload.as_bytes(), &mut OsRng).expect("hs256 signs")
}

/// An unsigned compact token with the given header and payload JSON and signature text.
fn unsigned(header: &str, payload: &str, signature: &str) -> String {
    format!("{}.{}.{signature}", b64::encode(header.as_bytes()), b64::encode(payload.as_bytes()))
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let dir = root.join("verify_token");
    fs::create_dir_all(&dir).expect("create seeds/verify_token");

    // Valid tokens, one per verifying key and kind (the same ones the targets build).
    for valid in &FIXTURES.tokens {
        let kind = match valid.kind {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        };
        write(&dir, &format!("valid-{}-{kind}", valid.alg.as_str().to_lowercase()), &valid.token);
    }
    let hs256_access = &FIXTURES.tokens[0].token;

    // Good signature, failing claims.
    let with = |edit: fn(&mut Claims)| {
        let mut c = claims();
        edit(&mut c);
        issue_with(0, TokenKind::Access, &c)
    };
    write(&dir, "claims-expired", &with(|c| c.exp = NOW - 100));
    write(&dir, "claims-not-yet-valid", &with(|c| c.nbf = NOW + 100));
    write(&dir, "claims-iat-future", &with(|c| c.iat = NOW + 100));
    write(&dir, "claims-wrong-issuer", &with(|c| c.iss = "evil".into()));
    write(&dir, "claims-wrong-audience", &with(|c| c.aud = "other-api".into()));
    let base = r#""sub":"42","user_id":42,"username":"alice","sid":"s","jti":"j","iss":"tessera","aud":"tessera-api""#;
    write(
        &dir,
        "claims-exp-string",
        &hs256_raw("at+jwt", &format!(r#"{{{base},"iat":{NOW},"nbf":{NOW},"exp":"{}"}}"#, NOW + 900)),
    );
    write(
        &dir,
        "claims-exp-float",
        &hs256_raw("at+jwt", &format!(r#"{{{base},"iat":{NOW},"nbf":{NOW},"exp":{}.5}}"#, NOW + 900)),
    );
    write(&dir, "claims-array", &hs256_raw("at+jwt", r#"["42",42]"#));
    write(&dir, "typ-generic", &hs256_raw("JWT", &format!(r#"{{{base},"iat":{NOW},"nbf":{NOW},"exp":{}}}"#, NOW + 900)));
    write(&dir, "retired-key", &issue_with(RETIRED_KEY_INDEX, TokenKind::Access, &claims()));

    // Header rules.
    let payload = r#"{"sub":"42","exp":9999999999}"#;
    write(&dir, "alg-none", &unsigned(r#"{"alg":"none","typ":"at+jwt"}"#, payload, ""));
    write(&dir, "alg-none-sig", &unsigned(r#"{"alg":"none","kid":"fuzz-eddsa","typ":"at+jwt"}"#, payload, "AA"));
    write(&dir, "header-jwk", &unsigned(r#"{"alg":"EdDSA","kid":"fuzz-eddsa","jwk":{"kty":"OKP"}}"#, payload, "AA"));
    write(&dir, "header-crit", &unsigned(r#"{"alg":"HS256","crit":["exp"]}"#, payload, "AA"));
    write(&dir, "header-dup-alg", &unsigned(r#"{"alg":"HS256","alg":"none"}"#, payload, "AA"));
    write(&dir, "alg-confusion", &unsigned(r#"{"alg":"HS256","kid":"fuzz-es256","typ":"at+jwt"}"#, payload, "AAAA"));

    // Structure and base64 strictness, derived from a valid token.
    let (signing_input, signature) = hs256_access.rsplit_once('.').expect("three segments");
    write(&dir, "segments-two", signing_input);
    write(&dir, "segments-four", &format!("{hs256_access}.AA"));
    write(&dir, "base64-padded", &format!("{signing_input}.{signature}="));
    write(&dir, "base64-std-alphabet", &hs256_access.replace('-', "+").replace('_', "/"));
    write(&dir, "base64-whitespace", &format!("{signing_input}. {signature}"));

    let dir = root.join("limits_and_csrf");
    fs::create_dir_all(&dir).expect("create seeds/limits_and_csrf");
    for (name, text) in [
        ("limit-simple", "5/minute"),
        ("limit-per", "100 per hour"),
        ("limit-multi", "5/minute;100/day"),
        ("limit-multiple", "10/5 minutes"),
        ("limit-mixed", " 2 PER 3 Days | 1/year, 7/90 seconds"),
        ("limit-bad", "5/fortnight"),
    ] {
        write(&dir, name, text);
    }
    let csrf = CsrfKey::new(CSRF_SECRET).expect("32-byte key");
    write(&dir, "csrf-real-token", &csrf.token_for(CSRF_SESSION));
    write(&dir, "csrf-session", CSRF_SESSION);

    // `mutate_valid_token` seeds: one per fixture token, with no edits yet (the first byte picks
    // the token, an empty edit list follows).
    let dir = root.join("mutate_valid_token");
    fs::create_dir_all(&dir).expect("create seeds/mutate_valid_token");
    for (index, valid) in FIXTURES.tokens.iter().enumerate() {
        let name = format!("token-{index}-{}-{:?}", valid.alg.as_str().to_lowercase(), valid.kind).to_lowercase();
        fs::write(dir.join(name), [u8::try_from(index).expect("few tokens")]).expect("write seed");
    }

    println!("seeds written to {}", root.display());
}
