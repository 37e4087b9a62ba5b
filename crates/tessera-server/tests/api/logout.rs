//! POST /logout and POST /logout/all (B3): access tokens stop working at once.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_keys, assert_token_rejected, spawn_app};

#[tokio::test]
async fn logout_by_bearer_ends_the_session_at_once() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let bystander = app.login_user(&user).await;

    let response = app.post("/logout").bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "message": "Logged out" }));

    assert_token_rejected(app.profile(&login.access).await, "invalid_token").await;
    let response = app
        .get("/profile")
        .header("cookie", login.access_cookie())
        .send()
        .await
        .unwrap();
    assert_token_rejected(response, "invalid_token").await;
    assert_token_rejected(app.refresh(&login.refresh).await, "invalid_token").await;
    let response = app.post("/logout").bearer_auth(&login.access).send().await.unwrap();
    assert_token_rejected(response, "invalid_token").await;

    // The user's other session is untouched.
    assert_eq!(app.profile(&bystander.access).await.status(), StatusCode::OK);
    assert_eq!(app.sessions(&bystander.access).await.len(), 1);
}

#[tokio::test]
async fn logout_by_cookie_ends_the_session_at_once() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let response = app
        .post("/logout")
        .header("cookie", login.access_cookie())
        .header("x-csrf-token", &login.csrf)
        .header("accept-language", "zh")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "message": "已退出登录" }));

    let response = app
        .get("/profile")
        .header("cookie", login.access_cookie())
        .send()
        .await
        .unwrap();
    assert_token_rejected(response, "invalid_token").await;
    assert_token_rejected(app.profile(&login.access).await, "invalid_token").await;
    let response = app
        .post("/refresh")
        .header("cookie", login.refresh_cookie())
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_token_rejected(response, "invalid_token").await;
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let mut logins = Vec::new();
    for _ in 0..3 {
        logins.push(app.login_user(&user).await);
    }
    let (_, stranger) = app.new_session().await;

    let response = app
        .post("/logout/all")
        .bearer_auth(&logins[1].access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_keys(&body, &["message", "sessions_revoked"]);
    assert_eq!(body["message"], "Logged out of all sessions");
    assert_eq!(body["sessions_revoked"], 3);

    for login in &logins {
        assert_token_rejected(app.profile(&login.access).await, "invalid_token").await;
        assert_token_rejected(app.get_bearer("/sessions", &login.access).await, "invalid_token").await;
        assert_token_rejected(app.refresh(&login.refresh).await, "invalid_token").await;
    }

    // A new login is the only live session.
    let fresh = app.login_user(&user).await;
    let sessions = app.sessions(&fresh.access).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["id"], app.session_id(&fresh.access).await.as_str());

    // Other users are untouched.
    assert_eq!(app.profile(&stranger.access).await.status(), StatusCode::OK);
}
