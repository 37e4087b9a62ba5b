//! JWS compact serialisation (RFC 7515) at the signature layer, with the rules of RFC 8725.
//!
//! The algorithm that checks a signature is the one pinned to the key, never the one the token
//! names: the header's `alg` must merely *equal* the key's algorithm, so `none`, a downgrade, or
//! an HMAC signature made with an RSA public key (the classic HS/RS confusion) can never select a
//! verification routine. Headers that try to bring their own key (`jwk`, `jku`, `x5u`, `x5c`) and
//! any `crit` extension are refused, and nothing is base64- or JSON-decoded before the size bound
//! and the segment count are checked.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer};

use crate::b64;
use crate::jwt::TokenError;
use crate::keys::{Key, KeyRing, SignError};

/// Largest token accepted, in bytes. Checked before any decoding work (B5).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The `typ` header of access tokens (RFC 9068).
pub const TYP_ACCESS: &str = "at+jwt";
/// The `typ` header of refresh tokens.
pub const TYP_REFRESH: &str = "refresh+jwt";

/// Signatures up to this many bytes (RSA-4096) are decoded on the stack.
const INLINE_SIGNATURE_BYTES: usize = 516;

/// The signature algorithms Tessera signs and verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// Ed25519 signatures (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256, signature as `r || s` (RFC 7518 section 3.4).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
}

impl Algorithm {
    /// Every supported algorithm, symmetric first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
    ];

    /// The JOSE name of the algorithm (`"HS256"`, `"EdDSA"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    /// Looks an algorithm up by its exact JOSE name. Names are case-sensitive (RFC 7515 section
    /// 4.1.1), so `"hs256"` and every spelling of `none` are unknown.
    pub fn from_name(name: &str) -> Option<Self> {
        Algorithm::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// Whether the algorithm uses a shared secret (HMAC) rather than a key pair.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an algorithm name Tessera does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?}: expected one of HS256, HS384, HS512, EdDSA, ES256, RS256")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(name).ok_or_else(|| UnknownAlgorithm(name.to_owned()))
    }
}

/// The protected header of a token that passed the header rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The algorithm the token claims; it must still equal the key's pinned algorithm.
    pub alg: Algorithm,
    /// Which key signed the token.
    pub kid: Option<Cow<'a, str>>,
    /// The token type (`at+jwt`, `refresh+jwt`), which keeps token kinds apart.
    pub typ: Option<Cow<'a, str>>,
}

/// The header as it arrives, before the rules are applied.
///
/// Duplicate members of any field named here are a parse error (serde refuses them), so a header
/// cannot say `alg` twice and hope different parsers pick different values.
#[derive(Deserialize)]
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

/// Marks a header member as present whatever its value, `null` included.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Parses a JSON object, refusing the array form that serde would otherwise map onto a struct.
pub(crate) fn parse_json_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

impl Header<'_> {
    fn parse(bytes: &[u8]) -> Result<Header<'static>, TokenError> {
        let raw: RawHeader =
            parse_json_object(bytes).ok_or(TokenError::Malformed("header is not a valid JOSE header"))?;
        if raw.crit {
            // We implement no JWS extension, so any `crit` list names one we do not understand
            // (RFC 7515 section 4.1.11 says such a token must be rejected).
            return Err(TokenError::UnsupportedHeader("crit"));
        }
        if raw.b64 {
            return Err(TokenError::UnsupportedHeader("b64"));
        }
        // Keys travel out of band only. A token that carries or points to its own key is an
        // attack (CVE-2018-0114 and friends), not something to ignore.
        for (is_present, name) in [(raw.jwk, "jwk"), (raw.jku, "jku"), (raw.x5u, "x5u"), (raw.x5c, "x5c")] {
            if is_present {
                return Err(TokenError::UnsupportedHeader(name));
            }
        }
        let alg = Algorithm::from_name(&raw.alg).ok_or(TokenError::AlgorithmNotAllowed)?;
        Ok(Header {
            alg,
            kid: raw.kid.map(Cow::Owned),
            typ: raw.typ.map(Cow::Owned),
        })
    }
}

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
    pub fn parse(token: &'a str) -> Result<Compact<'a>, TokenError> {
        Compact::parse_with(token, |_| None)
    }

    /// Like [`Compact::parse`], but a header segment that `known_header` recognises (the exact
    /// bytes Tessera itself writes for one of its keys) is taken as already parsed. Anything
    /// else, even one byte different, goes through the full header rules.
    pub fn parse_with(
        token: &'a str,
        known_header: impl Fn(&str) -> Option<Header<'a>>,
    ) -> Result<Compact<'a>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let (header_b64, rest) = token
            .split_once('.')
            .ok_or(TokenError::Malformed("expected three segments"))?;
        let (payload, signature_b64) = rest
            .split_once('.')
            .ok_or(TokenError::Malformed("expected three segments"))?;
        if signature_b64.contains('.') {
            return Err(TokenError::Malformed("expected three segments"));
        }
        if header_b64.is_empty() {
            return Err(TokenError::Malformed("empty header"));
        }
        if signature_b64.is_empty() {
            return Err(TokenError::Malformed("missing signature"));
        }
        let header = match known_header(header_b64) {
            Some(header) => header,
            None => {
                let header_bytes =
                    b64::decode(header_b64).ok_or(TokenError::Malformed("header is not canonical base64url"))?;
                Header::parse(&header_bytes)?
            }
        };
        // The payload is decoded only after the signature checks out, but its alphabet is
        // checked now so that a malformed payload is never called a bad signature. (A fold,
        // not `all`: no early exit, so the loop vectorises.)
        if !payload.bytes().fold(true, |ok, byte| ok & is_base64url_byte(byte)) {
            return Err(TokenError::Malformed("payload is not canonical base64url"));
        }
        let signature = SignatureBytes::decode(signature_b64)
            .ok_or(TokenError::Malformed("signature is not canonical base64url"))?;
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
    pub fn verify(self, key: &Key) -> Result<Verified<'a>, TokenError> {
        if self.header.alg != key.algorithm() {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        if !key.verify_signature(self.signing_input.as_bytes(), self.signature.as_slice()) {
            return Err(TokenError::BadSignature);
        }
        let payload = b64::decode(self.payload).ok_or(TokenError::Malformed("payload is not canonical base64url"))?;
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
pub fn verify_with_key<'a>(token: &'a str, key: &Key) -> Result<Verified<'a>, TokenError> {
    Compact::parse(token)?.verify(key)
}

/// Verifies a compact JWS against a key ring: the header must carry a `kid` naming a key that
/// is allowed to verify, and the header's `alg` must be that key's algorithm.
pub fn verify_with_ring<'a>(token: &'a str, ring: &'a KeyRing) -> Result<Verified<'a>, TokenError> {
    let compact = Compact::parse_with(token, |segment| ring.known_header(segment))?;
    let kid = compact.header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let key = ring.find_verifier(kid).ok_or(TokenError::UnknownKey)?;
    compact.verify(key)
}

/// Signs `payload` with `key` into a compact JWS whose header carries `alg`, `kid` and, when
/// given, `typ`. The randomness is used only by RS256 (RSA blinding).
pub fn sign(key: &Key, typ: Option<&str>, payload: &[u8], rng: &mut impl CryptoRngCore) -> Result<String, SignError> {
    let header = header_segment(key.algorithm(), key.kid().as_str(), typ).ok_or(SignError::Encoding)?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 128);
    token.push_str(&header);
    token.push('.');
    b64::encode_into(payload, &mut token);
    let signature = key.sign_bytes(token.as_bytes(), rng)?;
    token.push('.');
    b64::encode_into(&signature, &mut token);
    Ok(token)
}

/// The base64url header segment Tessera writes: `{"alg":..,"kid":..,"typ":..}`.
pub(crate) fn header_segment(alg: Algorithm, kid: &str, typ: Option<&str>) -> Option<String> {
    #[derive(serde::Serialize)]
    struct OutHeader<'a> {
        alg: &'static str,
        kid: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        typ: Option<&'a str>,
    }
    let json = serde_json::to_vec(&OutHeader {
        alg: alg.as_str(),
        kid,
        typ,
    })
    .ok()?;
    Some(b64::encode(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_header_fast_path_agrees_with_full_parsing() {
        for typ in [TYP_ACCESS, TYP_REFRESH] {
            let segment = header_segment(Algorithm::ES256, "kid-1", Some(typ)).unwrap();
            let parsed = Header::parse(&b64::decode(&segment).unwrap()).unwrap();
            assert_eq!(
                parsed,
                Header {
                    alg: Algorithm::ES256,
                    kid: Some("kid-1".into()),
                    typ: Some(typ.into())
                }
            );
        }
    }

    #[test]
    fn algorithm_names_are_exact_and_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
        for name in ["none", "None", "NONE", "hs256", "eddsa", "PS256", "ES512", "RS384", ""] {
            assert_eq!(Algorithm::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn header_in_array_form_is_refused() {
        // serde would happily map ["HS256"] onto a struct; a JOSE header must be an object.
        assert!(Header::parse(br#"["HS256","k"]"#).is_err());
        assert!(Header::parse(br#"  {"alg":"HS256"} "#).is_ok());
    }

    #[test]
    fn duplicate_alg_is_refused() {
        assert!(Header::parse(br#"{"alg":"HS256","alg":"none"}"#).is_err());
    }

    #[test]
    fn embedded_key_members_are_refused_even_when_null() {
        for member in ["jwk", "jku", "x5u", "x5c", "crit", "b64"] {
            let json = format!(r#"{{"alg":"HS256","{member}":null}}"#);
            assert_eq!(
                Header::parse(json.as_bytes()),
                Err(TokenError::UnsupportedHeader(member)),
                "{member}"
            );
        }
    }

    #[test]
    fn structure_is_checked_before_decoding() {
        assert_eq!(
            Compact::parse(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
            TokenError::TooLarge
        );
        for token in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e", ".b.c", "a.b.", "a..c."] {
            assert!(
                matches!(Compact::parse(token), Err(TokenError::Malformed(_))),
                "{token:?}"
            );
        }
    }
}
