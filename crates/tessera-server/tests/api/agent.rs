//! POST /agent/chat (S12).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, assert_field_error, assert_keys, spawn_app};

#[tokio::test]
async fn chat_replies_with_the_english_prefix() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let response = app
        .post("/agent/chat")
        .bearer_auth(&login.access)
        .json(&json!({ "message": "hello there" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_keys(&body, &["response"]);
    assert_eq!(body["response"], "AI reply: hello there");
}

#[tokio::test]
async fn chat_replies_with_the_chinese_prefix_under_accept_language_zh_cn() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let response = app
        .post("/agent/chat")
        .bearer_auth(&login.access)
        .header("accept-language", "zh-CN")
        .json(&json!({ "message": "你好" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response"], "AI回复: 你好");
}

#[tokio::test]
async fn chat_without_a_message_or_with_an_empty_one_is_a_422() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let send = |body: Value| app.post("/agent/chat").bearer_auth(&login.access).json(&body).send();

    assert_field_error(send(json!({})).await.unwrap(), "message", "missing").await;
    assert_field_error(send(json!({ "message": "" })).await.unwrap(), "message", "empty").await;
    assert_field_error(send(json!({ "message": "   " })).await.unwrap(), "message", "empty").await;
    assert_field_error(send(json!({ "message": 42 })).await.unwrap(), "message", "invalid_type").await;
    let long = "m".repeat(4_001);
    assert_field_error(send(json!({ "message": long })).await.unwrap(), "message", "too_long").await;

    let response = app
        .post("/agent/chat")
        .bearer_auth(&login.access)
        .header("accept-language", "zh")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body = assert_field_error(response, "message", "missing").await;
    assert_eq!(body["details"]["errors"][0]["message"], "缺少此字段");
}

#[tokio::test]
async fn chat_with_a_non_json_body_is_refused() {
    let app = spawn_app().await;
    let (_, login) = app.new_session().await;
    let response = app
        .post("/agent/chat")
        .bearer_auth(&login.access)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    let response = app
        .post("/agent/chat")
        .bearer_auth(&login.access)
        .header("content-type", "application/json")
        .body("{\"message\": ")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
}
