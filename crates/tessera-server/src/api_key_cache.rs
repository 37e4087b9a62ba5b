//! Verified API keys in memory (G3): the hot path of a key-authenticated request touches no
//! database.
//!
//! Entries are keyed by the key's HMAC (never the key) and carry what authentication needs. The
//! cache is bounded (full: it starts over) and every entry lives at most [`MAX_ENTRY_SECS`], a
//! backstop for what no message announces (an owner deleted from the database). Revocation,
//! rotation and a disabled owner remove entries on every instance through `revocation`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tessera_core::ScopeSet;

/// The longest an entry is trusted without a lookup.
pub const MAX_ENTRY_SECS: i64 = 300;

/// A verified key, as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKey {
    /// Key id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Owner's name.
    pub username: String,
    /// The owner's roles at lookup.
    pub roles: Vec<String>,
    /// What the key may do (its scopes within its owner's).
    pub scopes: ScopeSet,
    /// When the key stops working (expiry, or the end of a rotation's grace), if ever.
    pub valid_until: Option<i64>,
    /// When the key was created.
    pub created_at: i64,
    /// The key's own API rate limit; `None`: RATE_LIMIT_API.
    pub rate_limit: Option<tessera_core::limits::RateLimitSpec>,
    /// The key's usage quota, if any.
    pub quota: Option<tessera_core::limits::RateLimitSpec>,
}

struct Entry {
    key: Arc<CachedKey>,
    /// When this entry must be looked up again.
    stale_at: i64,
}

/// The bounded cache.
pub struct ApiKeyCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    capacity: usize,
}

impl ApiKeyCache {
    /// A cache of at most `capacity` keys.
    pub fn new(capacity: usize) -> ApiKeyCache {
        ApiKeyCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key with this hash, if cached and still valid at `now`.
    pub fn get(&self, hash: &[u8; 32], now: i64) -> Option<Arc<CachedKey>> {
        let mut entries = self.lock();
        let entry = entries.get(hash)?;
        let valid = now < entry.stale_at && entry.key.valid_until.is_none_or(|until| now < until);
        if valid {
            Some(Arc::clone(&entry.key))
        } else {
            entries.remove(hash);
            None
        }
    }

    /// Caches a verified key.
    pub fn insert(&self, hash: [u8; 32], key: Arc<CachedKey>, now: i64) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                key,
                stale_at: now + MAX_ENTRY_SECS,
            },
        );
    }

    /// Forgets key `id` (revoked, rotated, or its owner disabled).
    pub fn invalidate(&self, id: &str) {
        self.lock().retain(|_, entry| entry.key.id != id);
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, valid_until: Option<i64>) -> Arc<CachedKey> {
        Arc::new(CachedKey {
            id: id.into(),
            user_id: 1,
            username: "u".into(),
            roles: Vec::new(),
            scopes: ScopeSet::USER,
            valid_until,
            created_at: 0,
            rate_limit: None,
            quota: None,
        })
    }

    #[test]
    fn entries_expire_are_invalidated_and_the_cache_stays_bounded() {
        let cache = ApiKeyCache::new(2);
        cache.insert([1; 32], key("a", Some(100)), 0);
        cache.insert([2; 32], key("b", None), 0);
        assert_eq!(cache.get(&[1; 32], 99).unwrap().id, "a");
        assert!(cache.get(&[1; 32], 100).is_none(), "past valid_until");
        assert!(cache.get(&[2; 32], MAX_ENTRY_SECS).is_none(), "stale");
        cache.insert([2; 32], key("b", None), 0);
        cache.invalidate("b");
        assert!(cache.get(&[2; 32], 1).is_none());
        for i in 0..10u8 {
            cache.insert([i; 32], key("x", None), 0);
        }
        assert!(cache.len() <= 2);
    }
}
