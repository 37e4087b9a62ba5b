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

/// The optional shared layer (TOKEN_CACHE_REDIS=true), for parity with the seed: verified
/// claims in Redis, so an instance that has not seen a token yet can skip verifying it.
///
/// Measured (docs/TOKEN_CACHE.md): a Redis round trip costs more than verifying HS256 or EdDSA
/// and less than verifying ES256 or RS256, so the layer is consulted only for those two, and
/// only after a miss in the in-process cache. It must not turn Redis into an authority on who
/// is logged in, so every entry carries an HMAC under a server key that Redis never sees: an
/// entry written by anyone else fails the check and is ignored. A hit is also refused when the
/// token's key no longer verifies (rotation, prune), and entries expire with the token.
pub struct RedisTokenCache {
    health: Arc<crate::backends::RedisHealth>,
    prefix: String,
    mac: hmac::Hmac<sha2::Sha256>,
}

impl RedisTokenCache {
    /// A shared cache whose entries are authenticated with `mac_key`.
    pub fn new(health: Arc<crate::backends::RedisHealth>, prefix: &str, mac_key: &[u8]) -> Option<RedisTokenCache> {
        use hmac::Mac;
        let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(mac_key).ok()?;
        Some(RedisTokenCache {
            health,
            prefix: format!("{prefix}tc:"),
            mac,
        })
    }

    fn key_and_digest(&self, token: &str) -> (String, [u8; 32]) {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
        (format!("{}{hex}", self.prefix), digest)
    }

    fn tag(&self, digest: &[u8; 32], claims_json: &str) -> Vec<u8> {
        use hmac::Mac;
        self.mac
            .clone()
            .chain_update(digest)
            .chain_update(claims_json.as_bytes())
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether this layer is worth a round trip for tokens of `alg`.
    pub fn is_worth_it(alg: tessera_core::Algorithm) -> bool {
        matches!(alg, tessera_core::Algorithm::ES256 | tessera_core::Algorithm::RS256)
    }

    /// The authenticated claims stored for `token`, if any.
    pub async fn get(&self, token: &str, now: i64, leeway: i64) -> Option<Claims> {
        if !self.health.is_up() {
            return None;
        }
        let (key, digest) = self.key_and_digest(token);
        let mut connection = self.health.bus().manager();
        let value = tokio::time::timeout(
            std::time::Duration::from_millis(250),
            redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<String>>(&mut connection),
        )
        .await
        .ok()?
        .ok()??;
        let (tag, claims_json) = value.split_once('.')?;
        let expected = tessera_core::b64::encode(&self.tag(&digest, claims_json));
        // Constant-time comparison of the two tags.
        let matches = tag.len() == expected.len()
            && tag.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !matches {
            tracing::warn!(
                event = "token_cache_forgery",
                "a shared token-cache entry failed authentication; ignored"
            );
            return None;
        }
        let claims: Claims = serde_json::from_str(claims_json).ok()?;
        (now < claims.exp.saturating_add(leeway)).then_some(claims)
    }

    /// Stores verified claims until the token expires (best effort, in the background).
    pub fn put(&self, token: &str, claims: &Claims, now: i64) {
        if !self.health.is_up() {
            return;
        }
        let ttl = claims.exp - now;
        let Ok(claims_json) = serde_json::to_string(claims) else {
            return;
        };
        if ttl <= 0 {
            return;
        }
        let (key, digest) = self.key_and_digest(token);
        let value = format!(
            "{}.{claims_json}",
            tessera_core::b64::encode(&self.tag(&digest, &claims_json))
        );
        let mut connection = self.health.bus().manager();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(1),
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<()>(&mut connection),
            )
            .await;
        });
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
            roles: Vec::new(),
            scope: None,
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
