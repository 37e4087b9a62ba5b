//! `POST /introspect` (RFC 7662, G3) end to end: a service account's key with the `introspect`
//! scope asks about access tokens and API keys; everything that would not authenticate a
//! request is exactly `{"active": false}`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::app::api_keys::build_key;

use crate::helpers::{
    TestApp, assert_error, assert_not_authenticated, header, spawn_app, spawn_app_on_manual_clock, unique,
};

/// A service account with a key holding `scopes` (space-separated), stored directly.
async fn service_key(app: &TestApp, scopes: &str) -> String {
    let now = app.state.clock.now();
    let account = app
        .state
        .users
        .create_service_account(&format!("svc-{}", unique()), now)
        .await
        .unwrap();
    let scopes = tessera_core::ScopeSet::parse(scopes).unwrap();
    let created = build_key(
        &app.state.keys.api_key_hasher,
        account.id,
        "introspector",
        scopes,
        None,
        (None, None),
        now,
    );
    assert!(app.state.api_keys.create_key(created.key.clone()).await.unwrap());
    created.secret.to_string()
}

/// `POST /introspect` as `caller` with a form body.
async fn introspect(app: &TestApp, caller: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.post("/introspect")
        .bearer_auth(caller)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The 200 body of an introspection, checking it is never cached.
async fn answer(app: &TestApp, caller: &str, token: &str) -> Value {
    let response = introspect(app, caller, &[("token", token)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "cache-control"), Some("no-store"));
    response.json().await.unwrap()
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&tessera_core::b64::decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn an_active_access_token_is_described() {
    let app = spawn_app().await;
    let caller = service_key(&app, "introspect").await;
    let (user, login) = app.new_session().await;

    let body = answer(&app, &caller, &login.access).await;

    let claims = payload(&login.access);
    assert_eq!(
        body,
        json!({
            "active": true,
            "sub": user.id.to_string(),
            "scope": claims["scope"],
            "exp": claims["exp"],
            "token_type": "access_token",
        })
    );
    // The hint is accepted and changes nothing.
    let hinted = introspect(
        &app,
        &caller,
        &[("token", &login.access), ("token_type_hint", "api_key")],
    )
    .await;
    assert_eq!(hinted.json::<Value>().await.unwrap(), body);
}

#[tokio::test]
async fn an_active_key_is_described_and_a_revoked_one_is_inactive() {
    let app = spawn_app().await;
    let caller = service_key(&app, "introspect").await;
    let (user, login) = app.new_session().await;
    let created: Value = app
        .post("/api-keys")
        .bearer_auth(&login.access)
        .json(&json!({ "name": "ci", "scopes": ["profile:read"], "expires_in": 3600 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();

    let body = answer(&app, &caller, key).await;
    let exp = body["exp"].as_i64().unwrap();
    assert!((exp - (app.state.clock.now() + 3600)).abs() <= 5, "{body}");
    assert_eq!(
        body,
        json!({
            "active": true,
            "sub": user.id.to_string(),
            "scope": "profile:read",
            "exp": exp,
            "client_id": id,
            "token_type": "api_key",
        })
    );
    // Introspection is not a use of the key.
    app.state.flush_key_usage().await;
    let stored = app.state.api_keys.find_key(user.id, id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, None);

    let revoked = app
        .delete(&format!("/api-keys/{id}"))
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(answer(&app, &caller, key).await, json!({ "active": false }));
}

#[tokio::test]
async fn an_expired_access_token_is_inactive() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let caller = service_key(&app, "introspect").await;
    let (_, login) = app.new_session().await;
    assert_eq!(answer(&app, &caller, &login.access).await["active"], true);

    let ttl = app.config.access_ttl_secs + app.config.leeway_secs + 1;
    app.advance(Duration::from_secs(ttl as u64));

    assert_eq!(answer(&app, &caller, &login.access).await, json!({ "active": false }));
}

#[tokio::test]
async fn junk_refresh_tokens_and_logged_out_tokens_are_inactive() {
    let app = spawn_app().await;
    let caller = service_key(&app, "introspect").await;
    let (_, login) = app.new_session().await;
    let mut typo = caller.clone();
    typo.replace_range(10..11, if &caller[10..11] == "a" { "b" } else { "a" });
    let unknown = service_key(&app, "profile:read").await;
    let mut tampered = login.access.clone();
    tampered.push('x');
    let junk = [
        "",
        "junk",
        "tsk_",
        typo.as_str(),
        tampered.as_str(),
        login.refresh.as_str(),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    ];
    for token in junk {
        assert_eq!(
            answer(&app, &caller, token).await,
            json!({ "active": false }),
            "{token:?}"
        );
    }
    // A key of another account works until its account is disabled.
    assert_eq!(answer(&app, &caller, &unknown).await["active"], true);
    // Logged out: the access token is revoked.
    let out = app.post("/logout").bearer_auth(&login.access).send().await.unwrap();
    assert!(out.status().is_success());
    assert_eq!(answer(&app, &caller, &login.access).await, json!({ "active": false }));
}

#[tokio::test]
async fn callers_without_the_introspect_scope_are_refused() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let subject = login.access.clone();
    // No credential: 401.
    let anonymous = app
        .post("/introspect")
        .form(&[("token", subject.as_str())])
        .send()
        .await
        .unwrap();
    assert_not_authenticated(anonymous).await;
    // A user's access token and a user's key: 403 insufficient_scope.
    let response = introspect(&app, &login.access, &[("token", &subject)]).await;
    let (headers, _) = assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert!(
        header(&headers, "www-authenticate")
            .unwrap()
            .contains(r#"scope="introspect""#)
    );
    let key = service_key(&app, "profile:read").await;
    let response = introspect(&app, &key, &[("token", &subject)]).await;
    assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    // A user cannot give their own key the scope.
    let refused = app
        .post("/api-keys")
        .bearer_auth(&login.access)
        .json(&json!({ "name": "x", "scopes": ["introspect"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A missing token is a bad request, not an answer.
    let caller = service_key(&app, "introspect").await;
    let response = introspect(&app, &caller, &[("token_type_hint", "access_token")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
