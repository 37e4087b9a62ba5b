//! The application state shared by every handler, and the token operations built on it.

use std::ops::Deref;
use std::sync::Arc;

use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::jwt::{self, Claims, TokenError, TokenKind, Validation};
use tessera_core::keys::{KeyRing, SignError};
use tessera_core::password::PasswordPolicy;
use tessera_core::store::{Denylist, KeyStore, SessionStore, UserStore};

use crate::backends::RedisHealth;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::revocation::Revocations;
use crate::token_cache::{RedisTokenCache, TokenCache};

use crate::config::Config;
use crate::hashing::HashPool;

/// Current Unix time in seconds: the one place the server reads the clock for token logic.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random 128-bit identifier, base64url (22 characters): session ids and token ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    tessera_core::b64::encode(&bytes)
}

/// Everything a handler needs.
pub struct Inner {
    /// Checked configuration.
    pub config: Config,
    /// Accounts.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Persisted keys.
    pub key_store: Arc<dyn KeyStore>,
    /// Revoked tokens and sessions, kept in step across instances.
    pub denylist: Arc<Revocations>,
    /// Rate limiters.
    pub limits: RateLimits,
    /// Redis health, when REDIS_URL is set.
    pub redis: Option<Arc<RedisHealth>>,
    /// Keys.
    pub keys: Keys,
    /// Password hashing.
    pub hashing: HashPool,
    /// Password rules.
    pub policy: PasswordPolicy,
    /// iss/aud/leeway.
    pub validation: Validation,
    /// Prometheus metrics of this instance.
    pub metrics: Metrics,
    /// The optional shared layer of the token cache (TOKEN_CACHE_REDIS).
    pub shared_token_cache: Option<RedisTokenCache>,
    /// Verified access-token claims (S8); `None` when TOKEN_CACHE_SIZE is 0.
    pub token_cache: Option<TokenCache>,
}

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A freshly issued access token and its claims.
pub struct IssuedAccess {
    /// The token.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

impl AppState {
    /// Issues an access token for a session.
    pub fn issue_access(&self, user_id: i64, username: &str, sid: &str, now: i64) -> Result<IssuedAccess, SignError> {
        let claims = Claims {
            sub: user_id.to_string(),
            user_id,
            username: username.to_owned(),
            sid: sid.to_owned(),
            jti: random_id(),
            iat: now,
            nbf: now,
            exp: now + self.config.access_ttl_secs,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
        };
        let token = jwt::issue(&self.keys.access.load(), TokenKind::Access, &claims, &mut OsRng)?;
        Ok(IssuedAccess { token, claims })
    }

    /// Issues the refresh token with id `jti` of a session. Deterministic for given inputs (the
    /// refresh ring is HMAC), which lets a refresh within the grace window hand back the very
    /// token that the winning concurrent refresh received.
    pub fn issue_refresh(
        &self,
        user_id: i64,
        username: &str,
        sid: &str,
        jti: &str,
        iat: i64,
        exp: i64,
    ) -> Result<String, SignError> {
        let claims = Claims {
            sub: user_id.to_string(),
            user_id,
            username: username.to_owned(),
            sid: sid.to_owned(),
            jti: jti.to_owned(),
            iat,
            nbf: iat,
            exp,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
        };
        jwt::issue(&self.keys.refresh.load(), TokenKind::Refresh, &claims, &mut OsRng)
    }

    /// Verifies an access token (signature, claims), through the token cache when it is on;
    /// the denylist is checked by the caller, hit or miss.
    pub async fn verify_access(&self, token: &str, now: i64) -> Result<Arc<Claims>, TokenError> {
        let leeway = self.validation.leeway_secs;
        if let Some(cache) = &self.token_cache
            && let Some(claims) = cache.get(token, now, leeway)
        {
            return Ok(claims);
        }
        let ring = self.keys.access.load();
        // The shared layer only where a round trip beats verifying, and only for a token whose
        // header is one this ring's verifying keys write (so a pruned key's tokens never hit).
        let shared = self.shared_token_cache.as_ref().filter(|_| {
            token
                .split('.')
                .next()
                .and_then(|header| ring.known_header(header))
                .is_some_and(|header| RedisTokenCache::is_worth_it(header.alg))
        });
        if let Some(shared) = shared
            && let Some(claims) = shared.get(token, now, leeway).await
        {
            let claims = Arc::new(claims);
            self.cache_verified(&ring, token, &claims, now, leeway);
            return Ok(claims);
        }
        let claims = Arc::new(jwt::verify(&ring, token, TokenKind::Access, &self.validation, now)?);
        self.cache_verified(&ring, token, &claims, now, leeway);
        if let Some(shared) = shared {
            shared.put(token, &claims, now);
        }
        Ok(claims)
    }

    /// Puts claims verified against `ring` in the token cache. A key reload swaps the ring and
    /// then clears the cache; if it did so while this token was being verified (or fetched from
    /// the shared layer), the entry just inserted may come from a key that is gone, and would
    /// outlive it until the token expires: then the cache is cleared again.
    fn cache_verified(&self, ring: &Arc<KeyRing>, token: &str, claims: &Arc<Claims>, now: i64, leeway: i64) {
        if let Some(cache) = &self.token_cache {
            cache.insert(token, Arc::clone(claims), now, leeway);
            if !Arc::ptr_eq(ring, &self.keys.access.load()) {
                cache.clear();
            }
        }
    }

    /// Verifies a refresh token.
    pub fn verify_refresh(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        jwt::verify(
            &self.keys.refresh.load(),
            token,
            TokenKind::Refresh,
            &self.validation,
            now,
        )
    }

    /// Until when a revoked session's access tokens must be refused: the longest an access
    /// token issued now could live, plus the leeway.
    pub fn session_denial_until(&self, now: i64) -> i64 {
        now + self.config.access_ttl_secs + self.config.leeway_secs
    }

    /// Refuses every access token of these sessions from now on.
    pub fn deny_sessions<'a>(&self, session_ids: impl IntoIterator<Item = &'a str>, now: i64) {
        let until = self.session_denial_until(now);
        for sid in session_ids {
            self.denylist.revoke_session(sid, until, now);
        }
    }
}
