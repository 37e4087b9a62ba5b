//! In-process state: the access-token denylist and the single-instance rate limiter.
//!
//! Denylist lookups happen on every authenticated request, so they take a read lock on two
//! small hash maps and nothing else. Entries carry their expiry and are purged as the maps
//! grow, so the memory used is bounded by the number of revocations within one access-token
//! lifetime. The rate limiter ([`MemoryRateLimiter`]) keeps the two sliding-window counters
//! per key and period, purges windows that no longer matter, and caps the number of keys.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use tessera_core::limits::{Decision, RateLimit, RateLimitSpec, WindowCounts, decide};
use tessera_core::store::{Denylist, RateLimiter, StoreError};

/// Maps are purged of expired entries whenever they grow past this many entries since the
/// last purge.
const PURGE_EVERY: usize = 1024;

#[derive(Default)]
struct Entries {
    until: HashMap<String, i64>,
    inserted_since_purge: usize,
}

impl Entries {
    fn insert(&mut self, id: &str, until: i64, now: i64) {
        let entry = self.until.entry(id.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        self.inserted_since_purge += 1;
        if self.inserted_since_purge >= PURGE_EVERY {
            self.until.retain(|_, expires| *expires > now);
            self.inserted_since_purge = 0;
        }
    }

    fn is_live(&self, id: &str, now: i64) -> bool {
        self.until.get(id).is_some_and(|until| *until > now)
    }
}

/// A denylist held in this process only.
#[derive(Default)]
pub struct MemoryDenylist {
    tokens: RwLock<Entries>,
    sessions: RwLock<Entries>,
}

impl MemoryDenylist {
    /// An empty denylist.
    pub fn new() -> MemoryDenylist {
        MemoryDenylist::default()
    }

    /// How many entries are held (tokens, sessions).
    pub fn len(&self) -> (usize, usize) {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner()).until.len();
        let sessions = self.sessions.read().unwrap_or_else(|e| e.into_inner()).until.len();
        (tokens, sessions)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

impl Denylist for MemoryDenylist {
    fn revoke_token(&self, jti: &str, until: i64, now: i64) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti, until, now);
    }

    fn revoke_session(&self, sid: &str, until: i64, now: i64) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid, until, now);
    }

    fn is_revoked(&self, jti: &str, sid: &str, now: i64) -> bool {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_live(sid, now)
            || self.tokens.read().unwrap_or_else(|e| e.into_inner()).is_live(jti, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_token_is_refused_until_its_expiry() {
        let list = MemoryDenylist::new();
        list.revoke_token("j1", 100, 0);
        assert!(list.is_revoked("j1", "s", 99));
        assert!(!list.is_revoked("j1", "s", 100));
        assert!(!list.is_revoked("j2", "s", 99));
    }

    #[test]
    fn revoked_session_refuses_every_token_of_it() {
        let list = MemoryDenylist::new();
        list.revoke_session("s1", 100, 0);
        assert!(list.is_revoked("any", "s1", 50));
        assert!(!list.is_revoked("any", "s2", 50));
    }

    #[test]
    fn a_later_revocation_extends_never_shortens() {
        let list = MemoryDenylist::new();
        list.revoke_session("s1", 100, 0);
        list.revoke_session("s1", 50, 0);
        assert!(list.is_revoked("j", "s1", 80));
    }

    #[test]
    fn expired_entries_are_purged_as_the_map_grows() {
        let list = MemoryDenylist::new();
        for i in 0..PURGE_EVERY - 1 {
            list.revoke_token(&format!("old{i}"), 10, 0);
        }
        list.revoke_token("new", 1_000_000, 500);
        assert!(list.len().0 < 10, "{:?}", list.len());
        assert!(list.is_revoked("new", "s", 999_999));
    }
}

/// A new key triggers a purge of stale rate-limit windows after this many new keys.
const LIMITER_PURGE_EVERY: usize = 1024;

/// The most keys [`MemoryRateLimiter::new`] holds counters for.
///
/// Beyond it the least recently hit tenth of the keys is dropped, forgetting their counts:
/// memory stays bounded under a flood of distinct keys (spoofed IPs, invented login names),
/// at the price that such a flood can reset the counters of keys it pushes out. Keys whose
/// windows are over are dropped first, so with fewer than this many keys active within two
/// periods nothing is lost.
pub const MAX_LIMITER_KEYS: usize = 100_000;

/// One fixed window of one period for one key: the state of the sliding-window counter.
#[derive(Clone, Copy, Debug)]
struct LimiterWindow {
    period_ms: i64,
    start_ms: i64,
    counts: WindowCounts,
}

impl LimiterWindow {
    /// Moves to the window containing `now_ms`, exactly as a backend must (see
    /// `tessera_core::limits`): one period on, the current count becomes the previous one;
    /// further, both are zero.
    fn roll(&mut self, limit: &RateLimit, now_ms: i64) {
        let start = limit.window_start_ms(now_ms);
        if start != self.start_ms {
            let previous = if start - self.period_ms == self.start_ms {
                self.counts.current
            } else {
                0
            };
            self.start_ms = start;
            self.counts = WindowCounts { previous, current: 0 };
        }
    }

    /// Whether the window no longer affects any decision: two periods or more have passed
    /// since it started, so both of its counts would roll to zero.
    fn is_stale(&self, now_ms: i64) -> bool {
        self.start_ms.saturating_add(self.period_ms.saturating_mul(2)) <= now_ms
    }
}

/// The windows of one key, one per distinct period it has been hit with.
#[derive(Debug)]
struct LimiterKey {
    touched_ms: i64,
    windows: Vec<LimiterWindow>,
}

#[derive(Debug)]
struct LimiterState {
    keys: HashMap<String, LimiterKey>,
    new_keys_since_purge: usize,
    /// The latest `now_ms` seen: time never runs backwards for the limiter.
    clock_ms: i64,
}

/// Rate-limit counters held in this process: for a single instance, and the fallback when
/// Redis is away (B9).
///
/// Every hit takes one mutex around the check and the count, so concurrent hits on one key
/// never let more through than the limit. Counters are kept per key and period, so two limits
/// of a spec with the same period share one counter (counted once per hit), as in Redis; the
/// caller namespaces keys by purpose.
///
/// The clock is the `now_ms` given to [`RateLimiter::hit`], made monotonic: a hit stamped
/// earlier than one already decided is decided at the later time, so callers racing across a
/// window boundary cannot reset a counter by arriving out of order.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    state: Mutex<LimiterState>,
    max_keys: usize,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        MemoryRateLimiter::new()
    }
}

impl MemoryRateLimiter {
    /// An empty limiter holding at most [`MAX_LIMITER_KEYS`] keys.
    pub fn new() -> MemoryRateLimiter {
        MemoryRateLimiter::with_max_keys(MAX_LIMITER_KEYS)
    }

    /// An empty limiter holding at most `max_keys` keys (at least 1); see
    /// [`MAX_LIMITER_KEYS`] for what happens beyond.
    pub fn with_max_keys(max_keys: usize) -> MemoryRateLimiter {
        MemoryRateLimiter {
            state: Mutex::new(LimiterState {
                keys: HashMap::new(),
                new_keys_since_purge: 0,
                clock_ms: i64::MIN,
            }),
            max_keys: max_keys.max(1),
        }
    }

    /// How many keys have counters.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).keys.len()
    }

    /// Whether no key has counters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts and decides one hit; the synchronous body of [`RateLimiter::hit`].
    pub fn hit_now(&self, key: &str, spec: &RateLimitSpec, now_ms: i64) -> Decision {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now_ms = now_ms.max(state.clock_ms);
        state.clock_ms = now_ms;
        if !state.keys.contains_key(key) {
            self.make_room(&mut state, now_ms);
            state.keys.insert(
                key.to_owned(),
                LimiterKey {
                    touched_ms: now_ms,
                    windows: Vec::new(),
                },
            );
        }
        let Some(entry) = state.keys.get_mut(key) else {
            // Inserted just above, under the same lock.
            return decide(spec, &[], now_ms);
        };
        entry.touched_ms = now_ms;
        let mut counts = Vec::with_capacity(spec.limits().len());
        for limit in spec.limits() {
            let period_ms = limit.period_ms();
            let index = match entry.windows.iter().position(|w| w.period_ms == period_ms) {
                Some(index) => index,
                None => {
                    entry.windows.push(LimiterWindow {
                        period_ms,
                        start_ms: limit.window_start_ms(now_ms),
                        counts: WindowCounts::default(),
                    });
                    entry.windows.len() - 1
                }
            };
            let window = &mut entry.windows[index];
            window.roll(limit, now_ms);
            counts.push(window.counts);
        }
        let decision = decide(spec, &counts, now_ms);
        if decision.allowed {
            // Each window of this spec once, however many of its limits share the period.
            for window in &mut entry.windows {
                if spec.limits().iter().any(|l| l.period_ms() == window.period_ms) {
                    window.counts.current += 1;
                }
            }
        }
        decision
    }

    /// Before a new key goes in: purge stale windows every [`LIMITER_PURGE_EVERY`] new keys
    /// or when full, then, if still full, drop the least recently hit tenth.
    fn make_room(&self, state: &mut LimiterState, now_ms: i64) {
        state.new_keys_since_purge += 1;
        let full = state.keys.len() >= self.max_keys;
        if full || state.new_keys_since_purge >= LIMITER_PURGE_EVERY {
            state.new_keys_since_purge = 0;
            state.keys.retain(|_, entry| {
                entry.windows.retain(|w| !w.is_stale(now_ms));
                !entry.windows.is_empty()
            });
        }
        if state.keys.len() < self.max_keys {
            return;
        }
        let target = self.max_keys - (self.max_keys / 10).max(1);
        let to_drop = state.keys.len() - target;
        let mut touched: Vec<i64> = state.keys.values().map(|e| e.touched_ms).collect();
        let (_, &mut threshold, _) = touched.select_nth_unstable(to_drop - 1);
        let mut at_threshold = to_drop - state.keys.values().filter(|e| e.touched_ms < threshold).count();
        state.keys.retain(|_, entry| {
            let drop = entry.touched_ms < threshold || (entry.touched_ms == threshold && at_threshold > 0);
            if entry.touched_ms == threshold && drop {
                at_threshold -= 1;
            }
            !drop
        });
        tracing::warn!(
            max_keys = self.max_keys,
            kept = state.keys.len(),
            "in-memory rate limiter full: dropped the least recently hit keys"
        );
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, spec: &RateLimitSpec, now_ms: i64) -> Result<Decision, StoreError> {
        Ok(self.hit_now(key, spec, now_ms))
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::*;

    fn spec(text: &str) -> RateLimitSpec {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_older_than_two_periods_is_stale() {
        let window = LimiterWindow {
            period_ms: 60_000,
            start_ms: 60_000,
            counts: WindowCounts::default(),
        };
        assert!(!window.is_stale(179_999));
        assert!(window.is_stale(180_000));
    }

    #[test]
    fn eviction_keeps_the_most_recently_hit_keys_even_with_equal_times() {
        let limiter = MemoryRateLimiter::with_max_keys(20);
        let spec = spec("1/hour");
        for i in 0..20 {
            limiter.hit_now(&format!("k{i}"), &spec, 1_000);
        }
        assert_eq!(limiter.len(), 20);
        limiter.hit_now("k0", &spec, 2_000);
        // Full: a new key drops the least recently hit tenth (two keys, all at 1_000 but k0).
        limiter.hit_now("new", &spec, 2_000);
        assert_eq!(limiter.len(), 19);
        assert!(!limiter.hit_now("k0", &spec, 3_000).allowed, "k0 was recent and kept");
        assert!(!limiter.hit_now("new", &spec, 3_000).allowed);
    }
}
