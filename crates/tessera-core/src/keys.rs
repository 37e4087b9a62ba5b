//! Signing keys, their lifecycle, the key ring and the public JWK set (S4, B4).
//!
//! Every key has a `kid` and exactly one algorithm, fixed when the key is made. A key moves
//! through four states:
//!
//! - [`KeyState::Published`]: in the JWK set and able to verify, not yet signing. Rotation
//!   publishes a key first so that every verifier knows it before the first token appears.
//! - [`KeyState::Signing`]: the newest signing key signs new tokens.
//! - [`KeyState::VerifyOnly`]: no longer signs; verifies the tokens it signed until they expire.
//! - [`KeyState::Retired`]: verifies nothing and is left out of the JWK set; waiting to be pruned.
//!
//! Private material never leaves a [`Key`] except through [`Key::export_private`], which the
//! store uses to persist it; [`Jwk`] cannot serialise private members at all.

use std::borrow::Cow;
use std::fmt;

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use crate::algorithm::Algorithm;
use crate::b64;
use crate::header::{self, Header};

/// RSA moduli below this size are refused on import (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// The modulus size of RSA keys Tessera generates: 3072 bits, the size NIST SP 800-57 pairs
/// with 128-bit security (2048 bits gives ~112).
pub const GENERATED_RSA_BITS: usize = 3072;
/// Length of generated HMAC secrets, in bytes: at least the output size of SHA-512.
pub const GENERATED_HMAC_BYTES: usize = 64;

/// A key identifier, as it appears in the JWT header and in the JWK set.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Kid(String);

impl Kid {
    /// Checks a key id: 1 to 128 printable ASCII characters, without quotes or backslashes, so
    /// that it is safe to print, to put in a header and to use as a database key.
    pub fn new(kid: impl Into<String>) -> Result<Kid, KeyError> {
        let kid = kid.into();
        let is_valid = !kid.is_empty()
            && kid.len() <= 128
            && kid
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        if is_valid {
            Ok(Kid(kid))
        } else {
            Err(KeyError::InvalidKid)
        }
    }

    /// A random key id (128 bits, base64url).
    pub fn random(rng: &mut impl CryptoRngCore) -> Kid {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Kid(b64::encode(&bytes))
    }

    /// A key id derived from a configured secret, so that every instance given the same secret
    /// names it the same way without coordination. The id is a truncated SHA-256 over a domain
    /// separator, the algorithm and the secret: it reveals nothing useful about a secret of 32
    /// bytes or more.
    pub fn derive_from_secret(alg: Algorithm, secret: &[u8]) -> Kid {
        let digest = Sha256::new()
            .chain_update(b"tessera kid v1\0")
            .chain_update(alg.as_str().as_bytes())
            .chain_update([0])
            .chain_update(secret)
            .finalize();
        Kid(format!(
            "{}-{}",
            alg.as_str().to_ascii_lowercase(),
            b64::encode(&digest[..12])
        ))
    }

    /// The key id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({})", self.0)
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a key is in its lifecycle; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published in the JWK set and verifying, not signing yet.
    Published,
    /// Signing new tokens (the newest such key is used).
    Signing,
    /// Verifying old tokens only.
    VerifyOnly,
    /// Neither verifying nor published.
    Retired,
}

impl KeyState {
    /// Whether tokens signed by a key in this state are accepted.
    ///
    /// A published key verifies too: during a rotation another instance may already sign with
    /// it while this one still sees it as published.
    pub fn is_verifying(self) -> bool {
        !matches!(self, KeyState::Retired)
    }

    /// The state's name as stored and printed (`published`, `signing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Published => "published",
            KeyState::Signing => "signing",
            KeyState::VerifyOnly => "verify_only",
            KeyState::Retired => "retired",
        }
    }

    /// Parses a state name written by [`KeyState::as_str`].
    pub fn from_name(name: &str) -> Option<KeyState> {
        [
            KeyState::Published,
            KeyState::Signing,
            KeyState::VerifyOnly,
            KeyState::Retired,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
    }
}

/// Why a key could not be made, imported or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key id is empty, too long or has characters that are not printable ASCII.
    #[error("key id must be 1 to 128 printable ASCII characters without quotes or backslashes")]
    InvalidKid,
    /// An HMAC secret is shorter than the algorithm allows.
    #[error("secret for {alg} must be at least {min} bytes, got {actual}")]
    SecretTooShort {
        /// The algorithm the secret is for.
        alg: Algorithm,
        /// The minimum length in bytes.
        min: usize,
        /// The length given.
        actual: usize,
    },
    /// An operation needs a symmetric algorithm and got another, or the reverse.
    #[error("algorithm {0} does not fit this kind of key")]
    WrongAlgorithm(Algorithm),
    /// The key material is not a valid key (bad length, point not on the curve, ...).
    #[error("invalid key material: {0}")]
    InvalidMaterial(&'static str),
    /// An RSA modulus is too small.
    #[error("RSA modulus of {0} bits is below the minimum of 2048")]
    RsaTooSmall(usize),
    /// A JWK is missing a member or has one Tessera does not support.
    #[error("unsupported JWK: {0}")]
    UnsupportedJwk(&'static str),
    /// A JWK is marked for another use than signatures.
    #[error("JWK is not meant for signatures (use/key_ops)")]
    WrongUse,
}

/// Why a token could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The key ring has no key in the signing state.
    #[error("no signing key")]
    NoSigningKey,
    /// The key holds only public material.
    #[error("key {0} has no private part")]
    NoPrivateKey(Kid),
    /// The claims or the header could not be encoded.
    #[error("token could not be encoded")]
    Encoding,
    /// The signature primitive failed.
    #[error("signing failed")]
    Crypto,
}

/// A precomputed HMAC state: the key is absorbed once and the state cloned per token, which
/// saves two compression-function calls on every sign and verify.
#[derive(Clone)]
enum HmacState {
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

impl HmacState {
    fn new(alg: Algorithm, secret: &[u8]) -> Result<HmacState, KeyError> {
        let invalid = |_| KeyError::InvalidMaterial("hmac key");
        Ok(match alg {
            Algorithm::HS256 => HmacState::Sha256(Hmac::new_from_slice(secret).map_err(invalid)?),
            Algorithm::HS384 => HmacState::Sha384(Hmac::new_from_slice(secret).map_err(invalid)?),
            Algorithm::HS512 => HmacState::Sha512(Hmac::new_from_slice(secret).map_err(invalid)?),
            other => return Err(KeyError::WrongAlgorithm(other)),
        })
    }

    fn tag(&self, input: &[u8]) -> Vec<u8> {
        match self {
            HmacState::Sha256(mac) => mac.clone().chain_update(input).finalize().into_bytes().to_vec(),
            HmacState::Sha384(mac) => mac.clone().chain_update(input).finalize().into_bytes().to_vec(),
            HmacState::Sha512(mac) => mac.clone().chain_update(input).finalize().into_bytes().to_vec(),
        }
    }

    fn verify(&self, input: &[u8], tag: &[u8]) -> bool {
        // `verify_slice` compares in constant time and refuses any other length (no truncation).
        match self {
            HmacState::Sha256(mac) => mac.clone().chain_update(input).verify_slice(tag).is_ok(),
            HmacState::Sha384(mac) => mac.clone().chain_update(input).verify_slice(tag).is_ok(),
            HmacState::Sha512(mac) => mac.clone().chain_update(input).verify_slice(tag).is_ok(),
        }
    }
}

enum Material {
    Hmac {
        secret: Zeroizing<Vec<u8>>,
        state: HmacState,
    },
    Ed25519 {
        signing: Option<Box<ed25519_dalek::SigningKey>>,
        verifying: ed25519_dalek::VerifyingKey,
    },
    Es256 {
        signing: Option<Box<p256::ecdsa::SigningKey>>,
        verifying: p256::ecdsa::VerifyingKey,
    },
    Rs256 {
        signing: Option<Box<rsa::pkcs1v15::SigningKey<Sha256>>>,
        verifying: rsa::pkcs1v15::VerifyingKey<Sha256>,
        public: rsa::RsaPublicKey,
    },
}

/// One key: id, pinned algorithm, lifecycle state and material.
pub struct Key {
    kid: Kid,
    alg: Algorithm,
    state: KeyState,
    created_at: i64,
    deactivated_at: Option<i64>,
    material: Material,
    /// The exact header segments this key writes for each of [`header::KNOWN_TYPS`], so that
    /// verification can recognise them without decoding (see `jws::Compact::parse_with`).
    known_headers: Vec<(String, &'static str)>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the material, not even the public part: Debug output ends up in logs.
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("deactivated_at", &self.deactivated_at)
            .field("has_private", &self.has_private())
            .finish()
    }
}

/// The smallest HMAC secret allowed for an algorithm: the hash output size (RFC 7518 3.2).
pub fn min_hmac_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

impl Key {
    /// Generates a fresh key for `alg` in state `state`, with a random kid.
    pub fn generate(
        alg: Algorithm,
        state: KeyState,
        created_at: i64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Key, KeyError> {
        let kid = Kid::random(rng);
        let material = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let mut secret = Zeroizing::new(vec![0u8; GENERATED_HMAC_BYTES]);
                rng.fill_bytes(&mut secret);
                let state = HmacState::new(alg, &secret)?;
                Material::Hmac { secret, state }
            }
            Algorithm::EdDSA => {
                let signing = ed25519_dalek::SigningKey::generate(rng);
                Material::Ed25519 {
                    verifying: signing.verifying_key(),
                    signing: Some(Box::new(signing)),
                }
            }
            Algorithm::ES256 => {
                let signing = p256::ecdsa::SigningKey::random(rng);
                Material::Es256 {
                    verifying: *signing.verifying_key(),
                    signing: Some(Box::new(signing)),
                }
            }
            Algorithm::RS256 => {
                let private = rsa::RsaPrivateKey::new(rng, GENERATED_RSA_BITS)
                    .map_err(|_| KeyError::InvalidMaterial("rsa key generation failed"))?;
                rsa_material(private)
            }
        };
        Ok(Key::assemble(kid, alg, state, created_at, material))
    }

    /// A key from a configured HMAC secret (SECRET_KEY and friends). The kid is derived from
    /// the secret unless one is given.
    pub fn from_secret(
        alg: Algorithm,
        secret: &[u8],
        kid: Option<Kid>,
        state: KeyState,
        created_at: i64,
    ) -> Result<Key, KeyError> {
        if !alg.is_symmetric() {
            return Err(KeyError::WrongAlgorithm(alg));
        }
        let min = min_hmac_secret_len(alg);
        if secret.len() < min {
            return Err(KeyError::SecretTooShort {
                alg,
                min,
                actual: secret.len(),
            });
        }
        let kid = kid.unwrap_or_else(|| Kid::derive_from_secret(alg, secret));
        let material = Material::Hmac {
            secret: Zeroizing::new(secret.to_vec()),
            state: HmacState::new(alg, secret)?,
        };
        Ok(Key::assemble(kid, alg, state, created_at, material))
    }

    /// Rebuilds a key from the bytes [`Key::export_private`] produced.
    pub fn import_private(
        alg: Algorithm,
        kid: Kid,
        state: KeyState,
        created_at: i64,
        deactivated_at: Option<i64>,
        private: &[u8],
    ) -> Result<Key, KeyError> {
        let material = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let min = min_hmac_secret_len(alg);
                if private.len() < min {
                    return Err(KeyError::SecretTooShort {
                        alg,
                        min,
                        actual: private.len(),
                    });
                }
                Material::Hmac {
                    secret: Zeroizing::new(private.to_vec()),
                    state: HmacState::new(alg, private)?,
                }
            }
            Algorithm::EdDSA => ed25519_material(private)?,
            Algorithm::ES256 => es256_material(private)?,
            Algorithm::RS256 => {
                use rsa::pkcs8::DecodePrivateKey;
                let private_key =
                    rsa::RsaPrivateKey::from_pkcs8_der(private).map_err(|_| KeyError::InvalidMaterial("rsa pkcs8"))?;
                check_rsa_size(&private_key.to_public_key())?;
                rsa_material(private_key)
            }
        };
        let mut key = Key::assemble(kid, alg, state, created_at, material);
        key.deactivated_at = deactivated_at;
        Ok(key)
    }

    /// The private material in a stable byte form, for the store to persist (encrypted at
    /// rest when a master key is configured): the HMAC secret, the Ed25519 seed, the P-256
    /// scalar, or the RSA key as PKCS#8 DER. `None` for a public-only key.
    pub fn export_private(&self) -> Option<Zeroizing<Vec<u8>>> {
        match &self.material {
            Material::Hmac { secret, .. } => Some(secret.clone()),
            Material::Ed25519 { signing, .. } => signing.as_ref().map(|s| Zeroizing::new(s.to_bytes().to_vec())),
            Material::Es256 { signing, .. } => signing.as_ref().map(|s| Zeroizing::new(s.to_bytes().to_vec())),
            Material::Rs256 { signing, .. } => signing.as_ref().and_then(|s| {
                use rsa::pkcs8::EncodePrivateKey;
                s.to_pkcs8_der().ok().map(|der| Zeroizing::new(der.as_bytes().to_vec()))
            }),
        }
    }

    fn assemble(kid: Kid, alg: Algorithm, state: KeyState, created_at: i64, material: Material) -> Key {
        let known_headers = header::KNOWN_TYPS
            .into_iter()
            .filter_map(|typ| header::encode_segment(alg, kid.as_str(), Some(typ)).map(|segment| (segment, typ)))
            .collect();
        Key {
            kid,
            alg,
            state,
            created_at,
            deactivated_at: None,
            material,
            known_headers,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The header segment this key writes for `typ`, if it is one of [`header::KNOWN_TYPS`]:
    /// precomputed, so issuing a token does not serialise and encode the header again.
    pub fn header_segment(&self, typ: &str) -> Option<&str> {
        self.known_headers
            .iter()
            .find(|(_, known)| *known == typ)
            .map(|(segment, _)| segment.as_str())
    }

    /// The algorithm pinned to this key.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The lifecycle state.
    pub fn state(&self) -> KeyState {
        self.state
    }

    /// When the key was made (Unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// When the key stopped signing (Unix seconds), if it has.
    pub fn deactivated_at(&self) -> Option<i64> {
        self.deactivated_at
    }

    /// Whether the key holds private material and so can sign.
    pub fn has_private(&self) -> bool {
        match &self.material {
            Material::Hmac { .. } => true,
            Material::Ed25519 { signing, .. } => signing.is_some(),
            Material::Es256 { signing, .. } => signing.is_some(),
            Material::Rs256 { signing, .. } => signing.is_some(),
        }
    }

    /// Moves the key to another state, recording when it stopped signing.
    pub fn set_state(&mut self, state: KeyState, now: i64) {
        if self.state == KeyState::Signing && state != KeyState::Signing {
            self.deactivated_at = Some(now);
        }
        self.state = state;
    }

    /// Signs `input` with this key's algorithm. `rng` feeds RSA blinding only.
    pub fn sign_bytes(&self, input: &[u8], rng: &mut impl CryptoRngCore) -> Result<Vec<u8>, SignError> {
        use p256::ecdsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
        let no_private = || SignError::NoPrivateKey(self.kid.clone());
        match &self.material {
            Material::Hmac { state, .. } => Ok(state.tag(input)),
            Material::Ed25519 { signing, .. } => {
                let signing = signing.as_ref().ok_or_else(no_private)?;
                Ok(signing.sign(input).to_bytes().to_vec())
            }
            Material::Es256 { signing, .. } => {
                let signing = signing.as_ref().ok_or_else(no_private)?;
                let signature: p256::ecdsa::Signature = signing.try_sign(input).map_err(|_| SignError::Crypto)?;
                // ECDSA signatures are malleable: (r, s) and (r, n - s) both verify, and RFC 7518
                // does not ask verifiers to refuse either (Wycheproof's valid JWS vectors include
                // high-S ones). Tessera issues only the low-S form, and never keys state on
                // token text (revocation is by jti and sid), so the twin gains nothing.
                let signature = signature.normalize_s().unwrap_or(signature);
                Ok(signature.to_bytes().to_vec())
            }
            Material::Rs256 { signing, .. } => {
                let signing = signing.as_ref().ok_or_else(no_private)?;
                // The randomised variant blinds the private-key operation, the mitigation for
                // the timing side channel of RUSTSEC-2023-0071.
                let signature = signing.try_sign_with_rng(rng, input).map_err(|_| SignError::Crypto)?;
                Ok(signature.to_vec())
            }
        }
    }

    /// Checks `signature` over `input` with this key's own algorithm.
    pub fn verify_signature(&self, input: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match &self.material {
            Material::Hmac { state, .. } => state.verify(input, signature),
            Material::Ed25519 { verifying, .. } => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| verifying.verify_strict(input, &signature).is_ok()),
            Material::Es256 { verifying, .. } => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| verifying.verify(input, &signature).is_ok()),
            Material::Rs256 { verifying, public, .. } => {
                // PKCS#1 v1.5 signatures are exactly the modulus length.
                signature.len() == public.size()
                    && rsa::pkcs1v15::Signature::try_from(signature)
                        .is_ok_and(|signature| verifying.verify(input, &signature).is_ok())
            }
        }
    }

    /// The public key as a JWK (RFC 7517, RFC 8037 for Ed25519); `None` for HMAC keys, which
    /// have no public part.
    pub fn public_jwk(&self) -> Option<Jwk> {
        let mut jwk = Jwk {
            kid: Some(self.kid.0.clone()),
            alg: Some(self.alg.as_str().to_owned()),
            use_: Some("sig".to_owned()),
            ..Jwk::default()
        };
        match &self.material {
            Material::Hmac { .. } => return None,
            Material::Ed25519 { verifying, .. } => {
                jwk.kty = "OKP".to_owned();
                jwk.crv = Some("Ed25519".to_owned());
                jwk.x = Some(b64::encode(verifying.as_bytes()));
            }
            Material::Es256 { verifying, .. } => {
                let point = verifying.to_encoded_point(false);
                jwk.kty = "EC".to_owned();
                jwk.crv = Some("P-256".to_owned());
                jwk.x = point.x().map(|x| b64::encode(x));
                jwk.y = point.y().map(|y| b64::encode(y));
            }
            Material::Rs256 { public, .. } => {
                jwk.kty = "RSA".to_owned();
                jwk.n = Some(b64::encode(&public.n().to_bytes_be()));
                jwk.e = Some(b64::encode(&public.e().to_bytes_be()));
            }
        }
        Some(jwk)
    }

    /// Imports a key from a JWK. The JWK must name its algorithm (Tessera pins one per key),
    /// its `kid`, and, when it says, be meant for signatures (`use` = `sig`, `key_ops` with
    /// `verify`). Private members are used when present.
    pub fn from_jwk(jwk: &Jwk, state: KeyState, created_at: i64) -> Result<Key, KeyError> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError::WrongUse);
        }
        if let Some(ops) = &jwk.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err(KeyError::WrongUse);
        }
        let alg_name = jwk.alg.as_deref().ok_or(KeyError::UnsupportedJwk("missing alg"))?;
        let alg = Algorithm::from_name(alg_name).ok_or(KeyError::UnsupportedJwk("unsupported alg"))?;
        let kid = Kid::new(jwk.kid.clone().ok_or(KeyError::UnsupportedJwk("missing kid"))?)?;
        let member = |value: &Option<String>, name: &'static str| -> Result<Vec<u8>, KeyError> {
            let text = value.as_deref().ok_or(KeyError::UnsupportedJwk(name))?;
            b64::decode(text).ok_or(KeyError::UnsupportedJwk(name))
        };
        let material = match (alg, jwk.kty.as_str()) {
            (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, "oct") => {
                let secret = Zeroizing::new(member(&jwk.k, "k")?);
                let min = min_hmac_secret_len(alg);
                if secret.len() < min {
                    return Err(KeyError::SecretTooShort {
                        alg,
                        min,
                        actual: secret.len(),
                    });
                }
                let state = HmacState::new(alg, &secret)?;
                Material::Hmac { secret, state }
            }
            (Algorithm::EdDSA, "OKP") => {
                if jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(KeyError::UnsupportedJwk("crv"));
                }
                let x = member(&jwk.x, "x")?;
                let x: [u8; 32] = x.try_into().map_err(|_| KeyError::InvalidMaterial("ed25519 x"))?;
                let verifying =
                    ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| KeyError::InvalidMaterial("ed25519 x"))?;
                match &jwk.d {
                    Some(_) => {
                        let material = ed25519_material(&Zeroizing::new(member(&jwk.d, "d")?))?;
                        if !matches!(&material, Material::Ed25519 { verifying: v, .. } if *v == verifying) {
                            return Err(KeyError::InvalidMaterial("ed25519 d does not match x"));
                        }
                        material
                    }
                    None => Material::Ed25519 {
                        signing: None,
                        verifying,
                    },
                }
            }
            (Algorithm::ES256, "EC") => {
                if jwk.crv.as_deref() != Some("P-256") {
                    return Err(KeyError::UnsupportedJwk("crv"));
                }
                let coordinate = |bytes: Vec<u8>| -> Result<p256::FieldBytes, KeyError> {
                    let bytes: [u8; 32] = bytes
                        .try_into()
                        .map_err(|_| KeyError::InvalidMaterial("p-256 coordinates"))?;
                    Ok(p256::FieldBytes::from(bytes))
                };
                let (x, y) = (coordinate(member(&jwk.x, "x")?)?, coordinate(member(&jwk.y, "y")?)?);
                let point = p256::EncodedPoint::from_affine_coordinates(&x, &y, false);
                let verifying = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| KeyError::InvalidMaterial("p-256 point"))?;
                match &jwk.d {
                    Some(_) => {
                        let material = es256_material(&Zeroizing::new(member(&jwk.d, "d")?))?;
                        if !matches!(&material, Material::Es256 { verifying: v, .. } if *v == verifying) {
                            return Err(KeyError::InvalidMaterial("p-256 d does not match x, y"));
                        }
                        material
                    }
                    None => Material::Es256 {
                        signing: None,
                        verifying,
                    },
                }
            }
            (Algorithm::RS256, "RSA") => {
                let n = rsa::BigUint::from_bytes_be(&member(&jwk.n, "n")?);
                let e = rsa::BigUint::from_bytes_be(&member(&jwk.e, "e")?);
                let public = rsa::RsaPublicKey::new(n.clone(), e.clone())
                    .map_err(|_| KeyError::InvalidMaterial("rsa public key"))?;
                check_rsa_size(&public)?;
                match (&jwk.d, &jwk.p, &jwk.q) {
                    (Some(_), Some(_), Some(_)) => {
                        let d = rsa::BigUint::from_bytes_be(&member(&jwk.d, "d")?);
                        let p = rsa::BigUint::from_bytes_be(&member(&jwk.p, "p")?);
                        let q = rsa::BigUint::from_bytes_be(&member(&jwk.q, "q")?);
                        let private = rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q])
                            .map_err(|_| KeyError::InvalidMaterial("rsa private key"))?;
                        private
                            .validate()
                            .map_err(|_| KeyError::InvalidMaterial("rsa private key"))?;
                        rsa_material(private)
                    }
                    (None, _, _) => Material::Rs256 {
                        signing: None,
                        verifying: rsa::pkcs1v15::VerifyingKey::new(public.clone()),
                        public,
                    },
                    _ => return Err(KeyError::UnsupportedJwk("rsa private key needs d, p and q")),
                }
            }
            _ => return Err(KeyError::UnsupportedJwk("kty does not match alg")),
        };
        Ok(Key::assemble(kid, alg, state, created_at, material))
    }
}

fn ed25519_material(seed: &[u8]) -> Result<Material, KeyError> {
    let seed: &[u8; 32] = seed
        .try_into()
        .map_err(|_| KeyError::InvalidMaterial("ed25519 seed must be 32 bytes"))?;
    let signing = ed25519_dalek::SigningKey::from_bytes(seed);
    Ok(Material::Ed25519 {
        verifying: signing.verifying_key(),
        signing: Some(Box::new(signing)),
    })
}

fn es256_material(scalar: &[u8]) -> Result<Material, KeyError> {
    if scalar.len() != 32 {
        return Err(KeyError::InvalidMaterial("p-256 scalar must be 32 bytes"));
    }
    let signing = p256::ecdsa::SigningKey::from_slice(scalar).map_err(|_| KeyError::InvalidMaterial("p-256 scalar"))?;
    Ok(Material::Es256 {
        verifying: *signing.verifying_key(),
        signing: Some(Box::new(signing)),
    })
}

fn rsa_material(private: rsa::RsaPrivateKey) -> Material {
    let public = private.to_public_key();
    Material::Rs256 {
        signing: Some(Box::new(rsa::pkcs1v15::SigningKey::new(private))),
        verifying: rsa::pkcs1v15::VerifyingKey::new(public.clone()),
        public,
    }
}

fn check_rsa_size(public: &rsa::RsaPublicKey) -> Result<(), KeyError> {
    let bits = public.n().bits();
    if bits < MIN_RSA_BITS {
        Err(KeyError::RsaTooSmall(bits))
    } else {
        Ok(())
    }
}

/// A JSON Web Key (RFC 7517). Private members can be read (for import) but are never written:
/// they are skipped on serialisation, so a JWK set cannot leak them by construction.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`, `EC`, `RSA` or `oct`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use (`sig`).
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Permitted operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// Curve (`Ed25519`, `P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public x coordinate or Ed25519 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Public y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Private: EC/OKP private key or RSA private exponent. Never serialised.
    #[serde(default, skip_serializing)]
    pub d: Option<String>,
    /// Private: symmetric key. Never serialised.
    #[serde(default, skip_serializing)]
    pub k: Option<String>,
    /// Private: first RSA prime. Never serialised.
    #[serde(default, skip_serializing)]
    pub p: Option<String>,
    /// Private: second RSA prime. Never serialised.
    #[serde(default, skip_serializing)]
    pub q: Option<String>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("crv", &self.crv)
            .field("has_private", &(self.d.is_some() || self.k.is_some()))
            .finish_non_exhaustive()
    }
}

/// A JWK set: the document served at `/.well-known/jwks.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The public keys.
    pub keys: Vec<Jwk>,
}

/// A stored key with its timetable: the state of every key follows from these times and the
/// clock, so every instance that reads the same rows at the same time sees the same ring, with
/// no coordination (rotation is just "insert a key that activates later").
#[derive(Debug)]
pub struct ScheduledKey {
    /// The key (its state is recomputed).
    pub key: Key,
    /// When it starts signing. Until then it is published: in the JWK set and verifying.
    pub activates_at: i64,
    /// When it stops verifying, if retired.
    pub retired_at: Option<i64>,
}

/// What [`KeyRing::prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Keys removed from the ring.
    pub removed: Vec<Kid>,
    /// Old keys kept because they can still verify an unexpired token (prune without force).
    pub refused: Vec<Kid>,
}

/// Why a key ring operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// A key with this id is already in the ring.
    #[error("duplicate key id {0}")]
    DuplicateKid(Kid),
    /// No key with this id.
    #[error("no key with id {0}")]
    UnknownKid(String),
    /// Only a key with private material can sign.
    #[error("key {0} cannot sign: it has no private part")]
    CannotSign(Kid),
}

/// The set of keys one token type is signed and verified with.
///
/// Verification looks keys up by `kid` only, among keys whose state verifies. Signing uses the
/// newest key in the signing state. The ring is a plain value: the server swaps a whole new ring
/// in on rotation, so readers never see a half-rotated ring.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    /// A ring from keys; kids must be unique.
    pub fn new(keys: Vec<Key>) -> Result<KeyRing, KeyRingError> {
        let mut ring = KeyRing::default();
        for key in keys {
            ring.insert(key)?;
        }
        Ok(ring)
    }

    /// The ring at time `now` from keys and their timetables: the newest activated key with a
    /// private part signs; older activated keys verify only (since the next one activated);
    /// keys not yet active are published; retired keys verify nothing.
    pub fn from_schedule(mut entries: Vec<ScheduledKey>, now: i64) -> Result<KeyRing, KeyRingError> {
        entries.sort_by_key(|e| (e.activates_at, e.key.created_at));
        let is_live = |e: &ScheduledKey| e.retired_at.is_none_or(|at| at > now);
        let signer = entries
            .iter()
            .rposition(|e| is_live(e) && e.activates_at <= now && e.key.has_private());
        let activations: Vec<i64> = entries.iter().map(|e| e.activates_at).collect();
        let mut keys = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let live = is_live(&entry);
            let mut key = entry.key;
            key.deactivated_at = None;
            key.state = if !live {
                KeyState::Retired
            } else if entry.activates_at > now {
                KeyState::Published
            } else if Some(index) == signer {
                KeyState::Signing
            } else {
                // Stopped signing when the next key activated (or, with no successor yet
                // active, it never signed: then "since its own activation" is the safe bound).
                key.deactivated_at = activations[index + 1..]
                    .iter()
                    .copied()
                    .find(|at| *at <= now)
                    .or(Some(entry.activates_at));
                KeyState::VerifyOnly
            };
            if key.state == KeyState::Retired {
                key.deactivated_at = entry.retired_at;
            }
            keys.push(key);
        }
        KeyRing::new(keys)
    }

    /// Adds a key.
    pub fn insert(&mut self, key: Key) -> Result<(), KeyRingError> {
        if self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(KeyRingError::DuplicateKid(key.kid));
        }
        self.keys.push(key);
        self.keys.sort_by_key(|k| k.created_at);
        Ok(())
    }

    /// All keys, oldest first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The key with this id, whatever its state.
    pub fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid.as_str() == kid)
    }

    /// The key with this id if it may verify tokens.
    pub fn find_verifier(&self, kid: &str) -> Option<&Key> {
        self.find(kid).filter(|k| k.state.is_verifying())
    }

    /// The key new tokens are signed with: the newest key in the signing state.
    pub fn signing_key(&self) -> Option<&Key> {
        self.keys.iter().rev().find(|k| k.state == KeyState::Signing)
    }

    /// Makes `kid` the signing key; every other signing key becomes verify-only.
    pub fn promote(&mut self, kid: &str, now: i64) -> Result<(), KeyRingError> {
        let key = self.find(kid).ok_or_else(|| KeyRingError::UnknownKid(kid.to_owned()))?;
        if !key.has_private() {
            return Err(KeyRingError::CannotSign(key.kid.clone()));
        }
        for key in &mut self.keys {
            if key.kid.as_str() == kid {
                key.set_state(KeyState::Signing, now);
            } else if key.state == KeyState::Signing {
                key.set_state(KeyState::VerifyOnly, now);
            }
        }
        Ok(())
    }

    /// Moves a key to another state.
    pub fn set_state(&mut self, kid: &str, state: KeyState, now: i64) -> Result<(), KeyRingError> {
        let key = self
            .keys
            .iter_mut()
            .find(|k| k.kid.as_str() == kid)
            .ok_or_else(|| KeyRingError::UnknownKid(kid.to_owned()))?;
        key.set_state(state, now);
        Ok(())
    }

    /// The parsed header for a header segment written by one of this ring's verifying keys.
    pub fn known_header(&self, segment: &str) -> Option<Header<'_>> {
        self.keys.iter().filter(|k| k.state.is_verifying()).find_map(|key| {
            key.known_headers
                .iter()
                .find(|(known, _)| known == segment)
                .map(|(_, typ)| Header {
                    alg: key.alg,
                    kid: Some(Cow::Borrowed(key.kid.as_str())),
                    typ: Some(Cow::Borrowed(*typ)),
                })
        })
    }

    /// The public JWK set: every asymmetric key that verifies (published, signing, verify-only).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .filter(|k| k.state.is_verifying())
                .filter_map(Key::public_jwk)
                .collect(),
        }
    }

    /// Whether `key` may still verify a token that has not expired, given the longest token
    /// lifetime and the verification leeway.
    pub fn can_verify_live_tokens(key: &Key, now: i64, max_token_lifetime: i64) -> bool {
        match key.state {
            KeyState::Retired => false,
            KeyState::Signing | KeyState::Published => true,
            KeyState::VerifyOnly => key
                .deactivated_at
                .is_none_or(|at| at.saturating_add(max_token_lifetime) > now),
        }
    }

    /// Keeps the newest `keep` keys (the seed's `remove_old_keys(keep_count)`) and removes the
    /// older ones, except that it never removes the signing key, and without `force` never one
    /// that may still verify an unexpired token (those are reported in `refused`).
    pub fn prune(&mut self, keep: usize, now: i64, max_token_lifetime: i64, force: bool) -> PruneOutcome {
        let mut outcome = PruneOutcome::default();
        let signing = self.signing_key().map(|k| k.kid.clone());
        let cutoff = self.keys.len().saturating_sub(keep);
        let mut index = 0;
        self.keys.retain(|key| {
            let is_old = index < cutoff;
            index += 1;
            if !is_old || Some(&key.kid) == signing.as_ref() {
                return true;
            }
            if !force && KeyRing::can_verify_live_tokens(key, now, max_token_lifetime) {
                outcome.refused.push(key.kid.clone());
                return true;
            }
            outcome.removed.push(key.kid.clone());
            false
        });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn kid_rejects_empty_long_and_unprintable_ids() {
        assert!(Kid::new("k1").is_ok());
        assert!(Kid::new("bilbo.baggins@hobbiton.example").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é", "\n"] {
            assert_eq!(Kid::new(bad), Err(KeyError::InvalidKid), "{bad:?}");
        }
        assert_eq!(Kid::new("a".repeat(129)), Err(KeyError::InvalidKid));
    }

    #[test]
    fn derived_kid_is_stable_and_depends_on_secret_and_algorithm() {
        let secret = [7u8; 32];
        let kid = Kid::derive_from_secret(Algorithm::HS256, &secret);
        assert_eq!(kid, Kid::derive_from_secret(Algorithm::HS256, &secret));
        assert_ne!(kid, Kid::derive_from_secret(Algorithm::HS256, &[8u8; 32]));
        assert_ne!(kid, Kid::derive_from_secret(Algorithm::HS384, &[7u8; 48][..32]));
        assert!(Kid::new(kid.as_str()).is_ok());
    }

    #[test]
    fn short_secrets_are_refused_per_algorithm() {
        for (alg, min) in [(Algorithm::HS256, 32), (Algorithm::HS384, 48), (Algorithm::HS512, 64)] {
            let err = Key::from_secret(alg, &vec![1u8; min - 1], None, KeyState::Signing, 0).unwrap_err();
            assert_eq!(
                err,
                KeyError::SecretTooShort {
                    alg,
                    min,
                    actual: min - 1
                }
            );
            assert!(Key::from_secret(alg, &vec![1u8; min], None, KeyState::Signing, 0).is_ok());
        }
        assert_eq!(
            Key::from_secret(Algorithm::EdDSA, &[1u8; 32], None, KeyState::Signing, 0).unwrap_err(),
            KeyError::WrongAlgorithm(Algorithm::EdDSA)
        );
    }

    #[test]
    fn every_algorithm_signs_verifies_and_survives_export() {
        for alg in Algorithm::ALL {
            let key = Key::generate(alg, KeyState::Signing, 10, &mut OsRng).unwrap();
            let signature = key.sign_bytes(b"input", &mut OsRng).unwrap();
            assert!(key.verify_signature(b"input", &signature), "{alg}");
            assert!(!key.verify_signature(b"inpuT", &signature), "{alg}");
            let private = key.export_private().unwrap();
            let again =
                Key::import_private(alg, key.kid().clone(), KeyState::VerifyOnly, 10, Some(20), &private).unwrap();
            assert!(again.verify_signature(b"input", &signature), "{alg}");
            assert_eq!(again.deactivated_at(), Some(20));
            assert_eq!(again.public_jwk(), key.public_jwk());
        }
    }

    #[test]
    fn es256_signatures_are_issued_low_s_and_the_high_s_twin_is_the_one_known_variant() {
        let key = Key::generate(Algorithm::ES256, KeyState::Signing, 0, &mut OsRng).unwrap();
        for i in 0..32u8 {
            let input = [i; 40];
            let bytes = key.sign_bytes(&input, &mut OsRng).unwrap();
            let signature = p256::ecdsa::Signature::from_slice(&bytes).unwrap();
            assert!(signature.normalize_s().is_none(), "issued a high-S signature");
            // The twin (r, n - s) verifies too: documented ECDSA malleability, not a bypass,
            // since nothing in Tessera is keyed on the token text.
            let twin = p256::ecdsa::Signature::from_scalars(signature.r(), -*signature.s()).unwrap();
            assert!(key.verify_signature(&input, &twin.to_bytes()));
        }
    }

    #[test]
    fn generated_rsa_keys_have_a_3072_bit_modulus() {
        // Arrange / Act
        let key = Key::generate(Algorithm::RS256, KeyState::Signing, 0, &mut OsRng).unwrap();
        // Assert: the JWK's modulus is 384 bytes.
        let jwk = key.public_jwk().unwrap();
        let n = crate::b64::decode(jwk.n.as_deref().unwrap()).unwrap();
        assert_eq!(n.len() * 8, GENERATED_RSA_BITS);
        assert_eq!(GENERATED_RSA_BITS, 3072);
    }

    #[test]
    fn public_jwk_round_trips_and_never_contains_private_members() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let key = Key::generate(alg, KeyState::Signing, 0, &mut OsRng).unwrap();
            let jwk = key.public_jwk().unwrap();
            let json = serde_json::to_value(&jwk).unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(json.get(private).is_none(), "{alg} leaks {private}");
            }
            let public = Key::from_jwk(&jwk, KeyState::VerifyOnly, 0).unwrap();
            assert!(!public.has_private());
            let signature = key.sign_bytes(b"x", &mut OsRng).unwrap();
            assert!(public.verify_signature(b"x", &signature), "{alg}");
        }
        let hmac = Key::generate(Algorithm::HS256, KeyState::Signing, 0, &mut OsRng).unwrap();
        assert!(hmac.public_jwk().is_none());
    }

    #[test]
    fn debug_output_shows_no_material() {
        let key = Key::from_secret(
            Algorithm::HS256,
            b"0123456789abcdef0123456789abcdef",
            None,
            KeyState::Signing,
            0,
        )
        .unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("0123456789"));
        assert!(debug.contains("HS256"));
    }

    fn ring_of(states: &[(KeyState, i64, Option<i64>)]) -> KeyRing {
        let keys = states
            .iter()
            .enumerate()
            .map(|(i, (state, created, deactivated))| {
                let mut key = Key::from_secret(
                    Algorithm::HS256,
                    &[i as u8 + 1; 32],
                    Some(Kid::new(format!("k{i}")).unwrap()),
                    *state,
                    *created,
                )
                .unwrap();
                key.deactivated_at = *deactivated;
                key
            })
            .collect();
        KeyRing::new(keys).unwrap()
    }

    fn scheduled(seed: u8, activates_at: i64, retired_at: Option<i64>) -> ScheduledKey {
        let kid = Kid::new(format!("s{seed}")).unwrap();
        ScheduledKey {
            key: Key::from_secret(
                Algorithm::HS256,
                &[seed; 32],
                Some(kid),
                KeyState::Retired,
                activates_at,
            )
            .unwrap(),
            activates_at,
            retired_at,
        }
    }

    #[test]
    fn states_follow_the_timetable_and_the_clock() {
        let entries = || {
            vec![
                scheduled(1, 100, None),
                scheduled(2, 200, None),
                scheduled(3, 300, None),
                scheduled(4, 50, Some(150)),
            ]
        };
        // At 250: s2 signs (newest activated), s1 verifies (since 200), s3 is published, s4 retired.
        let ring = KeyRing::from_schedule(entries(), 250).unwrap();
        let state = |kid: &str| ring.find(kid).unwrap().state();
        assert_eq!(ring.signing_key().unwrap().kid().as_str(), "s2");
        assert_eq!(
            (state("s1"), ring.find("s1").unwrap().deactivated_at()),
            (KeyState::VerifyOnly, Some(200))
        );
        assert_eq!(state("s3"), KeyState::Published);
        assert_eq!(state("s4"), KeyState::Retired);
        assert!(ring.find_verifier("s3").is_some(), "published keys verify");
        assert!(ring.find_verifier("s4").is_none());
        // At 300 the pre-published key takes over without anyone writing anything.
        let later = KeyRing::from_schedule(entries(), 300).unwrap();
        assert_eq!(later.signing_key().unwrap().kid().as_str(), "s3");
        assert_eq!(later.find("s2").unwrap().deactivated_at(), Some(300));
        // At 60 only s4 has activated (and is not yet retired): it signs, the rest are published.
        let early = KeyRing::from_schedule(entries(), 60).unwrap();
        assert_eq!(early.signing_key().unwrap().kid().as_str(), "s4");
        assert_eq!(early.find("s1").unwrap().state(), KeyState::Published);
        // Before anything activated, nothing signs but everything live verifies.
        let before = KeyRing::from_schedule(entries(), 10).unwrap();
        assert!(before.signing_key().is_none());
        assert!(before.find_verifier("s1").is_some());
    }

    #[test]
    fn signing_key_is_the_newest_signing_key() {
        let ring = ring_of(&[
            (KeyState::Signing, 1, None),
            (KeyState::Signing, 2, None),
            (KeyState::Published, 3, None),
        ]);
        assert_eq!(ring.signing_key().unwrap().kid().as_str(), "k1");
    }

    #[test]
    fn promote_demotes_the_previous_signer_and_records_when() {
        let mut ring = ring_of(&[(KeyState::Signing, 1, None), (KeyState::Published, 2, None)]);
        ring.promote("k1", 50).unwrap();
        assert_eq!(ring.find("k0").unwrap().state(), KeyState::VerifyOnly);
        assert_eq!(ring.find("k0").unwrap().deactivated_at(), Some(50));
        assert_eq!(ring.signing_key().unwrap().kid().as_str(), "k1");
        assert!(matches!(ring.promote("nope", 1), Err(KeyRingError::UnknownKid(_))));
    }

    #[test]
    fn retired_keys_neither_verify_nor_publish() {
        let ring = ring_of(&[(KeyState::Retired, 1, Some(1)), (KeyState::Signing, 2, None)]);
        assert!(ring.find_verifier("k0").is_none());
        assert!(ring.find("k0").is_some());
        assert!(ring.find_verifier("k1").is_some());
    }

    #[test]
    fn duplicate_kids_are_refused() {
        let a = Key::from_secret(Algorithm::HS256, &[1; 32], None, KeyState::Signing, 0).unwrap();
        let b = Key::from_secret(Algorithm::HS256, &[1; 32], None, KeyState::Signing, 0).unwrap();
        assert!(matches!(KeyRing::new(vec![a, b]), Err(KeyRingError::DuplicateKid(_))));
    }

    #[test]
    fn prune_keeps_newest_and_refuses_keys_with_live_tokens() {
        // k0 stopped signing long ago, k1 stopped 100 s ago (tokens live 900 s), k2 signs.
        let mut ring = ring_of(&[
            (KeyState::VerifyOnly, 1, Some(10)),
            (KeyState::VerifyOnly, 2, Some(9_900)),
            (KeyState::Signing, 3, None),
        ]);
        let outcome = ring.prune(1, 10_000, 900, false);
        assert_eq!(outcome.removed, vec![Kid::new("k0").unwrap()]);
        assert_eq!(outcome.refused, vec![Kid::new("k1").unwrap()]);
        let forced = ring.prune(1, 10_000, 900, true);
        assert_eq!(forced.removed, vec![Kid::new("k1").unwrap()]);
        assert_eq!(ring.keys().len(), 1);
    }

    #[test]
    fn prune_never_removes_the_signing_key_even_when_forced() {
        let mut ring = ring_of(&[(KeyState::Signing, 1, None), (KeyState::Published, 2, None)]);
        let outcome = ring.prune(1, 10_000, 900, true);
        assert!(outcome.removed.is_empty());
        assert_eq!(ring.keys().len(), 2);
    }
}
