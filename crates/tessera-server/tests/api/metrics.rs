//! `GET /metrics` (S10): the seed's four metrics and the HTTP metrics, per instance.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_logins_refreshes_sessions_and_requests_by_matched_route() {
    let app = spawn_app().await;
    let (_user, login) = app.new_session().await;
    let wrong = app.login("nobody@example.com", "wrong password here").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&login.refresh).await.status(), StatusCode::OK);
    // A path with an id: the label must be the route template, not the id.
    let gone = app
        .delete("/sessions/not-a-real-session-id")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    assert_eq!(
        sample(&text, "auth_login_attempts_total{status=\"success\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "auth_login_attempts_total{status=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "auth_token_refresh_total"), Some(1.0));
    assert_eq!(sample(&text, "auth_active_tokens"), Some(1.0));
    assert_eq!(sample(&text, "auth_login_duration_seconds_count"), Some(2.0));
    assert!(
        text.contains("http_requests_total{method=\"DELETE\",route=\"/sessions/{id}\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("not-a-real-session-id"),
        "raw paths must never become labels"
    );
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    assert_eq!(sample(&text, "tessera_backend_up{backend=\"database\"}"), Some(1.0));
}

#[tokio::test]
async fn logout_lowers_the_active_sessions_gauge() {
    let app = spawn_app().await;
    let (_user, first) = app.new_session().await;
    let (_other, _second) = app.new_session().await;
    let before = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&before, "auth_active_tokens"), Some(2.0));
    let logout = app.post("/logout").bearer_auth(&first.access).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    let after = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&after, "auth_active_tokens"), Some(1.0));
}

/// Labels come from fixed sets: a made-up method is counted as `other` (each distinct token
/// would otherwise be a new time series), and every known label value exists at zero before
/// its first event, so alert rules see 0 rather than no data.
#[tokio::test]
async fn label_values_are_bounded_and_declared_from_the_start() {
    let app = spawn_app().await;
    let before = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    for series in [
        r#"auth_rate_limited_total{route="login"} 0"#,
        r#"auth_rate_limited_total{route="login_account"} 0"#,
        r#"auth_rate_limited_total{route="register"} 0"#,
        r#"auth_rate_limited_total{route="api"} 0"#,
        r#"auth_login_attempts_total{status="failure"} 0"#,
        r#"auth_token_verifications_total{result="revoked"} 0"#,
        "auth_password_hash_queue_capacity 32",
    ] {
        assert!(before.lines().any(|line| line == series), "{series} missing:\n{before}");
    }

    let method = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    for _ in 0..3 {
        let response = app
            .client
            .request(method.clone(), app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(!after.contains("FROBNICATE"), "{after}");
    assert_eq!(
        sample(
            &after,
            r#"http_requests_total{method="other",route="/healthz",status="405"}"#
        ),
        Some(3.0),
        "{after}"
    );
}
