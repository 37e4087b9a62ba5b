//! API keys end to end (G3): create, use as `Authorization: Bearer tsk_...`, scope refusal,
//! list without secrets, rotate with a grace period (manual clock), revoke seen by a second
//! instance, a disabled owner, junk and typos refused before any lookup.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error, assert_field_error, assert_token_rejected, header, spawn_app, spawn_app_on_manual_clock,
};
use crate::services;

/// `POST /api-keys` with the access token; returns the 201 body.
async fn create_key(app: &TestApp, access: &str, body: Value) -> Value {
    let response = app
        .post("/api-keys")
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn profile_status(app: &TestApp, key: &str) -> StatusCode {
    app.profile(key).await.status()
}

/// The value of one metric series in the app's /metrics text.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[tokio::test]
async fn a_key_is_created_once_used_on_the_api_listed_without_its_secret() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let created = create_key(&app, &login.access, json!({ "name": "ci", "scopes": ["profile:read"] })).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tsk_") && key.len() == 53, "{key}");
    assert_eq!(tessera_core::apikey::check_format(&key), Ok(()));
    assert_eq!(created["prefix"], &key[..12]);
    assert_eq!(created["scopes"], json!(["profile:read"]));
    assert_eq!(created["name"], "ci");
    assert!(created["expires_at"].is_null());

    // The key works as a Bearer credential, as its owner.
    let profile: Value = app.profile(&key).await.json().await.unwrap();
    assert_eq!(profile["user_id"], user.id);
    assert_eq!(profile["username"], user.username.as_str());

    // Listed without the secret; last use recorded by the batched flush.
    app.state.flush_key_usage().await;
    let listed = app.get("/api-keys").bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let text = listed.text().await.unwrap();
    assert!(!text.contains(&key[12..]), "the secret leaked into the listing: {text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    let keys = listed["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], created["id"]);
    assert!(keys[0].get("key").is_none());
    assert_eq!(keys[0]["last_used_ip"], "127.0.0.1");
    assert!(keys[0]["last_used_at"].is_string());
    // The stored form is the keyed hash, never the key.
    let stored = app
        .state
        .api_keys
        .find_key(user.id, created["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.key_hash, app.state.keys.api_key_hasher.hash(&key).to_vec());
}

#[tokio::test]
async fn a_key_is_refused_where_its_scopes_do_not_reach() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let created = create_key(
        &app,
        &login.access,
        json!({ "name": "reader", "scopes": ["profile:read"] }),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    let chat = app
        .post("/agent/chat")
        .bearer_auth(key)
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    let (headers, _) = assert_error(chat, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some(r#"Bearer realm="tessera", error="insufficient_scope", scope="agent:chat""#)
    );
    // A profile:read key cannot mint keys (keys:write), let alone wider ones.
    let mint = app
        .post("/api-keys")
        .bearer_auth(key)
        .json(&json!({ "name": "x", "scopes": ["profile:read"] }))
        .send()
        .await
        .unwrap();
    assert_error(mint, StatusCode::FORBIDDEN, "insufficient_scope").await;
}

#[tokio::test]
async fn key_scopes_must_be_known_and_within_the_owners() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let post = |body: Value| app.post("/api-keys").bearer_auth(&login.access).json(&body).send();
    assert_field_error(
        post(json!({ "name": "x", "scopes": ["introspect"] })).await.unwrap(),
        "scopes",
        "scope_not_allowed",
    )
    .await;
    assert_field_error(
        post(json!({ "name": "x", "scopes": ["*"] })).await.unwrap(),
        "scopes",
        "scope_not_allowed",
    )
    .await;
    assert_field_error(
        post(json!({ "name": "x", "scopes": ["nope"] })).await.unwrap(),
        "scopes",
        "unknown_scope",
    )
    .await;
    assert_field_error(
        post(json!({ "name": "x", "scopes": [] })).await.unwrap(),
        "scopes",
        "empty",
    )
    .await;
    assert_field_error(
        post(json!({ "scopes": ["profile:read"] })).await.unwrap(),
        "name",
        "missing",
    )
    .await;
    assert_field_error(
        post(json!({ "name": "x", "scopes": ["profile:read"], "expires_in": 5 }))
            .await
            .unwrap(),
        "expires_in",
        "out_of_range",
    )
    .await;
    let listed: Value = app
        .get("/api-keys")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["api_keys"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn junk_and_typos_are_refused_before_any_lookup() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let created = create_key(&app, &login.access, json!({ "name": "k", "scopes": ["profile:read"] })).await;
    let key = created["key"].as_str().unwrap();
    let mut typo = key.to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let malformed_before = metric(&app, r#"auth_api_key_verifications_total{result="malformed"}"#).await;
    let invalid_before = metric(&app, r#"auth_api_key_verifications_total{result="invalid"}"#).await;
    for junk in ["tsk_", "tsk_junk", typo.as_str(), &format!("{key}x")] {
        assert_token_rejected(app.profile(junk).await, "invalid_token").await;
    }
    // All four stopped at the format check: none reached the database.
    let malformed = metric(&app, r#"auth_api_key_verifications_total{result="malformed"}"#).await;
    assert_eq!(malformed - malformed_before, 4.0);
    // A well-formed key nobody issued is looked up, and refused the same way.
    let stranger = tessera_core::apikey::generate(&mut rand::rngs::OsRng);
    assert_token_rejected(app.profile(&stranger).await, "invalid_token").await;
    let invalid = metric(&app, r#"auth_api_key_verifications_total{result="invalid"}"#).await;
    assert_eq!(invalid - invalid_before, 1.0);
    assert_eq!(profile_status(&app, key).await, StatusCode::OK);
}

#[tokio::test]
async fn a_rotated_key_works_for_the_grace_period_then_only_the_new_one() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let (_, login) = app.new_session().await;
    let old = create_key(
        &app,
        &login.access,
        json!({ "name": "deploy", "scopes": ["profile:read", "agent:chat"] }),
    )
    .await;
    let old_key = old["key"].as_str().unwrap();
    assert_eq!(profile_status(&app, old_key).await, StatusCode::OK);

    let rotated = app
        .post(&format!("/api-keys/{}/rotate", old["id"].as_str().unwrap()))
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::CREATED);
    let new: Value = rotated.json().await.unwrap();
    let new_key = new["key"].as_str().unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(new["name"], "deploy");
    assert_eq!(new["scopes"], json!(["agent:chat", "profile:read"]));
    // Both work during the grace period; the old one says what replaced it.
    assert_eq!(profile_status(&app, old_key).await, StatusCode::OK);
    assert_eq!(profile_status(&app, new_key).await, StatusCode::OK);
    let listed: Value = app
        .get("/api-keys")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed_old = listed["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == old["id"])
        .unwrap();
    assert_eq!(listed_old["rotated_to"], new["id"]);
    assert!(listed_old["revoked_at"].is_string(), "the end of the grace period");
    // A rotated key is not rotated again.
    let again = app
        .post(&format!("/api-keys/{}/rotate", old["id"].as_str().unwrap()))
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;

    app.advance(Duration::from_secs(24 * 3600 - 10));
    assert_eq!(profile_status(&app, old_key).await, StatusCode::OK);
    app.advance(Duration::from_secs(10));
    assert_token_rejected(app.profile(old_key).await, "invalid_token").await;
    assert_eq!(profile_status(&app, new_key).await, StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_another_users_key_is_not_found() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let (_, other) = app.new_session().await;
    let created = create_key(&app, &login.access, json!({ "name": "k", "scopes": ["profile:read"] })).await;
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert_eq!(profile_status(&app, key).await, StatusCode::OK);
    let path = format!("/api-keys/{id}");
    let foreign = app.delete(&path).bearer_auth(&other.access).send().await.unwrap();
    assert_error(foreign, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(profile_status(&app, key).await, StatusCode::OK);
    let revoked = app.delete(&path).bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_token_rejected(app.profile(key).await, "invalid_token").await;
    let twice = app.delete(&path).bearer_auth(&login.access).send().await.unwrap();
    assert_error(twice, StatusCode::NOT_FOUND, "not_found").await;
}

/// Waits until `app` refuses `key`; returns how long it took.
async fn wait_until_refused(app: &TestApp, key: &str, give_up: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match profile_status(app, key).await {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return started.elapsed(),
            other => panic!("GET /profile answered {other}"),
        }
        assert!(started.elapsed() < give_up, "the key still worked after {give_up:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The revocation bound (issue 14): keys revoked on A, each cached on B first; B must refuse
/// each within 5 s. How long it took is printed (p50, p99, and how many were refused by the
/// very first request after the revoke returned), never asserted against a time.
#[tokio::test]
async fn a_key_revoked_on_one_instance_is_refused_by_the_other() {
    const KEYS: usize = 30;
    let Some(cluster) = services::cluster(&[]).await else {
        return;
    };
    let (a, b) = (&cluster.a, &cluster.b);
    let (_, login) = a.new_session().await;
    let mut waits = Vec::with_capacity(KEYS);
    let mut first_try = 0;
    for _ in 0..KEYS {
        let created = create_key(a, &login.access, json!({ "name": "k", "scopes": ["profile:read"] })).await;
        let key = created["key"].as_str().unwrap();
        // B verifies it once and caches it.
        assert_eq!(profile_status(b, key).await, StatusCode::OK);
        assert_eq!(profile_status(b, key).await, StatusCode::OK);
        let revoked = a
            .delete(&format!("/api-keys/{}", created["id"].as_str().unwrap()))
            .bearer_auth(&login.access)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
        let started = Instant::now();
        if profile_status(b, key).await == StatusCode::UNAUTHORIZED {
            first_try += 1;
            waits.push(started.elapsed());
            continue;
        }
        wait_until_refused(b, key, Duration::from_secs(5)).await;
        waits.push(started.elapsed());
    }
    waits.sort_unstable();
    let at = |q: f64| waits[((waits.len() as f64 - 1.0) * q).round() as usize];
    eprintln!(
        "revocation bound over {KEYS} keys: B refused the key {first_try} times at the first request after the revoke returned; \
         time to refusal p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        waits[waits.len() - 1]
    );
}

#[tokio::test]
async fn a_disabled_owners_keys_stop_working_on_every_instance() {
    let Some(cluster) = services::cluster_without_redis(&[]).await else {
        return;
    };
    let (a, b) = (&cluster.a, &cluster.b);
    let (user, login) = a.new_session().await;
    let created = create_key(a, &login.access, json!({ "name": "k", "scopes": ["profile:read"] })).await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(profile_status(a, key).await, StatusCode::OK);
    assert_eq!(profile_status(b, key).await, StatusCode::OK);
    // Disabled in the database only (as `tessera users disable` does without Redis): both
    // instances learn it from their poll.
    let now = a.state.clock.now();
    assert!(a.state.users.set_disabled(user.id, Some(now)).await.unwrap());
    for instance in [a, b] {
        wait_until_refused(instance, key, Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn each_key_has_its_own_api_rate_limit() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.rate_limit_api = "3/minute".parse().unwrap();
    })
    .await;
    let (_, login) = app.new_session().await;
    // Creating the key counts once against the session's budget.
    let created = create_key(&app, &login.access, json!({ "name": "k", "scopes": ["profile:read"] })).await;
    let key = created["key"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(profile_status(&app, key).await, StatusCode::OK);
    }
    let refused = app.profile(key).await;
    let (headers, _) = assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(header(&headers, "x-ratelimit-limit"), Some("3"));
    // The owner's access token has its own budget (one request of it spent on the create).
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_with_a_key_ends_sessions_but_not_the_key() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let created = create_key(
        &app,
        &login.access,
        json!({ "name": "k", "scopes": ["sessions:write", "profile:read"] }),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    let logout = app.post("/logout").bearer_auth(key).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(profile_status(&app, key).await, StatusCode::OK);
    assert_eq!(
        app.profile(&login.access).await.status(),
        StatusCode::OK,
        "no session was named"
    );
    let all = app.post("/logout/all").bearer_auth(key).send().await.unwrap();
    assert_eq!(all.status(), StatusCode::OK);
    let body: Value = all.json().await.unwrap();
    assert_eq!(body["sessions_revoked"], 1);
    assert_token_rejected(app.profile(&login.access).await, "invalid_token").await;
    // The key is not a session: it keeps working until it is revoked.
    assert_eq!(profile_status(&app, key).await, StatusCode::OK);
}

#[tokio::test]
async fn a_used_up_quota_is_429_quota_exceeded_until_it_resets() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let (user, login) = app.new_session().await;
    let created = create_key(
        &app,
        &login.access,
        json!({ "name": "metered", "scopes": ["profile:read"], "quota": "2/day" }),
    )
    .await;
    assert_eq!(created["quota"], "2/day");
    let key = created["key"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(profile_status(&app, key).await, StatusCode::OK);
    }
    let refused = app.profile(key).await;
    let (headers, body) = assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded").await;
    assert_eq!(body["details"]["quota"], "2/day");
    assert!(
        body["details"]["reset_at"]
            .as_str()
            .is_some_and(crate::helpers::is_rfc3339_utc)
    );
    let retry_after: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 2 * 86_400, "{retry_after}");
    assert_eq!(body["details"]["retry_after"], retry_after);
    // Still refused an hour later; allowed once the quota's window has passed.
    app.advance(Duration::from_secs(3600));
    assert_error(app.profile(key).await, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded").await;
    app.advance(Duration::from_secs(retry_after));
    assert_eq!(profile_status(&app, key).await, StatusCode::OK);
    // The owner's sessions never had a quota.
    let fresh = app.login_user(&user).await;
    assert_eq!(app.profile(&fresh.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_key_can_have_its_own_rate_limit_and_bad_limits_are_refused() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let created = create_key(
        &app,
        &login.access,
        json!({ "name": "slow", "scopes": ["profile:read"], "rate_limit": "1/minute" }),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(profile_status(&app, key).await, StatusCode::OK);
    let (headers, _) = assert_error(app.profile(key).await, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(header(&headers, "x-ratelimit-limit"), Some("1"));
    let bad = app
        .post("/api-keys")
        .bearer_auth(&login.access)
        .json(&json!({ "name": "x", "scopes": ["profile:read"], "quota": "lots" }))
        .send()
        .await
        .unwrap();
    assert_field_error(bad, "quota", "invalid_limit").await;
}
