//! Storage that cannot take writes, end to end (issue 13, finding 1): a full SQLite database
//! makes `POST /register` answer 503 `storage_unavailable` with `Retry-After`, never a 201 for
//! an account that was not stored; `/readyz` is 503 while writes fail, and both recover without
//! a restart once space returns.
//!
//! The server runs on an SQLite store the test opened itself (one pooled connection, through
//! `tessera_server::build_with_store`), so the test can set `PRAGMA max_page_count` on it: at
//! the current page count the database cannot grow, as on a full disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use reqwest::StatusCode;
use serde_json::Value;
use tessera_core::store::UserStore;
use tessera_server::config::{Config, Database};
use tessera_store::sqlite::SqliteStore;

use crate::helpers::{PASSWORD, TestApp, serve_app, unique};

/// SQLite's largest `max_page_count`: no limit.
const NO_LIMIT: i64 = 1_073_741_823;

/// The server's store on one connection whose page limit the test sets; the limit is applied
/// again to any connection the pool opens later (the store replaces a connection whose
/// transaction failed).
async fn spawn_on_limited_sqlite() -> (TestApp, SqliteStore, Arc<AtomicI64>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = Config::for_tests(dir.path());
    let Database::Sqlite(path) = &config.database else {
        panic!("the test configuration uses SQLite");
    };
    let limit = Arc::new(AtomicI64::new(NO_LIMIT));
    let hook = Arc::clone(&limit);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            let sql = format!("PRAGMA max_page_count = {}", hook.load(Ordering::SeqCst));
            Box::pin(async move {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
                Ok(())
            })
        });
    let store = SqliteStore::open_with(path, pool).await.expect("the store opens");
    let app = tessera_server::build_with_store(config.clone(), Arc::new(store.clone()))
        .await
        .expect("the app builds");
    (serve_app(dir, config, app).await, store, limit)
}

async fn set_page_limit(store: &SqliteStore, limit: &AtomicI64, pages: i64) {
    limit.store(pages, Ordering::SeqCst);
    let sql = format!("PRAGMA max_page_count = {pages}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .expect("set the page limit");
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    let response = app.get("/readyz").send().await.expect("GET /readyz");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn storage_errors(metrics: &str, kind: &str) -> u64 {
    let series = format!("tessera_storage_errors_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
}

#[tokio::test]
async fn full_database_refuses_registration_with_503_and_recovers_without_restart() {
    let (app, store, limit) = spawn_on_limited_sqlite().await;
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    let metrics = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert_eq!(storage_errors(&metrics, "full"), 0, "declared at zero");

    // Arrange: the database may not grow beyond its current size.
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    set_page_limit(&store, &limit, pages).await;

    // Act: register until the pages in use have no room left for another account.
    let mut stored = Vec::new();
    let refused = loop {
        assert!(stored.len() < 500, "the database never filled up");
        let n = unique();
        let (email, username) = (format!("full{n}@example.com"), format!("full_{n}"));
        let response = app.register(&email, &username, PASSWORD).await;
        match response.status() {
            StatusCode::CREATED => stored.push(email),
            StatusCode::SERVICE_UNAVAILABLE => break (email, response),
            other => panic!("unexpected {other}: {}", response.text().await.unwrap_or_default()),
        }
    };

    // Assert: a 503 in the unified format, with Retry-After, and nothing stored for it.
    let (email, response) = refused;
    assert!(
        response.headers().get("retry-after").is_some(),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "storage_unavailable", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        store.find_by_login(&email).await.unwrap(),
        None,
        "a refused account is not stored"
    );
    for email in &stored {
        assert!(
            store.find_by_login(email).await.unwrap().is_some(),
            "{email} was acknowledged"
        );
    }
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "storage_unavailable", "{body}");
    let metrics = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(storage_errors(&metrics, "full") >= 2, "register and readyz counted");

    // Space returns: readiness and registration recover on the running server.
    set_page_limit(&store, &limit, NO_LIMIT).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let n = unique();
    let response = app
        .register(&format!("back{n}@example.com"), &format!("back_{n}"), PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(store.find_by_login(&email).await.unwrap().is_none());
    let response = app.register(&email, &format!("again_{n}"), PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the refused email was never taken"
    );
}
