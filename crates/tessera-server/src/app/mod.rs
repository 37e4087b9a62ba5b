//! The application layer (A1): the auth flows as plain Rust services, with no HTTP in them.
//!
//! [`App`] holds what the flows need (stores, keys, limits, hashing pool, metrics, clock) and
//! its methods run each flow from start to end: [`App::register`], [`App::login`],
//! [`App::refresh`], [`App::logout`], [`App::logout_all`], [`App::list_sessions`],
//! [`App::end_session`], [`App::authenticate`], the operator's [`App::disable_user`] and
//! [`App::enable_user`]. Each returns a typed outcome or an [`error::Error`]; security events
//! and metrics are recorded here, next to the decisions. The HTTP layer (`http/`) extracts,
//! calls one method and maps the outcome to a response; the CLI calls the same methods.
//!
//! **Architecture Invariant:** nothing under `app/` imports axum, tower or `crate::http`
//! (checked by `tests/api/layers.rs`).

pub mod accounts;
pub mod api_keys;
pub mod authenticate;
pub mod email;
pub mod error;
pub mod forward_auth;
pub mod identity;
pub mod introspect;
pub mod limits;
pub mod login;
pub mod mfa;
pub mod origin;
pub mod passkeys;
pub mod refresh;
pub mod sessions;
pub mod settings;
pub mod webauthn;

pub use self::error::Error;

use std::sync::Arc;

use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::jwt::{self, Claims, TokenError, TokenKind, Validation};
use tessera_core::keys::{KeyRing, SignError};
use tessera_core::store::{ApiKeyStore, Denylist, EmailTokenStore, KeyStore, MfaStore, SessionStore, UserStore};

use crate::backends::RedisHealth;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::revocation::Revocations;
use crate::token_cache::{RedisTokenCache, TokenCache};

use self::accounts::Accounts;
use self::limits::RateLimits;

/// A random 128-bit identifier, base64url (22 characters): session ids and token ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    tessera_core::b64::encode(&bytes)
}

/// The application: everything the flows need.
pub struct App {
    /// Checked configuration.
    pub config: Config,
    /// Accounts.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Persisted keys.
    pub key_store: Arc<dyn KeyStore>,
    /// API keys (G3).
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// One-time mail tokens (C2).
    pub email_tokens: Arc<dyn EmailTokenStore>,
    /// Second factors: TOTP, recovery codes, login challenges (C3).
    pub mfa: Arc<dyn MfaStore>,
    /// Outgoing mail (C2).
    pub mailer: crate::mail::Mailer,
    /// Last uses of API keys not yet written (flushed in batches).
    pub key_usage: api_keys::UsageBuffer,
    /// Profiles (email, account kind) for the identity the gateway hands on.
    pub profiles: identity::ProfileCache,
    /// Signed assertions, reused for half their lifetime.
    pub assertions: identity::AssertionCache,
    /// Revoked tokens and sessions, kept in step across instances.
    pub denylist: Arc<Revocations>,
    /// Rate limiters.
    pub limits: RateLimits,
    /// Redis health, when REDIS_URL is set.
    pub redis: Option<Arc<RedisHealth>>,
    /// Keys.
    pub keys: Keys,
    /// Account creation and the operator's account commands (also the password hashing pool).
    pub accounts: Accounts,
    /// iss/aud/leeway.
    pub validation: Validation,
    /// Prometheus metrics of this instance.
    pub metrics: Metrics,
    /// The optional shared layer of the token cache (TOKEN_CACHE_REDIS).
    pub shared_token_cache: Option<RedisTokenCache>,
    /// Verified access-token claims (S8); `None` when TOKEN_CACHE_SIZE is 0.
    pub token_cache: Option<TokenCache>,
    /// The time (A4): the system clock in production, a manual one in tests.
    pub clock: SharedClock,
}

/// A freshly issued access token and its claims.
pub struct IssuedAccess {
    /// The token.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

impl App {
    /// Issues an access token for a session, carrying the user's roles and their full scope
    /// (G4: a password login gets the user's full scope).
    pub fn issue_access(
        &self,
        user_id: i64,
        username: &str,
        roles: Vec<String>,
        sid: &str,
        now: i64,
    ) -> Result<IssuedAccess, SignError> {
        let scope = tessera_core::scope::scope_for_roles(&roles);
        self.issue_access_scoped(user_id, username, roles, scope, sid, now)
    }

    /// Issues an access token with the given scope (at most the user's full scope: the caller
    /// decides).
    pub fn issue_access_scoped(
        &self,
        user_id: i64,
        username: &str,
        roles: Vec<String>,
        scope: tessera_core::ScopeSet,
        sid: &str,
        now: i64,
    ) -> Result<IssuedAccess, SignError> {
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
            roles,
            scope: Some(scope.to_string()),
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
            roles: Vec::new(),
            scope: None,
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

impl App {
    /// Reloads the key rings every KEY_RELOAD_SECONDS (and rotates on schedule when
    /// KEY_ROTATION_INTERVAL is set), for as long as the process runs.
    pub fn spawn_key_reload(self: &Arc<Self>) {
        if !self.keys.is_managed() {
            return;
        }
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let interval = std::time::Duration::from_secs(app.config.key_reload_secs);
            loop {
                tokio::time::sleep(interval).await;
                app.reload_keys().await;
            }
        });
    }

    /// One reload: rotates when due, re-reads the rings, and drops cached claims when a ring
    /// changed (a retired or pruned key must stop verifying at once).
    pub async fn reload_keys(&self) {
        let now = self.clock.now();
        if let Some(every) = self.config.key_rotation_interval_secs
            && let Err(error) = self
                .keys
                .rotate_if_due(every, self.config.key_publish_delay_secs, now)
                .await
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "scheduled key rotation failed; will retry"
            );
        }
        match self.keys.reload(now).await {
            Ok(true) => {
                if let Some(cache) = &self.token_cache {
                    cache.clear();
                }
                let access = self.keys.access.load();
                tracing::info!(
                    event = "keys_reloaded",
                    signing_kid = access.signing_key().map(|k| k.kid().to_string()).unwrap_or_default(),
                    keys = access.keys().len(),
                    "key rings changed"
                );
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "key reload failed; keeping the current rings"
            ),
        }
    }
}
