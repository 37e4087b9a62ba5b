//! JWS compact serialisation (RFC 7515) at the signature layer, with the rules of RFC 8725.
//!
//! The algorithm that checks a signature is the one pinned to the key, never the one the token
//! names: the header's `alg` must merely *equal* the key's algorithm, so `none`, a downgrade, or
//! an HMAC signature made with an RSA public key (the classic HS/RS confusion) can never select a
//! verification routine. The header rules themselves live in [`crate::header`]; nothing is
//! base64- or JSON-decoded before the size bound and the segment count are checked.
//!
//! Fourth layer of the token stack (`b64` -> `algorithm`/`header` -> `keys` -> `jws` -> `jwt`):
//! this module knows keys and headers, never claims. Its errors are [`JwsError`]; the JWT layer
//! wraps them in its own.

use std::borrow::Cow;
use std::fmt;

use rand_core::CryptoRngCore;

use crate::b64;
use crate::header::{self, Header, HeaderError};
use crate::keys::{Key, KeyRing, SignError};

/// The algorithm types, defined in [`crate::algorithm`], re-exported here because they appear in
/// this layer's API (`Header::alg`) and because older call sites name them through `jws`.
pub use crate::algorithm::{Algorithm, UnknownAlgorithm};

/// Largest token accepted, in bytes. Checked before any decoding work (B5).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a compact JWS was refused at the signature layer: its size, structure, header or
/// signature. Nothing here has looked at the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Larger than [`MAX_TOKEN_BYTES`]; refused before decoding.
    #[error("token too large")]
    TooLarge,
    /// Not a well-formed compact JWS.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header uses a member Tessera refuses (`crit`, `jwk`, `jku`, `x5u`, `x5c`, `b64`).
    #[error("header member {0} is not accepted")]
    UnsupportedHeader(&'static str),
    /// `alg` is `none`, unknown, or not the algorithm pinned to the key.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No `kid`, or no verifying key has it.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

impl From<HeaderError> for JwsError {
    fn from(error: HeaderError) -> JwsError {
        match error {
            HeaderError::Malformed(reason) => JwsError::Malformed(reason),
            HeaderError::Unsupported(member) => JwsError::UnsupportedHeader(member),
            HeaderError::UnknownAlgorithm => JwsError::AlgorithmNotAllowed,
        }
    }
}

/// Signatures up to this many bytes (RSA-4096) are decoded on the stack.
const INLINE_SIGNATURE_BYTES: usize = 516;

/// A compact token split into its parts, the header parsed and checked, the signature decoded,
/// and nothing verified yet.
#[derive(Debug)]
pub struct Compact<'a> {
    /// The parsed protected header.
    pub header: Header<'a>,
    signing_input: &'a str,
    payload: &'a str,
    signature: SignatureBytes,
}

/// A decoded signature; on the stack for every algorithm Tessera supports. The size difference
/// between the variants is the point: no allocation per verification.
#[allow(clippy::large_enum_variant)]
enum SignatureBytes {
    Inline([u8; INLINE_SIGNATURE_BYTES], usize),
    Heap(Vec<u8>),
}

impl SignatureBytes {
    fn decode(text: &str) -> Option<SignatureBytes> {
        let mut buffer = [0u8; INLINE_SIGNATURE_BYTES];
        match b64::decode_slice(text, &mut buffer) {
            Some(len) => Some(SignatureBytes::Inline(buffer, len)),
            None if text.len() > INLINE_SIGNATURE_BYTES => b64::decode(text).map(SignatureBytes::Heap),
            None => None,
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            SignatureBytes::Inline(buffer, len) => &buffer[..*len],
            SignatureBytes::Heap(bytes) => bytes,
        }
    }
}

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureBytes({} bytes)", self.as_slice().len())
    }
}

impl<'a> Compact<'a> {
    /// Splits and checks the structure of a compact JWS.
    ///
    /// Refuses, in this order and before any decoding: tokens over [`MAX_TOKEN_BYTES`], then
    /// anything but exactly three segments, an empty header or an empty signature. Then the
    /// header must be canonical base64url of a JSON object that passes the header rules.
    pub fn parse(token: &'a str) -> Result<Compact<'a>, JwsError> {
        Compact::parse_with(token, |_| None)
    }

    /// Like [`Compact::parse`], but a header segment that `known_header` recognises (the exact
    /// bytes Tessera itself writes for one of its keys) is taken as already parsed. Anything
    /// else, even one byte different, goes through the full header rules.
    pub fn parse_with(
        token: &'a str,
        known_header: impl Fn(&str) -> Option<Header<'a>>,
    ) -> Result<Compact<'a>, JwsError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwsError::TooLarge);
        }
        let (header_b64, rest) = token
            .split_once('.')
            .ok_or(JwsError::Malformed("expected three segments"))?;
        let (payload, signature_b64) = rest
            .split_once('.')
            .ok_or(JwsError::Malformed("expected three segments"))?;
        if signature_b64.contains('.') {
            return Err(JwsError::Malformed("expected three segments"));
        }
        if header_b64.is_empty() {
            return Err(JwsError::Malformed("empty header"));
        }
        if signature_b64.is_empty() {
            return Err(JwsError::Malformed("missing signature"));
        }
        let header = match known_header(header_b64) {
            Some(header) => header,
            None => Header::decode(header_b64)?,
        };
        // The payload is decoded only after the signature checks out, but its alphabet is
        // checked now so that a malformed payload is never called a bad signature. (A fold,
        // not `all`: no early exit, so the loop vectorises.)
        if !payload.bytes().fold(true, |ok, byte| ok & is_base64url_byte(byte)) {
            return Err(JwsError::Malformed("payload is not canonical base64url"));
        }
        let signature =
            SignatureBytes::decode(signature_b64).ok_or(JwsError::Malformed("signature is not canonical base64url"))?;
        Ok(Compact {
            header,
            signing_input: &token[..header_b64.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }

    /// Verifies the signature with `key` and returns the decoded payload.
    ///
    /// The token's `alg` must equal the key's pinned algorithm; the verification routine is
    /// chosen by the key alone.
    pub fn verify(self, key: &Key) -> Result<Verified<'a>, JwsError> {
        if self.header.alg != key.algorithm() {
            return Err(JwsError::AlgorithmNotAllowed);
        }
        if !key.verify_signature(self.signing_input.as_bytes(), self.signature.as_slice()) {
            return Err(JwsError::BadSignature);
        }
        let payload = b64::decode(self.payload).ok_or(JwsError::Malformed("payload is not canonical base64url"))?;
        Ok(Verified {
            header: self.header,
            payload,
        })
    }
}

fn is_base64url_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// A token whose signature has been verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The protected header.
    pub header: Header<'a>,
    /// The decoded payload bytes (for a JWT, the claims JSON).
    pub payload: Vec<u8>,
}

/// Verifies a compact JWS against one given key (the key's `kid` is not consulted).
pub fn verify_with_key<'a>(token: &'a str, key: &Key) -> Result<Verified<'a>, JwsError> {
    Compact::parse(token)?.verify(key)
}

/// Verifies a compact JWS against a key ring: the header must carry a `kid` naming a key that
/// is allowed to verify, and the header's `alg` must be that key's algorithm.
pub fn verify_with_ring<'a>(token: &'a str, ring: &'a KeyRing) -> Result<Verified<'a>, JwsError> {
    let compact = Compact::parse_with(token, |segment| ring.known_header(segment))?;
    let kid = compact.header.kid.as_deref().ok_or(JwsError::UnknownKey)?;
    let key = ring.find_verifier(kid).ok_or(JwsError::UnknownKey)?;
    compact.verify(key)
}

/// Signs `payload` with `key` into a compact JWS whose header carries `alg`, `kid` and, when
/// given, `typ`. The randomness is used only by RS256 (RSA blinding).
pub fn sign(key: &Key, typ: Option<&str>, payload: &[u8], rng: &mut impl CryptoRngCore) -> Result<String, SignError> {
    let header = match typ.and_then(|typ| key.header_segment(typ)) {
        Some(known) => Cow::Borrowed(known),
        None => {
            Cow::Owned(header::encode_segment(key.algorithm(), key.kid().as_str(), typ).ok_or(SignError::Encoding)?)
        }
    };
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 128);
    token.push_str(&header);
    token.push('.');
    b64::encode_into(payload, &mut token);
    let signature = key.sign_bytes(token.as_bytes(), rng)?;
    token.push('.');
    b64::encode_into(&signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_writes_the_same_header_with_or_without_the_precomputed_segment() {
        use crate::keys::KeyState;
        use rand::rngs::OsRng;
        let key = Key::from_secret(Algorithm::HS256, &[5; 32], None, KeyState::Signing, 0).unwrap();
        for typ in header::KNOWN_TYPS
            .map(Some)
            .into_iter()
            .chain([Some("other+jwt"), None])
        {
            let expected = header::encode_segment(Algorithm::HS256, key.kid().as_str(), typ).unwrap();
            let token = sign(&key, typ, b"{}", &mut OsRng).unwrap();
            assert_eq!(token.split('.').next(), Some(expected.as_str()), "{typ:?}");
            assert_eq!(
                key.header_segment(typ.unwrap_or_default()).is_some(),
                typ.is_some_and(|typ| header::KNOWN_TYPS.contains(&typ)),
                "{typ:?}"
            );
            assert!(verify_with_key(&token, &key).is_ok(), "{typ:?}");
        }
    }

    #[test]
    fn structure_is_checked_before_decoding() {
        assert_eq!(
            Compact::parse(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
            JwsError::TooLarge
        );
        for token in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e", ".b.c", "a.b.", "a..c."] {
            assert!(
                matches!(Compact::parse(token), Err(JwsError::Malformed(_))),
                "{token:?}"
            );
        }
    }

    #[test]
    fn header_refusals_surface_as_jws_errors_with_the_same_text() {
        let segment = |json: &str| b64::encode(json.as_bytes());
        let cases = [
            (
                segment(r#"{"alg":"HS256","jku":"x"}"#),
                JwsError::UnsupportedHeader("jku"),
            ),
            (segment(r#"{"alg":"none"}"#), JwsError::AlgorithmNotAllowed),
            (
                segment(r#"["HS256"]"#),
                JwsError::Malformed("header is not a valid JOSE header"),
            ),
        ];
        for (header, expected) in cases {
            let token = format!("{header}.e30.AAAA");
            let error = Compact::parse(&token).unwrap_err();
            let from_header = Header::decode(&header).unwrap_err();
            assert_eq!(error, expected, "{token}");
            assert_eq!(error.to_string(), from_header.to_string(), "{token}");
        }
    }
}
