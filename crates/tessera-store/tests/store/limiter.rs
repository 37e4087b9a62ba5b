//! The contract every `RateLimiter` must meet (S7, B7, B9), written once against the trait and
//! run on real time, so a backend on its own clock (Redis) is judged like one on `now_ms`; and
//! the in-memory limiter's own tests, which drive `now_ms` through windows.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera_core::limits::{Decision, RateLimit, RateLimitSpec};
use tessera_core::store::RateLimiter;
use tessera_store::memory::MemoryRateLimiter;

pub fn spec(text: &str) -> RateLimitSpec {
    text.parse().unwrap()
}

pub fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

async fn hit(limiter: &dyn RateLimiter, key: &str, spec: &RateLimitSpec) -> Decision {
    let now = now_ms();
    let decision = limiter.hit(key, spec, now).await.unwrap();
    assert_sane(&decision, now);
    decision
}

/// Header fields every decision must carry, whatever the backend's clock (within a second of
/// this process's).
fn assert_sane(decision: &Decision, now_ms: i64) {
    let now_secs = now_ms / 1000;
    let period = i64::try_from(decision.limit.period_secs).unwrap();
    assert!(
        decision.reset_at >= now_secs && decision.reset_at <= now_secs + period + 1,
        "reset_at {} not within one period after {now_secs}: {decision:?}",
        decision.reset_at
    );
    assert!(decision.remaining < u64::from(decision.limit.count), "{decision:?}");
    if decision.allowed {
        assert_eq!(decision.retry_after_secs, 0, "{decision:?}");
    } else {
        assert_eq!(decision.remaining, 0, "{decision:?}");
        assert!(
            decision.retry_after_secs >= 1 && decision.retry_after_secs <= 2 * decision.limit.period_secs,
            "{decision:?}"
        );
    }
}

/// Waits, if needed, until early in a second, so that a burst of hits on a per-second limit
/// does not straddle a window boundary.
async fn early_in_a_second() {
    let into = now_ms().rem_euclid(1000);
    if into > 600 {
        tokio::time::sleep(Duration::from_millis(u64::try_from(1010 - into).unwrap())).await;
    }
}

async fn allowed_of(limiter: &dyn RateLimiter, key: &str, spec: &RateLimitSpec, hits: usize) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(hits);
    for _ in 0..hits {
        decisions.push(hit(limiter, key, spec).await);
    }
    decisions
}

pub async fn rate_limiter_contract(limiter: &dyn RateLimiter) {
    // Exactly K in a fresh window, remaining counting down, then refusals naming the limit.
    let five = spec("5/minute");
    let decisions = allowed_of(limiter, "ip:203.0.113.7", &five, 8).await;
    assert_eq!(
        decisions.iter().map(|d| d.allowed).collect::<Vec<_>>(),
        [true, true, true, true, true, false, false, false]
    );
    assert_eq!(
        decisions.iter().map(|d| d.remaining).collect::<Vec<_>>(),
        [4, 3, 2, 1, 0, 0, 0, 0]
    );
    for refused in &decisions[5..] {
        assert_eq!(refused.limit, five.limits()[0]);
        assert!(refused.retry_after_secs >= 1, "{refused:?}");
    }

    // Other keys are independent, including one that the first is a prefix of, one with the
    // separator in it, and one long enough to be hashed.
    let long = format!("login:{}", "a".repeat(300));
    for key in [
        "ip:203.0.113.8",
        "ip:203.0.113.7:60",
        "ip:2001:db8::1",
        "login:名前@example.com",
        long.as_str(),
        &long[..200],
    ] {
        let allowed = allowed_of(limiter, key, &five, 6)
            .await
            .iter()
            .filter(|d| d.allowed)
            .count();
        assert_eq!(allowed, 5, "{key}");
    }
    assert!(
        !hit(limiter, "ip:203.0.113.7", &five).await.allowed,
        "first key still limited"
    );

    // One limit per period; every limit applies, and a refused hit counts in none of them:
    // the second burst is capped by the minute limit at 5 - 3 = 2, not at 0.
    let both = spec("3/second;5/minute");
    early_in_a_second().await;
    let first = allowed_of(limiter, "user:42", &both, 10).await;
    assert_eq!(first.iter().filter(|d| d.allowed).count(), 3, "{first:?}");
    assert_eq!(
        first[3].limit,
        RateLimit {
            count: 3,
            period_secs: 1
        }
    );
    assert_eq!(first[2].remaining, 0, "the per-second limit is the tighter one");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    early_in_a_second().await;
    let second = allowed_of(limiter, "user:42", &both, 4).await;
    assert_eq!(second.iter().filter(|d| d.allowed).count(), 2, "{second:?}");
    let refused = second.iter().find(|d| !d.allowed).unwrap();
    assert_eq!(refused.limit, both.limits()[1], "the minute limit refuses now");
    assert!(refused.retry_after_secs >= 1);
}

pub async fn concurrent_limit_contract(limiter: Arc<dyn RateLimiter>) {
    let seven = Arc::new(spec("7/minute"));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let limiter = limiter.clone();
            let seven = seven.clone();
            tokio::spawn(async move { limiter.hit("ip:192.0.2.50", &seven, now_ms()).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 7, "exactly the limit gets through 50 concurrent hits");
}

#[tokio::test]
async fn memory_meets_the_rate_limiter_contract() {
    rate_limiter_contract(&MemoryRateLimiter::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_lets_exactly_the_limit_through_concurrent_hits() {
    concurrent_limit_contract(Arc::new(MemoryRateLimiter::new())).await;
}

fn allowed_at(limiter: &MemoryRateLimiter, key: &str, spec: &RateLimitSpec, times: impl Iterator<Item = i64>) -> usize {
    times.filter(|t| limiter.hit_now(key, spec, *t).allowed).count()
}

#[test]
fn memory_windows_roll_and_allow_again() {
    let limiter = MemoryRateLimiter::new();
    let five = spec("5/minute");
    assert_eq!(allowed_at(&limiter, "k", &five, 1_000..1_007), 5);
    // Just into the next window the previous one still weighs almost fully.
    assert!(!limiter.hit_now("k", &five, 61_000).allowed);
    // Halfway through it, half of it: 2.5 used, two more fit.
    assert_eq!(allowed_at(&limiter, "k", &five, 90_000..90_005), 2);
    // Two windows on, nothing of the first one is left: a full allowance again.
    assert_eq!(allowed_at(&limiter, "k", &five, 180_000..180_007), 5);
    let decision = limiter.hit_now("k", &five, 180_010);
    assert!(!decision.allowed);
    assert_eq!(decision.reset_at, 240);
}

#[test]
fn memory_matches_the_core_simulation() {
    // The same timelines as tessera_core::limits::window_tests, through the real backend.
    let limiter = MemoryRateLimiter::new();
    let five = spec("5/minute");
    for i in 0..5 {
        assert!(limiter.hit_now("a", &five, 59_000 + i).allowed);
    }
    let refused = limiter.hit_now("a", &five, 60_000);
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after_secs, 12);
    assert!(!limiter.hit_now("a", &five, 71_000).allowed);
    assert!(limiter.hit_now("a", &five, 72_001).allowed);

    let two = spec("2/minute");
    assert!(limiter.hit_now("b", &two, 100_000_000).allowed);
    assert!(limiter.hit_now("b", &two, 100_000_001).allowed);
    // Windows are aligned to the epoch: 100_000_000 is 40 s into one.
    let refused = limiter.hit_now("b", &two, 100_010_000);
    assert_eq!(refused.retry_after_secs, 40, "{refused:?}");

    let tight = spec("100/hour;3/minute");
    let decision = limiter.hit_now("c", &tight, 0);
    assert_eq!((decision.limit.count, decision.remaining), (3, 2));
}

#[test]
fn memory_does_not_count_refused_hits() {
    let limiter = MemoryRateLimiter::new();
    let two = spec("2/minute");
    assert_eq!(allowed_at(&limiter, "k", &two, 0..12), 2);
    // Halfway through the next window the previous one weighs 2 * 0.5 = 1: one more fits.
    // Had the ten refusals counted, it would weigh 6.
    assert_eq!(allowed_at(&limiter, "k", &two, 90_000..90_003), 1);
}

#[test]
fn memory_limits_with_the_same_period_share_one_counter() {
    let limiter = MemoryRateLimiter::new();
    assert_eq!(allowed_at(&limiter, "k", &spec("5/minute;10/minute"), 0..12), 5);
    assert_eq!(allowed_at(&limiter, "j", &spec("10/minute;5/minute"), 0..12), 5);
    assert_eq!(limiter.len(), 2);
}

#[test]
fn memory_time_never_runs_backwards() {
    let limiter = MemoryRateLimiter::new();
    let two = spec("2/minute");
    assert!(limiter.hit_now("k", &two, 59_999).allowed);
    assert!(limiter.hit_now("k", &two, 60_001).allowed);
    // A hit stamped in the previous window but arriving later must not roll the counters
    // back (which would forget both hits).
    let late = limiter.hit_now("k", &two, 59_998);
    assert!(!late.allowed, "{late:?}");
    assert_eq!(late.reset_at, 120);
}

#[test]
fn memory_purges_windows_that_no_longer_matter() {
    let limiter = MemoryRateLimiter::new();
    let per_second = spec("1/second");
    for i in 0..1_023 {
        limiter.hit_now(&format!("old{i}"), &per_second, 0);
    }
    assert_eq!(limiter.len(), 1_023);
    // The 1024th new key triggers a purge; the others' windows ended long ago.
    limiter.hit_now("new", &per_second, 10_000);
    assert_eq!(limiter.len(), 1);
    assert!(!limiter.hit_now("new", &per_second, 10_001).allowed);
}

#[test]
fn memory_holds_at_most_its_cap_of_keys() {
    let limiter = MemoryRateLimiter::with_max_keys(100);
    let hourly = spec("1/hour");
    for i in 0..1_000 {
        assert!(limiter.hit_now(&format!("k{i}"), &hourly, i).allowed);
        assert!(limiter.len() <= 100);
    }
    // The most recently hit keys keep their counts.
    assert!(!limiter.hit_now("k999", &hourly, 1_000).allowed);
    assert!(!limiter.hit_now("k950", &hourly, 1_000).allowed);
}
