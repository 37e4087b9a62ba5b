//! API keys (G3): create, list, rotate and revoke a user's keys, and authenticate a request
//! that presents one.
//!
//! A presented key is checked for format and checksum first ([`tessera_core::apikey`]): junk
//! and typos are refused without a lookup. A well-formed key is hashed (HMAC-SHA256 under the
//! server's key-hashing secret) and looked up in the in-memory cache, then in the database; a
//! verified key is cached, so the hot path touches no database. Revoking or rotating a key
//! drops it from the cache of every instance (`revocation`). Last uses are buffered and written
//! in batches ([`App::flush_key_usage`]), not once per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::rngs::OsRng;
use tessera_core::ScopeSet;
use tessera_core::apikey::{self, hashes_equal};
use tessera_core::jwt::Claims;
use tessera_core::limits::RateLimitSpec;
use tessera_core::scope::scope_for_roles;
use tessera_core::store::{ApiKey, KeyUsage};
use zeroize::Zeroizing;

use super::App;
use super::error::{Error, FieldError, TokenRejection};
use crate::api_key_cache::CachedKey;

/// Grace period of a rotation: the old key keeps working this long (24 h).
pub const ROTATION_GRACE_SECS: i64 = 24 * 3600;
/// Longest name of a key.
pub const MAX_NAME_CHARS: usize = 100;
/// Shortest and longest `expires_in`.
pub const EXPIRES_IN_RANGE: std::ops::RangeInclusive<i64> = 60..=10 * 365 * 24 * 3600;
/// How often buffered last uses are written.
pub const USAGE_FLUSH_SECS: u64 = 10;

/// Last uses not yet written, one entry per key.
#[derive(Default)]
pub struct UsageBuffer(Mutex<HashMap<String, KeyUsage>>);

impl UsageBuffer {
    fn record(&self, id: &str, at: i64, ip: &str) {
        let mut pending = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.insert(
            id.to_owned(),
            KeyUsage {
                id: id.to_owned(),
                at,
                ip: ip.to_owned(),
            },
        );
    }

    fn take(&self) -> Vec<KeyUsage> {
        let mut pending = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.drain().map(|(_, usage)| usage).collect()
    }
}

/// What a request for a new key asks for.
#[derive(Debug, Clone)]
pub struct NewKeyRequest {
    /// Label.
    pub name: String,
    /// Scope names.
    pub scopes: Vec<String>,
    /// Seconds until the key expires; `None`: never.
    pub expires_in: Option<i64>,
    /// The key's own API rate limit (slowapi syntax); `None`: RATE_LIMIT_API.
    pub rate_limit: Option<String>,
    /// A usage quota (slowapi syntax, e.g. `1000/day;20000/month`); `None`: none.
    pub quota: Option<String>,
}

/// A key just created or rotated: the only time the secret is shown.
pub struct CreatedKey {
    /// The stored key.
    pub key: ApiKey,
    /// The key itself.
    pub secret: Zeroizing<String>,
}

/// Who is calling, as authentication found: the claims (synthesised for an API key) and what
/// the credential may do.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The claims of the access token; for an API key, claims with the owner, an empty `sid`
    /// (no session) and the key id as `jti`.
    pub claims: Arc<Claims>,
    /// What the credential may do.
    pub scopes: ScopeSet,
    /// The key id, when the credential is an API key.
    pub api_key_id: Option<String>,
    /// The verified key (its limits), when the credential is an API key.
    pub api_key: Option<Arc<CachedKey>>,
}

fn random_key_id() -> String {
    format!("key_{}", super::random_id())
}

/// What a service account's key may hold: its roles' scope, plus `introspect` (which no
/// user's key can hold).
pub fn service_account_ceiling<S: AsRef<str>>(roles: &[S]) -> ScopeSet {
    scope_for_roles(roles).with(tessera_core::Scope::Introspect)
}

/// A new key for account `user_id`, hashed with `hasher` (not stored yet). Used by the API and
/// by `tessera api-keys create`. `limits` is (rate limit, quota) in canonical spelling.
pub fn build_key(
    hasher: &apikey::KeyHasher,
    user_id: i64,
    name: &str,
    scopes: ScopeSet,
    expires_at: Option<i64>,
    limits: (Option<String>, Option<String>),
    now: i64,
) -> CreatedKey {
    let secret = apikey::generate(&mut OsRng);
    let key = ApiKey {
        id: random_key_id(),
        user_id,
        name: name.to_owned(),
        prefix: apikey::display_prefix(&secret).to_owned(),
        key_hash: hasher.hash(&secret).to_vec(),
        scopes: scopes.to_string(),
        created_at: now,
        expires_at,
        revoked_at: None,
        rate_limit: limits.0,
        quota: limits.1,
        last_used_at: None,
        last_used_ip: None,
        rotated_to: None,
        updated_at: now,
    };
    CreatedKey { key, secret }
}

impl App {
    fn new_key(
        &self,
        user_id: i64,
        name: &str,
        scopes: ScopeSet,
        expires_at: Option<i64>,
        limits: (Option<String>, Option<String>),
        now: i64,
    ) -> CreatedKey {
        build_key(
            &self.keys.api_key_hasher,
            user_id,
            name,
            scopes,
            expires_at,
            limits,
            now,
        )
    }

    /// Creates a key for the caller. Its scopes must be within the caller's (a key cannot
    /// grant more than the credential that made it).
    pub async fn create_api_key(
        &self,
        caller: &Authenticated,
        request: NewKeyRequest,
        ip: &str,
    ) -> Result<CreatedKey, Error> {
        let mut problems = Vec::new();
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            problems.push(FieldError::new(
                "name",
                "invalid_length",
                format!("The name must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let scopes = ScopeSet::from_names(request.scopes.iter().map(String::as_str));
        match &scopes {
            Err(unknown) => problems.push(FieldError::new("scopes", "unknown_scope", unknown.to_string())),
            Ok(set) if set.is_empty() => problems.push(FieldError::new("scopes", "empty", "Give at least one scope")),
            Ok(set) if !set.is_subset_of(caller.scopes) => problems.push(FieldError::new(
                "scopes",
                "scope_not_allowed",
                format!("A key can only have scopes the caller has ({})", caller.scopes),
            )),
            Ok(_) => {}
        }
        if let Some(secs) = request.expires_in
            && !EXPIRES_IN_RANGE.contains(&secs)
        {
            problems.push(FieldError::new(
                "expires_in",
                "out_of_range",
                format!(
                    "expires_in must be {} to {} seconds",
                    EXPIRES_IN_RANGE.start(),
                    EXPIRES_IN_RANGE.end()
                ),
            ));
        }
        // Stored in their canonical spelling, parsed again at lookup.
        let mut spec = |field: &str, text: Option<&String>| -> Option<String> {
            let text = text?;
            match text.parse::<RateLimitSpec>() {
                Ok(spec) => Some(spec.to_string()),
                Err(error) => {
                    problems.push(FieldError::new(field, "invalid_limit", error.to_string()));
                    None
                }
            }
        };
        let limits = (
            spec("rate_limit", request.rate_limit.as_ref()),
            spec("quota", request.quota.as_ref()),
        );
        let scopes = match scopes {
            Ok(set) if problems.is_empty() => set,
            _ => return Err(Error::Validation(problems)),
        };
        let now = self.clock.now();
        let user_id = caller.claims.user_id;
        let created = self.new_key(user_id, name, scopes, request.expires_in.map(|s| now + s), limits, now);
        if !self.api_keys.create_key(created.key.clone()).await? {
            return Err(Error::AccountDisabled);
        }
        self.metrics.api_key_events.with_label_values(&["created"]).inc();
        tracing::info!(event = "api_key_created", user_id, key_id = %created.key.id, key_prefix = %created.key.prefix, scopes = %scopes, ip_address = %ip, "API key created");
        Ok(created)
    }

    /// The caller's keys that work (rotated ones within their grace included).
    pub async fn list_api_keys(&self, user_id: i64) -> Result<Vec<ApiKey>, Error> {
        Ok(self.api_keys.list_keys(user_id, self.clock.now()).await?)
    }

    /// Replaces a key by a new one with the same name, scopes and expiry; the old one keeps
    /// working for [`ROTATION_GRACE_SECS`].
    pub async fn rotate_api_key(&self, user_id: i64, id: &str, ip: &str) -> Result<CreatedKey, Error> {
        let now = self.clock.now();
        let old = self.api_keys.find_key(user_id, id).await?.ok_or(Error::NotFound)?;
        if !old.is_live(now) || old.rotated_to.is_some() {
            return Err(Error::NotFound);
        }
        let scopes = ScopeSet::from_claim(Some(&old.scopes));
        let limits = (old.rate_limit.clone(), old.quota.clone());
        let created = self.new_key(user_id, &old.name, scopes, old.expires_at, limits, now);
        let grace_until = now + ROTATION_GRACE_SECS;
        if !self
            .api_keys
            .rotate_key(user_id, id, created.key.clone(), grace_until, now)
            .await?
        {
            return Err(Error::NotFound);
        }
        // Cached copies of the old key must learn its new end.
        self.denylist.revoke_api_key(id);
        self.metrics.api_key_events.with_label_values(&["rotated"]).inc();
        tracing::info!(event = "api_key_rotated", user_id, key_id = %id, new_key_id = %created.key.id, grace_until, ip_address = %ip, "API key rotated");
        Ok(created)
    }

    /// Revokes a key at once, on every instance.
    pub async fn revoke_api_key(&self, user_id: i64, id: &str, ip: &str) -> Result<(), Error> {
        if !self.api_keys.revoke_key(user_id, id, self.clock.now()).await? {
            return Err(Error::NotFound);
        }
        self.denylist.revoke_api_key(id);
        self.metrics.api_key_events.with_label_values(&["revoked"]).inc();
        tracing::info!(event = "api_key_revoked", user_id, key_id = %id, ip_address = %ip, "API key revoked");
        Ok(())
    }

    /// Authenticates a presented API key: format and checksum (no lookup for junk), then the
    /// cache, then the database ([`App::verify_api_key`]), and records the use.
    pub async fn authenticate_api_key(&self, presented: &str, ip: &str) -> Result<Authenticated, Error> {
        let cached = self.verify_api_key(presented, ip).await?;
        let now = self.clock.now();
        self.key_usage.record(&cached.id, now, ip);
        let claims = Claims {
            sub: cached.user_id.to_string(),
            user_id: cached.user_id,
            username: cached.username.clone(),
            sid: String::new(),
            jti: cached.id.clone(),
            iat: cached.created_at,
            nbf: cached.created_at,
            exp: now + self.config.access_ttl_secs,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            roles: cached.roles.clone(),
            scope: Some(cached.scopes.to_string()),
        };
        Ok(Authenticated {
            claims: Arc::new(claims),
            scopes: cached.scopes,
            api_key_id: Some(cached.id.clone()),
            api_key: Some(cached),
        })
    }

    /// Verifies a presented API key without recording a use: format and checksum (no lookup
    /// for junk), then the cache, then the database. A verified key is cached.
    pub async fn verify_api_key(&self, presented: &str, ip: &str) -> Result<Arc<CachedKey>, Error> {
        let invalid = Error::Token(TokenRejection::Invalid);
        if let Err(reason) = apikey::check_format(presented) {
            self.metrics
                .api_key_verifications
                .with_label_values(&["malformed"])
                .inc();
            tracing::warn!(event = "invalid_token", ip_address = %ip, reason = %reason, kind = "api_key", "malformed API key");
            return Err(invalid);
        }
        let now = self.clock.now();
        let hash = self.keys.api_key_hasher.hash(presented);
        let cached = match self.denylist.api_keys.get(&hash, now) {
            Some(hit) => hit,
            None => {
                let Some(found) = self.api_keys.find_key_by_hash(&hash).await? else {
                    self.metrics.api_key_verifications.with_label_values(&["invalid"]).inc();
                    tracing::warn!(event = "invalid_token", ip_address = %ip, reason = "unknown key", kind = "api_key", key_prefix = %apikey::display_prefix(presented), "unknown API key");
                    return Err(invalid);
                };
                let key = &found.key;
                if !hashes_equal(&key.key_hash, &hash) || found.owner_disabled {
                    self.metrics.api_key_verifications.with_label_values(&["invalid"]).inc();
                    tracing::warn!(event = "invalid_token", ip_address = %ip, user_id = key.user_id, key_id = %key.id, reason = "owner disabled", kind = "api_key", "API key of a disabled account");
                    return Err(invalid);
                }
                if !key.is_live(now) {
                    self.metrics.api_key_verifications.with_label_values(&["revoked"]).inc();
                    if key.revoked_at.is_some_and(|at| at <= now) {
                        tracing::warn!(event = "api_key_used_after_revoke", ip_address = %ip, user_id = key.user_id, key_id = %key.id, "a revoked or replaced API key was presented");
                    } else {
                        tracing::info!(event = "token_expired", ip_address = %ip, user_id = key.user_id, key_id = %key.id, kind = "api_key", "expired API key");
                    }
                    return Err(invalid);
                }
                let roles = self.users.roles(key.user_id).await?;
                // A service account may also hold `introspect` (never part of a user's scope).
                let ceiling = if found.owner_service_account {
                    service_account_ceiling(&roles)
                } else {
                    scope_for_roles(&roles)
                };
                let scopes = ScopeSet::from_claim(Some(&key.scopes)).intersection(ceiling);
                let valid_until = match (key.expires_at, key.revoked_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let entry = Arc::new(CachedKey {
                    id: key.id.clone(),
                    user_id: key.user_id,
                    username: found.username.clone(),
                    roles,
                    scopes,
                    valid_until,
                    created_at: key.created_at,
                    rate_limit: key.rate_limit.as_deref().and_then(|text| text.parse().ok()),
                    quota: key.quota.as_deref().and_then(|text| text.parse().ok()),
                });
                self.denylist.api_keys.insert(hash, Arc::clone(&entry), now);
                entry
            }
        };
        self.metrics.api_key_verifications.with_label_values(&["valid"]).inc();
        Ok(cached)
    }

    /// Writes the buffered last uses (one call per flush, not per request).
    pub async fn flush_key_usage(&self) {
        let pending = self.key_usage.take();
        if pending.is_empty() {
            return;
        }
        if let Err(error) = self.api_keys.record_usage(&pending).await {
            tracing::warn!(%error, keys = pending.len(), "could not record API key usage; dropped");
        }
    }

    /// Flushes the buffered last uses every [`USAGE_FLUSH_SECS`].
    pub fn spawn_key_usage_flush(self: &Arc<Self>) {
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(USAGE_FLUSH_SECS)).await;
                let Some(app) = app.upgrade() else { return };
                app.flush_key_usage().await;
            }
        });
    }
}
