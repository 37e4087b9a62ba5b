//! The contract suites against the PostgreSQL backend, one fresh schema per test, plus what only
//! a shared server can get wrong: instances racing to create the key ring, an unreachable server.
//!
//! Postgres is an external service, found through `TESSERA_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`). Without it the tests skip with a note on stderr,
//! unless `TESSERA_REQUIRE_SERVICES=1` (CI), where a missing service is a failure rather than a
//! silent pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tessera_core::Algorithm;
use tessera_core::keys::KeyState;
use tessera_core::store::{InsertCondition, KeyPurpose, KeyStore, NewUser, StoreError, StoredKey, UserStore};
use tessera_store::postgres::PgStore;

use crate::contract;

const URL_VAR: &str = "TESSERA_TEST_DATABASE_URL";

/// The URL of the test database, or `None` (after a one-line note) when the tests should skip.
/// Panics when the variable is unset but `TESSERA_REQUIRE_SERVICES=1`.
fn database_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("TESSERA_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("TESSERA_REQUIRE_SERVICES=1 but {URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)")
        }
        _ => {
            eprintln!("skipping: {URL_VAR} not set");
            None
        }
    }
}

/// `t_<32 random hex digits>`: std's `RandomState` is seeded randomly per process and differs
/// per instance, which is all the randomness a schema name needs.
fn random_schema() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        hasher.finish()
    };
    format!("t_{:016x}{:016x}", half(), half())
}

/// A store in a schema of its own, dropped (best effort, even when the test panicked) with it.
struct TestDb {
    url: String,
    schema: String,
    store: Arc<PgStore>,
}

impl TestDb {
    /// A fresh schema with the migrations applied, or `None` when Postgres tests are skipped.
    async fn new() -> Option<TestDb> {
        let url = database_url()?;
        let schema = random_schema();
        let store = PgStore::connect_with_schema(&url, &schema)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}={url}: {e}"));
        Some(TestDb {
            url,
            schema,
            store: Arc::new(store),
        })
    }

    /// Another, independent pool on the same schema: a second server instance.
    async fn second_instance(&self) -> PgStore {
        PgStore::connect_with_schema(&self.url, &self.schema).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own can. Bounded, so a stuck lock cannot hang the suite.
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let drop_schema = async {
                    let mut conn = PgConnection::connect(&url).await?;
                    sqlx::query("SET lock_timeout = '5s'").execute(&mut conn).await?;
                    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
                    conn.close().await
                };
                match tokio::time::timeout(Duration::from_secs(10), drop_schema).await {
                    Ok(result) => result.map_err(std::io::Error::other),
                    Err(elapsed) => Err(std::io::Error::other(elapsed)),
                }
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("note: could not drop test schema {}: {dropped:?}", self.schema);
        }
    }
}

#[tokio::test]
async fn postgres_meets_the_user_store_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::user_store_contract(db.store.as_ref()).await;
}

#[tokio::test]
async fn postgres_meets_the_session_store_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::session_store_contract(db.store.as_ref(), db.store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_rotates_concurrently_exactly_once() {
    let Some(db) = TestDb::new().await else { return };
    contract::concurrent_rotation_contract(db.store.clone(), db.store.clone()).await;
}

#[tokio::test]
async fn postgres_meets_the_key_store_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::key_store_contract(db.store.as_ref()).await;
}

#[tokio::test]
async fn postgres_data_survives_reconnecting() {
    let Some(db) = TestDb::new().await else { return };
    let user = db
        .store
        .create(NewUser {
            email: "p@example.com".into(),
            email_normalized: "p@example.com".into(),
            username: "persist".into(),
            password_hash: "h".into(),
            created_at: 1,
        })
        .await
        .unwrap();
    db.store.close().await;
    // Reconnecting re-runs the migrator, which must find everything applied.
    let reopened = db.second_instance().await;
    assert_eq!(reopened.find_by_id(user.id).await.unwrap().unwrap().username, "persist");
    reopened.close().await;
}

fn instance_keys(instance: &str, purpose: KeyPurpose) -> Vec<StoredKey> {
    (1..=2)
        .map(|n| StoredKey {
            kid: format!("{instance}-{}-{n}", purpose.as_str()),
            purpose,
            alg: Algorithm::HS256,
            state: if n == 1 {
                KeyState::Signing
            } else {
                KeyState::VerifyOnly
            },
            created_at: n,
            deactivated_at: None,
            activates_at: n,
            retired_at: None,
            private_key: vec![n as u8; 32],
        })
        .collect()
}

/// Two instances starting at once on an empty database each try to create the key ring; they
/// must end with one set (all of one instance's keys, none of the other's), and both see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_instances_starting_together_agree_on_one_key_set() {
    let Some(db) = TestDb::new().await else { return };
    let instances: [Arc<dyn KeyStore>; 2] = [db.store.clone(), Arc::new(db.second_instance().await)];
    let purposes = [KeyPurpose::Access, KeyPurpose::Refresh, KeyPurpose::Csrf];
    let barrier = Arc::new(tokio::sync::Barrier::new(instances.len() * purposes.len()));
    let mut tasks = Vec::new();
    for purpose in purposes {
        for (name, store) in ["a", "b"].into_iter().zip(&instances) {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let first = instance_keys(name, purpose).remove(0);
                let inserted = store.insert(first, InsertCondition::IfNone).await.unwrap();
                let keys = store.list(purpose).await.unwrap();
                assert!(!inserted || keys.len() == 1);
                (purpose, keys)
            }));
        }
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for purpose in purposes {
        let seen: Vec<Vec<String>> = results
            .iter()
            .filter(|(p, _)| *p == purpose)
            .map(|(_, keys)| keys.iter().map(|k| k.kid.clone()).collect())
            .collect();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], seen[1], "{purpose:?}: both instances see the same keys");
        let winner = ["a", "b"].into_iter().find(|name| {
            seen[0]
                == instance_keys(name, purpose)
                    .iter()
                    .take(1)
                    .map(|k| k.kid.clone())
                    .collect::<Vec<_>>()
        });
        assert!(
            winner.is_some(),
            "{purpose:?}: one instance's set, not a mix: {:?}",
            seen[0]
        );
        for store in &instances {
            assert_eq!(store.list(purpose).await.unwrap().len(), 1, "{purpose:?}");
        }
    }
}

/// A server that is not there is `Unavailable` (503, retry later) after the acquire timeout,
/// never a hang. Needs no database, so it runs with or without the variable.
#[tokio::test]
async fn postgres_unreachable_server_is_unavailable_quickly() {
    let url = "postgres://postgres@127.0.0.1:1/test";
    let started = Instant::now();
    let connected = tokio::time::timeout(Duration::from_secs(20), PgStore::connect(url))
        .await
        .expect("PgStore::connect must give up on its own");
    assert!(
        matches!(connected, Err(StoreError::Unavailable(_))),
        "{:?}",
        connected.map(|_| ())
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let with_schema = tokio::time::timeout(Duration::from_secs(20), PgStore::connect_with_schema(url, "t_x"))
        .await
        .expect("PgStore::connect_with_schema must give up on its own");
    assert!(
        matches!(with_schema, Err(StoreError::Unavailable(_))),
        "{:?}",
        with_schema.map(|_| ())
    );
}

/// Schema names are quoted into SQL and a connection option, so only plain identifiers pass;
/// the check comes before any connection attempt.
#[tokio::test]
async fn postgres_rejects_unsafe_schema_names() {
    for schema in [
        "",
        "1abc",
        "Upper",
        "a-b",
        "a\"; DROP SCHEMA public; --",
        &"x".repeat(64),
    ] {
        let result = PgStore::connect_with_schema("postgres://postgres@127.0.0.1:1/test", schema).await;
        assert!(matches!(result, Err(StoreError::Internal(_))), "{schema:?}");
    }
}

fn set_read_only(on: bool) -> &'static str {
    if on {
        "SET default_transaction_read_only = on"
    } else {
        "SET default_transaction_read_only = off"
    }
}

/// PostgreSQL that refuses writes (`default_transaction_read_only`, as on a read-only replica or
/// a server out of disk put read-only by its operator): every write is
/// `StorageUnavailable(ReadOnly)` and changes nothing; back to writable, without reconnecting,
/// readiness and writes recover.
#[tokio::test]
async fn postgres_read_only_database_refuses_every_write_and_recovers() {
    let Some(db) = TestDb::new().await else { return };
    // The setting is per connection: the hook gives it to any connection the pool opens later
    // (the store closes a connection whose transaction failed).
    let read_only = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = Arc::clone(&read_only);
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            let sql = set_read_only(hook.load(std::sync::atomic::Ordering::SeqCst));
            Box::pin(async move {
                sqlx::query(sql).execute(conn).await?;
                Ok(())
            })
        });
    let store = PgStore::connect_with_schema_and(&db.url, &db.schema, one)
        .await
        .unwrap();
    let seeded = contract::seed_for_storage_faults(&store).await;
    read_only.store(true, std::sync::atomic::Ordering::SeqCst);
    sqlx::query(set_read_only(true)).execute(store.pool()).await.unwrap();
    contract::read_only_storage_contract(&store, &seeded).await;
    assert!(store.storage_failing());
    read_only.store(false, std::sync::atomic::Ordering::SeqCst);
    sqlx::query(set_read_only(false)).execute(store.pool()).await.unwrap();
    contract::storage_recovery_contract(&store, &seeded).await;
    assert!(!store.storage_failing());
    store.close().await;
}

/// Issue 13 finding 9 on PostgreSQL, where the check and the insert could otherwise see an
/// account that a concurrent, not yet committed `users disable` is disabling: the session
/// insert waits for that transaction (its share lock conflicts with the update) and then finds
/// the account disabled. Without the lock it would insert a session for a disabled account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_session_insert_waits_for_a_concurrent_disable_and_inserts_nothing() {
    use tessera_core::store::{NewSession, SessionStore};
    let Some(db) = TestDb::new().await else { return };
    let new_user = NewUser {
        email: "race@example.com".into(),
        email_normalized: "race@example.com".into(),
        username: "race".into(),
        password_hash: "h".into(),
        created_at: 1,
    };
    let user = UserStore::create(db.store.as_ref(), new_user).await.unwrap();
    // The operator's disable, held open in a transaction of its own.
    let mut operator = PgConnection::connect(&db.url).await.unwrap();
    let search_path = format!("SET search_path TO \"{}\"", db.schema);
    sqlx::query(sqlx::AssertSqlSafe(search_path))
        .execute(&mut operator)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut operator).await.unwrap();
    sqlx::query("UPDATE users SET disabled_at = 5 WHERE id = $1")
        .bind(user.id)
        .execute(&mut operator)
        .await
        .unwrap();

    let store = db.store.clone();
    let login = tokio::spawn(async move {
        SessionStore::create(
            store.as_ref(),
            NewSession {
                id: "race-s".into(),
                user_id: user.id,
                refresh_jti: "race-j".into(),
                now: 10,
                expires_at: 1_000,
                ip_address: None,
                user_agent: None,
            },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !login.is_finished(),
        "the insert must wait for the disable to commit or roll back"
    );
    sqlx::query("COMMIT").execute(&mut operator).await.unwrap();
    let created = tokio::time::timeout(Duration::from_secs(10), login)
        .await
        .expect("the insert goes on once the disable committed")
        .unwrap()
        .unwrap();
    assert_eq!(created, None, "no session for an account disabled meanwhile");
    assert_eq!(db.store.find("race-s").await.unwrap(), None);
    operator.close().await.unwrap();
}

#[tokio::test]
async fn postgres_meets_the_api_key_store_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::api_key_store_contract(db.store.as_ref(), db.store.as_ref()).await;
}

#[tokio::test]
async fn postgres_meets_the_service_account_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::service_account_contract(db.store.as_ref(), db.store.as_ref()).await;
}

#[tokio::test]
async fn postgres_meets_the_account_deletion_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::account_deletion_contract(db.store.as_ref(), db.store.as_ref(), db.store.as_ref()).await;
}

#[tokio::test]
async fn postgres_meets_the_email_token_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::email_token_contract(db.store.as_ref(), db.store.as_ref(), db.store.as_ref()).await;
}

#[tokio::test]
async fn postgres_meets_the_mfa_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::mfa_contract(db.store.as_ref(), db.store.as_ref()).await;
}

#[tokio::test]
async fn postgres_meets_the_passkey_contract() {
    let Some(db) = TestDb::new().await else { return };
    contract::passkey_contract(db.store.as_ref(), db.store.as_ref()).await;
}
