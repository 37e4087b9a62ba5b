//! Faults (B9): a TCP proxy between the server and Redis or PostgreSQL is cut mid-test and
//! restored. Losing Redis degrades to local state (still serving, limits still enforced) and
//! recovers without a restart; losing the database answers 503 (never 500, never a hang) where
//! the database is needed, keeps claims-only routes working, and recovers without a restart,
//! with nothing half-written.
//!
//! These tests need PostgreSQL (and Redis) from `services.rs` and skip without them.

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, header, read_login, unique};
use crate::services::{
    self, RedisPrefix, TcpProxy, TestSchema, config, service_addr, spawn_with_config, with_authority,
};

/// How long any one request may take while a dependency is down before it counts as a hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(8);

/// GET /readyz: status and body.
async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let response = app
        .get("/readyz")
        .timeout(CLIENT_TIMEOUT)
        .send()
        .await
        .expect("GET /readyz answers");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

/// Polls /readyz every 100 ms until it reports `status`; returns how long that took from
/// `since`. Fails after `give_up`.
async fn wait_for_readiness(app: &TestApp, status: &str, since: Instant, give_up: Duration) -> (Duration, Value) {
    loop {
        let (code, body) = readyz(app).await;
        if body["status"] == status {
            return (since.elapsed(), body);
        }
        assert!(
            since.elapsed() < give_up,
            "/readyz still says {code} {body} {give_up:?} later (waiting for {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a request with the client timeout; panics if it does not answer in time (a hang).
async fn bounded(request: RequestBuilder, what: &str) -> (Duration, Response) {
    let started = Instant::now();
    match request.timeout(CLIENT_TIMEOUT).send().await {
        Ok(response) => (started.elapsed(), response),
        Err(error) if error.is_timeout() => panic!("{what} hung: no answer within {CLIENT_TIMEOUT:?}"),
        Err(error) => panic!("{what} failed: {error}"),
    }
}

/// Asserts a 503 `service_unavailable` with Retry-After.
async fn assert_unavailable(response: Response, what: &str) {
    let retry_after = header(response.headers(), "retry-after").map(str::to_owned);
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let retry_after = retry_after.unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    assert!(
        retry_after.parse::<u64>().is_ok_and(|secs| secs >= 1),
        "{what}: Retry-After {retry_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_degrades_to_local_state_and_recovers_without_a_restart() {
    let Some((database, redis_url)) = services::both() else {
        return;
    };
    let schema = TestSchema::create(&database).await;
    let redis = RedisPrefix::new(&redis_url);
    let proxy = TcpProxy::start(service_addr(&redis_url, 6379).await).await;
    let proxied = with_authority(&redis_url, proxy.addr());
    let database_url = schema.url();
    let app = spawn_with_config(config(&[
        ("DATABASE_URL", &database_url),
        ("REDIS_URL", &proxied),
        ("REDIS_KEY_PREFIX", &redis.prefix),
        ("RATE_LIMIT_LOGIN", "3/minute"),
    ]))
    .await;
    let (code, body) = readyz(&app).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, json!({ "status": "ready", "database": "up", "redis": "up" }));
    redis.wait_for_subscribers(1).await;

    // Before the outage: an account and a session; the login counts in Redis (1 of 3).
    let (user, before) = app.new_session().await;
    let counters = redis.keys().await;
    assert!(
        counters
            .iter()
            .any(|(key, value)| key.contains("rl:login:127.0.0.1:") && *value == Some(1)),
        "the login was counted in Redis: {counters:?}"
    );

    // Redis goes away. The monitor (a ping a second) notices with no request's help.
    proxy.cut().await;
    let cut = Instant::now();
    let (detected, body) = wait_for_readiness(&app, "degraded", cut, Duration::from_secs(3)).await;
    assert_eq!(body, json!({ "status": "degraded", "database": "up", "redis": "down" }));
    eprintln!(
        "redis outage: /readyz said degraded {:.0} ms after the cut",
        detected.as_secs_f64() * 1e3
    );
    assert!(detected < Duration::from_millis(2_500), "{detected:?}");
    assert_eq!(
        redis.subscribers().await,
        0,
        "the cut closed the subscriber's connection too"
    );

    // The server keeps answering: token-verified routes...
    let (_, response) = bounded(app.get("/profile").bearer_auth(&before.access), "GET /profile").await;
    assert_eq!(response.status(), StatusCode::OK);
    let (_, response) = bounded(
        app.post("/agent/chat")
            .bearer_auth(&before.access)
            .json(&json!({ "message": "still there?" })),
        "POST /agent/chat",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["response"], "AI reply: still there?");
    // ...and logins, still limited, now by this instance's own counters (which start at 0):
    // three pass, the fourth is refused. Doors stay shut.
    let (_, response) = bounded(
        app.post("/login")
            .json(&json!({ "email": user.email, "password": PASSWORD })),
        "POST /login",
    )
    .await;
    let during = read_login(response).await;
    for _ in 0..2 {
        let (_, response) = bounded(
            app.post("/login")
                .json(&json!({ "email": user.email, "password": "wrong password" })),
            "POST /login",
        )
        .await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let (_, response) = bounded(
        app.post("/login")
            .json(&json!({ "email": user.email, "password": PASSWORD })),
        "POST /login",
    )
    .await;
    let (headers, _) = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(header(&headers, "x-ratelimit-limit"), Some("3"));
    assert!(header(&headers, "retry-after").is_some());

    // Redis comes back: ready again without a restart.
    proxy.restore().await;
    let restored = Instant::now();
    let (recovered, body) = wait_for_readiness(&app, "ready", restored, Duration::from_secs(5)).await;
    assert_eq!(body, json!({ "status": "ready", "database": "up", "redis": "up" }));
    eprintln!(
        "redis recovery: /readyz said ready {:.0} ms after the restore",
        recovered.as_secs_f64() * 1e3
    );
    assert!(recovered < Duration::from_millis(3_500), "{recovered:?}");
    // The revocation subscriber is back too (it retries with a back-off of at most 2 s).
    redis.wait_for_subscribers(1).await;

    // The shared counters are used again: Redis has 1 login for this IP, so this one passes
    // with 1 remaining (the local counters, at 3 of 3, would have refused it).
    let response = app.login(&user.email, PASSWORD).await;
    assert_eq!(header(response.headers(), "x-ratelimit-remaining"), Some("1"));
    let after = read_login(response).await;

    // Nothing was lost: the account, and the sessions from before, during and after.
    let sessions = app.sessions(&after.access).await;
    let mut listed: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    listed.sort_unstable();
    let mut expected = vec![
        app.session_id(&before.access).await,
        app.session_id(&during.access).await,
        app.session_id(&after.access).await,
    ];
    expected.sort_unstable();
    assert_eq!(listed, expected);
    let response = app.get_bearer("/profile/full", &before.access).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// How the database goes away.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// Connections closed, new ones refused (the database's host is up, Postgres is not).
    Refused,
    /// Connections closed, new ones accepted and closed at once.
    Reset,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_answers_503_and_recovers_without_a_restart() {
    database_outage(Outage::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_drops_every_connection_answers_503_and_recovers() {
    database_outage(Outage::Reset).await;
}

async fn database_outage(outage: Outage) {
    let Some(database) = services::database_url() else {
        return;
    };
    let schema = TestSchema::create(&database).await;
    let proxy = TcpProxy::start(service_addr(&database, 5432).await).await;
    let app = spawn_with_config(config(&[("DATABASE_URL", &schema.url_via(proxy.addr()))])).await;
    let (user, session) = app.new_session().await;
    let (code, body) = readyz(&app).await;
    assert_eq!(code, StatusCode::OK, "{body}");

    match outage {
        Outage::Refused => proxy.cut().await,
        Outage::Reset => proxy.reset().await,
    }

    // Claims only (S9): no database, so no outage.
    let (took, response) = bounded(app.get("/profile").bearer_auth(&session.access), "GET /profile").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        took < Duration::from_secs(1),
        "GET /profile took {took:?} with the database down"
    );

    // Everything that needs the database: 503 with Retry-After, never 500, never a hang.
    let n = unique();
    let newcomer = json!({
        "email": format!("outage{n}@example.com"),
        "username": format!("outage_{n}"),
        "password": PASSWORD,
    });
    let (login, register, full, ready) = tokio::join!(
        bounded(
            app.post("/login")
                .json(&json!({ "email": user.email, "password": PASSWORD })),
            "POST /login"
        ),
        bounded(app.post("/register").json(&newcomer), "POST /register"),
        bounded(
            app.get("/profile/full").bearer_auth(&session.access),
            "GET /profile/full"
        ),
        bounded(app.get("/readyz"), "GET /readyz"),
    );
    eprintln!(
        "database outage ({outage:?}): 503 after login {:.1} s, register {:.1} s, profile/full {:.1} s, readyz {:.1} s",
        login.0.as_secs_f64(),
        register.0.as_secs_f64(),
        full.0.as_secs_f64(),
        ready.0.as_secs_f64()
    );
    assert_unavailable(login.1, "POST /login").await;
    assert_unavailable(register.1, "POST /register").await;
    assert_unavailable(full.1, "GET /profile/full").await;
    assert_unavailable(ready.1, "GET /readyz").await;

    // The database comes back: everything works again, without a restart.
    proxy.restore().await;
    let restored = Instant::now();
    let (recovered, body) = wait_for_readiness(&app, "ready", restored, Duration::from_secs(8)).await;
    eprintln!(
        "database recovery ({outage:?}): /readyz ready {:.0} ms after the restore",
        recovered.as_secs_f64() * 1e3
    );
    assert_eq!(
        body,
        json!({ "status": "ready", "database": "up", "redis": "disabled" })
    );
    let again = app.login_user(&user).await;
    let response = app.get_bearer("/profile/full", &session.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["id"], user.id);
    // Nothing half-written: the registration refused during the outage created nothing.
    let response = app.post("/register").json(&newcomer).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
    // The sessions from before and after the outage, and only those.
    let sessions = app.sessions(&again.access).await;
    let mut listed: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    listed.sort_unstable();
    let mut expected = vec![
        app.session_id(&session.access).await,
        app.session_id(&again.access).await,
    ];
    expected.sort_unstable();
    assert_eq!(listed, expected);
}
