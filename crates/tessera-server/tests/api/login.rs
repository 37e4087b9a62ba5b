//! POST /login: JSON by email or username, form-encoded, and every error it can return.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    BARE_CHALLENGE, PASSWORD, assert_error, assert_field_error, assert_keys, header, read_login, spawn_app,
};

/// The login body contract: message, both tokens, bearer, expires_in, csrf_token.
fn assert_login_body(body: &Value) {
    assert_keys(
        body,
        &[
            "message",
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
            "csrf_token",
        ],
    );
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    for field in ["access_token", "refresh_token"] {
        let token = body[field].as_str().unwrap();
        assert_eq!(token.split('.').count(), 3, "{field} is a JWS: {token}");
    }
    assert!(body["csrf_token"].as_str().is_some_and(|t| t.len() >= 16), "{body}");
}

#[tokio::test]
async fn logging_in_with_json_by_email_returns_tokens_a_csrf_token_and_cookies() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let response = app.login(&user.email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "cache-control"), Some("no-store"));
    assert_eq!(header(response.headers(), "pragma"), Some("no-cache"));
    let login = read_login(response).await;
    assert_login_body(&login.body);
    assert_eq!(login.set_cookies.len(), 2, "{:?}", login.set_cookies);

    // The access token works and names the user.
    let profile = app.profile(&login.access).await;
    assert_eq!(profile.status(), StatusCode::OK);
    let profile: Value = profile.json().await.unwrap();
    assert_eq!(profile["user_id"], user.id);
    assert_eq!(profile["username"], user.username.as_str());
}

#[tokio::test]
async fn logging_in_with_json_by_username_works() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let response = app
        .post("/login")
        .json(&json!({ "username": user.username.to_uppercase(), "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let login = read_login(response).await;
    assert_login_body(&login.body);
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logging_in_with_a_form_encoded_username_and_password_works() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    for name in [user.username.as_str(), user.email.as_str()] {
        let response = app
            .post("/login")
            .form(&[("username", name), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        let login = read_login(response).await;
        assert_login_body(&login.body);
        assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_identical_401() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let wrong_password = app.login(&user.email, "not the right password").await;
    let unknown_user = app.login("nobody@example.com", PASSWORD).await;
    let unknown_name = app
        .post("/login")
        .form(&[("username", "nobody"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();

    let mut bodies = Vec::new();
    for response in [wrong_password, unknown_user, unknown_name] {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(response.headers(), "www-authenticate"), Some(BARE_CHALLENGE));
        assert!(response.headers().get("set-cookie").is_none());
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1], "wrong password and unknown user must not differ");
    assert_eq!(bodies[0], bodies[2]);
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(
        body,
        json!({ "error": "invalid_credentials", "message": "Invalid email, username or password", "details": null })
    );
}

#[tokio::test]
async fn an_api_key_in_the_query_string_is_refused_with_400() {
    let app = spawn_app().await;
    let key = tessera_core::apikey::generate(&mut rand::rngs::OsRng);
    for query in [
        format!("/profile?api_key={}", key.as_str()),
        format!("/profile?anything={}", key.as_str()),
        format!("/agent/chat?x=Bearer%20{}", key.as_str()),
    ] {
        let response = app.get(&query).send().await.unwrap();
        let (_, body) = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
        assert_eq!(
            body["message"], "Credentials must be sent in the request body, never in the URL",
            "{query}"
        );
    }
}

#[tokio::test]
async fn credentials_in_the_query_string_are_refused_with_400() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let query = format!("/login?username={}&password={PASSWORD}", user.username);
    // Even with valid credentials in the body too: the URL already leaked them.
    let response = app
        .post(&query)
        .json(&json!({ "username": user.username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let (headers, body) = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(headers.get("set-cookie").is_none());
    assert_eq!(
        body["message"],
        "Credentials must be sent in the request body, never in the URL"
    );

    let response = app
        .post("/login?Password=x")
        .form(&[("username", "a"), ("password", "b")])
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;

    // Tokens in URLs are refused the same way, on any route.
    let login = app.login_user(&user).await;
    let response = app
        .get(&format!("/profile?access_token={}", login.access))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn login_without_a_password_or_a_login_name_is_a_422() {
    let app = spawn_app().await;
    let response = app.post("/login").json(&json!({})).send().await.unwrap();
    let body = assert_field_error(response, "email", "missing").await;
    assert!(
        body["details"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "password" && e["code"] == "missing"),
        "{body}"
    );

    let response = app
        .post("/login")
        .json(&json!({ "email": "a@example.com" }))
        .send()
        .await
        .unwrap();
    assert_field_error(response, "password", "missing").await;

    let response = app
        .post("/login")
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_field_error(response, "email", "missing").await;

    let response = app
        .post("/login")
        .form(&[("username", ""), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_field_error(response, "email", "missing").await;
}

#[tokio::test]
async fn login_with_an_unsupported_body_or_malformed_json_is_refused() {
    let app = spawn_app().await;
    let response = app
        .post("/login")
        .header("content-type", "text/plain")
        .body("user:pass")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    let response = app
        .post("/login")
        .header("content-type", "application/json")
        .body("{\"email\"")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn a_disabled_account_cannot_log_in() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    assert!(app.state.users.set_disabled(user.id, Some(1)).await.unwrap());
    let response = app.login(&user.email, PASSWORD).await;
    let (headers, _) = assert_error(response, StatusCode::FORBIDDEN, "account_disabled").await;
    assert!(headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn the_login_message_is_in_chinese_under_accept_language_zh() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let response = app
        .post("/login")
        .header("accept-language", "zh")
        .json(&json!({ "email": user.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let login = read_login(response).await;
    assert_eq!(login.body["message"], "登录成功");

    let response = app
        .post("/login")
        .header("accept-language", "zh-CN")
        .json(&json!({ "email": user.email, "password": "wrong password!" }))
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(body["message"], "邮箱、用户名或密码错误");
}
