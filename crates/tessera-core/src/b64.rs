//! Strict base64url without padding, as JWS requires (RFC 7515 section 2).
//!
//! Every JWS segment must decode canonically: only the URL-safe alphabet, no `=` padding, no
//! whitespace, and no non-zero bits left over in the last character. Accepting more than that
//! lets one token have several spellings, which breaks anything keyed on the token text (caches,
//! denylists, logs) and hides tampering.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the unpadded base64url encoding of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes canonical unpadded base64url; `None` for anything else.
///
/// The engine refuses padding (`RequireNone`) and trailing bits (`decode_allow_trailing_bits`
/// is off by default), so `"AB"` and `"AA"` cannot both decode to the same byte.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes canonical unpadded base64url into `out`, returning the length; `None` when the text
/// is not canonical or `out` may be too small.
pub fn decode_slice(text: &str, out: &mut [u8]) -> Option<usize> {
    URL_SAFE_NO_PAD.decode_slice(text, out).ok()
}

/// Decodes canonical unpadded base64url into `out`, replacing its content.
pub fn decode_into(text: &str, out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    URL_SAFE_NO_PAD.decode_vec(text, out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_identity() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            assert_eq!(decode(&encode(&bytes)).as_deref(), Some(&bytes[..]));
        }
    }

    #[test]
    fn padding_is_refused() {
        assert_eq!(decode("Zm9v"), Some(b"foo".to_vec()));
        assert_eq!(decode("Zm8"), Some(b"fo".to_vec()));
        assert_eq!(decode("Zm8="), None);
    }

    #[test]
    fn non_canonical_trailing_bits_are_refused() {
        // "AA" is the canonical spelling of [0]; "AB" sets a bit that carries no data.
        assert_eq!(decode("AA"), Some(vec![0]));
        assert_eq!(decode("AB"), None);
    }

    #[test]
    fn standard_alphabet_and_whitespace_are_refused() {
        assert_eq!(decode("+/+/"), None);
        assert_eq!(decode("Zm9v "), None);
        assert_eq!(decode(" Zm9v"), None);
        assert_eq!(decode("Zm\n9v"), None);
    }

    #[test]
    fn impossible_length_is_refused() {
        assert_eq!(decode("A"), None);
        assert_eq!(decode("AAAAA"), None);
    }
}
