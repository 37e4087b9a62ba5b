//! Scale-out (S7, B3, B7, B9): two instances (two `build()` + `serve` on two ports) sharing one
//! fresh PostgreSQL schema and one Redis key prefix behave as one: one login limit, one
//! denylist, one refresh-token family, one session list. Plus the client-IP rules that decide
//! which rate-limit bucket a request lands in, and an informational token-cache measurement.
//!
//! The cluster tests need PostgreSQL and Redis (see `services.rs`) and skip without them.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tessera_core::Algorithm;
use tokio::task::JoinSet;

use crate::helpers::{
    PASSWORD, TestApp, TestUser, assert_error, assert_token_rejected, header, read_login, spawn_app_with,
};
use crate::services::{Cluster, cluster, cluster_without_redis};

const WRONG_PASSWORD: &str = "definitely not the password";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Asserts a 429 `rate_limited` carrying every header S7 asks for, with `limit` as the limit.
async fn assert_rate_limited(response: Response, limit: u32) -> HeaderMap {
    let (headers, body) = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let number = |name: &str| -> i64 {
        let text = header(&headers, name).unwrap_or_else(|| panic!("429 without {name}: {body}"));
        text.parse()
            .unwrap_or_else(|_| panic!("{name}: {text:?} is not a number"))
    };
    assert!(number("retry-after") >= 1, "{headers:?}");
    assert_eq!(number("x-ratelimit-limit"), i64::from(limit), "{headers:?}");
    assert_eq!(number("x-ratelimit-remaining"), 0, "{headers:?}");
    let reset = number("x-ratelimit-reset");
    let now = unix_now();
    assert!(reset >= now && reset <= now + 3_600 + 1, "reset {reset} vs now {now}");
    headers
}

/// POST /login with JSON `{"email", "password"}`, as sent by `app`'s client.
fn login_request(app: &TestApp, email: &str, password: &str) -> RequestBuilder {
    app.post("/login")
        .json(&json!({ "email": email, "password": password }))
}

/// Polls `GET /profile` with `token` on `app` every 20 ms until it is refused, and returns how
/// long that took from `since`. Fails if it is still accepted after `give_up`.
async fn time_until_rejected(app: &TestApp, token: &str, since: Instant, give_up: Duration) -> Duration {
    loop {
        let response = app.profile(token).await;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                let elapsed = since.elapsed();
                assert_token_rejected(response, "invalid_token").await;
                return elapsed;
            }
            other => panic!("GET /profile answered {other} while waiting for the revocation"),
        }
        assert!(
            since.elapsed() < give_up,
            "the token was still accepted {give_up:?} after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn millis(durations: &[Duration]) -> String {
    let list: Vec<String> = durations
        .iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
        .collect();
    format!("[{}] ms", list.join(", "))
}

// --- 1a: one login limit ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_limit_is_shared_by_both_instances() {
    let Some(cluster) = cluster(&[("RATE_LIMIT_LOGIN", "5/minute")]).await else {
        return;
    };
    let user = cluster.a.register_user().await;
    // Five logins alternating A, B, A, B, A: one counter, so Remaining counts down across both.
    for attempt in 0..5 {
        let app = cluster.instances()[attempt % 2];
        let response = app.login(&user.email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "attempt {attempt}");
        assert_eq!(header(response.headers(), "x-ratelimit-limit"), Some("5"));
        let remaining = (4 - attempt).to_string();
        assert_eq!(
            header(response.headers(), "x-ratelimit-remaining"),
            Some(remaining.as_str()),
            "attempt {attempt}"
        );
    }
    // The sixth from the same IP is refused on either instance, with the S7 headers.
    assert_rate_limited(cluster.b.login(&user.email, PASSWORD).await, 5).await;
    assert_rate_limited(cluster.a.login(&user.email, PASSWORD).await, 5).await;
}

// --- 1b: one denylist ---------------------------------------------------------------------

/// Logs in on A, has B verify (and cache) the token, logs out on A and measures how long B
/// keeps accepting the token; `samples` times.
async fn logout_propagation(cluster: &Cluster, samples: usize, give_up: Duration) -> Vec<Duration> {
    let user = cluster.a.register_user().await;
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let login = cluster.a.login_user(&user).await;
        // B has verified the token, so it sits in B's token cache: the cache must not hide
        // the logout (S8).
        assert_eq!(cluster.b.profile(&login.access).await.status(), StatusCode::OK);
        let started = Instant::now();
        let response = cluster
            .a
            .post("/logout")
            .bearer_auth(&login.access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        latencies.push(time_until_rejected(&cluster.b, &login.access, started, give_up).await);
        // On A itself, at once.
        assert_token_rejected(cluster.a.profile(&login.access).await, "invalid_token").await;
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_is_refused_on_the_other_within_a_second() {
    let Some(cluster) = cluster(&[]).await else { return };
    // Measure pub/sub, not the subscribers' start-up.
    if let Some(redis) = &cluster.redis {
        redis.wait_for_subscribers(2).await;
    }
    let latencies = logout_propagation(&cluster, 5, Duration::from_secs(3)).await;
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "revocation latency A -> B with Redis pub/sub (REVOCATION_POLL_MILLIS=500, polled every 20 ms, \
         from sending the logout): {}, worst {:.0} ms",
        millis(&latencies),
        worst.as_secs_f64() * 1e3
    );
    assert!(worst < Duration::from_secs(1), "{}", millis(&latencies));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_logout_reaches_the_other_instance_through_the_database_poll() {
    let Some(cluster) = cluster_without_redis(&[("REVOCATION_POLL_MILLIS", "500")]).await else {
        return;
    };
    let ready: Value = cluster.b.get("/readyz").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        ready,
        json!({ "status": "degraded", "database": "up", "redis": "down" })
    );
    let latencies = logout_propagation(&cluster, 4, Duration::from_secs(3)).await;
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "revocation latency A -> B through the database poll only (Redis down, REVOCATION_POLL_MILLIS=500): \
         {}, worst {:.0} ms",
        millis(&latencies),
        worst.as_secs_f64() * 1e3
    );
    assert!(worst < Duration::from_millis(1_500), "{}", millis(&latencies));
}

// --- 1c: one refresh-token family ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_reuse_on_one_instance_after_rotation_on_the_other_revokes_the_family_everywhere() {
    let Some(cluster) = cluster(&[("REFRESH_REUSE_GRACE_SECONDS", "0")]).await else {
        return;
    };
    let (user, first) = cluster.a.new_session().await;
    let family = cluster.a.session_id(&first.access).await;
    let bystander = cluster.b.login_user(&user).await;
    let bystander_sid = cluster.b.session_id(&bystander.access).await;

    // Rotation on A, then the spent token replayed on B (grace 0: any replay is reuse).
    let rotated = read_login(cluster.a.refresh(&first.refresh).await).await;
    assert_ne!(rotated.refresh, first.refresh);
    assert_token_rejected(cluster.b.refresh(&first.refresh).await, "invalid_token").await;

    // The whole family is revoked on both instances: the refresh token the rotation handed out
    // (the database says so)...
    for app in cluster.instances() {
        assert_token_rejected(app.refresh(&rotated.refresh).await, "invalid_token").await;
    }
    // ...and every access token of the session: on B at once, on A within the revocation bound.
    for app in cluster.instances() {
        for token in [&first.access, &rotated.access] {
            let since = Instant::now();
            time_until_rejected(app, token, since, Duration::from_millis(1_500)).await;
        }
    }
    // The session is gone from the list on both; the user's other session is untouched.
    for app in cluster.instances() {
        let ids: Vec<Value> = app
            .sessions(&bystander.access)
            .await
            .iter()
            .map(|s| s["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!(bystander_sid)], "family {family}");
    }
}

// --- 1d: one session list -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_instances_list_the_same_sessions() {
    let Some(cluster) = cluster(&[]).await else { return };
    let user = cluster.a.register_user().await;
    let logins = [
        cluster.a.login_user(&user).await,
        cluster.b.login_user(&user).await,
        cluster.a.login_user(&user).await,
    ];
    let mut sids = Vec::new();
    for login in &logins {
        sids.push(cluster.a.session_id(&login.access).await);
    }
    for (login, sid) in logins.iter().zip(&sids) {
        let on_a = cluster.a.sessions(&login.access).await;
        let on_b = cluster.b.sessions(&login.access).await;
        assert_eq!(on_a, on_b, "the same token lists the same sessions on A and B");
        let mut listed: Vec<&str> = on_a.iter().map(|s| s["id"].as_str().unwrap()).collect();
        listed.sort_unstable();
        let mut expected: Vec<&str> = sids.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        let current: Vec<&Value> = on_a.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["id"], sid.as_str());
    }
    // Ending a session on A removes it from B's list too.
    let response = cluster
        .a
        .delete(&format!("/sessions/{}", sids[1]))
        .bearer_auth(&logins[0].access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let on_b = cluster.b.sessions(&logins[2].access).await;
    assert_eq!(on_b, cluster.a.sessions(&logins[2].access).await);
    assert!(on_b.iter().all(|s| s["id"] != sids[1].as_str()), "{on_b:?}");
    assert_eq!(on_b.len(), 2);
}

// --- 2: races and client IPs --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_over_both_instances_let_exactly_the_limit_through() {
    let Some(cluster) = cluster(&[("RATE_LIMIT_LOGIN", "7/minute")]).await else {
        return;
    };
    let user = cluster.a.register_user().await;
    let mut attempts = JoinSet::new();
    for i in 0..30 {
        let request = login_request(cluster.instances()[i % 2], &user.email, WRONG_PASSWORD);
        attempts.spawn(async move { request.send().await.expect("POST /login").status() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = attempts.join_next().await {
        statuses.push(status.unwrap());
    }
    let passed = statuses.iter().filter(|s| **s != StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(passed, 7, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

/// POST /login through a trusted proxy that reports `client` in X-Forwarded-For.
async fn login_via_proxy(app: &TestApp, client: &str, user: &TestUser, password: &str) -> Response {
    login_request(app, &user.email, password)
        .header("x-forwarded-for", client)
        .send()
        .await
        .expect("POST /login")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_account_limit_holds_whatever_the_client_ip() {
    let Some(cluster) = cluster(&[
        ("RATE_LIMIT_LOGIN", "2/minute"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "3/minute"),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await
    else {
        return;
    };
    let victim = cluster.a.register_user().await;
    let bystander = cluster.a.register_user().await;
    // A distributed guess: every attempt from another address (so the per-IP limit of 2 never
    // trips), over both instances.
    for i in 1..=3 {
        let app = cluster.instances()[i % 2];
        let response = login_via_proxy(app, &format!("198.51.100.{i}"), &victim, WRONG_PASSWORD).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // The fourth, from yet another address, meets the account's limit, even with the right
    // password.
    let response = login_via_proxy(&cluster.a, "198.51.100.4", &victim, WRONG_PASSWORD).await;
    assert_rate_limited(response, 3).await;
    let response = login_via_proxy(&cluster.b, "198.51.100.5", &victim, PASSWORD).await;
    assert_rate_limited(response, 3).await;
    // Other accounts are not affected; and the per-IP buckets really are per forwarded address:
    // a fresh address gets its own 2 attempts, the third is refused by the per-IP limit.
    for _ in 0..2 {
        let response = login_via_proxy(&cluster.b, "198.51.100.6", &bystander, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = login_via_proxy(&cluster.a, "198.51.100.6", &bystander, PASSWORD).await;
    assert_rate_limited(response, 2).await;
}

/// No services needed: one instance on SQLite.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_pick_the_bucket() {
    // Without TRUSTED_PROXIES, and with proxies configured that do not include the peer.
    for trusted in [None, Some("10.0.0.0/8")] {
        let app = spawn_app_with(|config| {
            config.rate_limit_login = "2/minute".parse().unwrap();
            config.trusted_proxies = trusted.into_iter().map(|net| net.parse().unwrap()).collect();
        })
        .await;
        let user = app.register_user().await;
        for i in 1..=2 {
            let response = login_via_proxy(&app, &format!("203.0.113.{i}"), &user, PASSWORD).await;
            assert_eq!(response.status(), StatusCode::OK, "trusted {trusted:?}");
        }
        // A third "client" is still the same peer, 127.0.0.1: same bucket, refused.
        let response = login_request(&app, &user.email, PASSWORD)
            .header("x-forwarded-for", "203.0.113.3")
            .header("forwarded", "for=203.0.113.4")
            .send()
            .await
            .unwrap();
        assert_rate_limited(response, 2).await;
    }
}

// --- token cache, informational -----------------------------------------------------------

/// Sends `count` concurrent GET /profile and returns how long the burst took.
async fn profile_burst(app: &TestApp, token: &str, count: usize) -> Duration {
    let started = Instant::now();
    let mut requests = JoinSet::new();
    for _ in 0..count {
        let request = app.get("/profile").bearer_auth(token);
        requests.spawn(async move { request.send().await.expect("GET /profile").status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    started.elapsed()
}

/// Informational only (no timing assertion): /profile throughput with the token cache on (the
/// default) and off (TOKEN_CACHE_SIZE=0), best of five 50-request bursts each, interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cache_throughput_on_profile_is_measured() {
    const BURST: usize = 50;
    for algorithm in [Algorithm::HS256, Algorithm::EdDSA] {
        let cached = spawn_app_with(|config| config.algorithm = algorithm).await;
        let uncached = spawn_app_with(|config| {
            config.algorithm = algorithm;
            config.token_cache_size = 0;
        })
        .await;
        assert!(cached.state.token_cache.is_some() && uncached.state.token_cache.is_none());
        let cached_token = cached.new_session().await.1.access;
        let uncached_token = uncached.new_session().await.1.access;
        // Warm up connections (and the cache).
        profile_burst(&cached, &cached_token, BURST).await;
        profile_burst(&uncached, &uncached_token, BURST).await;
        let (mut best_on, mut best_off) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            best_on = best_on.min(profile_burst(&cached, &cached_token, BURST).await);
            best_off = best_off.min(profile_burst(&uncached, &uncached_token, BURST).await);
        }
        let rate = |d: Duration| BURST as f64 / d.as_secs_f64();
        eprintln!(
            "/profile {BURST}-request burst, {algorithm}: cache on {:.0} req/s, TOKEN_CACHE_SIZE=0 {:.0} req/s, \
             ratio on/off {:.2}",
            rate(best_on),
            rate(best_off),
            rate(best_on) / rate(best_off)
        );
    }
}
