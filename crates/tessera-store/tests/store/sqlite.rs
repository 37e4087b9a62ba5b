//! The contract suites against the embedded SQLite backend, one fresh file per test.

use std::sync::Arc;

use tessera_store::sqlite::SqliteStore;

use crate::contract;

async fn fresh() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tessera.db")).await.unwrap();
    (dir, Arc::new(store))
}

#[tokio::test]
async fn sqlite_meets_the_user_store_contract() {
    let (_dir, store) = fresh().await;
    contract::user_store_contract(store.as_ref()).await;
}

#[tokio::test]
async fn sqlite_meets_the_session_store_contract() {
    let (_dir, store) = fresh().await;
    contract::session_store_contract(store.as_ref(), store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_rotates_concurrently_exactly_once() {
    let (_dir, store) = fresh().await;
    contract::concurrent_rotation_contract(store.clone(), store).await;
}

#[tokio::test]
async fn sqlite_meets_the_key_store_contract() {
    let (_dir, store) = fresh().await;
    contract::key_store_contract(store.as_ref()).await;
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _store) = fresh().await;
    let mode = std::fs::metadata(dir.path().join("tessera.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn sqlite_data_survives_reopening() {
    use tessera_core::store::{NewUser, UserStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let user = store
        .create(NewUser {
            email: "p@example.com".into(),
            username: "persist".into(),
            password_hash: "h".into(),
            created_at: 1,
        })
        .await
        .unwrap();
    store.close().await;
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(reopened.find_by_id(user.id).await.unwrap().unwrap().username, "persist");
}
