//! Revocation across instances (B3, B9).
//!
//! Every instance keeps the denylist in memory, so checking a token costs no round trip. A
//! revocation reaches the other instances two ways:
//!
//! - fast: published on Redis pub/sub, applied by every subscriber within milliseconds;
//! - sure: the database records every revoked session, and every instance re-reads the recent
//!   revocations every REVOCATION_POLL_MILLIS (500 ms by default). This also covers Redis
//!   outages, instances that were disconnected, and revocations made by the CLI.
//!
//! So a logout on one instance is refused everywhere within the poll interval at worst, and
//! usually within a few milliseconds. API keys (G3) travel the same two ways: a revoked or
//! rotated key, or a key of a disabled owner, leaves the key cache of every instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tessera_core::store::{ApiKeyStore, Denylist, SessionStore, StoreError};
use tessera_store::memory::MemoryDenylist;
use tessera_store::redis_bus::RedisBus;

use crate::api_key_cache::ApiKeyCache;
use crate::backends::RedisHealth;
use crate::clock::SharedClock;

/// How far back each poll looks, beyond the previous successful poll: covers transactions that
/// committed with an earlier timestamp than our last read, and clock skew between instances.
const POLL_OVERLAP_SECS: i64 = 5;

/// The pub/sub message that refuses every access token of session `sid` until `until`.
fn session_message(sid: &str, until: i64) -> String {
    format!("s {sid} {until}")
}

/// Tells every running instance at once, over Redis pub/sub, that these sessions are revoked
/// until `until`. For `tessera users disable`, which has no denylist of its own: the sessions
/// are already revoked in the database, so a failure here only costs speed (the instances'
/// database poll picks them up within REVOCATION_POLL_MILLIS).
pub async fn publish_revoked_sessions(bus: &RedisBus, session_ids: &[String], until: i64) -> Result<(), StoreError> {
    for sid in session_ids {
        bus.publish(&session_message(sid, until)).await?;
    }
    Ok(())
}

/// The denylist of this instance, kept in step with the others.
pub struct Revocations {
    local: MemoryDenylist,
    redis: Option<Arc<RedisHealth>>,
    clock: SharedClock,
    /// Verified API keys; a key revoked anywhere leaves it.
    pub api_keys: ApiKeyCache,
}

/// How many verified API keys an instance caches.
pub const API_KEY_CACHE_SIZE: usize = 10_000;

impl Revocations {
    /// A denylist, shared through `redis` when there is one.
    pub fn new(redis: Option<Arc<RedisHealth>>, clock: SharedClock) -> Arc<Revocations> {
        Arc::new(Revocations {
            local: MemoryDenylist::new(),
            redis,
            clock,
            api_keys: ApiKeyCache::new(API_KEY_CACHE_SIZE),
        })
    }

    fn publish(&self, message: String) {
        let Some(redis) = self.redis.clone() else { return };
        if !redis.is_up() {
            return;
        }
        tokio::spawn(async move {
            if let Err(error) = redis.bus().publish(&message).await {
                redis.report_failure(&error);
            }
        });
    }

    /// Drops API key `id` from the key cache of this instance and, over Redis, of every other.
    pub fn revoke_api_key(&self, id: &str) {
        self.api_keys.invalidate(id);
        self.publish(format!("k {id} 0"));
    }

    /// Applies a message published by another instance.
    fn apply(&self, message: &str) {
        let now = self.clock.now();
        let mut parts = message.split(' ');
        let (Some(kind), Some(id), Some(until)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let Ok(until) = until.parse::<i64>() else { return };
        match kind {
            "s" => self.local.revoke_session(id, until, now),
            "t" => self.local.revoke_token(id, until, now),
            "k" => self.api_keys.invalidate(id),
            _ => {}
        }
    }

    /// Loads the sessions revoked since `since` from the database into the local denylist.
    async fn catch_up(&self, sessions: &dyn SessionStore, since: i64, access_lifetime: i64) -> Result<(), StoreError> {
        let revoked = sessions.revoked_since(since).await?;
        let now = self.clock.now();
        for (sid, revoked_at) in revoked {
            self.local.revoke_session(&sid, revoked_at + access_lifetime, now);
        }
        Ok(())
    }

    /// Drops from the key cache the keys revoked, rotated or of owners disabled since `since`.
    async fn catch_up_keys(&self, keys: &dyn ApiKeyStore, since: i64) -> Result<(), StoreError> {
        if self.api_keys.is_empty() {
            return Ok(());
        }
        for id in keys.keys_changed_since(since).await? {
            self.api_keys.invalidate(&id);
        }
        Ok(())
    }

    /// Starts the subscriber and the database poll.
    pub async fn start(
        self: &Arc<Self>,
        sessions: Arc<dyn SessionStore>,
        api_keys: Arc<dyn ApiKeyStore>,
        access_lifetime: i64,
        poll_interval: Duration,
    ) -> Result<(), StoreError> {
        // Everything revoked within one access lifetime may still have live tokens.
        let started = self.clock.now();
        self.catch_up(sessions.as_ref(), started - access_lifetime, access_lifetime)
            .await?;
        if let Some(redis) = &self.redis {
            let revocations = Arc::clone(self);
            redis.bus().subscribe(move |message| revocations.apply(&message), || {});
        }
        let revocations = Arc::clone(self);
        let last_success = Arc::new(AtomicI64::new(started));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll_interval).await;
                let polled_at = revocations.clock.now();
                let since = last_success.load(Ordering::Relaxed) - POLL_OVERLAP_SECS;
                let caught_up = match revocations.catch_up(sessions.as_ref(), since, access_lifetime).await {
                    Ok(()) => revocations.catch_up_keys(api_keys.as_ref(), since).await,
                    Err(error) => Err(error),
                };
                match caught_up {
                    Ok(()) => last_success.store(polled_at, Ordering::Relaxed),
                    Err(error) => tracing::debug!(%error, "revocation poll failed; will retry"),
                }
            }
        });
        Ok(())
    }
}

impl Denylist for Revocations {
    fn revoke_token(&self, jti: &str, until: i64, now: i64) {
        self.local.revoke_token(jti, until, now);
        self.publish(format!("t {jti} {until}"));
    }

    fn revoke_session(&self, sid: &str, until: i64, now: i64) {
        self.local.revoke_session(sid, until, now);
        self.publish(session_message(sid, until));
    }

    fn is_revoked(&self, jti: &str, sid: &str, now: i64) -> bool {
        self.local.is_revoked(jti, sid, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn published_messages_are_applied_and_garbage_is_ignored() {
        let clock = crate::clock::ManualClock::starting_now();
        let revocations = Revocations::new(None, clock.clone());
        let later = clock.now() + 100;
        revocations.apply(&format!("s sid-1 {later}"));
        revocations.apply(&format!("t jti-1 {later}"));
        revocations.api_keys.insert(
            [7; 32],
            std::sync::Arc::new(crate::api_key_cache::CachedKey {
                id: "key-1".into(),
                user_id: 1,
                username: "u".into(),
                roles: Vec::new(),
                scopes: tessera_core::ScopeSet::USER,
                valid_until: None,
                created_at: 0,
                rate_limit: None,
                quota: None,
            }),
            clock.now(),
        );
        revocations.apply("k key-1 0");
        assert!(revocations.api_keys.get(&[7; 32], clock.now()).is_none());
        for garbage in ["", "s", "s x", "s x notanumber", "z x 1", "s  1"] {
            revocations.apply(garbage);
        }
        let now = clock.now();
        assert!(revocations.is_revoked("any", "sid-1", now));
        assert!(revocations.is_revoked("jti-1", "other", now));
        assert!(!revocations.is_revoked("any", "x", now));
    }
}
