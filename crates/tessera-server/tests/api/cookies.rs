//! The token cookies (S1): names and attributes exactly, clearing on logout, and the three
//! TOKEN_DELIVERY modes.

use reqwest::StatusCode;
use serde_json::Value;
use tessera_server::config::TokenDelivery;

use crate::helpers::{assert_keys, find_cookie, read_login, set_cookies, spawn_app, spawn_app_with};

#[tokio::test]
async fn login_sets_both_cookies_with_the_exact_attributes() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    assert_eq!(login.set_cookies.len(), 2, "{:?}", login.set_cookies);
    assert_eq!(
        find_cookie(&login.set_cookies, "access_token"),
        Some(
            format!(
                "access_token={}; HttpOnly; SameSite=Lax; Path=/; Max-Age=900",
                login.access
            )
            .as_str()
        )
    );
    assert_eq!(
        find_cookie(&login.set_cookies, "refresh_token"),
        Some(
            format!(
                "refresh_token={}; HttpOnly; SameSite=Lax; Path=/refresh; Max-Age=604800",
                login.refresh
            )
            .as_str()
        )
    );
    // Under TOKEN_DELIVERY=both the cookies carry the same tokens as the body.
    assert_eq!(login.body["access_token"], login.access.as_str());
    assert_eq!(login.body["refresh_token"], login.refresh.as_str());
}

#[tokio::test]
async fn cookies_are_secure_when_cookie_secure_is_on() {
    let app = spawn_app_with(|config| config.cookie_secure = true).await;
    let (_, login) = app.new_session().await;
    assert_eq!(
        find_cookie(&login.set_cookies, "access_token"),
        Some(
            format!(
                "access_token={}; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=900",
                login.access
            )
            .as_str()
        )
    );
    assert_eq!(
        find_cookie(&login.set_cookies, "refresh_token"),
        Some(
            format!(
                "refresh_token={}; HttpOnly; Secure; SameSite=Lax; Path=/refresh; Max-Age=604800",
                login.refresh
            )
            .as_str()
        )
    );
    let logout = app.post("/logout").bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let cleared = set_cookies(logout.headers());
    assert_eq!(
        cleared,
        [
            "access_token=; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=0",
            "refresh_token=; HttpOnly; Secure; SameSite=Lax; Path=/refresh; Max-Age=0",
        ]
    );
}

#[tokio::test]
async fn refresh_sets_new_cookies_with_the_same_attributes() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let refreshed = read_login(app.refresh(&login.refresh).await).await;
    assert_ne!(refreshed.refresh, login.refresh);
    assert_eq!(
        find_cookie(&refreshed.set_cookies, "access_token"),
        Some(
            format!(
                "access_token={}; HttpOnly; SameSite=Lax; Path=/; Max-Age=900",
                refreshed.access
            )
            .as_str()
        )
    );
    assert_eq!(
        find_cookie(&refreshed.set_cookies, "refresh_token"),
        Some(
            format!(
                "refresh_token={}; HttpOnly; SameSite=Lax; Path=/refresh; Max-Age=604800",
                refreshed.refresh
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn logout_clears_both_cookies() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let response = app
        .post("/logout")
        .header("cookie", login.access_cookie())
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        set_cookies(response.headers()),
        [
            "access_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0",
            "refresh_token=; HttpOnly; SameSite=Lax; Path=/refresh; Max-Age=0",
        ]
    );

    let (_, other) = app.new_session().await;
    let response = app.post("/logout/all").bearer_auth(&other.access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = set_cookies(response.headers());
    assert!(cleared.iter().all(|c| c.ends_with("; Max-Age=0")), "{cleared:?}");
    assert!(find_cookie(&cleared, "access_token").is_some() && find_cookie(&cleared, "refresh_token").is_some());
}

#[tokio::test]
async fn cookie_delivery_keeps_the_tokens_out_of_the_body() {
    let app = spawn_app_with(|config| config.token_delivery = TokenDelivery::Cookie).await;
    let user = app.register_user().await;
    let response = app.login(&user.email, &user.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    let login = read_login(response).await;
    assert_keys(&login.body, &["message", "token_type", "expires_in", "csrf_token"]);
    assert_eq!(login.set_cookies.len(), 2);

    // The cookie authenticates, and the refresh cookie refreshes (with the CSRF header).
    let profile = app
        .get("/profile")
        .header("cookie", login.access_cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), StatusCode::OK);
    let response = app
        .post("/refresh")
        .header("cookie", login.refresh_cookie())
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    let refreshed = read_login(response).await;
    assert_keys(&refreshed.body, &["message", "token_type", "expires_in", "csrf_token"]);
    assert_ne!(refreshed.refresh, login.refresh);
}

#[tokio::test]
async fn body_delivery_sets_no_cookies() {
    let app = spawn_app_with(|config| config.token_delivery = TokenDelivery::Body).await;
    let user = app.register_user().await;
    let response = app.login(&user.email, &user.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_keys(
        &body,
        &[
            "message",
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
            "csrf_token",
        ],
    );

    let response = app.refresh(body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "{:?}",
        response.headers()
    );
    let refreshed: Value = response.json().await.unwrap();
    assert!(refreshed["access_token"].is_string() && refreshed["refresh_token"].is_string());
}
