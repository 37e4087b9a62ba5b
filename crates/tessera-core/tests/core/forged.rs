//! Hand-forged tokens, one per rule of strict verification (B5, RFC 8725). Each test builds the
//! attack token byte by byte, signs it where the attack needs a valid signature, and asserts the
//! exact refusal.

use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use serde_json::{Value, json};
use sha2::Sha256;
use tessera_core::jws::{JwsError, MAX_TOKEN_BYTES};
use tessera_core::jwt::{self, Claims, TokenError, TokenKind, Validation};
use tessera_core::keys::{Key, KeyRing, KeyState, Kid};
use tessera_core::{Algorithm, b64};

const NOW: i64 = 1_800_000_000;
const SECRET: &[u8; 32] = b"an hs256 secret of 32 bytes ok!!";

fn hs_key() -> Key {
    Key::from_secret(
        Algorithm::HS256,
        SECRET,
        Some(Kid::new("hs").unwrap()),
        KeyState::Signing,
        1,
    )
    .unwrap()
}

/// One asymmetric key of each kind, generated once (RSA generation is slow).
static ASYMMETRIC: LazyLock<Vec<(Algorithm, Vec<u8>)>> = LazyLock::new(|| {
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
        .into_iter()
        .map(|alg| {
            let key = Key::generate(alg, KeyState::Signing, 0, &mut OsRng).unwrap();
            (alg, key.export_private().unwrap().to_vec())
        })
        .collect()
});

fn asymmetric_key(alg: Algorithm) -> Key {
    let (_, private) = ASYMMETRIC.iter().find(|(a, _)| *a == alg).unwrap();
    let kid = Kid::new(format!("{}-kid", alg.as_str().to_lowercase())).unwrap();
    Key::import_private(alg, kid, KeyState::VerifyOnly, 0, None, private).unwrap()
}

/// A ring with the HS256 signing key and a verify-only key of every asymmetric algorithm.
fn ring() -> KeyRing {
    let mut keys = vec![hs_key()];
    keys.extend([Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256].map(asymmetric_key));
    KeyRing::new(keys).unwrap()
}

fn validation() -> Validation {
    Validation::new("tessera", "tessera-api")
}

fn claims_json() -> Value {
    json!({
        "sub": "42", "user_id": 42, "username": "alice", "sid": "s1", "jti": "j1",
        "iat": NOW, "nbf": NOW, "exp": NOW + 900, "iss": "tessera", "aud": "tessera-api",
    })
}

fn header_json() -> Value {
    json!({"alg": "HS256", "kid": "hs", "typ": "at+jwt"})
}

/// Signs arbitrary header and payload bytes with HMAC-SHA256 under `secret`: a forger who
/// knows (or guesses) the secret material.
fn forge_raw(header: &[u8], payload: &[u8], secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    let tag = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap()
        .chain_update(signing_input.as_bytes())
        .finalize()
        .into_bytes();
    format!("{signing_input}.{}", b64::encode(&tag))
}

fn forge(header: &Value, payload: &Value) -> String {
    forge_raw(header.to_string().as_bytes(), payload.to_string().as_bytes(), SECRET)
}

fn check(token: &str) -> Result<Claims, TokenError> {
    jwt::verify(&ring(), token, TokenKind::Access, &validation(), NOW + 1)
}

#[test]
fn the_forging_helper_produces_tokens_that_verify() {
    // Arrange / Act: the control case for every forged test below.
    let token = forge(&header_json(), &claims_json());
    // Assert
    assert_eq!(check(&token).unwrap().user_id, 42);
}

#[test]
fn alg_none_is_refused_in_every_spelling() {
    for alg in ["none", "None", "NONE", "nOnE", " none", "none "] {
        let header = json!({"alg": alg, "kid": "hs", "typ": "at+jwt"});
        let unsigned = format!(
            "{}.{}.",
            b64::encode(header.to_string().as_bytes()),
            b64::encode(claims_json().to_string().as_bytes())
        );
        assert!(
            matches!(check(&unsigned), Err(TokenError::Jws(JwsError::Malformed(_)))),
            "{alg}: {unsigned}"
        );
        // With some signature bytes, the alg rule itself must refuse it.
        let with_signature = forge(&header, &claims_json());
        assert_eq!(
            check(&with_signature),
            Err(TokenError::Jws(JwsError::AlgorithmNotAllowed)),
            "{alg}"
        );
    }
}

#[test]
fn missing_alg_is_refused() {
    let token = forge(&json!({"kid": "hs", "typ": "at+jwt"}), &claims_json());
    assert!(matches!(check(&token), Err(TokenError::Jws(JwsError::Malformed(_)))));
}

#[test]
fn hs256_signed_with_an_asymmetric_public_key_is_refused() {
    // The classic confusion: take the verifier's public key, use its bytes as an HMAC secret,
    // and claim alg HS256 with the asymmetric key's kid.
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = asymmetric_key(alg);
        let jwk = key.public_jwk().unwrap();
        let mut candidate_secrets: Vec<Vec<u8>> = vec![serde_json::to_vec(&jwk).unwrap()];
        for member in [&jwk.x, &jwk.y, &jwk.n].into_iter().flatten() {
            candidate_secrets.push(b64::decode(member).unwrap());
            candidate_secrets.push(member.as_bytes().to_vec());
        }
        for secret in candidate_secrets {
            let header = json!({"alg": "HS256", "kid": key.kid().as_str(), "typ": "at+jwt"});
            let token = forge_raw(
                header.to_string().as_bytes(),
                claims_json().to_string().as_bytes(),
                &secret,
            );
            assert_eq!(
                check(&token),
                Err(TokenError::Jws(JwsError::AlgorithmNotAllowed)),
                "{alg}"
            );
        }
    }
}

#[test]
fn alg_that_differs_from_the_keys_pinned_alg_is_refused() {
    // Same key family, other strength: HS512 claimed on an HS256 key.
    let token = forge(&json!({"alg": "HS512", "kid": "hs", "typ": "at+jwt"}), &claims_json());
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::AlgorithmNotAllowed)));
    // An asymmetric alg claimed on the HMAC key.
    let token = forge(&json!({"alg": "RS256", "kid": "hs", "typ": "at+jwt"}), &claims_json());
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::AlgorithmNotAllowed)));
}

#[test]
fn exp_as_a_string_is_refused() {
    let mut claims = claims_json();
    claims["exp"] = json!((NOW + 900).to_string());
    assert_eq!(check(&forge(&header_json(), &claims)), Err(TokenError::InvalidClaims));
}

#[test]
fn iat_and_nbf_as_strings_are_refused() {
    for field in ["iat", "nbf"] {
        let mut claims = claims_json();
        claims[field] = json!(NOW.to_string());
        assert_eq!(
            check(&forge(&header_json(), &claims)),
            Err(TokenError::InvalidClaims),
            "{field}"
        );
    }
}

#[test]
fn missing_exp_is_refused() {
    let mut claims = claims_json();
    claims.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(&forge(&header_json(), &claims)), Err(TokenError::InvalidClaims));
}

#[test]
fn every_claim_is_required() {
    for field in [
        "sub", "user_id", "username", "sid", "jti", "iat", "nbf", "exp", "iss", "aud",
    ] {
        let mut claims = claims_json();
        claims.as_object_mut().unwrap().remove(field);
        assert_eq!(
            check(&forge(&header_json(), &claims)),
            Err(TokenError::InvalidClaims),
            "{field}"
        );
    }
}

#[test]
fn duplicate_exp_is_refused() {
    let payload = claims_json()
        .to_string()
        .replacen('{', &format!("{{\"exp\":{},", NOW + 10_000_000), 1);
    let token = forge_raw(header_json().to_string().as_bytes(), payload.as_bytes(), SECRET);
    assert_eq!(check(&token), Err(TokenError::InvalidClaims));
}

#[test]
fn claims_that_are_not_an_object_are_refused() {
    for payload in [json!(["42", 42]), json!("claims"), json!(null)] {
        assert_eq!(
            check(&forge(&header_json(), &payload)),
            Err(TokenError::InvalidClaims),
            "{payload}"
        );
    }
}

#[test]
fn expired_token_is_reported_as_expired() {
    let mut claims = claims_json();
    claims["exp"] = json!(NOW - 100);
    assert_eq!(
        check(&forge(&header_json(), &claims)),
        Err(TokenError::Expired {
            user_id: claims["user_id"].as_i64().unwrap()
        })
    );
}

#[test]
fn expired_token_with_a_bad_signature_is_not_reported_as_expired() {
    let mut claims = claims_json();
    claims["exp"] = json!(NOW - 100);
    let token = forge_raw(
        header_json().to_string().as_bytes(),
        claims.to_string().as_bytes(),
        &[0u8; 32],
    );
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::BadSignature)));
}

#[test]
fn future_nbf_is_refused_beyond_the_leeway() {
    let mut claims = claims_json();
    claims["nbf"] = json!(NOW + 60);
    assert_eq!(check(&forge(&header_json(), &claims)), Err(TokenError::NotYetValid));
    claims["nbf"] = json!(NOW + 5);
    assert!(check(&forge(&header_json(), &claims)).is_ok(), "within the 10 s leeway");
}

#[test]
fn future_iat_is_refused() {
    let mut claims = claims_json();
    claims["iat"] = json!(NOW + 3600);
    assert_eq!(check(&forge(&header_json(), &claims)), Err(TokenError::IssuedInFuture));
}

#[test]
fn wrong_issuer_is_refused() {
    let mut claims = claims_json();
    claims["iss"] = json!("evil");
    assert_eq!(check(&forge(&header_json(), &claims)), Err(TokenError::WrongIssuer));
}

#[test]
fn wrong_audience_is_refused() {
    for aud in [json!("other-api"), json!(["tessera-api"]), json!(null)] {
        let mut claims = claims_json();
        claims["aud"] = aud.clone();
        let result = check(&forge(&header_json(), &claims));
        assert!(
            matches!(result, Err(TokenError::WrongAudience | TokenError::InvalidClaims)),
            "{aud}: {result:?}"
        );
    }
}

#[test]
fn refresh_token_used_as_access_token_is_refused() {
    let ring = ring();
    let claims: Claims = serde_json::from_value(claims_json()).unwrap();
    let refresh = jwt::issue(&ring, TokenKind::Refresh, &claims, &mut OsRng).unwrap();
    assert_eq!(check(&refresh), Err(TokenError::WrongType));
    // And the reverse.
    let access = jwt::issue(&ring, TokenKind::Access, &claims, &mut OsRng).unwrap();
    assert_eq!(
        jwt::verify(&ring, &access, TokenKind::Refresh, &validation(), NOW),
        Err(TokenError::WrongType)
    );
}

#[test]
fn missing_or_generic_typ_is_refused() {
    for header in [
        json!({"alg": "HS256", "kid": "hs"}),
        json!({"alg": "HS256", "kid": "hs", "typ": "JWT"}),
    ] {
        assert_eq!(
            check(&forge(&header, &claims_json())),
            Err(TokenError::WrongType),
            "{header}"
        );
    }
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    let token = forge(&json!({"alg": "HS256", "kid": "nope", "typ": "at+jwt"}), &claims_json());
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::UnknownKey)));
    let token = forge(&json!({"alg": "HS256", "typ": "at+jwt"}), &claims_json());
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::UnknownKey)));
}

#[test]
fn token_of_a_retired_key_is_refused() {
    let token = forge(&header_json(), &claims_json());
    let mut ring = ring();
    ring.set_state("hs", KeyState::Retired, NOW).unwrap();
    assert_eq!(
        jwt::verify(&ring, &token, TokenKind::Access, &validation(), NOW),
        Err(TokenError::Jws(JwsError::UnknownKey))
    );
}

#[test]
fn signature_by_another_secret_under_the_same_kid_is_refused() {
    let token = forge_raw(
        header_json().to_string().as_bytes(),
        claims_json().to_string().as_bytes(),
        b"another secret that is 32 bytes!",
    );
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::BadSignature)));
}

#[test]
fn crit_is_refused_whatever_it_lists() {
    for crit in [json!(["exp"]), json!([]), json!(["b64"]), json!("x")] {
        let header = json!({"alg": "HS256", "kid": "hs", "typ": "at+jwt", "crit": crit});
        assert_eq!(
            check(&forge(&header, &claims_json())),
            Err(TokenError::Jws(JwsError::UnsupportedHeader("crit")))
        );
    }
}

#[test]
fn embedded_keys_in_the_header_are_refused() {
    // The attacker signs with a key of their own and ships it in the header (CVE-2018-0114).
    let attacker = Key::generate(Algorithm::ES256, KeyState::Signing, 0, &mut OsRng).unwrap();
    let header = json!({
        "alg": "ES256", "kid": "es256-kid", "typ": "at+jwt",
        "jwk": serde_json::to_value(attacker.public_jwk().unwrap()).unwrap(),
    });
    let signing_input = format!(
        "{}.{}",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(claims_json().to_string().as_bytes())
    );
    let signature = attacker.sign_bytes(signing_input.as_bytes(), &mut OsRng).unwrap();
    let token = format!("{signing_input}.{}", b64::encode(&signature));
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::UnsupportedHeader("jwk"))));
    for member in ["jku", "x5u", "x5c"] {
        let mut header = header_json();
        header[member] = json!("https://attacker.example/keys");
        assert_eq!(
            check(&forge(&header, &claims_json())),
            Err(TokenError::Jws(JwsError::UnsupportedHeader(member)))
        );
    }
}

#[test]
fn padded_base64_is_refused_in_every_segment() {
    let token = forge(&header_json(), &claims_json());
    let parts: Vec<&str> = token.split('.').collect();
    for i in 0..3 {
        let mut padded: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        padded[i].push('=');
        let padded = padded.join(".");
        assert!(
            matches!(check(&padded), Err(TokenError::Jws(JwsError::Malformed(_)))),
            "segment {i}"
        );
    }
}

#[test]
fn standard_base64_alphabet_is_refused() {
    // A header whose base64url contains '-' or '_' re-spelled with '+' or '/'.
    let header = br#"{"alg":"HS256","kid":"hs","typ":"at+jwt","x":"\u00fb\u00ff"}"#;
    let token = forge_raw(header, claims_json().to_string().as_bytes(), SECRET);
    assert!(check(&token).is_ok());
    let respelled = token.replace('-', "+").replace('_', "/");
    if respelled != token {
        assert!(matches!(
            check(&respelled),
            Err(TokenError::Jws(JwsError::Malformed(_)))
        ));
    }
}

#[test]
fn four_and_five_segments_are_refused() {
    let token = forge(&header_json(), &claims_json());
    for extra in [".", ".x", ".x.y", "..", ".eyJ9.eyJ9"] {
        let longer = format!("{token}{extra}");
        assert!(
            matches!(check(&longer), Err(TokenError::Jws(JwsError::Malformed(_)))),
            "{longer}"
        );
    }
}

#[test]
fn two_segments_are_refused() {
    let token = forge(&header_json(), &claims_json());
    let (unsigned, _) = token.rsplit_once('.').unwrap();
    assert!(matches!(check(unsigned), Err(TokenError::Jws(JwsError::Malformed(_)))));
}

#[test]
fn oversized_token_is_refused_before_parsing() {
    // A validly signed token over the bound: the size check wins even though all else is fine.
    let mut claims = claims_json();
    claims["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = forge(&header_json(), &claims);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::TooLarge)));
    // Garbage of the same size is refused the same way, without any decoding.
    assert_eq!(
        check(&"!".repeat(MAX_TOKEN_BYTES + 1)),
        Err(TokenError::Jws(JwsError::TooLarge))
    );
    // Just under the bound, size is not the reason.
    let mut claims = claims_json();
    claims["padding"] = json!("x".repeat(MAX_TOKEN_BYTES / 2));
    assert!(check(&forge(&header_json(), &claims)).is_ok());
}

#[test]
fn es256_signature_in_der_form_is_refused() {
    // JWS wants r || s (64 bytes); a DER-encoded ECDSA signature must not be accepted.
    let key = asymmetric_key(Algorithm::ES256);
    let header = json!({"alg": "ES256", "kid": key.kid().as_str(), "typ": "at+jwt"});
    let signing_input = format!(
        "{}.{}",
        b64::encode(header.to_string().as_bytes()),
        b64::encode(claims_json().to_string().as_bytes())
    );
    let raw = key.sign_bytes(signing_input.as_bytes(), &mut OsRng);
    // Only a key with private material signs; re-import as a signing key for the control.
    assert!(raw.is_ok());
    let raw = raw.unwrap();
    let good = format!("{signing_input}.{}", b64::encode(&raw));
    assert!(check(&good).is_ok());
    let signature = p256::ecdsa::Signature::from_slice(&raw).unwrap();
    let der = signature.to_der();
    let token = format!("{signing_input}.{}", b64::encode(der.as_bytes()));
    assert_eq!(check(&token), Err(TokenError::Jws(JwsError::BadSignature)));
}

#[test]
fn token_signed_for_one_ring_is_unknown_to_another() {
    // Access and refresh tokens are signed by different rings (SECRET_KEY, REFRESH_SECRET_KEY).
    let access_ring = ring();
    let refresh_ring = KeyRing::new(vec![
        Key::from_secret(Algorithm::HS256, &[5u8; 32], None, KeyState::Signing, 0).unwrap(),
    ])
    .unwrap();
    let claims: Claims = serde_json::from_value(claims_json()).unwrap();
    let refresh = jwt::issue(&refresh_ring, TokenKind::Refresh, &claims, &mut OsRng).unwrap();
    assert_eq!(
        jwt::verify(&access_ring, &refresh, TokenKind::Refresh, &validation(), NOW),
        Err(TokenError::Jws(JwsError::UnknownKey))
    );
}

#[test]
fn non_utf8_and_control_characters_are_refused() {
    let token = forge(&header_json(), &claims_json());
    for bad in [
        format!("{token}\n"),
        format!(" {token}"),
        token.replacen('.', ".\u{0}", 1),
    ] {
        assert!(check(&bad).is_err(), "{bad:?}");
    }
}
