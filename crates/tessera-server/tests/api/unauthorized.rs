//! 401 semantics (S5, RFC 6750): no token, a bad token, an expired token, the wrong kind of token.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    TestApp, assert_error, assert_not_authenticated, assert_token_rejected, header, spawn_app,
    spawn_app_on_manual_clock,
};

/// Every route that needs an access token.
const PROTECTED: [(&str, &str); 7] = [
    ("GET", "/profile"),
    ("GET", "/profile/full"),
    ("GET", "/sessions"),
    ("DELETE", "/sessions/some-session-id"),
    ("POST", "/agent/chat"),
    ("POST", "/logout"),
    ("POST", "/logout/all"),
];

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    cookie: Option<&str>,
) -> reqwest::Response {
    let method: Method = method.parse().unwrap();
    let mut request = app
        .client
        .request(method, app.url(path))
        .json(&json!({ "message": "hi" }));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_request_without_a_token_is_401_not_authenticated_with_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    for (method, path) in PROTECTED {
        let response = call(&app, method, path, None, None).await;
        let challenge = header(response.headers(), "www-authenticate")
            .unwrap_or_default()
            .to_owned();
        assert!(!challenge.contains("error="), "{method} {path}: {challenge}");
        assert_not_authenticated(response).await;
    }
    // An Authorization header of another scheme, or an empty Bearer, is no token either.
    for authorization in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer"] {
        let response = call(&app, "GET", "/profile", Some(authorization), None).await;
        assert_not_authenticated(response).await;
    }
    // POST /refresh with neither a body nor the cookie.
    let response = app.post("/refresh").send().await.unwrap();
    assert_not_authenticated(response).await;
}

#[tokio::test]
async fn an_invalid_or_tampered_token_is_401_invalid_token_with_an_rfc_6750_challenge() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let (_, other) = app.new_session().await;
    let parts: Vec<&str> = login.access.split('.').collect();
    let other_parts: Vec<&str> = other.access.split('.').collect();

    // One character of the signature changed (in the middle, so real bits change).
    let mut signature: Vec<char> = parts[2].chars().collect();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == 'A' { 'B' } else { 'A' };
    let flipped: String = signature.into_iter().collect();
    let tampered_signature = format!("{}.{}.{flipped}", parts[0], parts[1]);
    // Another user's claims under this token's signature.
    let swapped_payload = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    // `alg: none`, unsigned.
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);

    for token in [
        tampered_signature.as_str(),
        swapped_payload.as_str(),
        unsigned.as_str(),
        "garbage",
        "a.b.c",
    ] {
        for (method, path) in PROTECTED {
            let response = call(&app, method, path, Some(&format!("Bearer {token}")), None).await;
            assert_token_rejected(response, "invalid_token").await;
        }
        // By cookie too.
        let response = call(&app, "GET", "/profile", None, Some(&format!("access_token={token}"))).await;
        assert_token_rejected(response, "invalid_token").await;
    }
    // The genuine token still works.
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_expired_token_is_401_token_expired() {
    let app = spawn_app_on_manual_clock(|config| {
        config.access_ttl_secs = 1;
        config.leeway_secs = 0;
    })
    .await;
    let (_, login) = app.new_session().await;
    assert_eq!(login.body["expires_in"], 1);
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
    app.advance(Duration::from_millis(2100));

    let body = assert_token_rejected(app.profile(&login.access).await, "token_expired").await;
    assert_eq!(body["message"], "Token has expired");
    let response = app
        .get("/profile")
        .header("cookie", login.access_cookie())
        .send()
        .await
        .unwrap();
    let (headers, _) = assert_error(response, StatusCode::UNAUTHORIZED, "token_expired").await;
    assert!(
        header(&headers, "www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );

    // The refresh token outlives the access token: refreshing gives a working access token.
    let response = app.refresh(&login.refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: serde_json::Value = response.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(app.profile(access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token_nor_the_other_way_round() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    for (method, path) in PROTECTED {
        let response = call(&app, method, path, Some(&format!("Bearer {}", login.refresh)), None).await;
        assert_token_rejected(response, "invalid_token").await;
    }
    let response = app
        .get("/profile")
        .header("cookie", format!("access_token={}", login.refresh))
        .send()
        .await
        .unwrap();
    assert_token_rejected(response, "invalid_token").await;

    // An access token presented for refresh is refused, and does not disturb the session.
    assert_token_rejected(app.refresh(&login.access).await, "invalid_token").await;
    assert_eq!(app.refresh(&login.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unauthorized_messages_are_in_chinese_under_accept_language_zh() {
    let app = spawn_app().await;
    let response = app
        .get("/profile")
        .header("accept-language", "zh")
        .send()
        .await
        .unwrap();
    let body = assert_not_authenticated(response).await;
    assert_eq!(body["message"], "需要身份验证");

    let response = app
        .get("/profile")
        .header("accept-language", "zh-CN")
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    let body = assert_token_rejected(response, "invalid_token").await;
    assert_eq!(body["message"], "无效的令牌");
}
