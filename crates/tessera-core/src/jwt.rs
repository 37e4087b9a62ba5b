//! JWT claims, token kinds, issuing and strict validation (RFC 7519, RFC 8725: B5).
//!
//! Verification order: size and structure, header rules, key by `kid`, algorithm equal to the
//! key's, signature; only then are the claims parsed and checked (`typ`, `exp`, `nbf`, `iat`,
//! `iss`, `aud`). A forged token is therefore never reported as "expired": only a token whose
//! signature is good can earn that more specific answer.
//!
//! Top layer of the token stack (`b64` -> `algorithm`/`header` -> `keys` -> `jws` -> `jwt`): the
//! signature layer's refusals arrive as [`JwsError`] and are wrapped in [`TokenError::Jws`];
//! everything about claims and token kinds is decided here.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize};

use crate::header::{self, parse_json_object};
use crate::jws::{self, JwsError};
use crate::keys::{KeyRing, SignError};

/// The two kinds of token; the JWT `typ` header keeps them apart so that a refresh token can
/// never be used as an access token or the reverse (RFC 8725 section 3.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Short-lived token sent with every request (`typ` = `at+jwt`, RFC 9068).
    Access,
    /// Long-lived token accepted only by the refresh endpoint (`typ` = `refresh+jwt`).
    Refresh,
}

impl TokenKind {
    /// The `typ` header value for this kind.
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => header::TYP_ACCESS,
            TokenKind::Refresh => header::TYP_REFRESH,
        }
    }
}

/// The claims Tessera puts in every token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id as a string (RFC 7519 requires a string).
    pub sub: String,
    /// The user id as an integer, as the seed's payload has it.
    pub user_id: i64,
    /// The user's name at the time of issue.
    pub username: String,
    /// Session id: the refresh-token family this token belongs to (revocation by session).
    pub sid: String,
    /// Unique token id (denylisting a single access token, refresh rotation).
    pub jti: String,
    /// Issued at, Unix seconds.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: i64,
    /// Not before, Unix seconds.
    #[serde(deserialize_with = "numeric_date")]
    pub nbf: i64,
    /// Expiry, Unix seconds. Required.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience (Tessera issues a single audience string).
    pub aud: String,
    /// The user's roles at the time of issue (G4). Absent in tokens issued before roles
    /// existed: read as none.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The granted scopes, space-separated (RFC 8693 `scope`). `None` only in tokens issued
    /// before scopes existed, which `scope::ScopeSet::from_claim` reads as the user scope (they
    /// came from a password login and live at most one access lifetime). Refresh tokens omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Deserialises a NumericDate: a JSON number only (integer, or a finite fraction rounded down).
/// Strings, booleans and null are refused, so `"exp": "9999999999"` cannot slip past a lax
/// comparison.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct NumericDate;
    impl serde::de::Visitor<'_> for NumericDate {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON number of seconds")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("date out of range"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            if v.is_finite() && v.abs() < 1e15 {
                Ok(v.floor() as i64)
            } else {
                Err(E::custom("date out of range"))
            }
        }
    }
    deserializer.deserialize_any(NumericDate)
}

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Keep it small.
    pub leeway_secs: i64,
}

impl Validation {
    /// Default leeway: enough for clock skew between instances, too little to matter to an
    /// attacker holding an expired token.
    pub const DEFAULT_LEEWAY_SECS: i64 = 10;

    /// A validation for `issuer` and `audience` with the default leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Validation {
        Validation {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: Validation::DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Why a token was refused. Only [`TokenError::Expired`] maps to `token_expired`; everything
/// else is `invalid_token`, and the reason goes to a debug log, never to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The signature is good but `exp` has passed (beyond the leeway). The signature is verified
    /// before the time checks, so `user_id` is authentic: the security log may name the user.
    #[error("token expired")]
    Expired {
        /// The `user_id` claim of the expired token.
        user_id: i64,
    },
    /// Refused by the signature layer: size, structure, header, key or signature.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The `typ` header is not the one expected (e.g. a refresh token used as access token).
    #[error("wrong token type")]
    WrongType,
    /// The claims are missing or have the wrong JSON types.
    #[error("invalid claims")]
    InvalidClaims,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` does not match.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not match.
    #[error("wrong audience")]
    WrongAudience,
}

impl TokenError {
    /// Whether this is the one error reported as `token_expired` rather than `invalid_token`.
    pub fn is_expired(&self) -> bool {
        matches!(self, TokenError::Expired { .. })
    }
}

/// Signs `claims` as a token of `kind` with the ring's signing key.
pub fn issue(
    ring: &KeyRing,
    kind: TokenKind,
    claims: &Claims,
    rng: &mut impl CryptoRngCore,
) -> Result<String, SignError> {
    let key = ring.signing_key().ok_or(SignError::NoSigningKey)?;
    let payload = serde_json::to_vec(claims).map_err(|_| SignError::Encoding)?;
    jws::sign(key, Some(kind.typ()), &payload, rng)
}

/// Verifies a token of `kind` against `ring` and `validation` at time `now` (Unix seconds).
pub fn verify(
    ring: &KeyRing,
    token: &str,
    kind: TokenKind,
    validation: &Validation,
    now: i64,
) -> Result<Claims, TokenError> {
    let verified = jws::verify_with_ring(token, ring)?;
    if verified.header.typ.as_deref() != Some(kind.typ()) {
        return Err(TokenError::WrongType);
    }
    let claims: Claims = parse_json_object(&verified.payload).ok_or(TokenError::InvalidClaims)?;
    check_claims(&claims, validation, now)?;
    Ok(claims)
}

/// The time and identity checks, on claims whose signature is already verified.
pub fn check_claims(claims: &Claims, validation: &Validation, now: i64) -> Result<(), TokenError> {
    let leeway = validation.leeway_secs;
    if now >= claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired {
            user_id: claims.user_id,
        });
    }
    if now.saturating_add(leeway) < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    if now.saturating_add(leeway) < claims.iat {
        return Err(TokenError::IssuedInFuture);
    }
    if claims.iss != validation.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != validation.audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, KeyState};
    use rand::rngs::OsRng;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> Claims {
        Claims {
            sub: "42".into(),
            user_id: 42,
            username: "alice".into(),
            sid: "s1".into(),
            jti: "j1".into(),
            iat: NOW,
            nbf: NOW,
            exp: NOW + 900,
            iss: "tessera".into(),
            aud: "tessera-api".into(),
            roles: Vec::new(),
            scope: None,
        }
    }

    fn ring() -> KeyRing {
        KeyRing::new(vec![
            Key::from_secret(crate::algorithm::Algorithm::HS256, &[9; 32], None, KeyState::Signing, 0).unwrap(),
        ])
        .unwrap()
    }

    fn validation() -> Validation {
        Validation::new("tessera", "tessera-api")
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let ring = ring();
        let token = issue(&ring, TokenKind::Access, &claims(), &mut OsRng).unwrap();
        assert_eq!(
            verify(&ring, &token, TokenKind::Access, &validation(), NOW + 1),
            Ok(claims())
        );
    }

    #[test]
    fn expiry_honours_the_leeway_exactly() {
        let ring = ring();
        let token = issue(&ring, TokenKind::Access, &claims(), &mut OsRng).unwrap();
        let exp = NOW + 900;
        assert!(verify(&ring, &token, TokenKind::Access, &validation(), exp + 9).is_ok());
        assert_eq!(
            verify(&ring, &token, TokenKind::Access, &validation(), exp + 10),
            Err(TokenError::Expired { user_id: 42 })
        );
    }

    #[test]
    fn token_kinds_are_not_interchangeable() {
        let ring = ring();
        let refresh = issue(&ring, TokenKind::Refresh, &claims(), &mut OsRng).unwrap();
        assert_eq!(
            verify(&ring, &refresh, TokenKind::Access, &validation(), NOW),
            Err(TokenError::WrongType)
        );
        let access = issue(&ring, TokenKind::Access, &claims(), &mut OsRng).unwrap();
        assert_eq!(
            verify(&ring, &access, TokenKind::Refresh, &validation(), NOW),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn numeric_dates_accept_numbers_only() {
        let base = serde_json::to_value(claims()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = base.clone();
            v[field] = value;
            serde_json::from_value::<Claims>(v)
        };
        assert_eq!(with("exp", serde_json::json!(1.9e9)).unwrap().exp, 1_900_000_000);
        assert_eq!(with("exp", serde_json::json!(1900000000.7)).unwrap().exp, 1_900_000_000);
        for bad in [
            serde_json::json!("1900000000"),
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(1e300),
            serde_json::json!(u64::MAX),
        ] {
            assert!(with("exp", bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_and_scope_round_trip_and_tokens_from_before_them_still_verify() {
        let ring = ring();
        let scoped = Claims {
            roles: vec!["admin".into()],
            scope: Some("profile:read agent:chat".into()),
            ..claims()
        };
        let token = issue(&ring, TokenKind::Access, &scoped, &mut OsRng).unwrap();
        assert_eq!(verify(&ring, &token, TokenKind::Access, &validation(), NOW), Ok(scoped));
        // A payload written before roles and scopes existed: no `roles`, no `scope`.
        let mut old = serde_json::to_value(claims()).unwrap();
        let object = old.as_object_mut().unwrap();
        object.remove("roles");
        object.remove("scope");
        let key = ring.signing_key().unwrap();
        let token = crate::jws::sign(
            key,
            Some(TokenKind::Access.typ()),
            &serde_json::to_vec(&old).unwrap(),
            &mut OsRng,
        )
        .unwrap();
        let verified = verify(&ring, &token, TokenKind::Access, &validation(), NOW).unwrap();
        assert_eq!(verified.roles, Vec::<String>::new());
        assert_eq!(verified.scope, None);
    }
}
