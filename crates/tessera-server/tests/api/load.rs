//! Isolation under load (B8): a login flood sheds load with 503 + Retry-After and never slows
//! down or breaks token-verified requests.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::password::PasswordParams;

use crate::helpers::{PASSWORD, assert_error, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_sheds_load_with_503_while_token_verified_requests_all_succeed() {
    let app = spawn_app_with(|config| {
        config.hash_workers = 1;
        config.hash_queue = 2;
        config.password_params = PasswordParams {
            memory_kib: 8192,
            iterations: 3,
            parallelism: 1,
        };
    })
    .await;
    let (user, login) = app.new_session().await;

    let mut logins = Vec::new();
    for _ in 0..40 {
        let client = app.client.clone();
        let url = app.url("/login");
        let email = user.email.clone();
        logins.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "email": email, "password": PASSWORD }))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut profiles = Vec::new();
    for _ in 0..50 {
        let request = app.client.get(app.url("/profile")).bearer_auth(&login.access);
        profiles.push(tokio::spawn(async move { request.send().await.unwrap() }));
    }

    let (mut ok, mut shed) = (0, 0);
    for task in logins {
        let response = task.await.unwrap();
        match response.status() {
            StatusCode::OK => {
                ok += 1;
                let body: Value = response.json().await.unwrap();
                assert!(body["access_token"].is_string());
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                let (headers, body) =
                    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
                let retry_after = headers.get("retry-after").expect("503 carries Retry-After");
                assert!(
                    retry_after.to_str().unwrap().parse::<u64>().is_ok_and(|s| s >= 1),
                    "{retry_after:?}"
                );
                assert!(body["details"].is_null());
            }
            other => panic!(
                "a login under load answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    assert!(shed > 0, "an overfull hashing queue sheds load ({ok} succeeded)");
    assert!(ok > 0, "the logins that got a hashing slot succeed ({shed} shed)");

    for task in profiles {
        let response = task.await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "token-verified requests never get shed"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user_id"], user.id);
    }

    // Once the flood is over, logging in works again.
    let mut recovered = false;
    for _ in 0..50 {
        if app.login(&user.email, PASSWORD).await.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered);
}
