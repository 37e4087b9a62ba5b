//! POST /refresh (B2): rotation, reuse detection that revokes the family, the grace window,
//! and concurrent refreshes that never fork the chain.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    assert_error, assert_field_error, assert_keys, assert_token_rejected, header, read_login, spawn_app,
    spawn_app_on_manual_clock, spawn_app_with,
};

#[tokio::test]
async fn refreshing_rotates_the_refresh_token_and_answers_like_login() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let response = app.refresh(&login.refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "cache-control"), Some("no-store"));
    let refreshed = read_login(response).await;
    assert_keys(
        &refreshed.body,
        &[
            "message",
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
            "csrf_token",
        ],
    );
    assert_eq!(refreshed.body["message"], "Token refreshed");
    assert_eq!(refreshed.body["token_type"], "bearer");
    assert_eq!(refreshed.body["expires_in"], 900);
    assert_ne!(refreshed.refresh, login.refresh, "a new refresh token");
    assert_ne!(refreshed.access, login.access, "a new access token");
    // Same session, so the same CSRF token.
    assert_eq!(refreshed.csrf, login.csrf);

    let profile: Value = app.profile(&refreshed.access).await.json().await.unwrap();
    assert_eq!(profile["user_id"], user.id);
    assert_eq!(profile["session_id"], app.session_id(&login.access).await.as_str());
    // Still one session.
    assert_eq!(app.sessions(&refreshed.access).await.len(), 1);

    // The new refresh token rotates in turn.
    let again = read_login(app.refresh(&refreshed.refresh).await).await;
    assert_ne!(again.refresh, refreshed.refresh);
}

#[tokio::test]
async fn refresh_with_a_bad_body_is_refused() {
    let app = spawn_app().await;
    let response = app
        .post("/refresh")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    let response = app
        .post("/refresh")
        .header("content-type", "text/plain")
        .body("token")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let response = app
        .post("/refresh")
        .json(&json!({ "refresh_token": 7 }))
        .send()
        .await
        .unwrap();
    assert_field_error(response, "refresh_token", "invalid_type").await;
    assert_token_rejected(app.refresh("not.a.token").await, "invalid_token").await;
}

#[tokio::test]
async fn a_spent_refresh_token_outside_the_grace_window_revokes_the_whole_family() {
    let app = spawn_app_with(|config| config.refresh_reuse_grace_secs = 0).await;
    let (user, login) = app.new_session().await;
    let sid = app.session_id(&login.access).await;
    let rotated = read_login(app.refresh(&login.refresh).await).await;
    assert_eq!(app.profile(&rotated.access).await.status(), StatusCode::OK);

    // The spent token comes back: reuse.
    assert_token_rejected(app.refresh(&login.refresh).await, "invalid_token").await;

    // The whole family is gone: the newest refresh token, and every access token of the session.
    assert_token_rejected(app.refresh(&rotated.refresh).await, "invalid_token").await;
    assert_token_rejected(app.profile(&rotated.access).await, "invalid_token").await;
    assert_token_rejected(app.profile(&login.access).await, "invalid_token").await;
    let fresh = app.login_user(&user).await;
    let sessions = app.sessions(&fresh.access).await;
    assert!(sessions.iter().all(|s| s["id"] != sid.as_str()), "{sessions:?}");
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn a_spent_refresh_token_presented_after_a_grace_window_has_passed_is_reuse() {
    let app = spawn_app_on_manual_clock(|config| config.refresh_reuse_grace_secs = 1).await;
    let (_, login) = app.new_session().await;
    let rotated = read_login(app.refresh(&login.refresh).await).await;
    app.advance(std::time::Duration::from_millis(2100));

    assert_token_rejected(app.refresh(&login.refresh).await, "invalid_token").await;
    assert_token_rejected(app.refresh(&rotated.refresh).await, "invalid_token").await;
    assert_token_rejected(app.profile(&rotated.access).await, "invalid_token").await;
}

#[tokio::test]
async fn within_the_grace_window_the_just_rotated_token_gets_the_same_new_refresh_token() {
    let app = spawn_app().await;
    assert_eq!(app.config.refresh_reuse_grace_secs, 10);
    let (_, login) = app.new_session().await;
    let winner = read_login(app.refresh(&login.refresh).await).await;
    let late = read_login(app.refresh(&login.refresh).await).await;
    assert_eq!(
        late.refresh, winner.refresh,
        "the late tab gets the winner's refresh token"
    );
    assert_eq!(app.profile(&late.access).await.status(), StatusCode::OK);
    assert_eq!(app.profile(&winner.access).await.status(), StatusCode::OK);

    // The chain goes on from that one token.
    let next = read_login(app.refresh(&winner.refresh).await).await;
    assert_ne!(next.refresh, winner.refresh);
    assert_eq!(app.sessions(&next.access).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_refreshes_of_one_token_leave_exactly_one_live_chain() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/refresh");
        let token = login.refresh.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut refresh_tokens = HashSet::new();
    let mut access_tokens = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        refresh_tokens.insert(body["refresh_token"].as_str().unwrap().to_owned());
        access_tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        refresh_tokens.len(),
        1,
        "every refresh returned the same refresh token: {refresh_tokens:?}"
    );
    let survivor = refresh_tokens.into_iter().next().unwrap();
    assert_ne!(survivor, login.refresh);
    for access in &access_tokens {
        assert_eq!(app.profile(access).await.status(), StatusCode::OK);
    }

    // The one chain continues.
    let next = read_login(app.refresh(&survivor).await).await;
    assert_ne!(next.refresh, survivor);
    assert_eq!(app.profile(&next.access).await.status(), StatusCode::OK);
    let sessions = app.sessions(&next.access).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
}

/// A reloaded page has the cookies but not the login's CSRF token: `GET /refresh/csrf` (the
/// refresh cookie reaches `/refresh/*`) gives it back, and only for a valid refresh token.
#[tokio::test]
async fn refresh_csrf_gives_a_reloaded_page_its_csrf_token_back() {
    let app = spawn_app().await;
    let (_user, login) = app.new_session().await;
    let csrf_of = |cookie: String| app.get("/refresh/csrf").header("cookie", cookie).send();

    let response = csrf_of(login.refresh_cookie()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "cache-control"), Some("no-store"));
    let body: Value = response.json().await.unwrap();
    assert_keys(&body, &["csrf_token"]);
    assert_eq!(body["csrf_token"], login.csrf.as_str());

    // With it, the cookie refresh the page needs goes through.
    let response = app
        .post("/refresh")
        .header("cookie", login.refresh_cookie())
        .header("x-csrf-token", body["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // No cookie; an access token in the refresh cookie; a tampered token: refused.
    let response = app.get("/refresh/csrf").send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let response = csrf_of(format!("refresh_token={}", login.access)).await.unwrap();
    assert_token_rejected(response, "invalid_token").await;
    let mut tampered = login.refresh.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let response = csrf_of(format!("refresh_token={tampered}")).await.unwrap();
    assert_token_rejected(response, "invalid_token").await;
    // Only a GET: it changes nothing.
    let response = app
        .post("/refresh/csrf")
        .header("cookie", login.refresh_cookie())
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}
