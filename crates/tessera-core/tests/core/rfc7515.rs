//! The examples of RFC 7515 Appendix A, verified at the signature layer with
//! `jws::verify_with_key`: A.1 (HS256), A.2 (RS256) and A.3 (ES256) are accepted with the keys the
//! RFC gives, A.4 (ES512) is refused because Tessera does not support the algorithm, and A.5 (an
//! unsecured JWS, `alg` = `none`) is refused with every key. A copy of each with one payload
//! character changed is refused too.
//!
//! The RFC's JWKs carry neither `alg` nor `kid`; Tessera pins one algorithm per key and requires
//! a kid, so both are set on the `Jwk` before import.

// Test-only module: the marker lets clippy.toml's allow-unwrap/expect/panic-in-tests cover the
// helper functions too, not only the #[test] functions.
#![cfg(test)]

use rand::rngs::OsRng;
use tessera_core::Algorithm;
use tessera_core::jws::{self, JwsError};
use tessera_core::keys::{Jwk, Key, KeyError, KeyState};

/// The payload shared by A.1, A.2, A.3 and A.5: this JSON with CRLF line breaks, as the RFC's
/// octet listing has it.
const JWT_PAYLOAD: &[u8] = b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

/// A.1.1. The header is `{"typ":"JWT",\r\n "alg":"HS256"}`: whitespace and a CRLF inside.
const A1_TOKEN: &str = concat!(
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
);

/// A.1.1: the 64-byte HMAC key.
const A1_K: &str = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/// A.2.1. Header `{"alg":"RS256"}`.
const A2_TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
    "p0igcN_IoypGlUPQGe77Rw",
);

/// A.2.1: the RSA modulus (2048 bits) and exponent of the key.
const A2_N: &str = concat!(
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx",
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs",
    "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH",
    "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV",
    "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8",
    "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
);
const A2_E: &str = "AQAB";

/// A.3.1. Header `{"alg":"ES256"}`; the signature is `r || s`.
const A3_TOKEN: &str = concat!(
    "eyJhbGciOiJFUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
);

/// A.3.1: the P-256 key.
const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";

/// A.4.1. Header `{"alg":"ES512"}`, payload the ASCII string `Payload`.
const A4_TOKEN: &str = concat!(
    "eyJhbGciOiJFUzUxMiJ9",
    ".",
    "UGF5bG9hZA",
    ".",
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq",
    "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp",
    "EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
);

/// A.4.1: the P-521 key.
const A4_X: &str = "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk";
const A4_Y: &str = "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2";
const A4_D: &str = "AY5pb7A0UFiB3RELSD64fTLOSV_jazdF7fLYyuTw8lOfRhWg6Y6rUrPAxerEzgdRhajnu0ferB0d53vM9mE15j2C";

/// A.5. Header `{"alg":"none"}` and an empty signature.
const A5_TOKEN: &str = concat!(
    "eyJhbGciOiJub25lIn0",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
);

fn a1_jwk() -> Jwk {
    Jwk {
        kty: "oct".to_owned(),
        k: Some(A1_K.to_owned()),
        alg: Some("HS256".to_owned()),
        kid: Some("rfc7515-a1".to_owned()),
        ..Jwk::default()
    }
}

fn a2_jwk() -> Jwk {
    Jwk {
        kty: "RSA".to_owned(),
        n: Some(A2_N.to_owned()),
        e: Some(A2_E.to_owned()),
        alg: Some("RS256".to_owned()),
        kid: Some("rfc7515-a2".to_owned()),
        ..Jwk::default()
    }
}

fn a3_jwk() -> Jwk {
    Jwk {
        kty: "EC".to_owned(),
        crv: Some("P-256".to_owned()),
        x: Some(A3_X.to_owned()),
        y: Some(A3_Y.to_owned()),
        alg: Some("ES256".to_owned()),
        kid: Some("rfc7515-a3".to_owned()),
        ..Jwk::default()
    }
}

fn a4_jwk(alg: &str) -> Jwk {
    Jwk {
        kty: "EC".to_owned(),
        crv: Some("P-521".to_owned()),
        x: Some(A4_X.to_owned()),
        y: Some(A4_Y.to_owned()),
        d: Some(A4_D.to_owned()),
        alg: Some(alg.to_owned()),
        kid: Some("rfc7515-a4".to_owned()),
        ..Jwk::default()
    }
}

fn import(jwk: &Jwk) -> Key {
    Key::from_jwk(jwk, KeyState::VerifyOnly, 0).unwrap_or_else(|e| panic!("{:?}: {e}", jwk.kid))
}

/// The keys of A.1, A.2 and A.3, plus a generated EdDSA key so that every algorithm Tessera
/// supports is tried against the tokens it must refuse.
fn every_kind_of_key() -> Vec<Key> {
    let mut keys = vec![import(&a1_jwk()), import(&a2_jwk()), import(&a3_jwk())];
    keys.push(Key::generate(Algorithm::EdDSA, KeyState::Signing, 0, &mut OsRng).unwrap());
    keys
}

/// The token with one payload character changed, still canonical base64url (the character
/// changed is in the middle of the segment, never the last one), so the refusal is the signature's.
fn tamper_payload(token: &str) -> String {
    let (header, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut payload = payload.as_bytes().to_vec();
    let middle = payload.len() / 2;
    payload[middle] = if payload[middle] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{header}.{}.{signature}", String::from_utf8(payload).unwrap());
    assert_ne!(tampered, token);
    tampered
}

#[test]
fn the_a1_hs256_example_verifies_with_the_a1_key() {
    let verified = jws::verify_with_key(A1_TOKEN, &import(&a1_jwk())).unwrap();
    assert_eq!(verified.header.alg, Algorithm::HS256);
    assert_eq!(verified.header.typ.as_deref(), Some("JWT"));
    assert_eq!(verified.header.kid, None);
    assert_eq!(verified.payload, JWT_PAYLOAD);
}

#[test]
fn signing_the_a1_input_with_the_a1_key_gives_the_rfc_signature() {
    // HMAC is deterministic, so the key must reproduce the RFC's bytes exactly.
    let (input, signature) = A1_TOKEN.rsplit_once('.').unwrap();
    let tag = import(&a1_jwk()).sign_bytes(input.as_bytes(), &mut OsRng).unwrap();
    assert_eq!(tessera_core::b64::encode(&tag), signature);
}

#[test]
fn the_a2_rs256_example_verifies_with_the_a2_key() {
    let verified = jws::verify_with_key(A2_TOKEN, &import(&a2_jwk())).unwrap();
    assert_eq!(verified.header.alg, Algorithm::RS256);
    assert_eq!((verified.header.kid, verified.header.typ), (None, None));
    assert_eq!(verified.payload, JWT_PAYLOAD);
}

#[test]
fn the_a3_es256_example_verifies_with_the_a3_key_public_or_private() {
    let public = import(&a3_jwk());
    let verified = jws::verify_with_key(A3_TOKEN, &public).unwrap();
    assert_eq!(verified.header.alg, Algorithm::ES256);
    assert_eq!(verified.payload, JWT_PAYLOAD);
    // The RFC's private scalar must match its public point, or the import would be refused.
    let private = import(&Jwk {
        d: Some(A3_D.to_owned()),
        ..a3_jwk()
    });
    assert!(private.has_private());
    assert!(jws::verify_with_key(A3_TOKEN, &private).is_ok());
}

#[test]
fn the_a4_es512_example_is_refused_because_es512_is_not_supported() {
    // Tessera has no ES512: the key does not import, whether it names ES512 or claims ES256.
    assert_eq!(
        Key::from_jwk(&a4_jwk("ES512"), KeyState::VerifyOnly, 0).unwrap_err(),
        KeyError::UnsupportedJwk("unsupported alg")
    );
    assert_eq!(
        Key::from_jwk(&a4_jwk("ES256"), KeyState::VerifyOnly, 0).unwrap_err(),
        KeyError::UnsupportedJwk("crv")
    );
    // And the token names an algorithm no key can have.
    for key in every_kind_of_key() {
        assert_eq!(
            jws::verify_with_key(A4_TOKEN, &key).unwrap_err(),
            JwsError::AlgorithmNotAllowed,
            "{key:?}"
        );
    }
}

#[test]
fn the_a5_unsecured_example_is_refused_with_every_key() {
    for key in every_kind_of_key() {
        let error = jws::verify_with_key(A5_TOKEN, &key).unwrap_err();
        assert_eq!(error, JwsError::Malformed("missing signature"), "{key:?}");
    }
    // With a signature glued on, the refusal moves to the algorithm: `none` is never one.
    let with_signature = format!("{A5_TOKEN}AAAA");
    for key in every_kind_of_key() {
        let error = jws::verify_with_key(&with_signature, &key).unwrap_err();
        assert_eq!(error, JwsError::AlgorithmNotAllowed, "{key:?}");
    }
}

#[test]
fn each_example_is_refused_by_the_keys_of_the_other_examples() {
    let keys = [import(&a1_jwk()), import(&a2_jwk()), import(&a3_jwk())];
    for (i, token) in [A1_TOKEN, A2_TOKEN, A3_TOKEN].into_iter().enumerate() {
        for (j, key) in keys.iter().enumerate() {
            let result = jws::verify_with_key(token, key);
            if i == j {
                assert!(result.is_ok(), "A.{} with its own key", i + 1);
            } else {
                assert_eq!(
                    result.unwrap_err(),
                    JwsError::AlgorithmNotAllowed,
                    "A.{} with key A.{}",
                    i + 1,
                    j + 1
                );
            }
        }
    }
}

#[test]
fn a_tampered_payload_is_refused_in_every_example() {
    let cases = [
        (A1_TOKEN, import(&a1_jwk())),
        (A2_TOKEN, import(&a2_jwk())),
        (A3_TOKEN, import(&a3_jwk())),
    ];
    for (token, key) in &cases {
        let tampered = tamper_payload(token);
        assert_eq!(
            jws::verify_with_key(&tampered, key).unwrap_err(),
            JwsError::BadSignature,
            "{tampered}"
        );
    }
    // A.4 and A.5 are refused before any signature check, tampered or not.
    for key in every_kind_of_key() {
        assert!(jws::verify_with_key(&tamper_payload(A4_TOKEN), &key).is_err());
        assert!(jws::verify_with_key(&tamper_payload(A5_TOKEN), &key).is_err());
    }
}
