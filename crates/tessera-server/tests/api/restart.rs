//! Restarts (B1, B3): tokens survive a restart on the same data directory, and logouts stay
//! logged out (the denylist is reloaded from the database).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_token_rejected, read_login, spawn_app};

#[tokio::test]
async fn tokens_and_logouts_survive_a_restart() {
    let app = spawn_app().await;
    let (user, kept) = app.new_session().await;
    let logged_out = app.login_user(&user).await;
    let ended = app.login_user(&user).await;
    let ended_sid = app.session_id(&ended.access).await;

    let response = app
        .post("/logout")
        .bearer_auth(&logged_out.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .delete(&format!("/sessions/{ended_sid}"))
        .bearer_auth(&kept.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let app = app.restart().await;

    // Issued before the restart, still valid after it: the keys were persisted.
    let response = app.profile(&kept.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["user_id"], user.id);
    let response = app
        .get("/profile")
        .header("cookie", kept.access_cookie())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The CSRF key survived too.
    let response = app
        .post("/agent/chat")
        .header("cookie", kept.access_cookie())
        .header("x-csrf-token", &kept.csrf)
        .json(&serde_json::json!({ "message": "still here" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Ended before the restart, still ended after it.
    assert_token_rejected(app.profile(&logged_out.access).await, "invalid_token").await;
    assert_token_rejected(app.profile(&ended.access).await, "invalid_token").await;
    assert_token_rejected(app.refresh(&logged_out.refresh).await, "invalid_token").await;
    assert_eq!(app.sessions(&kept.access).await.len(), 1);

    // And the surviving refresh token still rotates.
    let refreshed = read_login(app.refresh(&kept.refresh).await).await;
    assert_eq!(app.profile(&refreshed.access).await.status(), StatusCode::OK);
}
