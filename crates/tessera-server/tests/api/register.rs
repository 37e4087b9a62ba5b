//! POST /register: the 201 shape and every error it can return.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, assert_error, assert_field_error, assert_keys, header, spawn_app, unique};

#[tokio::test]
async fn registering_returns_201_with_the_id_email_and_username() {
    let app = spawn_app().await;
    let response = app.register("Alice@Example.com", "alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(header(response.headers(), "content-type").is_some_and(|ct| ct.starts_with("application/json")));
    let body: Value = response.json().await.unwrap();
    assert_keys(&body, &["user_id", "email", "username"]);
    assert!(body["user_id"].as_i64().is_some_and(|id| id > 0), "{body}");
    assert_eq!(body["email"], "Alice@Example.com");
    assert_eq!(body["username"], "alice");

    // The new account can log in right away.
    let login = app.login("Alice@Example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn registering_an_email_that_is_taken_in_any_letter_case_is_a_409_conflict() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("Bob@Example.com", "bob", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    for email in ["Bob@Example.com", "bob@example.com", "BOB@EXAMPLE.COM"] {
        let response = app.register(email, &format!("other_{}", unique()), PASSWORD).await;
        let (_, body) = assert_error(response, StatusCode::CONFLICT, "conflict").await;
        assert_eq!(body["details"], json!({ "field": "email" }), "{body}");
    }
}

#[tokio::test]
async fn registering_a_username_that_is_taken_in_any_letter_case_is_a_409_conflict() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("carol@example.com", "Carol", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    for username in ["Carol", "carol", "CAROL"] {
        let response = app
            .register(&format!("c{}@example.com", unique()), username, PASSWORD)
            .await;
        let (_, body) = assert_error(response, StatusCode::CONFLICT, "conflict").await;
        assert_eq!(body["details"], json!({ "field": "username" }), "{body}");
    }
}

#[tokio::test]
async fn an_invalid_email_is_a_422_naming_the_email_field() {
    let app = spawn_app().await;
    for email in [
        "",
        "not-an-email",
        "a@b",
        "@example.com",
        "a b@example.com",
        "a@@example.com",
    ] {
        let response = app.register(email, &format!("user_{}", unique()), PASSWORD).await;
        assert_field_error(response, "email", "invalid_email").await;
    }
}

#[tokio::test]
async fn an_invalid_username_is_a_422_naming_the_username_field() {
    let app = spawn_app().await;
    let long = "u".repeat(33);
    for username in ["ab", "has space", "<script>", long.as_str()] {
        let response = app
            .register(&format!("d{}@example.com", unique()), username, PASSWORD)
            .await;
        assert_field_error(response, "username", "invalid_username").await;
    }
}

#[tokio::test]
async fn each_password_policy_rule_is_a_422_with_its_own_code() {
    let app = spawn_app().await;
    let too_long = "x".repeat(129);
    let cases = [
        ("short@example.com", "shorty", "Ab1!xyz", "password_too_short"),
        ("long@example.com", "longpw", too_long.as_str(), "password_too_long"),
        ("common@example.com", "commonpw", "PassWord123", "password_too_common"),
        ("common2@example.com", "commonpw2", "12345678", "password_too_common"),
        (
            "same.as.email@example.com",
            "sameemail",
            "Same.As.Email@Example.com",
            "password_equals_email",
        ),
        (
            "sameuser@example.com",
            "averylongusername",
            "AVeryLongUsername",
            "password_equals_username",
        ),
    ];
    for (email, username, password, code) in cases {
        let response = app.register(email, username, password).await;
        let body = assert_field_error(response, "password", code).await;
        assert!(
            body["details"]["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["field"] == "password"),
            "{body}"
        );
    }
    // None of them created an account.
    for (email, ..) in cases {
        let login = app.login(email, PASSWORD).await;
        assert_error(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn missing_fields_are_each_listed_in_a_422() {
    let app = spawn_app().await;
    let response = app.post("/register").json(&json!({})).send().await.unwrap();
    let body = assert_field_error(response, "email", "missing").await;
    let errors = body["details"]["errors"].as_array().unwrap();
    for field in ["email", "username", "password"] {
        assert!(
            errors.iter().any(|e| e["field"] == field && e["code"] == "missing"),
            "{field} in {body}"
        );
    }

    // A field of the wrong JSON type is a 422 too, naming the field.
    let response = app
        .post("/register")
        .json(&json!({ "email": 5, "username": "typed", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_field_error(response, "email", "invalid_type").await;
}

#[tokio::test]
async fn registering_with_a_non_json_content_type_is_a_415() {
    let app = spawn_app().await;
    let body = json!({ "email": "e@example.com", "username": "eve", "password": PASSWORD }).to_string();
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut request = app.post("/register").body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    }
}

#[tokio::test]
async fn registering_with_malformed_json_is_a_400() {
    let app = spawn_app().await;
    for body in [
        "{",
        "{\"email\": }",
        "not json",
        "{\"email\":\"a@example.com\"} trailing",
    ] {
        let response = app
            .post("/register")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}

#[tokio::test]
async fn registering_with_a_body_over_the_limit_is_a_413() {
    let app = spawn_app().await;
    let padding = "p".repeat(app.config.max_body_bytes + 1);
    let body = json!({ "email": "big@example.com", "username": "big", "password": PASSWORD, "padding": padding });
    let response = app.post("/register").json(&body).send().await.unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn validation_messages_are_in_chinese_under_accept_language_zh() {
    let app = spawn_app().await;
    let response = app
        .post("/register")
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
        .json(&json!({ "email": "zh@example.com", "username": "zhuser", "password": "short" }))
        .send()
        .await
        .unwrap();
    let body = assert_field_error(response, "password", "password_too_short").await;
    assert_eq!(body["message"], "请求参数验证失败");
    let error = &body["details"]["errors"][0];
    assert_eq!(error["message"], "密码长度不足 8 个字符", "{body}");

    let response = app
        .post("/register")
        .header("accept-language", "zh")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(body["message"], "请求体不是有效的 JSON");
}
