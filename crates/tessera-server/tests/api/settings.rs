//! Account settings (C1): changing the password ends every other session at once, keeps this
//! one and the API keys, needs the current password (limited like a login) and a session.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, assert_field_error, assert_token_rejected, spawn_app, spawn_app_with};

const NEW_PASSWORD: &str = "a whole new passphrase";

async fn change(app: &TestApp, access: &str, current: &str, new: &str) -> reqwest::Response {
    app.post("/account/password")
        .bearer_auth(access)
        .json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_keeps_this_one_and_the_keys() {
    let app = spawn_app().await;
    let (user, here) = app.new_session().await;
    let elsewhere = app.login_user(&user).await;
    let key: Value = app
        .post("/api-keys")
        .bearer_auth(&here.access)
        .json(&json!({ "name": "ci", "scopes": ["profile:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();

    let response = change(&app, &here.access, &user.password, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sessions_revoked"], 1);
    assert_eq!(body["message"], "Password changed");

    // The other session is over, its access token at once and its refresh token too.
    assert_token_rejected(app.profile(&elsewhere.access).await, "invalid_token").await;
    assert_eq!(app.refresh(&elsewhere.refresh).await.status(), StatusCode::UNAUTHORIZED);
    // This one goes on, refresh included; the key works.
    assert_eq!(app.profile(&here.access).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(&here.refresh).await.status(), StatusCode::OK);
    assert_eq!(app.profile(&key).await.status(), StatusCode::OK);
    // The old password is gone, the new one signs in.
    assert_eq!(
        app.login(&user.email, &user.password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_current_password_is_required_and_guessing_it_is_limited_like_a_login() {
    let app = spawn_app_with(|config| {
        config.rate_limit_login_account = "3/minute".parse().unwrap();
    })
    .await;
    let (user, login) = app.new_session().await;
    // The session's own login used one attempt of the account's budget; two wrong guesses
    // use the rest.
    for _ in 0..2 {
        let response = change(&app, &login.access, "not my password", NEW_PASSWORD).await;
        assert_field_error(response, "current_password", "incorrect_password").await;
    }
    let response = change(&app, &login.access, &user.password, NEW_PASSWORD).await;
    let (headers, _) = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(headers.get("retry-after").is_some());
    // Nothing changed.
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_new_password_follows_the_policy_and_the_fields_are_required() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let response = change(&app, &login.access, &user.password, "short").await;
    assert_field_error(response, "new_password", "password_too_short").await;
    let response = change(&app, &login.access, &user.password, &user.username).await;
    let body = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error")
        .await
        .1;
    assert!(body.to_string().contains("new_password"), "{body}");
    let response = app
        .post("/account/password")
        .bearer_auth(&login.access)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body = assert_field_error(response, "current_password", "missing").await;
    assert!(body.to_string().contains("new_password"), "{body}");
    // In Chinese too.
    let response = app
        .post("/account/password")
        .bearer_auth(&login.access)
        .header("accept-language", "zh-CN")
        .json(&json!({ "current_password": "wrong one", "new_password": NEW_PASSWORD }))
        .send()
        .await
        .unwrap();
    let body = assert_field_error(response, "current_password", "incorrect_password").await;
    assert!(body.to_string().contains("密码不正确"), "{body}");
    // The password is still the old one.
    assert_eq!(app.login(&user.email, &user.password).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_api_key_or_a_cookie_without_csrf_cannot_change_the_password() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let key: Value = app
        .post("/api-keys")
        .bearer_auth(&login.access)
        .json(&json!({ "name": "all", "scopes": ["sessions:write"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = change(&app, key["key"].as_str().unwrap(), &user.password, NEW_PASSWORD).await;
    assert_error(response, StatusCode::FORBIDDEN, "session_required").await;

    let response = app
        .post("/account/password")
        .header("cookie", login.access_cookie())
        .json(&json!({ "current_password": user.password, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    let response = app
        .post("/account/password")
        .header("cookie", login.access_cookie())
        .header("x-csrf-token", &login.csrf)
        .json(&json!({ "current_password": user.password, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.post("/account/password").json(&json!({})).send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
}

async fn delete_account(app: &TestApp, access: &str, password: &str) -> reqwest::Response {
    app.delete("/account")
        .bearer_auth(access)
        .json(&json!({ "password": password }))
        .send()
        .await
        .unwrap()
}

async fn create_key(app: &TestApp, access: &str) -> String {
    let created: Value = app
        .post("/api-keys")
        .bearer_auth(access)
        .json(&json!({ "name": "k", "scopes": ["profile:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn deleting_the_account_ends_every_credential_and_frees_the_address() {
    let app = spawn_app().await;
    let (user, here) = app.new_session().await;
    let elsewhere = app.login_user(&user).await;
    let key = create_key(&app, &here.access).await;
    assert_eq!(app.profile(&key).await.status(), StatusCode::OK);

    // The wrong password deletes nothing; an API key may not delete.
    let response = delete_account(&app, &here.access, "not my password").await;
    assert_field_error(response, "password", "incorrect_password").await;
    // (This key lacks sessions:write; one that has it gets `session_required`, as for the
    // password change.)
    let response = delete_account(&app, &key, &user.password).await;
    assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert_eq!(app.profile(&here.access).await.status(), StatusCode::OK);

    let response = delete_account(&app, &here.access, &user.password).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = crate::helpers::set_cookies(response.headers());
    assert!(cleared.iter().any(|c| c.starts_with("access_token=;")), "{cleared:?}");

    for access in [&here.access, &elsewhere.access] {
        assert_token_rejected(app.profile(access).await, "invalid_token").await;
    }
    assert_eq!(app.profile(&key).await.status(), StatusCode::UNAUTHORIZED);
    for refresh in [&here.refresh, &elsewhere.refresh] {
        assert_eq!(app.refresh(refresh).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.login(&user.email, &user.password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(app.state.users.find_by_id(user.id).await.unwrap().is_none());
    // The address and the name can be registered again, as a new account.
    let response = app.register(&user.email, &user.username, &user.password).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_ne!(body["user_id"], user.id);
}

/// Without Redis, another instance learns of the deletion from the database poll (the ids
/// left in `deleted_credentials`), not from a message.
#[tokio::test]
async fn another_instance_refuses_a_deleted_accounts_credentials_without_redis() {
    let Some(cluster) = crate::services::cluster_without_redis(&[]).await else {
        return;
    };
    let (a, b) = (&cluster.a, &cluster.b);
    let (user, login) = a.new_session().await;
    let key = create_key(a, &login.access).await;
    // B has verified (and cached) both before the deletion.
    assert_eq!(b.profile(&login.access).await.status(), StatusCode::OK);
    assert_eq!(b.profile(&key).await.status(), StatusCode::OK);
    let response = delete_account(a, &login.access, &user.password).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for credential in [&login.access, &key] {
        let started = std::time::Instant::now();
        while b.profile(credential).await.status() == StatusCode::OK {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "B still accepts it"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(b.profile(credential).await.status(), StatusCode::UNAUTHORIZED);
    }
}
