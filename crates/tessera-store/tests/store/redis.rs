//! The rate-limiter contract against a real Redis (TESSERA_TEST_REDIS_URL), plus what only
//! Redis has: the Lua script must agree with `decide` and with the in-memory limiter on every
//! step of a driven timeline, keys must be prefixed, bounded and expiring, and a Redis that is
//! away must be reported quickly, never waited for.
//!
//! Without TESSERA_TEST_REDIS_URL the tests that need a server print a skip note and pass,
//! unless TESSERA_REQUIRE_SERVICES=1 (CI), where they fail.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use tessera_core::limits::{RateLimitSpec, decide};
use tessera_core::store::{RateLimiter, StoreError};
use tessera_store::memory::MemoryRateLimiter;
use tessera_store::redis::RedisRateLimiter;

use crate::limiter::{self, now_ms, spec};

/// The test server's URL, or None (after a skip note) when there is none and none is required.
fn redis_url() -> Option<String> {
    match std::env::var("TESSERA_TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("TESSERA_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!(
                    "TESSERA_REQUIRE_SERVICES=1 but TESSERA_TEST_REDIS_URL is not set; \
                     point it at a Redis server, e.g. redis://127.0.0.1:6379"
                );
            }
            eprintln!("skipping Redis test: TESSERA_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A limiter on its own random key prefix, and a connection to inspect and clean up with.
struct Fixture {
    limiter: Arc<RedisRateLimiter>,
    connection: ConnectionManager,
    prefix: String,
}

/// Runs `test` on a fresh fixture (or skips), then deletes the fixture's keys even when the
/// test failed, and re-raises the failure.
async fn with_fixture<F, Fut>(test: F)
where
    F: FnOnce(Arc<Fixture>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(fixture) = fixture().await else { return };
    let fixture = Arc::new(fixture);
    let outcome = tokio::spawn(test(fixture.clone())).await;
    fixture.cleanup().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("{error}"),
        }
    }
}

async fn fixture() -> Option<Fixture> {
    let url = redis_url()?;
    let random = RandomState::new().build_hasher().finish() ^ now_ms().unsigned_abs();
    let prefix = format!("t:{random:016x}:");
    let limiter = RedisRateLimiter::connect(&url, prefix.clone()).await.unwrap();
    let client = ::redis::Client::open(url.as_str()).unwrap();
    let connection = ConnectionManager::new_with_config(client, RedisRateLimiter::manager_config())
        .await
        .unwrap();
    Some(Fixture {
        limiter: Arc::new(limiter),
        connection,
        prefix,
    })
}

impl Fixture {
    /// Every key under this test's prefix.
    async fn keys(&self) -> Vec<String> {
        let mut connection = self.connection.clone();
        let mut cursor = 0u64;
        let mut keys = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Deletes this test's keys, best effort (they expire on their own anyway).
    async fn cleanup(&self) {
        let keys = self.keys().await;
        let mut connection = self.connection.clone();
        for chunk in keys.chunks(500) {
            let _: Result<i64, _> = ::redis::cmd("DEL").arg(chunk).query_async(&mut connection).await;
        }
    }
}

#[tokio::test]
async fn redis_meets_the_rate_limiter_contract() {
    with_fixture(|fixture| async move {
        limiter::rate_limiter_contract(fixture.limiter.as_ref()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_lets_exactly_the_limit_through_concurrent_hits() {
    with_fixture(|fixture| async move {
        limiter::concurrent_limit_contract(fixture.limiter.clone()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_redis_share_the_limit() {
    with_fixture(|fixture| async move {
        let url = redis_url().unwrap();
        let other = RedisRateLimiter::connect(&url, fixture.prefix.clone()).await.unwrap();
        let five = spec("5/minute");
        let mut allowed = 0;
        for i in 0..10 {
            let instance: &dyn RateLimiter = if i % 2 == 0 { fixture.limiter.as_ref() } else { &other };
            // Clocks that disagree wildly do not matter: the server's is used.
            if instance
                .hit("ip:198.51.100.9", &five, i * 1_000_000)
                .await
                .unwrap()
                .allowed
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
    })
    .await;
}

/// A small deterministic generator, so a failing timeline can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound.max(1)
    }
}

#[tokio::test]
async fn the_script_agrees_with_decide_and_the_memory_limiter_on_every_step() {
    with_fixture(|fixture| async move {
        let specs = [
            "5/minute",
            "2/minute",
            "3/second;5/minute",
            "7/90 seconds",
            "10/5 minutes;100/day",
            "1/second",
            "4/minute;6/minute",
        ];
        let mut steps = 0;
        let mut refusals = 0;
        for (index, text) in specs.iter().enumerate() {
            let spec: RateLimitSpec = spec(text);
            let longest = spec.limits().iter().map(|l| l.period_ms()).max().unwrap();
            let shortest = spec.limits().iter().map(|l| l.period_ms()).min().unwrap();
            let memory = MemoryRateLimiter::new();
            let mut random = Lcg(index as u64 + 1);
            // A realistic epoch time, not aligned to any window.
            let mut now: i64 = 1_700_000_012_345;
            let key = format!("agree:{index}");
            for step in 0..300 {
                now += match random.next(10) {
                    0..=3 => 0,
                    4 | 5 => i64::try_from(random.next(50)).unwrap(),
                    6 => i64::try_from(random.next(u64::try_from(shortest).unwrap())).unwrap(),
                    7 => shortest - now.rem_euclid(shortest), // exactly on a boundary
                    8 => i64::try_from(random.next(u64::try_from(longest).unwrap() / 3)).unwrap(),
                    _ => i64::try_from(random.next(u64::try_from(2 * longest).unwrap())).unwrap(),
                };
                let outcome = fixture.limiter.run_script(&key, &spec, Some(now)).await.unwrap();
                assert_eq!(outcome.now_ms, now);
                let from_counts = decide(&spec, &outcome.counts, now);
                assert_eq!(
                    outcome.allowed, from_counts.allowed,
                    "Lua and decide disagree: {text} step {step} at {now}: {outcome:?}"
                );
                let in_memory = memory.hit_now(&key, &spec, now);
                assert_eq!(
                    from_counts, in_memory,
                    "Redis and memory disagree: {text} step {step} at {now}: {outcome:?}"
                );
                steps += 1;
                refusals += usize::from(!outcome.allowed);
            }
        }
        assert!(
            refusals > steps / 10 && refusals < steps * 9 / 10,
            "{refusals} of {steps}"
        );
    })
    .await;
}

#[tokio::test]
async fn redis_replays_the_core_timelines() {
    with_fixture(|fixture| async move {
        let limiter = fixture.limiter.as_ref();
        let five = spec("5/minute");
        for i in 0..5 {
            assert!(limiter.hit_at("a", &five, 59_000 + i).await.unwrap().allowed);
        }
        let refused = limiter.hit_at("a", &five, 60_000).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 12);
        assert!(!limiter.hit_at("a", &five, 71_000).await.unwrap().allowed);
        assert!(limiter.hit_at("a", &five, 72_001).await.unwrap().allowed);

        // Refused hits are not counted: ten refusals leave the next window's weight at 2 * 0.5.
        let two = spec("2/minute");
        let mut allowed = 0;
        for t in 0..12 {
            allowed += usize::from(limiter.hit_at("b", &two, t).await.unwrap().allowed);
        }
        assert_eq!(allowed, 2);
        let mut allowed = 0;
        for t in 90_000..90_003 {
            allowed += usize::from(limiter.hit_at("b", &two, t).await.unwrap().allowed);
        }
        assert_eq!(allowed, 1);
    })
    .await;
}

#[tokio::test]
async fn redis_uses_the_server_clock_not_the_callers() {
    with_fixture(|fixture| async move {
        let before = now_ms() / 1000;
        let decision = fixture.limiter.hit("k", &spec("5/minute"), 0).await.unwrap();
        assert!(decision.allowed);
        assert!(
            decision.reset_at >= before && decision.reset_at <= before + 61,
            "{decision:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn redis_keys_are_prefixed_bounded_and_expire() {
    with_fixture(|fixture| async move {
        let long_key = format!("login:{}", "x".repeat(10_000));
        let both = spec("1/minute;1/hour");
        assert!(fixture.limiter.hit(&long_key, &both, 0).await.unwrap().allowed);
        assert!(!fixture.limiter.hit(&long_key, &both, 0).await.unwrap().allowed);
        let keys = fixture.keys().await;
        assert_eq!(keys.len(), 2, "{keys:?}");
        let mut connection = fixture.connection.clone();
        for key in &keys {
            let rest = key.strip_prefix(&format!("{}rl:sha256:", fixture.prefix)).unwrap();
            assert!(rest.len() < 64 + 30, "{key}");
            let period_ms: i64 = if rest.contains(":3600:") { 3_600_000 } else { 60_000 };
            let ttl: i64 = ::redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            assert!(ttl > 0 && ttl <= 2 * period_ms, "{key}: {ttl}");
        }
        fixture.cleanup().await;
        assert!(
            fixture.keys().await.is_empty(),
            "cleanup deletes every key of the prefix"
        );
    })
    .await;
}

#[tokio::test]
async fn redis_refuses_limits_beyond_exact_lua_arithmetic() {
    with_fixture(|fixture| async move {
        let result = fixture.limiter.hit("k", &spec("5/minute;300000/year"), 0).await;
        assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}");
        assert!(fixture.keys().await.is_empty(), "nothing is counted");
    })
    .await;
}

/// These need no server: they check that an absent one is reported fast.
#[tokio::test]
async fn a_closed_port_is_unavailable_quickly() {
    let started = Instant::now();
    let connected = RedisRateLimiter::connect("redis://127.0.0.1:1", "t:").await;
    assert!(matches!(connected, Err(StoreError::Unavailable(_))), "{connected:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    let lazy = RedisRateLimiter::connect_lazy("redis://127.0.0.1:1", "t:").unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let hit = lazy.hit("k", &spec("5/minute"), 0).await;
        assert!(matches!(hit, Err(StoreError::Unavailable(_))), "{hit:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_quickly() {
    // Accepts connections and then says nothing, like a hung Redis.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let connected = RedisRateLimiter::connect(&url, "t:").await;
    if let Ok(limiter) = connected {
        // The handshake sent nothing to wait for: the first hit must time out instead.
        let hit = limiter.hit("k", &spec("5/minute"), 0).await;
        assert!(matches!(hit, Err(StoreError::Unavailable(_))), "{hit:?}");
    } else {
        assert!(matches!(connected, Err(StoreError::Unavailable(_))), "{connected:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let lazy = RedisRateLimiter::connect_lazy(&url, "t:").unwrap();
    let started = Instant::now();
    let hit = lazy.hit("k", &spec("5/minute"), 0).await;
    assert!(matches!(hit, Err(StoreError::Unavailable(_))), "{hit:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    silent.abort();
}

#[test]
fn a_malformed_url_is_an_error_that_hides_the_url() {
    let result = RedisRateLimiter::connect_lazy("redis://:s3cret@[::1", "t:");
    match result {
        Err(StoreError::Internal(message)) => assert!(!message.contains("s3cret"), "{message}"),
        other => panic!("{other:?}"),
    }
}
