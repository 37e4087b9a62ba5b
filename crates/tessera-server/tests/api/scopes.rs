//! Scopes and roles (G4): access tokens carry `roles` and `scope`, every protected route needs
//! the scope declared for it in `http::scopes::ROUTE_SCOPES`, and a credential without it gets
//! 403 `insufficient_scope` with RFC 6750's challenge.

use rand::rngs::OsRng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::jwt::{self, Claims, TokenKind};
use tessera_core::{Scope, ScopeSet};
use tessera_server::http::scopes::ROUTE_SCOPES;

use crate::helpers::{TestApp, assert_error, header, spawn_app};

/// The payload of a compact JWS, as JSON.
fn payload(token: &str) -> Value {
    let segment = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&tessera_core::b64::decode(segment).unwrap()).unwrap()
}

/// An access token signed by the app's own key for a live session of a new user, with `scope`.
async fn token_with(app: &TestApp, scope: ScopeSet) -> String {
    let (user, login) = app.new_session().await;
    let sid = app.session_id(&login.access).await;
    let now = app.state.clock.now();
    app.state
        .issue_access_scoped(user.id, &user.username, Vec::new(), scope, &sid, now)
        .unwrap()
        .token
}

/// Sends `method path` (`{id}` filled in) with the Bearer token and a JSON body.
async fn call(app: &TestApp, method: &str, path: &str, token: &str) -> reqwest::Response {
    let path = path.replace("{id}", "some-session");
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    app.client
        .request(method, app.url(&path))
        .bearer_auth(token)
        .json(&json!({ "message": "hello" }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_tokens_carry_roles_and_the_full_user_scope() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let claims = payload(&login.access);
    assert_eq!(claims["roles"], json!([]));
    assert_eq!(claims["scope"], "agent:chat profile:read sessions:write keys:write");
    // An admin's tokens carry `*`, from the next login (or refresh) on.
    assert!(app.state.users.add_role(user.id, "admin", 0).await.unwrap());
    let refreshed: Value = app.refresh(&login.refresh).await.json().await.unwrap();
    let claims = payload(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["scope"], "*");
    // The refresh token carries no scope: it is only ever exchanged, never used on a route.
    assert!(payload(&login.refresh).get("scope").is_none());
}

#[tokio::test]
async fn every_protected_route_refuses_a_token_without_its_scope() {
    let app = spawn_app().await;
    for (method, path, scope) in ROUTE_SCOPES {
        // Every other scope, but not this one (and not `*`).
        let others = Scope::ALL
            .into_iter()
            .filter(|s| s != scope && *s != Scope::All)
            .fold(ScopeSet::EMPTY, ScopeSet::with);
        let token = token_with(&app, others).await;
        let response = call(&app, method, path, &token).await;
        let (headers, body) = assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
        assert_eq!(
            header(&headers, "www-authenticate"),
            Some(format!(r#"Bearer realm="tessera", error="insufficient_scope", scope="{scope}""#).as_str()),
            "{method} {path}"
        );
        assert_eq!(body["details"]["scope"], scope.as_str(), "{method} {path}");

        // With the scope alone the route lets the request through (whatever it then answers).
        let token = token_with(&app, ScopeSet::EMPTY.with(*scope)).await;
        let status = call(&app, method, path, &token).await.status();
        assert_ne!(status, StatusCode::FORBIDDEN, "{method} {path} with {scope}");
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {scope}");
        // `*` grants it too.
        let token = token_with(&app, ScopeSet::ALL).await;
        assert_ne!(call(&app, method, path, &token).await.status(), StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn insufficient_scope_is_rendered_in_chinese_too() {
    let app = spawn_app().await;
    let token = token_with(&app, ScopeSet::EMPTY.with(Scope::AgentChat)).await;
    let response = app
        .get("/profile")
        .bearer_auth(&token)
        .header("accept-language", "zh-CN")
        .send()
        .await
        .unwrap();
    let (headers, body) = assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert_eq!(body["message"], "该凭据未授予此请求所需的权限范围");
    assert!(
        header(&headers, "www-authenticate")
            .unwrap()
            .contains(r#"scope="profile:read""#)
    );
}

#[tokio::test]
async fn a_token_from_before_scopes_gets_the_user_scope() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let sid = app.session_id(&login.access).await;
    let now = app.state.clock.now();
    // Claims as the previous version wrote them: no `roles`, no `scope`.
    let claims = Claims {
        sub: user.id.to_string(),
        user_id: user.id,
        username: user.username.clone(),
        sid,
        jti: "old-token".into(),
        iat: now,
        nbf: now,
        exp: now + 60,
        iss: app.config.issuer.clone(),
        aud: app.config.audience.clone(),
        roles: Vec::new(),
        scope: None,
    };
    let token = jwt::issue(&app.state.keys.access.load(), TokenKind::Access, &claims, &mut OsRng).unwrap();
    let raw = payload(&token);
    assert!(raw.get("scope").is_none());
    assert_eq!(app.profile(&token).await.status(), StatusCode::OK);
    let chat = call(&app, "POST", "/agent/chat", &token).await;
    assert_eq!(chat.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_bearer_protected_operation_declares_its_scope() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
    let mut protected = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|alternatives| alternatives.iter().any(|a| a.get("bearer").is_some()));
            if bearer {
                protected.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    protected.sort();
    let mut declared: Vec<(String, String)> = ROUTE_SCOPES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    declared.sort();
    assert_eq!(protected, declared);
}
