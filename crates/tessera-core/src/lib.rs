//! Tessera's domain core: everything about tokens, keys and credentials that can be decided
//! without touching the outside world.
//!
//! This crate does no I/O. It has no tokio, axum, sqlx, redis or http dependency, never reads the
//! clock and never asks the operating system for randomness: the current time (`now`, Unix
//! seconds) and a random number generator are arguments. That keeps every security decision here
//! deterministic and testable with forged inputs and a controlled clock.
//!
//! # Layout
//!
//! The token stack is layered, each module importing only modules listed before it (a DAG that
//! `tests/core/layering.rs` enforces):
//!
//! - [`b64`]: strict, canonical base64url (no padding, no stray bits, no whitespace).
//! - [`algorithm`]: the JOSE algorithm names Tessera supports.
//! - [`header`]: the protected header, its rules (RFC 8725) and the `typ` values of token kinds.
//! - [`keys`]: keys (HS256/384/512, EdDSA, ES256, RS256), their lifecycle states, the key ring
//!   and the public JWK set (RFC 7517).
//! - [`jws`]: JWS compact serialisation (RFC 7515) at the signature layer: parsing, signing and
//!   verification with a key whose algorithm is pinned; errors are [`JwsError`].
//! - [`jwt`]: claims, access/refresh token types, issuing and strict validation (RFC 7519, 8725);
//!   errors are [`TokenError`], which wraps [`JwsError`].
//!
//! Beside it:
//!
//! - [`identity`]: email addresses and usernames normalised (NFKC, case folding) so that
//!   look-alike spellings are one account or refused.
//! - [`csrf`]: stateless CSRF tokens derived from the session id.
//! - [`password`]: argon2id hashing, rehash detection, the dummy verification and the policy.
//! - [`sealing`]: private keys encrypted at rest under a master key.
//! - [`limits`]: rate-limit strings in the slowapi/limits syntax.
//! - [`apikey`]: API keys (`tsk_...`): format, checksum, keyed hash.
//! - [`totp`]: the second factor (C3): RFC 6238 codes with one step of skew, the matched time
//!   step for replay refusal, recovery codes (format, normalisation, hash), challenge-token hashes.
//! - [`gateway`]: forward auth (G2): strict return URLs and their allowed domains, the host/path rules.
//! - [`scope`]: scopes (`profile:read`, `*`, ...) and the roles that decide a user's full scope.
//! - [`store`]: the storage traits (users, sessions, keys, denylist) and their data types.

pub mod algorithm;
pub mod apikey;
pub mod b64;
pub mod csrf;
pub mod gateway;
pub mod header;
pub mod identity;
pub mod jws;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod password;
pub mod scope;
pub mod sealing;
pub mod store;
pub mod totp;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use header::Header;
pub use identity::{Email, IdentityError, Username};
pub use jws::JwsError;
pub use jwt::{Claims, TokenError, TokenKind, Validation};
pub use keys::{Key, KeyRing, KeyState, Kid};
pub use scope::{Scope, ScopeSet};
