//! Property tests: a valid token stays valid only byte for byte. Any single-byte change,
//! deletion or insertion anywhere in a token, of any algorithm, is rejected. This holds only
//! because base64 decoding is canonical: with a lenient decoder, changing the last character of
//! a segment can alter only unused bits and still verify.

use std::sync::LazyLock;

use proptest::prelude::*;
use rand::rngs::OsRng;
use tessera_core::jwt::{self, Claims, TokenKind, Validation};
use tessera_core::keys::{Key, KeyRing, KeyState};
use tessera_core::{Algorithm, csrf::CsrfKey};

const NOW: i64 = 1_800_000_000;

/// One ring per algorithm and a valid access token for each, made once.
static TOKENS: LazyLock<Vec<(KeyRing, String)>> = LazyLock::new(|| {
    Algorithm::ALL
        .into_iter()
        .map(|alg| {
            let ring = KeyRing::new(vec![Key::generate(alg, KeyState::Signing, 0, &mut OsRng).unwrap()]).unwrap();
            let claims = Claims {
                sub: "7".into(),
                user_id: 7,
                username: "bob".into(),
                sid: "session".into(),
                jti: "token-id".into(),
                iat: NOW,
                nbf: NOW,
                exp: NOW + 900,
                iss: "tessera".into(),
                aud: "tessera-api".into(),
                roles: Vec::new(),
                scope: None,
            };
            let token = jwt::issue(&ring, TokenKind::Access, &claims, &mut OsRng).unwrap();
            (ring, token)
        })
        .collect()
});

fn accepts(ring: &KeyRing, token: &str) -> bool {
    jwt::verify(
        ring,
        token,
        TokenKind::Access,
        &Validation::new("tessera", "tessera-api"),
        NOW,
    )
    .is_ok()
}

/// Printable ASCII plus a few bytes that matter to parsers ('.', '=', whitespace, NUL).
fn replacement_byte() -> impl Strategy<Value = u8> {
    prop_oneof![0x20u8..0x7f, Just(b'.'), Just(b'='), Just(b'\n'), Just(0u8)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn controls_are_accepted(which in 0..Algorithm::ALL.len()) {
        let (ring, token) = &TOKENS[which];
        prop_assert!(accepts(ring, token));
    }

    #[test]
    fn any_one_byte_change_is_rejected(which in 0..Algorithm::ALL.len(), position in any::<prop::sample::Index>(), byte in replacement_byte()) {
        let (ring, token) = &TOKENS[which];
        let mut bytes = token.clone().into_bytes();
        let position = position.index(bytes.len());
        prop_assume!(bytes[position] != byte);
        bytes[position] = byte;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(!accepts(ring, &mutated), "accepted {mutated}");
    }

    #[test]
    fn any_one_byte_deletion_is_rejected(which in 0..Algorithm::ALL.len(), position in any::<prop::sample::Index>()) {
        let (ring, token) = &TOKENS[which];
        let mut mutated = token.clone();
        mutated.remove(position.index(token.len()));
        prop_assert!(!accepts(ring, &mutated), "accepted {mutated}");
    }

    #[test]
    fn any_one_byte_insertion_is_rejected(which in 0..Algorithm::ALL.len(), position in any::<prop::sample::Index>(), byte in replacement_byte()) {
        let (ring, token) = &TOKENS[which];
        let mut mutated = token.clone();
        mutated.insert(position.index(token.len() + 1), char::from(byte));
        prop_assert!(!accepts(ring, &mutated), "accepted {mutated}");
    }

    #[test]
    fn arbitrary_strings_never_verify_and_never_panic(text in ".{0,400}") {
        let (ring, _) = &TOKENS[0];
        prop_assert!(!accepts(ring, &text));
    }

    #[test]
    fn csrf_token_changes_are_rejected(session in "[a-zA-Z0-9-]{1,40}", position in any::<prop::sample::Index>(), byte in replacement_byte()) {
        let key = CsrfKey::new(&[9u8; 32]).unwrap();
        let token = key.token_for(&session);
        let mut bytes = token.clone().into_bytes();
        let position = position.index(bytes.len());
        prop_assume!(bytes[position] != byte);
        bytes[position] = byte;
        prop_assert!(!key.verify(&session, &String::from_utf8(bytes).unwrap()));
        prop_assert!(key.verify(&session, &token));
    }
}
