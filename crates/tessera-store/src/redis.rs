//! Rate-limit counters in Redis, shared by every instance (S7, B9): N instances behind one
//! load balancer enforce one limit, not N.
//!
//! One Lua script does the whole check-and-count atomically on the server: it reads the
//! server's clock (`TIME`, so every instance uses the same clock), reads the two sliding-window
//! counters of each limit, decides with exactly the integer formula of `RateLimit::check` in
//! `tessera_core::limits`, and only if every limit allows increments the current counters. It
//! returns the clock and the counters as they were before the increment; Rust then builds the
//! [`Decision`] with [`tessera_core::limits::decide`], so the header and `Retry-After` logic
//! exists once.
//!
//! # Keys
//!
//! Limit `i` of a hit on `key` uses `<prefix>rl:<key>:<period_secs>:<window_start_ms>` (the
//! current window) and the same with the previous window's start. Each counter expires two
//! periods after its last increment, by when it is no longer read. Keys longer than
//! [`MAX_EMBEDDED_KEY_LEN`] bytes are replaced by `sha256:<hex>` of themselves, so a long login
//! name cannot blow up key sizes. The key layout is the same across instances and versions of
//! the limiter; counters of the same `key` and period are shared between specs, so callers
//! namespace keys by purpose (`login:ip:...`, `register:ip:...`).
//!
//! The script derives the window keys from the server clock, so it is not Redis Cluster safe
//! (a cluster would need the keys in one hash slot); it targets one Redis server or a
//! primary with replicas.
//!
//! # Numeric bound
//!
//! Lua numbers are IEEE doubles, exact for integers below 2^53. The largest value the script
//! compares near the decision boundary is `(count + 1) * period_ms`; [`RedisRateLimiter`]
//! refuses (with [`StoreError::Internal`]) a limit where that reaches 2^53, so the script's
//! arithmetic is exact whenever it is run. That still allows e.g. 104 million per day or
//! 289 000 per year.
//!
//! # Failure
//!
//! Connecting and every hit are bounded in time ([`CONNECT_TIMEOUT`], [`RESPONSE_TIMEOUT`],
//! and an overall [`HIT_DEADLINE`]): when Redis is down the caller gets
//! [`StoreError::Unavailable`] within about two seconds and can fall back to local limits
//! (B9), never a hang.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script, ServerErrorKind};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tessera_core::limits::{Decision, RateLimit, RateLimitSpec, WindowCounts, decide};
use tessera_core::store::{RateLimiter, StoreError};

/// Each connection attempt gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A command whose reply takes longer than this fails (the connection is then replaced).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The most one call to [`RedisRateLimiter::connect`] or one hit may take, reconnection
/// included; past it the answer is [`StoreError::Unavailable`].
pub const HIT_DEADLINE: Duration = Duration::from_secs(2);
/// Keys longer than this many bytes are stored as their SHA-256 instead.
pub const MAX_EMBEDDED_KEY_LEN: usize = 128;
/// Lua numbers are exact below this; see the module documentation.
const LUA_EXACT_LIMIT: u128 = 1 << 53;

/// The check-and-count script.
///
/// `KEYS[i]`: the base key of limit `i` (`<prefix>rl:<key>:<period_secs>`).
/// `ARGV[1]`: `""` to use the server clock, or a time in ms to use instead (tests only).
/// `ARGV[2i]`, `ARGV[2i+1]`: period in ms and count of limit `i`.
/// Returns `{now_ms, allowed (1 or 0), previous_1, current_1, previous_2, current_2, ...}`,
/// the counts as they were before this hit.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local result = {now, 1}
local current_keys = {}
local periods = {}
local allowed = true
for i = 1, #KEYS do
  local period = tonumber(ARGV[2 * i])
  local count = tonumber(ARGV[2 * i + 1])
  -- Lua's % on numbers is a - floor(a / b) * b: Rust's rem_euclid for b > 0.
  local elapsed = now % period
  local start = now - elapsed
  local current_key = KEYS[i] .. ':' .. string.format('%.0f', start)
  local previous_key = KEYS[i] .. ':' .. string.format('%.0f', start - period)
  local previous = tonumber(redis.call('GET', previous_key) or '0')
  local current = tonumber(redis.call('GET', current_key) or '0')
  -- As RateLimit::check: everything in hit-milliseconds (estimate * period).
  local weighted = previous * (period - elapsed) + current * period
  if weighted + period > count * period then
    allowed = false
  end
  result[2 * i + 1] = previous
  result[2 * i + 2] = current
  current_keys[i] = current_key
  periods[i] = period
end
if allowed then
  -- Two limits with the same period share one counter: count the hit in it once.
  local counted = {}
  for i = 1, #current_keys do
    local key = current_keys[i]
    if not counted[key] then
      counted[key] = true
      redis.call('INCR', key)
      redis.call('PEXPIRE', key, 2 * periods[i])
    end
  end
else
  result[2] = 0
end
return result
";

/// What the script saw for one hit, before counting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// The clock the script used, ms since the Unix epoch.
    pub now_ms: i64,
    /// The script's own verdict; the hit was counted exactly when this is true.
    pub allowed: bool,
    /// Each limit's counters before this hit, in the order of `spec.limits()`.
    pub counts: Vec<WindowCounts>,
}

/// Rate-limit counters shared through one Redis server.
#[derive(Clone)]
pub struct RedisRateLimiter {
    manager: ConnectionManager,
    prefix: String,
    script: Script,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter on an existing connection; every key it writes starts with `prefix`
    /// (e.g. `"tessera:"`).
    pub fn new(manager: ConnectionManager, prefix: impl Into<String>) -> RedisRateLimiter {
        RedisRateLimiter {
            manager,
            prefix: prefix.into(),
            script: Script::new(SCRIPT),
        }
    }

    /// The connection settings used by [`connect`](Self::connect) and
    /// [`connect_lazy`](Self::connect_lazy): bounded connection and response timeouts and one
    /// quick retry, so that a dead server is reported within [`HIT_DEADLINE`].
    pub fn manager_config() -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(200))
    }

    /// Connects to `url` (`redis://[:password@]host:port[/db]`, or `rediss://` where the
    /// redis crate was built with TLS) and waits for the first connection.
    ///
    /// A malformed URL is [`StoreError::Internal`] (it will never work); a server that cannot
    /// be reached is [`StoreError::Unavailable`], within [`HIT_DEADLINE`].
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<RedisRateLimiter, StoreError> {
        let client = open_client(url)?;
        let manager = tokio::time::timeout(
            HIT_DEADLINE,
            ConnectionManager::new_with_config(client, Self::manager_config()),
        )
        .await
        .map_err(|_| deadline_passed())?
        .map_err(redis_error)?;
        Ok(RedisRateLimiter::new(manager, prefix))
    }

    /// Like [`connect`](Self::connect) but without waiting: the connection is made on the
    /// first hit, and a server that is down is reported by that hit. Lets a server start while
    /// Redis is away and use local limits meanwhile.
    pub fn connect_lazy(url: &str, prefix: impl Into<String>) -> Result<RedisRateLimiter, StoreError> {
        let client = open_client(url)?;
        let manager = ConnectionManager::new_lazy_with_config(client, Self::manager_config()).map_err(redis_error)?;
        Ok(RedisRateLimiter::new(manager, prefix))
    }

    /// The key prefix given at construction.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The base key of one limit of `key`; the script appends `:<window_start_ms>`.
    fn base_key(&self, key: &str, limit: &RateLimit) -> String {
        format!("{}rl:{}:{}", self.prefix, embeddable_key(key), limit.period_secs)
    }

    /// Runs the check-and-count script for one hit and returns what it saw. `now_override`
    /// replaces the server clock: it is for tests that drive time and must be `None` in
    /// production, where instances share the server's clock.
    pub async fn run_script(
        &self,
        key: &str,
        spec: &RateLimitSpec,
        now_override: Option<i64>,
    ) -> Result<ScriptOutcome, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now_override.map(|ms| ms.to_string()).unwrap_or_default());
        for limit in spec.limits() {
            check_bound(limit)?;
            invocation.key(self.base_key(key, limit));
            invocation.arg(limit.period_ms()).arg(limit.count);
        }
        let mut connection = self.manager.clone();
        let reply: Vec<i64> = tokio::time::timeout(HIT_DEADLINE, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| deadline_passed())?
            .map_err(redis_error)?;
        parse_reply(&reply, spec.limits().len())
    }

    /// Counts and decides one hit on the clock `now_ms` instead of the server's. For tests and
    /// tools that replay a timeline; production uses [`RateLimiter::hit`].
    pub async fn hit_at(&self, key: &str, spec: &RateLimitSpec, now_ms: i64) -> Result<Decision, StoreError> {
        let outcome = self.run_script(key, spec, Some(now_ms)).await?;
        Ok(reconcile(spec, &outcome))
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    /// Counts and decides one hit on the Redis server's clock; `now_ms` is not used, so that
    /// instances whose clocks differ still agree on the windows.
    async fn hit(&self, key: &str, spec: &RateLimitSpec, _now_ms: i64) -> Result<Decision, StoreError> {
        let outcome = self.run_script(key, spec, None).await?;
        Ok(reconcile(spec, &outcome))
    }
}

/// Builds the decision from the script's counts with the one shared `decide`. The script's
/// verdict is what was counted, so it wins should the two ever disagree (they use the same
/// integer formula; a disagreement is a bug and is logged).
fn reconcile(spec: &RateLimitSpec, outcome: &ScriptOutcome) -> Decision {
    let mut decision = decide(spec, &outcome.counts, outcome.now_ms);
    if decision.allowed != outcome.allowed {
        tracing::error!(
            script_allowed = outcome.allowed,
            decide_allowed = decision.allowed,
            spec = %spec,
            now_ms = outcome.now_ms,
            "rate-limit script and decide disagree; using the script's verdict"
        );
        decision.allowed = outcome.allowed;
        if outcome.allowed {
            decision.retry_after_secs = 0;
        } else {
            decision.remaining = 0;
            decision.retry_after_secs = decision.retry_after_secs.max(1);
        }
    }
    decision
}

/// Reads `{now_ms, allowed, previous_1, current_1, ...}`.
fn parse_reply(reply: &[i64], limits: usize) -> Result<ScriptOutcome, StoreError> {
    let malformed = || StoreError::Internal(format!("rate-limit script returned {} values", reply.len()));
    let (&[now_ms, allowed], pairs) = reply.split_first_chunk::<2>().ok_or_else(malformed)?;
    if pairs.len() != 2 * limits {
        return Err(malformed());
    }
    let counter = |value: i64| {
        u64::try_from(value).map_err(|_| StoreError::Internal(format!("negative rate-limit counter {value}")))
    };
    let counts = pairs
        .chunks_exact(2)
        .map(|pair| {
            Ok(WindowCounts {
                previous: counter(pair[0])?,
                current: counter(pair[1])?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(ScriptOutcome {
        now_ms,
        allowed: allowed == 1,
        counts,
    })
}

/// Refuses limits whose arithmetic would not be exact in Lua's doubles.
fn check_bound(limit: &RateLimit) -> Result<(), StoreError> {
    let period_ms = u128::try_from(limit.period_ms()).unwrap_or(u128::MAX);
    if (u128::from(limit.count) + 1).saturating_mul(period_ms) >= LUA_EXACT_LIMIT {
        return Err(StoreError::Internal(format!(
            "rate limit {limit} is too large for the Redis limiter: (count + 1) * period in ms must stay below 2^53"
        )));
    }
    Ok(())
}

/// `key` as embedded in a Redis key: itself when short, else `sha256:<hex>`.
fn embeddable_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_EMBEDDED_KEY_LEN {
        return std::borrow::Cow::Borrowed(key);
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut hashed = String::with_capacity(7 + 2 * digest.len());
    hashed.push_str("sha256:");
    for byte in digest {
        hashed.push(char::from(HEX[usize::from(byte >> 4)]));
        hashed.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    std::borrow::Cow::Owned(hashed)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn open_client(url: &str) -> Result<::redis::Client, StoreError> {
    // The message says what is wrong, never the URL itself: it may carry a password.
    ::redis::Client::open(url)
        .map_err(|e| StoreError::Internal(format!("invalid Redis URL: {}", e.detail().unwrap_or(e.category()))))
}

fn deadline_passed() -> StoreError {
    StoreError::Unavailable(format!("redis did not answer within {} ms", HIT_DEADLINE.as_millis()))
}

/// Connection trouble, timeouts and a server that is loading, read-only or failing over are
/// `Unavailable` (the caller falls back to local limits and retries later); anything else
/// (a script error, an unexpected reply) is `Internal`.
fn redis_error(error: RedisError) -> StoreError {
    let transient = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        )
        || error.code() == Some("BUSY");
    if transient {
        StoreError::Unavailable(format!("redis: {error}"))
    } else {
        StoreError::Internal(format!("redis: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_embedded_and_long_ones_hashed() {
        assert_eq!(embeddable_key("ip:203.0.113.7"), "ip:203.0.113.7");
        let long = "x".repeat(MAX_EMBEDDED_KEY_LEN + 1);
        let hashed = embeddable_key(&long);
        assert!(hashed.starts_with("sha256:"), "{hashed}");
        assert_eq!(hashed.len(), 7 + 64);
        assert_ne!(embeddable_key(&"y".repeat(200)), hashed);
        assert_eq!(
            embeddable_key(&"x".repeat(MAX_EMBEDDED_KEY_LEN)).len(),
            MAX_EMBEDDED_KEY_LEN
        );
    }

    #[test]
    fn limits_beyond_exact_lua_arithmetic_are_refused() {
        let ok: RateLimitSpec = "100000000/day;280000/year".parse().unwrap();
        assert!(ok.limits().iter().all(|l| check_bound(l).is_ok()));
        let too_big: RateLimitSpec = "300000/year".parse().unwrap();
        assert!(matches!(
            check_bound(&too_big.limits()[0]),
            Err(StoreError::Internal(_))
        ));
    }

    #[test]
    fn replies_are_parsed_strictly() {
        let outcome = parse_reply(&[61_000, 1, 2, 3], 1).unwrap();
        assert_eq!(
            outcome,
            ScriptOutcome {
                now_ms: 61_000,
                allowed: true,
                counts: vec![WindowCounts {
                    previous: 2,
                    current: 3
                }]
            }
        );
        assert!(parse_reply(&[61_000, 1, 2], 1).is_err());
        assert!(parse_reply(&[61_000], 0).is_err());
        assert!(parse_reply(&[61_000, 0, -1, 0], 1).is_err());
    }
}
