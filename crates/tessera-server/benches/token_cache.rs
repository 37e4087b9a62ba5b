//! S8: is caching verified claims faster than verifying? Measures, per algorithm, a full
//! `jwt::verify` against a hit in the in-process `TokenCache`, and (when
//! TESSERA_BENCH_REDIS_URL is set) one Redis GET round trip of a cached payload, the seed's
//! design. Results and the decision they support are in docs/TOKEN_CACHE.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::{Arc, LazyLock};

use divan::{Bencher, black_box};
use rand::rngs::OsRng;
use tessera_core::Algorithm;
use tessera_core::jwt::{self, Claims, TokenKind, Validation};
use tessera_core::keys::{Key, KeyRing, KeyState};
use tessera_server::token_cache::TokenCache;

const NOW: i64 = 1_800_000_000;

fn main() {
    divan::main();
}

struct Fixture {
    ring: KeyRing,
    token: String,
    cache: TokenCache,
}

fn claims() -> Claims {
    Claims {
        sub: "42".into(),
        user_id: 42,
        username: "alice".into(),
        sid: "Xn3kq2vVb1n0cRk3a9QH2w".into(),
        jti: "Q2x8YkR0bm9QYWxsb3dlZA".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
        iss: "tessera".into(),
        aud: "tessera-api".into(),
        roles: Vec::new(),
        scope: None,
    }
}

static FIXTURES: LazyLock<Vec<(Algorithm, Fixture)>> = LazyLock::new(|| {
    Algorithm::ALL
        .into_iter()
        .map(|alg| {
            let ring = KeyRing::new(vec![Key::generate(alg, KeyState::Signing, 0, &mut OsRng).unwrap()]).unwrap();
            let token = jwt::issue(&ring, TokenKind::Access, &claims(), &mut OsRng).unwrap();
            let cache = TokenCache::new(10_000).unwrap();
            // Fill the cache with other live tokens, so the hit is not in an empty map.
            for i in 0..5_000 {
                let mut other = claims();
                other.jti = format!("jti-{i}");
                let other_token = jwt::issue(&ring, TokenKind::Access, &other, &mut OsRng).unwrap();
                cache.insert(&other_token, Arc::new(other), NOW, 10);
            }
            cache.insert(&token, Arc::new(claims()), NOW, 10);
            (alg, Fixture { ring, token, cache })
        })
        .collect()
});

fn fixture(alg: Algorithm) -> &'static Fixture {
    &FIXTURES.iter().find(|(a, _)| *a == alg).unwrap().1
}

/// Full verification: what a cache miss costs.
#[divan::bench(args = Algorithm::ALL)]
fn verify(bencher: Bencher, alg: Algorithm) {
    let fixture = fixture(alg);
    let validation = Validation::new("tessera", "tessera-api");
    bencher.bench(|| {
        jwt::verify(
            &fixture.ring,
            black_box(&fixture.token),
            TokenKind::Access,
            &validation,
            NOW + 1,
        )
    });
}

/// A hit in the in-process cache (5,000 other entries present).
#[divan::bench(args = Algorithm::ALL)]
fn local_cache_hit(bencher: Bencher, alg: Algorithm) {
    let fixture = fixture(alg);
    bencher.bench(|| fixture.cache.get(black_box(&fixture.token), NOW + 1, 10));
}

/// One Redis GET of a cached claims payload plus parsing it: the seed's cache on a hit.
#[divan::bench]
fn redis_cache_hit(bencher: Bencher) {
    let Ok(url) = std::env::var("TESSERA_BENCH_REDIS_URL") else {
        eprintln!("redis_cache_hit: TESSERA_BENCH_REDIS_URL not set, skipped");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = redis::Client::open(url).unwrap();
    let mut connection = runtime.block_on(client.get_multiplexed_async_connection()).unwrap();
    let payload = serde_json::to_string(&claims()).unwrap();
    let key = "tessera:bench:token-cache";
    runtime
        .block_on(
            redis::cmd("SET")
                .arg(key)
                .arg(&payload)
                .arg("EX")
                .arg(60)
                .query_async::<()>(&mut connection),
        )
        .unwrap();
    bencher.bench_local(|| {
        let value: String = runtime
            .block_on(redis::cmd("GET").arg(key).query_async(&mut connection))
            .unwrap();
        serde_json::from_str::<Claims>(&value).unwrap()
    });
}
