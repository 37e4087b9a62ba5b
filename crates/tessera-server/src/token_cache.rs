//! In-process cache of verified access-token claims (S8).
//!
//! The seed caches decoded payloads in Redis for five minutes, keyed by the token. Tessera
//! keeps the cache in process, because a lookup here (a hash of the token's last bytes, one
//! shard lock, one `Arc` clone) is much cheaper than any network round trip, and for the
//! asymmetric algorithms much cheaper than verifying (see docs/TOKEN_CACHE.md).
//!
//! Safety rules:
//! - only tokens that passed full verification are inserted; a lookup is by the exact token
//!   string, so a tampered token is a different key and is fully verified;
//! - an entry is never served past its token's `exp` (plus the same leeway verification uses);
//! - revocation is not the cache's business: the denylist is checked after every lookup, hit
//!   or miss, so a cached entry can never hide a logout;
//! - the whole cache is cleared whenever a key ring changes, so a retired key's tokens stop
//!   being accepted at once.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use tessera_core::jwt::Claims;

const SHARDS: usize = 16;

/// Hashes only the last 16 bytes of a token: its signature, which nobody can choose for a
/// token that verifies, so only genuine tokens are ever stored and collisions cannot be
/// engineered against them. Cheaper than hashing the whole token with SipHash.
#[derive(Clone, Copy, Default)]
struct SignatureSuffixHash;

struct SuffixHasher(u64);

impl Hasher for SuffixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(29) ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        self.0 ^= bytes.len() as u64;
    }
}

impl BuildHasher for SignatureSuffixHash {
    type Hasher = SuffixHasher;

    fn build_hasher(&self) -> SuffixHasher {
        SuffixHasher(0)
    }
}

type Shard = HashMap<Box<str>, Arc<Claims>, SignatureSuffixHash>;

/// A bounded, sharded map from token to verified claims.
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache of about `capacity` entries; `None` when `capacity` is 0 (cache disabled).
    pub fn new(capacity: usize) -> Option<TokenCache> {
        (capacity > 0).then(|| TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        })
    }

    fn shard(&self, token: &str) -> &Mutex<Shard> {
        let mut hasher = SignatureSuffixHash.build_hasher();
        hasher.write(token.as_bytes());
        // High bits pick the shard; the map uses the whole hash.
        &self.shards[(hasher.finish() >> 60) as usize % SHARDS]
    }

    /// The cached claims of `token` if present and not expired at `now` (with `leeway`).
    pub fn get(&self, token: &str, now: i64, leeway: i64) -> Option<Arc<Claims>> {
        let mut shard = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        let claims = shard.get(token)?;
        if now < claims.exp.saturating_add(leeway) {
            return Some(Arc::clone(claims));
        }
        shard.remove(token);
        None
    }

    /// Remembers the claims of a token that has just passed full verification.
    pub fn insert(&self, token: &str, claims: Arc<Claims>, now: i64, leeway: i64) {
        let mut shard = self.shard(token).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard {
            shard.retain(|_, c| now < c.exp.saturating_add(leeway));
            if shard.len() >= self.per_shard {
                // Still full of live tokens: start this shard over rather than scan for the
                // oldest. A miss only costs one verification.
                shard.clear();
            }
        }
        shard.insert(token.into(), claims);
    }

    /// Forgets everything (a key ring changed).
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            sub: "1".into(),
            user_id: 1,
            username: "u".into(),
            sid: "s".into(),
            jti: "j".into(),
            iat: 0,
            nbf: 0,
            exp,
            iss: "i".into(),
            aud: "a".into(),
        })
    }

    #[test]
    fn entries_are_served_until_expiry_and_not_after() {
        let cache = TokenCache::new(100).unwrap();
        cache.insert("a.b.c", claims(100), 0, 10);
        assert!(cache.get("a.b.c", 109, 10).is_some());
        assert!(cache.get("a.b.c", 110, 10).is_none());
        assert!(cache.get("a.b.c", 50, 10).is_none(), "expired entries are removed");
    }

    #[test]
    fn lookups_are_by_the_exact_token() {
        let cache = TokenCache::new(100).unwrap();
        cache.insert("header.payload.signature", claims(100), 0, 0);
        assert!(cache.get("header.payloaD.signature", 1, 0).is_none());
        assert!(cache.get("header.payload.signaturE", 1, 0).is_none());
    }

    #[test]
    fn capacity_is_bounded_and_clear_empties() {
        let cache = TokenCache::new(32).unwrap();
        for i in 0..1_000 {
            cache.insert(&format!("token-{i:08}-signature-bytes"), claims(1_000), 0, 0);
        }
        assert!(cache.len() <= 32 + SHARDS, "{}", cache.len());
        cache.clear();
        assert!(cache.is_empty());
        assert!(TokenCache::new(0).is_none());
    }
}
