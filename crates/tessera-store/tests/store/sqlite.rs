//! The contract suites against the embedded SQLite backend, one fresh file per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

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
            email_normalized: "p@example.com".into(),
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

/// The per-connection pragmas a fault test controls: applied to the pool's connection now and,
/// through `after_connect`, to any connection the pool opens later (the store closes a
/// connection whose transaction failed).
#[derive(Clone, Default)]
struct Faults {
    max_page_count: Arc<AtomicI64>,
    query_only: Arc<AtomicBool>,
}

impl Faults {
    fn pragmas(&self) -> String {
        let pages = match self.max_page_count.load(Ordering::SeqCst) {
            0 => 1_073_741_823,
            pages => pages,
        };
        let query_only = if self.query_only.load(Ordering::SeqCst) {
            "ON"
        } else {
            "OFF"
        };
        format!("PRAGMA max_page_count = {pages}; PRAGMA query_only = {query_only};")
    }

    async fn apply(&self, store: &SqliteStore) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(self.pragmas()))
            .execute(store.pool())
            .await
            .unwrap();
    }
}

/// A store on one pooled connection, whose pragmas `Faults` sets.
async fn single_connection() -> (tempfile::TempDir, SqliteStore, Faults) {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::default();
    let hook = faults.clone();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            let sql = hook.pragmas();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
                Ok(())
            })
        });
    let store = SqliteStore::open_with(&dir.path().join("tessera.db"), pool)
        .await
        .unwrap();
    (dir, store, faults)
}

/// SQLITE_FULL, forced with `max_page_count` at the current size: the database cannot grow.
#[tokio::test]
async fn sqlite_full_database_refuses_writes_leaves_nothing_and_recovers() {
    let (_dir, store, faults) = single_connection().await;
    let seeded = contract::seed_for_storage_faults(&store).await;
    // No free pages either (a migration that rebuilds a table leaves some on the freelist):
    // at the size that `page_count` then reports, any write that needs a page fails.
    sqlx::query("VACUUM").execute(store.pool()).await.unwrap();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    faults.max_page_count.store(pages, Ordering::SeqCst);
    faults.apply(&store).await;
    contract::full_storage_contract(&store, &seeded).await;
    assert!(store.storage_failing());
    // Space comes back (the limit is raised) on the same open store.
    faults.max_page_count.store(0, Ordering::SeqCst);
    faults.apply(&store).await;
    contract::storage_recovery_contract(&store, &seeded).await;
    assert!(!store.storage_failing());
}

/// SQLITE_READONLY, forced with `query_only` (tests may run as root, which ignores file modes).
#[tokio::test]
async fn sqlite_read_only_database_refuses_every_write_and_recovers() {
    let (_dir, store, faults) = single_connection().await;
    let seeded = contract::seed_for_storage_faults(&store).await;
    faults.query_only.store(true, Ordering::SeqCst);
    faults.apply(&store).await;
    contract::read_only_storage_contract(&store, &seeded).await;
    faults.query_only.store(false, Ordering::SeqCst);
    faults.apply(&store).await;
    contract::storage_recovery_contract(&store, &seeded).await;
}

/// A database file opened read-only (`mode=ro`) refuses writes with the same error.
#[tokio::test]
async fn sqlite_file_opened_read_only_refuses_writes() {
    use tessera_core::store::{StorageFault, StoreError, UserStore};
    let (dir, store) = fresh().await;
    let seeded = contract::seed_for_storage_faults(store.as_ref()).await;
    store.close().await;
    let url = format!("sqlite://{}?mode=ro", dir.path().join("tessera.db").display());
    let read_only = SqliteStore::open_url(&url).await.unwrap();
    contract::read_only_storage_contract(&read_only, &seeded).await;
    assert!(matches!(
        read_only.ping().await,
        Err(StoreError::StorageUnavailable {
            fault: StorageFault::ReadOnly,
            ..
        })
    ));
}

/// Set in the child process that [`sqlite_write_whose_commit_fails_is_an_error_never_an_ack`]
/// starts: the child runs the scenario under a file-size limit of its own.
#[cfg(target_os = "linux")]
const COMMIT_FAILURE_CHILD: &str = "TESSERA_TEST_COMMIT_FAILURE_CHILD";

/// The failure of issue 13 finding 1 itself: the statement succeeds and the *commit* fails (a
/// full disk refuses the WAL append). sqlx's SQLite driver used to hand back the `RETURNING` row
/// and drop the commit error, so the write was acknowledged and lost. Forced with
/// `RLIMIT_FSIZE` = 0 (every write(2) to a file then fails with EFBIG, as a full disk fails with
/// ENOSPC), in a child process so no other test's files are affected.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn sqlite_write_whose_commit_fails_is_an_error_never_an_ack() {
    if std::env::var_os(COMMIT_FAILURE_CHILD).is_some() {
        commit_failure_scenario().await;
        return;
    }
    // `trap "" XFSZ` ignores SIGXFSZ, and an ignored signal stays ignored across exec: a write
    // past the limit then fails with EFBIG instead of killing the child.
    let output = std::process::Command::new("sh")
        .args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sqlite::sqlite_write_whose_commit_fails_is_an_error_never_an_ack",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(COMMIT_FAILURE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(target_os = "linux")]
async fn commit_failure_scenario() {
    use tessera_core::store::{NewUser, SessionStore, StorageFault, StoreError, UserStore};
    // The soft RLIMIT_FSIZE of this (child) process, set with util-linux's prlimit(1).
    let set_file_size_limit = |soft: &str| {
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--fsize={soft}:"))
            .status()
            .expect("prlimit(1) runs");
        assert!(status.success(), "prlimit --fsize={soft}: failed");
    };
    let (_dir, store) = fresh().await;
    let seeded = contract::seed_for_storage_faults(store.as_ref()).await;

    set_file_size_limit("0");
    let created = UserStore::create(
        store.as_ref(),
        NewUser {
            email: "lost@example.com".into(),
            email_normalized: "lost@example.com".into(),
            username: "lost".into(),
            password_hash: "h".into(),
            created_at: 1,
        },
    )
    .await;
    let session = SessionStore::create(
        store.as_ref(),
        tessera_core::store::NewSession {
            id: "lost-s".into(),
            user_id: seeded.user.id,
            refresh_jti: "lost-j".into(),
            now: 100,
            expires_at: 1_000,
            ip_address: None,
            user_agent: None,
        },
    )
    .await;
    let rotated = store
        .rotate_for_refresh(
            store.as_ref(),
            seeded.user.id,
            tessera_core::store::Rotation {
                session_id: &seeded.session,
                presented_jti: &seeded.jti,
                new_jti: "lost-2",
                now: 110,
                new_expires_at: 1_110,
                grace_secs: 10,
            },
        )
        .await;
    set_file_size_limit("unlimited");

    // Reading needs no file write: what was stored is what the answers said.
    for (what, result) in [
        ("users.create", created.map(|_| ())),
        ("sessions.create", session.map(|_| ())),
        ("rotate_for_refresh", rotated.map(|_| ())),
    ] {
        assert!(
            matches!(
                result,
                Err(StoreError::StorageUnavailable {
                    fault: StorageFault::Io | StorageFault::Full,
                    ..
                })
            ),
            "{what}: a failed commit must be an error, got {result:?}"
        );
    }
    assert_eq!(store.find_by_login("lost@example.com").await.unwrap(), None);
    assert_eq!(store.find("lost-s").await.unwrap(), None);
    assert_eq!(
        store.find(&seeded.session).await.unwrap().unwrap().current_jti,
        seeded.jti
    );
    // Writes work again, on the same open store.
    store.ping().await.expect("ready once writes commit again");
    contract::storage_recovery_contract(store.as_ref(), &seeded).await;
}

#[tokio::test]
async fn sqlite_meets_the_api_key_store_contract() {
    let (_dir, store) = fresh().await;
    contract::api_key_store_contract(store.as_ref(), store.as_ref()).await;
}

#[tokio::test]
async fn sqlite_meets_the_service_account_contract() {
    let (_dir, store) = fresh().await;
    contract::service_account_contract(store.as_ref(), store.as_ref()).await;
}

#[tokio::test]
async fn sqlite_meets_the_account_deletion_contract() {
    let (_dir, store) = fresh().await;
    contract::account_deletion_contract(store.as_ref(), store.as_ref(), store.as_ref()).await;
}

#[tokio::test]
async fn sqlite_meets_the_email_token_contract() {
    let (_dir, store) = fresh().await;
    contract::email_token_contract(store.as_ref(), store.as_ref(), store.as_ref()).await;
}

#[tokio::test]
async fn sqlite_meets_the_mfa_contract() {
    let (_dir, store) = fresh().await;
    contract::mfa_contract(store.as_ref(), store.as_ref()).await;
}

#[tokio::test]
async fn sqlite_meets_the_passkey_contract() {
    let (_dir, store) = fresh().await;
    contract::passkey_contract(store.as_ref(), store.as_ref()).await;
}
