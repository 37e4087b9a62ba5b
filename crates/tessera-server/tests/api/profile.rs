//! GET /profile (claims only, S9) and GET /profile/full (one lookup; 404 once the user is gone).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, assert_keys, is_rfc3339_utc, spawn_app};

#[tokio::test]
async fn profile_answers_with_the_user_and_session_from_the_token_claims() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let response = app.profile(&login.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_keys(&body, &["user_id", "username", "session_id"]);
    assert_eq!(body["user_id"], user.id);
    assert_eq!(body["username"], user.username.as_str());
    let sessions = app.sessions(&login.access).await;
    assert_eq!(body["session_id"], sessions[0]["id"]);
}

#[tokio::test]
async fn full_profile_returns_the_account_record() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    let response = app.get_bearer("/profile/full", &login.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_keys(&body, &["id", "email", "email_verified", "username", "created_at"]);
    assert_eq!(body["id"], user.id);
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["username"], user.username.as_str());
    assert!(body["created_at"].as_str().is_some_and(is_rfc3339_utc), "{body}");
}

#[tokio::test]
async fn full_profile_is_404_not_found_after_the_user_is_deleted() {
    let app = spawn_app().await;
    let (user, login) = app.new_session().await;
    assert!(app.state.users.delete(user.id).await.unwrap());

    let response = app.get_bearer("/profile/full", &login.access).await;
    let (_, body) = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert!(body["details"].is_null());
    // /profile reads the claims only, so it still answers until the token expires (S9).
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
}
