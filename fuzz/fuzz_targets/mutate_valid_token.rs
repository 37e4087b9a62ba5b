//! Fuzz target `mutate_valid_token`: structure-aware edits of genuinely valid tokens.
//!
//! The strongest property of strict verification: a token has exactly one accepted spelling.
//! Starting from a valid token issued at start-up (one per key and kind), the fuzzer chooses a
//! list of byte edits; if the edited text differs from the original in any way, verification
//! MUST fail, at the JWS layer and at the JWT layer. A success would mean a malleable encoding
//! (base64 trailing bits, padding, whitespace), a signature that survives a change to the signed
//! bytes, or a signature with a second valid form, any of which breaks denylists, caches and logs
//! keyed on the token text. Unchanged text must still verify (the fixture is sound).
//!
//! Edits are decoded with the `arbitrary` crate. `Set` writes any byte; `SetB64` writes a
//! base64url character, which keeps the segment in the alphabet so edits reach the base64
//! decoder and the signature check instead of stopping at the alphabet test. `Insert` and
//! `Remove` change the length. Edited text that is not UTF-8 is skipped (tokens are `&str`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tessera_core::jws;
use tessera_core::jwt;
use tessera_fuzz::{FIXTURES, NOW};

/// Upper bound on edits per input, so one input cannot make an execution slow.
const MAX_EDITS: usize = 64;

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// One edit; positions are taken modulo the current length (or length + 1 for `Insert`).
#[derive(Debug, Arbitrary)]
enum Edit {
    /// Overwrite the byte at `pos` with `byte`.
    Set { pos: u16, byte: u8 },
    /// Overwrite the byte at `pos` with the base64url character number `sextet % 64`.
    SetB64 { pos: u16, sextet: u8 },
    /// Insert `byte` before `pos`.
    Insert { pos: u16, byte: u8 },
    /// Remove the byte at `pos`.
    Remove { pos: u16 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Which fixture token to start from (modulo the number of tokens).
    token: u8,
    /// The edits, applied in order.
    edits: Vec<Edit>,
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let at = |pos: u16, len: usize| usize::from(pos) % len;
    match *edit {
        Edit::Set { pos, byte } if !bytes.is_empty() => {
            let i = at(pos, bytes.len());
            bytes[i] = byte;
        }
        Edit::SetB64 { pos, sextet } if !bytes.is_empty() => {
            let i = at(pos, bytes.len());
            bytes[i] = B64URL[usize::from(sextet % 64)];
        }
        Edit::Insert { pos, byte } => {
            let i = at(pos, bytes.len() + 1);
            bytes.insert(i, byte);
        }
        Edit::Remove { pos } if !bytes.is_empty() => {
            let i = at(pos, bytes.len());
            bytes.remove(i);
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let fixtures = &*FIXTURES;
    let valid = &fixtures.tokens[usize::from(input.token) % fixtures.tokens.len()];
    let mut bytes = valid.token.clone().into_bytes();
    for edit in input.edits.iter().take(MAX_EDITS) {
        apply(&mut bytes, edit);
    }
    let Ok(mutated) = String::from_utf8(bytes) else {
        return;
    };

    let jws_result = jws::verify_with_ring(&mutated, &fixtures.ring);
    let jwt_result = jwt::verify(&fixtures.ring, &mutated, valid.kind, &fixtures.validation, NOW);
    if mutated == valid.token {
        assert!(jws_result.is_ok() && jwt_result.is_ok(), "the unedited fixture must verify");
        return;
    }
    if jws_result.is_ok() && is_ecdsa_twin(&valid.token, &mutated) {
        // ECDSA malleability: (r, n - s) verifies like (r, s). Documented and harmless (see
        // Key::sign_bytes); the one accepted variant, so it is not a finding.
        return;
    }
    assert!(
        jws_result.is_err(),
        "edited {} {:?} token passed the JWS layer\noriginal: {}\nmutated:  {}",
        valid.alg,
        valid.kind,
        valid.token,
        mutated
    );
    assert!(
        jwt_result.is_err(),
        "edited {} {:?} token was accepted\noriginal: {}\nmutated:  {}",
        valid.alg,
        valid.kind,
        valid.token,
        mutated
    );
});

/// Whether `mutated` is `original` with its ECDSA signature replaced by the (r, n - s) twin.
fn is_ecdsa_twin(original: &str, mutated: &str) -> bool {
    let (Some((original_input, original_sig)), Some((mutated_input, mutated_sig))) =
        (original.rsplit_once('.'), mutated.rsplit_once('.'))
    else {
        return false;
    };
    if original_input != mutated_input {
        return false;
    }
    let decode = |text: &str| tessera_core::b64::decode(text).and_then(|b| p256::ecdsa::Signature::from_slice(&b).ok());
    match (decode(original_sig), decode(mutated_sig)) {
        (Some(original), Some(mutated)) => {
            mutated.normalize_s() == Some(original) || original.normalize_s() == Some(mutated)
        }
        _ => false,
    }
}
