//! GET /sessions and DELETE /sessions/{id} (B3).

use reqwest::StatusCode;

use crate::helpers::{USER_AGENT, assert_error, assert_keys, assert_token_rejected, is_rfc3339_utc, spawn_app};

#[tokio::test]
async fn sessions_lists_every_live_session_and_flags_the_current_one() {
    let app = spawn_app().await;
    let (user, first) = app.new_session().await;
    let second = app.login_user(&user).await;
    let first_sid = app.session_id(&first.access).await;
    let second_sid = app.session_id(&second.access).await;

    let response = app.get_bearer("/sessions", &first.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_keys(&body, &["sessions"]);
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{body}");
    for session in sessions {
        assert_keys(
            session,
            &[
                "id",
                "created_at",
                "last_used_at",
                "ip_address",
                "user_agent",
                "current",
            ],
        );
        assert!(session["created_at"].as_str().is_some_and(is_rfc3339_utc), "{session}");
        assert!(
            session["last_used_at"].as_str().is_some_and(is_rfc3339_utc),
            "{session}"
        );
        assert_eq!(session["ip_address"], "127.0.0.1");
        assert_eq!(session["user_agent"], USER_AGENT);
    }
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{body}");
    assert_eq!(current[0]["id"], first_sid.as_str());
    assert!(
        sessions
            .iter()
            .any(|s| s["id"] == second_sid.as_str() && s["current"] == false)
    );

    // From the other session, the other one is current.
    let sessions = app.sessions(&second.access).await;
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], second_sid.as_str());

    // Another user's sessions are not listed.
    let (_, stranger) = app.new_session().await;
    assert_eq!(app.sessions(&stranger.access).await.len(), 1);
}

#[tokio::test]
async fn deleting_another_of_ones_own_sessions_is_204_and_ends_it() {
    let app = spawn_app().await;
    let (user, mine) = app.new_session().await;
    let other = app.login_user(&user).await;
    let other_sid = app.session_id(&other.access).await;

    let response = app
        .delete(&format!("/sessions/{other_sid}"))
        .bearer_auth(&mine.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // Ending another session leaves this client's cookies alone.
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.text().await.unwrap().is_empty());

    assert_token_rejected(app.profile(&other.access).await, "invalid_token").await;
    assert_token_rejected(app.refresh(&other.refresh).await, "invalid_token").await;
    let sessions = app.sessions(&mine.access).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);

    // Deleting it again: it is no longer live.
    let response = app
        .delete(&format!("/sessions/{other_sid}"))
        .bearer_auth(&mine.access)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn deleting_the_current_session_ends_it_and_clears_the_cookies() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let sid = app.session_id(&login.access).await;
    let response = app
        .delete(&format!("/sessions/{sid}"))
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = crate::helpers::set_cookies(response.headers());
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(cleared.iter().all(|c| c.ends_with("Max-Age=0")), "{cleared:?}");
    assert_token_rejected(app.profile(&login.access).await, "invalid_token").await;
}

#[tokio::test]
async fn deleting_an_unknown_session_is_404() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let long = "x".repeat(200);
    for id in ["no-such-session", "AAAAAAAAAAAAAAAAAAAAAA", long.as_str()] {
        let response = app
            .delete(&format!("/sessions/{id}"))
            .bearer_auth(&login.access)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_another_users_session_is_404_and_leaves_it_alive() {
    let app = spawn_app().await;
    let (_, mine) = app.new_session().await;
    let (_, theirs) = app.new_session().await;
    let their_sid = app.session_id(&theirs.access).await;

    let response = app
        .delete(&format!("/sessions/{their_sid}"))
        .bearer_auth(&mine.access)
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert!(body["details"].is_null());

    assert_eq!(app.profile(&theirs.access).await.status(), StatusCode::OK);
    assert_eq!(app.sessions(&theirs.access).await.len(), 1);
    assert_eq!(app.refresh(&theirs.refresh).await.status(), StatusCode::OK);
}
