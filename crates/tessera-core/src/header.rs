//! The JOSE protected header (RFC 7515 section 4) and its rules (RFC 8725), on its own layer.
//!
//! The header sits between the algorithm names and the keys in the token stack (`b64` ->
//! `algorithm`/`header` -> `keys` -> `jws` -> `jwt`): it knows how a header is spelt, which
//! members are refused, and the `typ` values that keep Tessera's token kinds apart, but nothing
//! about keys, signatures or claims. That is what lets a key precompute the exact header bytes it
//! writes for each `typ` (the known-header fast path of `jws::Compact::parse_with`) without
//! importing the JWT layer.
//!
//! Headers that try to bring their own key (`jwk`, `jku`, `x5u`, `x5c`) and any `crit` or `b64`
//! member are refused, present even as `null`; duplicate members are a parse error.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::algorithm::Algorithm;
use crate::b64;

/// The `typ` header of access tokens (RFC 9068).
pub const TYP_ACCESS: &str = "at+jwt";
/// The `typ` header of refresh tokens.
pub const TYP_REFRESH: &str = "refresh+jwt";
/// The `typ` header of the identity assertions the gateway hands to upstreams (explicit typing,
/// RFC 8725 section 3.11: an assertion is never mistaken for an access token).
pub const TYP_ASSERTION: &str = "tessera-assertion+jwt";
/// Every `typ` Tessera writes. A key precomputes its header segment for each of them, so a
/// header it wrote itself is recognised byte for byte instead of being decoded and parsed.
pub const KNOWN_TYPS: [&str; 3] = [TYP_ACCESS, TYP_REFRESH, TYP_ASSERTION];

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

/// Why a header was refused. The JWS layer reports these as its own errors (`JwsError`), with
/// the same texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not canonical base64url, or not a JSON object with a string `alg`.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A member Tessera refuses (`crit`, `jwk`, `jku`, `x5u`, `x5c`, `b64`).
    #[error("header member {0} is not accepted")]
    Unsupported(&'static str),
    /// `alg` is `none` or a name Tessera does not support.
    #[error("algorithm not allowed")]
    UnknownAlgorithm,
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
/// Used for the header here and for the claims by the JWT layer.
pub(crate) fn parse_json_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

impl Header<'_> {
    /// Parses the decoded header JSON and applies the header rules.
    pub fn parse(bytes: &[u8]) -> Result<Header<'static>, HeaderError> {
        let raw: RawHeader =
            parse_json_object(bytes).ok_or(HeaderError::Malformed("header is not a valid JOSE header"))?;
        if raw.crit {
            // We implement no JWS extension, so any `crit` list names one we do not understand
            // (RFC 7515 section 4.1.11 says such a token must be rejected).
            return Err(HeaderError::Unsupported("crit"));
        }
        if raw.b64 {
            return Err(HeaderError::Unsupported("b64"));
        }
        // Keys travel out of band only. A token that carries or points to its own key is an
        // attack (CVE-2018-0114 and friends), not something to ignore.
        for (is_present, name) in [(raw.jwk, "jwk"), (raw.jku, "jku"), (raw.x5u, "x5u"), (raw.x5c, "x5c")] {
            if is_present {
                return Err(HeaderError::Unsupported(name));
            }
        }
        let alg = Algorithm::from_name(&raw.alg).ok_or(HeaderError::UnknownAlgorithm)?;
        Ok(Header {
            alg,
            kid: raw.kid.map(Cow::Owned),
            typ: raw.typ.map(Cow::Owned),
        })
    }

    /// Decodes a base64url header segment and parses it with [`Header::parse`].
    pub fn decode(segment: &str) -> Result<Header<'static>, HeaderError> {
        let bytes = b64::decode(segment).ok_or(HeaderError::Malformed("header is not canonical base64url"))?;
        Header::parse(&bytes)
    }
}

/// The base64url header segment Tessera writes: `{"alg":..,"kid":..,"typ":..}`, members in that
/// order. `None` only if serialisation fails.
pub fn encode_segment(alg: Algorithm, kid: &str, typ: Option<&str>) -> Option<String> {
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
        for typ in KNOWN_TYPS {
            let segment = encode_segment(Algorithm::ES256, "kid-1", Some(typ)).unwrap();
            assert_eq!(
                Header::decode(&segment).unwrap(),
                Header {
                    alg: Algorithm::ES256,
                    kid: Some("kid-1".into()),
                    typ: Some(typ.into())
                }
            );
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
    fn unknown_algorithms_are_refused() {
        for alg in ["none", "hs256", "PS256"] {
            let json = format!(r#"{{"alg":"{alg}"}}"#);
            assert_eq!(
                Header::parse(json.as_bytes()),
                Err(HeaderError::UnknownAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn embedded_key_members_are_refused_even_when_null() {
        for member in ["jwk", "jku", "x5u", "x5c", "crit", "b64"] {
            let json = format!(r#"{{"alg":"HS256","{member}":null}}"#);
            assert_eq!(
                Header::parse(json.as_bytes()),
                Err(HeaderError::Unsupported(member)),
                "{member}"
            );
        }
    }

    #[test]
    fn non_canonical_segment_is_malformed() {
        assert!(matches!(Header::decode("e30="), Err(HeaderError::Malformed(_))));
    }
}
