//! Health endpoints and the framework-level errors (404, 405) in the unified shape (S5).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, header, spawn_app};

#[tokio::test]
async fn healthz_and_readyz_answer_200_with_a_status() {
    let app = spawn_app().await;
    let response = app.get("/healthz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
    let response = app.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "ready", "database": "up", "redis": "disabled" })
    );
}

#[tokio::test]
async fn an_unknown_route_is_404_in_the_unified_shape() {
    let app = spawn_app().await;
    for path in ["/nope", "/profile/extra", "/sessions", "/agent"] {
        let request = if path == "/sessions" {
            app.post(path)
        } else {
            app.get(path)
        };
        let response = request.send().await.unwrap();
        if path == "/sessions" {
            // POST on a GET route is a 405, not a 404.
            assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
            continue;
        }
        let (_, body) = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
        assert_eq!(
            body,
            json!({ "error": "not_found", "message": "Not found", "details": null })
        );
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_with_an_allow_header() {
    let app = spawn_app().await;
    let cases = [
        (app.get("/login"), "POST"),
        (app.get("/register"), "POST"),
        (app.delete("/profile"), "GET"),
        (app.post("/healthz"), "GET"),
        (app.get("/sessions/some-id"), "DELETE"),
    ];
    for (request, allowed) in cases {
        let response = request.send().await.unwrap();
        let (headers, body) = assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
        let allow = header(&headers, "allow").unwrap_or_else(|| panic!("405 without Allow: {body}"));
        assert!(allow.split(',').any(|m| m.trim() == allowed), "Allow: {allow}");
        assert!(body["details"].is_null());
    }
}

#[tokio::test]
async fn framework_errors_are_in_chinese_under_accept_language_zh() {
    let app = spawn_app().await;
    let response = app.get("/nope").header("accept-language", "zh").send().await.unwrap();
    let (_, body) = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["message"], "资源不存在");

    let response = app
        .get("/login")
        .header("accept-language", "zh-TW;q=0.9, en;q=0.5")
        .send()
        .await
        .unwrap();
    let (headers, body) = assert_error(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert_eq!(body["message"], "不允许的请求方法");
    assert!(headers.get("allow").is_some());

    let padding = "p".repeat(app.config.max_body_bytes + 1);
    let response = app
        .post("/register")
        .header("accept-language", "zh")
        .json(&json!({ "padding": padding }))
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(body["message"], "请求体过大");

    let response = app
        .post("/register")
        .header("accept-language", "zh")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    assert_eq!(body["message"], "不支持的内容类型：请使用 application/json");

    // English stays the default for other languages.
    let response = app
        .get("/nope")
        .header("accept-language", "de-DE")
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["message"], "Not found");
}
