//! The fault-injection suite (issue 13, "Also deliver"; figures in docs/RELIABILITY.md):
//!
//! - PostgreSQL stopped and restarted under load (a throwaway cluster of the test's own): only
//!   2xx/429/503 answers, none slower than a bound; once the database is known down, calls fail
//!   fast (the circuit breaker, finding 4) and `/readyz` names the database; after the restart
//!   the service recovers by itself, and the recovery time is measured.
//! - Redis stopped (SIGKILL) and restarted under load (a throwaway `redis-server`): the server
//!   degrades to local state, answers only 2xx/429/503, and is ready again by itself.
//! - `kill -9` of the real `tessera` binary under chained-refresh load, then a restart on the
//!   same SQLite file: every acknowledged registration can log in, and every session's newest
//!   acknowledged refresh token still refreshes (never "reuse").
//!
//! The idle/slow connection flood is in `connections.rs`; disk full and read-only storage in
//! `storage.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::helpers::{Login, PASSWORD, TestApp, TestUser, assert_error, header, read_login, unique};
use crate::services::{config, spawn_with_config};
use crate::throwaway::{ThrowawayPostgres, ThrowawayRedis};

/// Any answer slower than this during an outage counts as a hang.
const HANG: Duration = Duration::from_secs(8);

/// One answer seen by the load.
#[derive(Debug, Clone)]
struct Seen {
    /// `POST /login` and the like.
    what: &'static str,
    /// The status, or `None` for a transport error or a timeout.
    status: Option<u16>,
    /// When it was sent.
    sent: Instant,
    took: Duration,
}

/// A client with the hang bound as its timeout.
fn client() -> Client {
    Client::builder()
        .timeout(HANG)
        .user_agent("tessera-fault-suite")
        .build()
        .unwrap()
}

/// `count` accounts with a session each, for [`load`].
async fn sessions(app: &TestApp, count: usize) -> Vec<(TestUser, Login)> {
    let mut users = Vec::new();
    for _ in 0..count {
        users.push(app.new_session().await);
    }
    users
}

/// Load on `app` until `stop` says so: one client per session, each chaining refreshes,
/// logging in, reading the full profile and registering, over and over. Returns every answer.
async fn load(app: &TestApp, users: Vec<(TestUser, Login)>, stop: watch::Receiver<bool>) -> Vec<Seen> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (user, login) in users {
        let base = app.address.clone();
        let seen = Arc::clone(&seen);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut refresh = login.refresh.clone();
            let mut access = login.access.clone();
            let record = |what, status: Option<u16>, sent: Instant| {
                seen.lock().unwrap().push(Seen {
                    what,
                    status,
                    sent,
                    took: sent.elapsed(),
                });
            };
            while !*stop.borrow() {
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/refresh"))
                    .json(&json!({ "refresh_token": refresh }))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == StatusCode::OK => {
                        record("POST /refresh", Some(200), sent);
                        let body: Value = response.json().await.unwrap();
                        refresh = body["refresh_token"].as_str().unwrap().to_owned();
                        access = body["access_token"].as_str().unwrap().to_owned();
                    }
                    Ok(response) => record("POST /refresh", Some(response.status().as_u16()), sent),
                    Err(_) => record("POST /refresh", None, sent),
                }

                let sent = Instant::now();
                let status = client
                    .post(format!("{base}/login"))
                    .json(&json!({ "email": user.email, "password": PASSWORD }))
                    .send()
                    .await
                    .ok()
                    .map(|r| r.status().as_u16());
                record("POST /login", status, sent);

                let sent = Instant::now();
                let status = client
                    .get(format!("{base}/profile/full"))
                    .bearer_auth(&access)
                    .send()
                    .await
                    .ok()
                    .map(|r| r.status().as_u16());
                record("GET /profile/full", status, sent);

                let n = unique();
                let sent = Instant::now();
                let status = client
                    .post(format!("{base}/register"))
                    .json(&json!({
                        "email": format!("load{n}@example.com"),
                        "username": format!("load_{n}"),
                        "password": PASSWORD,
                    }))
                    .send()
                    .await
                    .ok()
                    .map(|r| r.status().as_u16());
                record("POST /register", status, sent);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut answers = seen.lock().unwrap();
    std::mem::take(&mut *answers)
}

/// Asserts that every answer was 2xx, 429 or 503 within the hang bound; returns a summary line.
fn assert_only_2xx_429_503(seen: &[Seen]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for answer in seen {
        let status = answer.status.map_or("error/timeout".to_owned(), |s| s.to_string());
        let key = format!("{} {status}", answer.what);
        *counts.entry(key).or_default() += 1;
    }
    let bad: Vec<&Seen> = seen
        .iter()
        .filter(|a| !matches!(a.status, Some(200..=299 | 429 | 503)) || a.took >= HANG)
        .collect();
    assert!(
        bad.is_empty(),
        "answers other than 2xx/429/503 (counts {counts:?}): {bad:?}"
    );
    let slowest = seen.iter().map(|a| a.took).max().unwrap_or_default();
    format!(
        "{} answers {counts:?}, slowest {:.2} s",
        seen.len(),
        slowest.as_secs_f64()
    )
}

/// GET /readyz: status and body.
async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let response = app.get("/readyz").timeout(HANG).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Polls `probe` every 50 ms until it returns true; returns how long that took. Fails after
/// `give_up`.
async fn time_until<F, Fut>(give_up: Duration, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if probe().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < give_up, "{what}: not within {give_up:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_under_load_fails_fast_and_recovers() {
    let _heavy = crate::helpers::heavy_test().await;
    let Some(mut postgres) = tokio::task::spawn_blocking(ThrowawayPostgres::start).await.unwrap() else {
        return;
    };
    let app = spawn_with_config(config(&[("DATABASE_URL", &postgres.url())])).await;
    let (probe_user, probe_session) = app.new_session().await;
    let users = sessions(&app, 4).await;
    let (stop_load, stopping) = watch::channel(false);
    let load = load(&app, users, stopping);
    let scenario = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stopped_at = Instant::now();
        tokio::task::block_in_place(|| postgres.stop());
        let stop_took = stopped_at.elapsed();

        // The first call after the stop finds the database gone and opens the breaker.
        let detected = time_until(HANG, "a 503 after the stop", || async {
            app.post("/login")
                .json(&json!({ "email": probe_user.email, "password": PASSWORD }))
                .timeout(HANG)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        })
        .await;

        // From then on: 503 with Retry-After at once, whatever the pool's 5 s acquire timeout.
        let mut fail_fast = Vec::new();
        for _ in 0..5 {
            let sent = Instant::now();
            let response = app
                .post("/login")
                .json(&json!({ "email": probe_user.email, "password": PASSWORD }))
                .timeout(HANG)
                .send()
                .await
                .unwrap();
            let took = sent.elapsed();
            assert!(header(response.headers(), "retry-after").is_some());
            assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
            fail_fast.push(took);
            let sent = Instant::now();
            let response = app
                .post("/refresh")
                .json(&json!({ "refresh_token": probe_session.refresh }))
                .timeout(HANG)
                .send()
                .await
                .unwrap();
            fail_fast.push(sent.elapsed());
            assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
        }
        let slowest_fast = fail_fast.iter().max().copied().unwrap_or_default();
        assert!(
            slowest_fast < Duration::from_secs(1),
            "with the database down, a 503 took {slowest_fast:?}"
        );

        // /readyz names what is down, in the unified error format.
        let response = app.get("/readyz").timeout(HANG).send().await.unwrap();
        assert!(header(response.headers(), "retry-after").is_some());
        let (_, body) = assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
        assert_eq!(body["details"], json!({ "database": "down", "redis": "disabled" }));

        // Keep the outage up a little under load, then bring the database back.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let restart = Instant::now();
        tokio::task::block_in_place(|| postgres.start_again());
        let restart_took = restart.elapsed();
        let ready = time_until(Duration::from_secs(10), "/readyz ready after the restart", || async {
            readyz(&app).await.0 == StatusCode::OK
        })
        .await;
        let login_ok = time_until(Duration::from_secs(10), "a login after the restart", || async {
            app.login(&probe_user.email, PASSWORD).await.status() == StatusCode::OK
        })
        .await;
        let recovered_at = Instant::now();
        (
            stop_took,
            detected,
            slowest_fast,
            restart_took,
            ready,
            ready + login_ok,
            recovered_at,
        )
    };
    let stopper = async {
        let figures = scenario.await;
        // A little load after the recovery, then stop it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop_load.send(true).unwrap();
        figures
    };
    let (seen, (stop_took, detected, slowest_fast, restart_took, ready, login_ok, recovered_at)) =
        tokio::join!(load, stopper);
    let summary = assert_only_2xx_429_503(&seen);
    let during = seen.iter().filter(|a| a.status == Some(503)).count();
    eprintln!(
        "postgres outage under load: stop took {:.2} s; first 503 {:.0} ms after; then 503s in at most {:.0} ms; \
         {during} 503s under load; restart took {:.2} s, /readyz ready {:.0} ms and a login {:.0} ms after it; {summary}",
        stop_took.as_secs_f64(),
        detected.as_secs_f64() * 1e3,
        slowest_fast.as_secs_f64() * 1e3,
        restart_took.as_secs_f64(),
        ready.as_secs_f64() * 1e3,
        login_ok.as_secs_f64() * 1e3,
    );
    assert!(during > 0, "the load saw no 503 during the outage");
    // Recovered: what the load sent after the first successful login is answered normally.
    let after: Vec<&Seen> = seen.iter().filter(|a| a.sent >= recovered_at).collect();
    assert!(!after.is_empty(), "no load after the recovery");
    assert!(
        after.iter().all(|a| a.status.is_some_and(|s| (200..300).contains(&s))),
        "answers other than 2xx after the recovery: {after:?}"
    );
    drop(postgres);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_under_load_degrades_and_recovers() {
    let _heavy = crate::helpers::heavy_test().await;
    let Some(mut redis) = tokio::task::spawn_blocking(ThrowawayRedis::start).await.unwrap() else {
        return;
    };
    // SQLite in a directory of this test's own (the configuration's default DATA_DIR is ./data).
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let app = spawn_with_config(config(&[("REDIS_URL", &redis.url()), ("DATA_DIR", &data_dir)])).await;
    let (code, body) = readyz(&app).await;
    assert_eq!((code, &body["redis"]), (StatusCode::OK, &json!("up")), "{body}");
    let users = sessions(&app, 4).await;
    let (stop_load, stopping) = watch::channel(false);
    let load = load(&app, users, stopping);
    let scenario = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::task::block_in_place(|| redis.stop());
        let degraded = time_until(Duration::from_secs(5), "/readyz degraded", || async {
            readyz(&app).await.1["status"] == "degraded"
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let restart = Instant::now();
        tokio::task::block_in_place(|| redis.start_again());
        let restart_took = restart.elapsed();
        let ready = time_until(Duration::from_secs(10), "/readyz ready after the restart", || async {
            readyz(&app).await.1["status"] == "ready"
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop_load.send(true).unwrap();
        (degraded, restart_took, ready)
    };
    let (seen, (degraded, restart_took, ready)) = tokio::join!(load, scenario);
    let summary = assert_only_2xx_429_503(&seen);
    eprintln!(
        "redis outage under load: /readyz degraded {:.0} ms after the kill; restart took {:.2} s, ready {:.0} ms after it; {summary}",
        degraded.as_secs_f64() * 1e3,
        restart_took.as_secs_f64(),
        ready.as_secs_f64() * 1e3
    );
    // A login works after the recovery.
    let (user, _) = app.new_session().await;
    let again = read_login(app.login(&user.email, PASSWORD).await).await;
    assert!(!again.access.is_empty());
    drop(app);
    drop(data);
    drop(redis);
}

/// `tessera serve` as a child process on `dir`; returns it and its address once it listens.
fn start_binary(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .env_clear()
        .current_dir(dir)
        .env("DATA_DIR", dir)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("COOKIE_SECURE", "false")
        .env("PASSWORD_HASH_MEMORY_KIB", "256")
        .env("PASSWORD_HASH_ITERATIONS", "1")
        .env("RATE_LIMIT_LOGIN", "100000/minute")
        .env("RATE_LIMIT_REGISTER", "100000/minute")
        .env("RATE_LIMIT_API", "100000/minute")
        .env("RATE_LIMIT_LOGIN_ACCOUNT", "100000/minute")
        // The checks after the restart take a few seconds; an unacknowledged rotation (the
        // kill fell between its commit and its answer) leaves the acknowledged token one step
        // behind, which the grace window still accepts.
        .env("REFRESH_REUSE_GRACE_SECONDS", "120")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tessera serve");
    let stdout = child.stdout.take().unwrap();
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sent {
                continue;
            }
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && value["event"] == "startup"
            {
                let _ = found.send(format!("http://{}", value["address"].as_str().unwrap_or_default()));
                sent = true;
            }
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(60))
        .expect("tessera serve logs its startup line");
    (child, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_chained_refresh_load_loses_nothing_acknowledged() {
    let _heavy = crate::helpers::heavy_test().await;
    const WORKERS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = start_binary(dir.path());

    // Acknowledged state: accounts that got their 201, and each session's newest refresh
    // token that came back in a 200.
    let accounts: Arc<Mutex<Vec<String>>> = Arc::default();
    let sessions: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let address = address.clone();
        let accounts = Arc::clone(&accounts);
        let sessions = Arc::clone(&sessions);
        workers.push(tokio::spawn(async move {
            let client = client();
            loop {
                let email = format!("kill{worker}_{}@example.com", unique());
                let username = email.replace(['@', '.'], "_");
                let Ok(response) = client
                    .post(format!("{address}/register"))
                    .json(&json!({ "email": email, "username": username, "password": PASSWORD }))
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() != StatusCode::CREATED {
                    return;
                }
                accounts.lock().unwrap().push(email.clone());
                let Ok(response) = client
                    .post(format!("{address}/login"))
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let Some(mut refresh) = body["refresh_token"].as_str().map(str::to_owned) else {
                    return;
                };
                let slot = {
                    let mut sessions = sessions.lock().unwrap();
                    sessions.push(refresh.clone());
                    sessions.len() - 1
                };
                for _ in 0..5 {
                    let Ok(response) = client
                        .post(format!("{address}/refresh"))
                        .json(&json!({ "refresh_token": refresh }))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(body) = response.json::<Value>().await else {
                        return;
                    };
                    let Some(next) = body["refresh_token"].as_str() else {
                        return;
                    };
                    refresh = next.to_owned();
                    sessions.lock().unwrap()[slot] = refresh.clone();
                }
            }
        }));
    }

    // Let the load run, then SIGKILL mid-load.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let accounts = accounts.lock().unwrap().clone();
    let sessions = sessions.lock().unwrap().clone();
    assert!(
        accounts.len() >= WORKERS && !sessions.is_empty(),
        "too little load before the kill: {} accounts, {} sessions",
        accounts.len(),
        sessions.len()
    );

    // Restart on the same file.
    let restart = Instant::now();
    let (mut child, address) = start_binary(dir.path());
    let restart_took = restart.elapsed();
    let client = client();
    let mut lost_accounts = Vec::new();
    for email in &accounts {
        let response = client
            .post(format!("{address}/login"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            lost_accounts.push((email.clone(), response.status()));
        }
    }
    let mut lost_rotations = Vec::new();
    for refresh in &sessions {
        let response = client
            .post(format!("{address}/refresh"))
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status != StatusCode::OK {
            lost_rotations.push((status, response.text().await.unwrap_or_default()));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "kill -9 under load: {} acknowledged registrations, {} sessions with acknowledged rotations; \
         restart in {:.2} s; lost: {} accounts, {} rotations",
        accounts.len(),
        sessions.len(),
        restart_took.as_secs_f64(),
        lost_accounts.len(),
        lost_rotations.len()
    );
    assert!(
        lost_accounts.is_empty(),
        "acknowledged accounts lost: {lost_accounts:?}"
    );
    assert!(
        lost_rotations.is_empty(),
        "acknowledged rotations lost: {lost_rotations:?}"
    );
}
