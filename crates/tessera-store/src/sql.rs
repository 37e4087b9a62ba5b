//! The one SQL store: users, sessions and keys on SQLite or PostgreSQL, each statement written
//! once.
//!
//! [`SqlStore<D>`] is generic over a [`Dialect`], which names the few things the two databases
//! really do differently (the sqlx driver, how a unique violation names its field, how a key
//! insert excludes concurrent inserters, byte-order collation, row locking, pool sizing and the
//! migrations). Every statement uses PostgreSQL's `$N` placeholders, which sqlx's SQLite driver
//! binds too; `crate::sqlite` and `crate::postgres` hold the dialects and the constructors.
//!
//! # Nothing acknowledged is lost
//!
//! A write returns `Ok` only once it is committed. sqlx's SQLite driver stops stepping a
//! statement after the first row when asked for one row (`fetch_one`/`fetch_optional`), and the
//! autocommit of `INSERT/UPDATE ... RETURNING` happens on the step after the last row: the row
//! came back while a failed commit (disk full) was silently dropped (sqlx issue #2099). So every
//! `RETURNING` write here runs to completion with `fetch_all` (on PostgreSQL, where the driver
//! reads every response anyway, this costs nothing), statements without rows use `execute`
//! (which also runs to completion), and multi-statement writes are transactions that end in an
//! explicit `commit`; a transaction that fails closes its connection instead of returning it to
//! the pool (after SQLITE_FULL or an I/O error SQLite may already have rolled the transaction
//! back, sqlx's own ROLLBACK then fails, and the connection would stay convinced it is inside a
//! transaction, refusing every later `BEGIN IMMEDIATE`). Storage that cannot take writes (disk full, read-only, I/O error) is
//! [`StoreError::StorageUnavailable`]; the store remembers that it saw one, and [`UserStore::ping`]
//! (readiness) then proves with a small write probe that writes work again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::pool::PoolOptions;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use tessera_core::Algorithm;
use tessera_core::keys::KeyState;
use tessera_core::store::{
    ApiKey, ApiKeyLookup, ApiKeyStore, CeremonyKind, DeletedAccount, EmailToken, EmailTokenPurpose, EmailTokenStore,
    InsertCondition, KeyPurpose, KeyStore, KeyUsage, MfaChallenge, MfaStore, NewEmailToken, NewMfaChallenge,
    NewSession, NewUser, Passkey, PasskeyCeremony, PasskeyStore, Redeemed, Redemption, RefreshRotation, Rotation,
    RotationOutcome, Session, SessionStore, StoreError, StoredKey, TotpFactor, User, UserStore,
    check_account_then_rotate,
};

use crate::store_error;

/// What differs between the SQL databases; everything else in [`SqlStore`] is shared.
pub trait Dialect: Send + Sync + 'static {
    /// The sqlx driver.
    type Db: Database;

    /// A collation that orders text by bytes (ids in `ORDER BY`), so both backends list in the
    /// same order: SQLite's default `BINARY`, PostgreSQL's `"C"` (its default follows the locale).
    const BYTE_ORDER: &'static str;

    /// Appended to the account check of a session insert. PostgreSQL needs `FOR SHARE` so that
    /// a concurrent `users disable` (which updates the row) waits for the insert or the insert
    /// waits for it and then sees the account disabled; SQLite runs one writer at a time, so
    /// the check and the insert are already atomic with respect to the disable.
    const ACCOUNT_SHARE_LOCK: &'static str;

    /// How a key insert starts its transaction: SQLite's `BEGIN IMMEDIATE` takes the write lock
    /// before the check, so two processes cannot both pass it.
    const KEY_INSERT_BEGIN: &'static str;

    /// A statement run first inside the key-insert transaction, if any: PostgreSQL locks the
    /// table (SHARE ROW EXCLUSIVE conflicts with itself and every writer), so concurrent
    /// inserters take turns and each one's check sees what the previous one committed.
    const KEY_INSERT_LOCK: Option<&'static str>;

    /// The field (`email`, `username`) a unique violation on `users` concerns, if it is one of
    /// them.
    fn conflict_field(error: &dyn DatabaseError) -> Option<&'static str>;

    /// Pool sizing and timeouts.
    fn pool_options() -> PoolOptions<Self::Db>;

    /// The embedded migrations of this backend (`migrations/<backend>`).
    fn migrator() -> &'static Migrator;
}

/// Bytes the readiness write probe inserts: more than a page (4 KiB on SQLite), so the probe
/// has to allocate pages and fails whenever a write that needs space would.
const PROBE_BYTES: usize = 8 * 1024;

/// Users, sessions and keys in one SQL database. See the module documentation.
pub struct SqlStore<D: Dialect> {
    pool: Pool<D::Db>,
    /// Set when a write found the storage unable to take it; cleared by the next write or
    /// readiness probe that commits.
    storage_failing: Arc<AtomicBool>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> SqlStore<D> {
        SqlStore {
            pool: self.pool.clone(),
            storage_failing: Arc::clone(&self.storage_failing),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("db", &<D::Db as Database>::NAME)
            .field("storage_failing", &self.storage_failing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStore<D>
where
    <D::Db as Database>::Connection: Migrate,
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
{
    /// A store on `pool`, after applying the pending migrations (the pool is closed if they
    /// fail). The backends' constructors end here; tests pass a pool of their own making (one
    /// connection, say, to set per-connection pragmas on it).
    pub async fn with_pool(pool: Pool<D::Db>) -> Result<SqlStore<D>, StoreError> {
        // On PostgreSQL the migrator holds an advisory lock while it runs, so instances
        // starting together apply each migration once.
        if let Err(error) = D::migrator().run(&pool).await {
            pool.close().await;
            return Err(migrate_error(error));
        }
        Ok(SqlStore {
            pool,
            storage_failing: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Connects with the dialect's pool options (sizing, acquire timeout) and migrates.
    pub(crate) async fn connect_with(
        options: <<D::Db as Database>::Connection as sqlx::Connection>::Options,
    ) -> Result<SqlStore<D>, StoreError>
    where
        <D::Db as Database>::Connection: Migrate,
        for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    {
        let pool = D::pool_options().connect_with(options).await.map_err(store_error)?;
        SqlStore::with_pool(pool).await
    }

    /// The connection pool (operator tooling and tests).
    pub fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }

    /// Closes the pool (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether a write found the storage unable to take writes and none has committed since.
    pub fn storage_failing(&self) -> bool {
        self.storage_failing.load(Ordering::Relaxed)
    }

    /// Notes what a write's outcome says about the storage, and passes it on.
    fn wrote<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => {
                if self.storage_failing.load(Ordering::Relaxed) {
                    self.storage_failing.store(false, Ordering::Relaxed);
                }
            }
            Err(StoreError::StorageUnavailable { .. }) => self.storage_failing.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }
}

/// A migration that failed for want of a connection is `Unavailable` (retry later), one the
/// storage refused is `StorageUnavailable`; any other failure (bad checksum, broken SQL) is
/// `Internal`.
fn migrate_error(error: MigrateError) -> StoreError {
    match &error {
        MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) => match store_error_ref(inner) {
            Some(mapped) => mapped,
            None => StoreError::Internal(format!("migration failed: {error}")),
        },
        _ => StoreError::Internal(format!("migration failed: {error}")),
    }
}

/// [`store_error`] for the kinds a caller may retry, `None` for the rest.
fn store_error_ref(error: &sqlx::Error) -> Option<StoreError> {
    if let Some(fault) = crate::storage_fault(error) {
        return Some(StoreError::StorageUnavailable {
            fault,
            detail: format!("migration failed: {error}"),
        });
    }
    crate::is_unavailable(error).then(|| StoreError::Unavailable(format!("migration failed: {error}")))
}

/// Maps a unique violation on `users` to the field it concerns.
fn user_write_error<D: Dialect>(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
        && let Some(field) = D::conflict_field(db.as_ref())
    {
        return StoreError::Conflict(field);
    }
    store_error(error)
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    email: String,
    username: String,
    password_hash: String,
    created_at: i64,
    disabled_at: Option<i64>,
    kind: String,
    email_verified_at: Option<i64>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> User {
        User {
            id: row.id,
            email: row.email,
            username: row.username,
            password_hash: row.password_hash,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
            service_account: row.kind == SERVICE_KIND,
            email_verified_at: row.email_verified_at,
        }
    }
}

const USER_COLUMNS: &str = "id, email, username, password_hash, created_at, disabled_at, kind, email_verified_at";
/// `users.kind` of a service account (migration 0006).
const SERVICE_KIND: &str = "service";

/// A session row and its account's username (the one-statement refresh).
#[derive(FromRow)]
struct RotatedRow {
    #[sqlx(flatten)]
    session: SessionRow,
    username: String,
}

#[derive(FromRow)]
struct SessionRow {
    id: String,
    user_id: i64,
    current_jti: String,
    previous_jti: Option<String>,
    refresh_issued_at: i64,
    rotated_at: i64,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    ip_address: Option<String>,
    user_agent: Option<String>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Session {
        Session {
            id: row.id,
            user_id: row.user_id,
            current_jti: row.current_jti,
            previous_jti: row.previous_jti,
            refresh_issued_at: row.refresh_issued_at,
            rotated_at: row.rotated_at,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            ip_address: row.ip_address,
            user_agent: row.user_agent,
        }
    }
}

const SESSION_COLUMNS: &str = "id, user_id, current_jti, previous_jti, refresh_issued_at, rotated_at, created_at, \
                               last_used_at, expires_at, revoked_at, ip_address, user_agent";

#[derive(FromRow)]
struct KeyRow {
    kid: String,
    purpose: String,
    alg: String,
    state: String,
    created_at: i64,
    deactivated_at: Option<i64>,
    activates_at: Option<i64>,
    retired_at: Option<i64>,
    private_key: Vec<u8>,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<StoredKey, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("key {}: bad {what}", row.kid));
        Ok(StoredKey {
            purpose: KeyPurpose::from_name(&row.purpose).ok_or_else(|| corrupt("purpose"))?,
            alg: Algorithm::from_name(&row.alg).ok_or_else(|| corrupt("alg"))?,
            state: KeyState::from_name(&row.state).ok_or_else(|| corrupt("state"))?,
            created_at: row.created_at,
            deactivated_at: row.deactivated_at,
            activates_at: row.activates_at.unwrap_or(row.created_at),
            retired_at: row.retired_at,
            private_key: row.private_key,
            kid: row.kid,
        })
    }
}

/// The first row of a statement that was run to completion (see the module documentation).
fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

// The bounds every statement below needs from the driver: executing on the pool and on a
// connection, and encoding/decoding the handful of value types the schema uses. Rust does not
// carry them from a trait's where-clause to its users, so each impl block states them.
#[async_trait]
impl<D: Dialect> UserStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    for<'q> String: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
        if !self.storage_failing() {
            return Ok(());
        }
        // A write failed for want of storage: ready again only once a write that needs space
        // commits. The probe leaves nothing behind.
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let probe = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("INSERT INTO health (probe) VALUES ($1)")
                .bind(&[0x5a_u8; PROBE_BYTES][..])
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM health").execute(&mut *tx).await?;
            tx.commit().await
        };
        let probed = probe.await;
        if probed.is_err() {
            conn.close_on_drop();
        }
        self.wrote(probed.map_err(store_error))
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let sql = format!(
            "INSERT INTO users (email, email_normalized, username, username_normalized, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
        );
        let (email_normalized, username_normalized) = (user.email_normalized.clone(), user.username.to_lowercase());
        let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(user.email.as_str())
            .bind(email_normalized.as_str())
            .bind(user.username.as_str())
            .bind(username_normalized.as_str())
            .bind(user.password_hash.as_str())
            .bind(user.created_at)
            .fetch_all(&self.pool)
            .await
            .map_err(user_write_error::<D>);
        let row = self.wrote(rows)?;
        first(row)
            .map(User::from)
            .ok_or_else(|| StoreError::Internal("INSERT ... RETURNING returned no row".into()))
    }

    async fn find_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(store_error)
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_normalized = $1 OR username_normalized = $1");
        let normalized = login.to_lowercase();
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(normalized.as_str())
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(store_error)
    }

    async fn update_email(&self, id: i64, email: &str, email_normalized: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query_scalar::<_, i64>(
            "UPDATE users SET email = $1, email_normalized = $2 WHERE id = $3 RETURNING id",
        )
        .bind(email)
        .bind(email_normalized)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(user_write_error::<D>);
        self.wrote(changed).map(|rows| !rows.is_empty())
    }

    async fn find_by_normalized_email(&self, email_normalized: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_normalized = $1");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(email_normalized)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(store_error)
    }

    async fn update_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(store_error);
        self.wrote(done).map(|_| ())
    }

    async fn change_password(
        &self,
        id: i64,
        password_hash: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let changed = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let updated = sqlx::query_scalar::<_, i64>(
                "UPDATE users SET password_hash = $1 WHERE id = $2 AND disabled_at IS NULL RETURNING id",
            )
            .bind(password_hash)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            if updated.is_empty() {
                return Ok(None);
            }
            // An absent `keep` matches no id ('' is never a session id).
            let revoked = sqlx::query_scalar::<_, String>(
                "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 \
                 AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
            )
            .bind(now)
            .bind(id)
            .bind(keep.unwrap_or(""))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(revoked))
        };
        let changed = changed.await;
        if changed.is_err() {
            conn.close_on_drop();
        }
        self.wrote(changed.map_err(store_error))
    }

    async fn delete_account(&self, id: i64, now: i64, purge_before: i64) -> Result<Option<DeletedAccount>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let deleted = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let sessions = sqlx::query_scalar::<_, String>(
                "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY id",
            )
            .bind(id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let api_keys = sqlx::query_scalar::<_, String>("SELECT id FROM api_keys WHERE user_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            let gone = sqlx::query_scalar::<_, i64>("DELETE FROM users WHERE id = $1 RETURNING id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            if gone.is_empty() {
                return Ok(None);
            }
            let tombstones = sessions
                .iter()
                .map(|sid| ("session", sid))
                .chain(api_keys.iter().map(|key| ("api_key", key)));
            for (kind, credential) in tombstones {
                sqlx::query(
                    "INSERT INTO deleted_credentials (kind, id, deleted_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (kind, id) DO NOTHING",
                )
                .bind(kind)
                .bind(credential.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM deleted_credentials WHERE deleted_at < $1")
                .bind(purge_before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(DeletedAccount { sessions, api_keys }))
        };
        let deleted = deleted.await;
        if deleted.is_err() {
            conn.close_on_drop();
        }
        self.wrote(deleted.map_err(store_error))
    }

    async fn set_disabled(&self, id: i64, disabled_at: Option<i64>) -> Result<bool, StoreError> {
        let changed = sqlx::query_scalar::<_, i64>("UPDATE users SET disabled_at = $1 WHERE id = $2 RETURNING id")
            .bind(disabled_at)
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error);
        self.wrote(changed).map(|ids| !ids.is_empty())
    }

    async fn list(&self, limit: i64, offset: i64) -> Result<Vec<User>, StoreError> {
        // SQLite reads a negative LIMIT as "no limit" and a negative OFFSET as 0; PostgreSQL
        // rejects both: clamp here, so one statement serves both.
        let limit = if limit < 0 { i64::MAX } else { limit };
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(offset.max(0))
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(User::from).collect())
            .map_err(store_error)
    }

    async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = sqlx::query_scalar::<_, i64>("DELETE FROM users WHERE id = $1 RETURNING id")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error);
        self.wrote(deleted).map(|ids| !ids.is_empty())
    }

    async fn roles(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        // Byte order, the same on both backends (a role name is plain ASCII).
        let sql = format!(
            "SELECT role FROM user_roles WHERE user_id = $1 ORDER BY role COLLATE {}",
            D::BYTE_ORDER
        );
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn add_role(&self, user_id: i64, role: &str, now: i64) -> Result<bool, StoreError> {
        // One statement: the account must exist, and a role already held changes nothing.
        let added = sqlx::query_scalar::<_, i64>(
            "INSERT INTO user_roles (user_id, role, created_at) SELECT id, $2, $3 FROM users WHERE id = $1 \
             ON CONFLICT (user_id, role) DO NOTHING RETURNING user_id",
        )
        .bind(user_id)
        .bind(role)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(added).map(|ids| !ids.is_empty())
    }

    async fn remove_role(&self, user_id: i64, role: &str) -> Result<bool, StoreError> {
        let removed =
            sqlx::query_scalar::<_, i64>("DELETE FROM user_roles WHERE user_id = $1 AND role = $2 RETURNING user_id")
                .bind(user_id)
                .bind(role)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error);
        self.wrote(removed).map(|ids| !ids.is_empty())
    }

    async fn create_service_account(&self, name: &str, now: i64) -> Result<User, StoreError> {
        let sql = format!(
            "INSERT INTO users (email, email_normalized, username, username_normalized, password_hash, created_at, kind) \
             VALUES ($1, $2, $3, $4, $5, $6, '{SERVICE_KIND}') RETURNING {USER_COLUMNS}"
        );
        let email = tessera_core::store::service_account_email(name);
        let normalized = name.to_lowercase();
        let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(email.as_str())
            .bind(email.as_str())
            .bind(name)
            .bind(normalized.as_str())
            .bind(tessera_core::store::SERVICE_ACCOUNT_PASSWORD_HASH)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(user_write_error::<D>);
        let row = self.wrote(rows)?;
        first(row)
            .map(User::from)
            .ok_or_else(|| StoreError::Internal("INSERT ... RETURNING returned no row".into()))
    }

    async fn list_service_accounts(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE kind = '{SERVICE_KIND}' ORDER BY id");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(User::from).collect())
            .map_err(store_error)
    }
}

#[async_trait]
impl<D: Dialect> SessionStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    for<'q> String: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn create(&self, session: NewSession) -> Result<Option<Session>, StoreError> {
        // Conditional on the account being enabled in the same statement: a login that passed
        // the disabled check just before `users disable` cannot create its session after the
        // disable revoked the account's sessions (see `Dialect::ACCOUNT_SHARE_LOCK`).
        let sql = format!(
            "INSERT INTO sessions (id, user_id, current_jti, refresh_issued_at, rotated_at, created_at, last_used_at, \
             expires_at, ip_address, user_agent) \
             SELECT $1, $2, $3, $4, $4, $4, $4, $5, $6, $7 \
             WHERE EXISTS (SELECT 1 FROM users WHERE users.id = $2 AND users.disabled_at IS NULL{}) \
             RETURNING {SESSION_COLUMNS}",
            D::ACCOUNT_SHARE_LOCK
        );
        let rows = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(session.id.as_str())
            .bind(session.user_id)
            .bind(session.refresh_jti.as_str())
            .bind(session.now)
            .bind(session.expires_at)
            .bind(session.ip_address.as_deref())
            .bind(session.user_agent.as_deref())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error);
        self.wrote(rows).map(|rows| first(rows).map(Session::from))
    }

    async fn find(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(Session::from))
            .map_err(store_error)
    }

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<RotationOutcome, StoreError> {
        // One conditional UPDATE: of any number of concurrent rotations of the same token,
        // exactly one matches `current_jti = presented`. (SQLite runs one writer at a time;
        // under PostgreSQL's READ COMMITTED the losers block on the winner's row lock, then
        // re-check the WHERE against the new row and match nothing.)
        let sql = format!(
            "UPDATE sessions SET previous_jti = current_jti, current_jti = $1, refresh_issued_at = $2, rotated_at = $2, \
             last_used_at = $2, expires_at = $3 \
             WHERE id = $4 AND current_jti = $5 AND revoked_at IS NULL AND expires_at > $2 RETURNING {SESSION_COLUMNS}"
        );
        let rotated = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(rotation.new_jti)
            .bind(rotation.now)
            .bind(rotation.new_expires_at)
            .bind(rotation.session_id)
            .bind(rotation.presented_jti)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error);
        if let Some(row) = first(self.wrote(rotated)?) {
            return Ok(RotationOutcome::Rotated(row.into()));
        }
        let Some(session) = SessionStore::find(self, rotation.session_id).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        if session.revoked_at.is_some() || session.expires_at <= rotation.now {
            return Ok(RotationOutcome::Invalid);
        }
        // Half-open: exactly `grace_secs` after the rotation the window is over.
        let is_just_replaced = session.previous_jti.as_deref() == Some(rotation.presented_jti)
            && rotation.now - session.rotated_at < rotation.grace_secs;
        if is_just_replaced {
            return Ok(RotationOutcome::WithinGrace(session));
        }
        // A spent token came back: whoever holds it, the family is compromised.
        let revoked = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(rotation.now)
            .bind(rotation.session_id)
            .execute(&self.pool)
            .await
            .map_err(store_error);
        self.wrote(revoked)?;
        Ok(RotationOutcome::ReuseDetected(Session {
            revoked_at: Some(rotation.now),
            ..session
        }))
    }

    async fn rotate_for_refresh(
        &self,
        users: &dyn UserStore,
        user_id: i64,
        rotation: Rotation<'_>,
    ) -> Result<RefreshRotation, StoreError> {
        // The common case in one statement: a current token of a live session of an active
        // account. Anything else (a concurrent or spent token, a disabled account) takes the
        // two-step path, which sorts out which it is. Run to completion (`fetch_all`), so the
        // rotation is committed before the new token goes out.
        let sql = format!(
            "UPDATE sessions SET previous_jti = current_jti, current_jti = $1, refresh_issued_at = $2, rotated_at = $2, \
             last_used_at = $2, expires_at = $3 \
             WHERE id = $4 AND current_jti = $5 AND revoked_at IS NULL AND expires_at > $2 AND user_id = $6 \
             AND EXISTS (SELECT 1 FROM users WHERE users.id = $6 AND users.disabled_at IS NULL) \
             RETURNING {SESSION_COLUMNS}, (SELECT username FROM users WHERE users.id = $6) AS username"
        );
        let rotated = sqlx::query_as::<_, RotatedRow>(sqlx::AssertSqlSafe(sql))
            .bind(rotation.new_jti)
            .bind(rotation.now)
            .bind(rotation.new_expires_at)
            .bind(rotation.session_id)
            .bind(rotation.presented_jti)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error);
        match first(self.wrote(rotated)?) {
            Some(row) => Ok(RefreshRotation::Attempted {
                username: row.username,
                outcome: RotationOutcome::Rotated(row.session.into()),
            }),
            None => check_account_then_rotate(self, users, user_id, rotation).await,
        }
    }

    async fn list_active(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id COLLATE {}",
            D::BYTE_ORDER
        );
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(Session::from).collect())
            .map_err(store_error)
    }

    async fn revoke(&self, user_id: i64, id: &str, now: i64) -> Result<bool, StoreError> {
        let revoked = sqlx::query_scalar::<_, String>(
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(revoked).map(|ids| !ids.is_empty())
    }

    async fn revoke_all(&self, user_id: i64, now: i64) -> Result<Vec<String>, StoreError> {
        let revoked = sqlx::query_scalar::<_, String>(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(revoked)
    }

    async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1 \
             UNION ALL SELECT id, deleted_at FROM deleted_credentials WHERE kind = 'session' AND deleted_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn count_active(&self, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1")
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)
    }
}

#[async_trait]
impl<D: Dialect> KeyStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    for<'q> String: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn list(&self, purpose: KeyPurpose) -> Result<Vec<StoredKey>, StoreError> {
        let sql = format!(
            "SELECT kid, purpose, alg, state, created_at, deactivated_at, activates_at, retired_at, private_key \
             FROM signing_keys WHERE purpose = $1 ORDER BY created_at, kid COLLATE {}",
            D::BYTE_ORDER
        );
        sqlx::query_as::<_, KeyRow>(sqlx::AssertSqlSafe(sql))
            .bind(purpose.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(StoredKey::try_from)
            .collect()
    }

    async fn insert(&self, key: StoredKey, condition: InsertCondition) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let inserted = async {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, D::KEY_INSERT_BEGIN).await?;
            if let Some(lock) = D::KEY_INSERT_LOCK {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            let blocking: i64 = match condition {
                InsertCondition::Always => 0,
                InsertCondition::IfNone => {
                    sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE purpose = $1")
                        .bind(key.purpose.as_str())
                        .fetch_one(&mut *tx)
                        .await?
                }
                InsertCondition::IfNoneCreatedAfter(cutoff) => {
                    sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE purpose = $1 AND created_at > $2")
                        .bind(key.purpose.as_str())
                        .bind(cutoff)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            if blocking > 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO signing_keys (kid, purpose, alg, state, created_at, deactivated_at, activates_at, \
                 retired_at, private_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(key.kid.as_str())
            .bind(key.purpose.as_str())
            .bind(key.alg.as_str())
            .bind(key.state.as_str())
            .bind(key.created_at)
            .bind(key.deactivated_at)
            .bind(key.activates_at)
            .bind(key.retired_at)
            .bind(key.private_key.as_slice())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        };
        let inserted = inserted.await;
        if inserted.is_err() {
            conn.close_on_drop();
        }
        self.wrote(inserted.map_err(store_error))
    }

    async fn retire(&self, kid: &str, at: i64) -> Result<bool, StoreError> {
        let retired =
            sqlx::query_scalar::<_, String>("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 RETURNING kid")
                .bind(at)
                .bind(kid)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error);
        self.wrote(retired).map(|kids| !kids.is_empty())
    }

    async fn delete(&self, kid: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query_scalar::<_, String>("DELETE FROM signing_keys WHERE kid = $1 RETURNING kid")
            .bind(kid)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error);
        self.wrote(deleted).map(|kids| !kids.is_empty())
    }
}

#[derive(FromRow)]
struct ApiKeyRow {
    id: String,
    user_id: i64,
    name: String,
    prefix: String,
    key_hash: Vec<u8>,
    scopes: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    rate_limit: Option<String>,
    quota: Option<String>,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    rotated_to: Option<String>,
    updated_at: i64,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> ApiKey {
        ApiKey {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            prefix: row.prefix,
            key_hash: row.key_hash,
            scopes: row.scopes,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            rate_limit: row.rate_limit,
            quota: row.quota,
            last_used_at: row.last_used_at,
            last_used_ip: row.last_used_ip,
            rotated_to: row.rotated_to,
            updated_at: row.updated_at,
        }
    }
}

/// A key row joined with its owner.
#[derive(FromRow)]
struct ApiKeyOwnerRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    username: String,
    disabled_at: Option<i64>,
    kind: String,
}

const API_KEY_COLUMNS: &str = "k.id, k.user_id, k.name, k.prefix, k.key_hash, k.scopes, k.created_at, k.expires_at, \
     k.revoked_at, k.rate_limit, k.quota, k.last_used_at, k.last_used_ip, k.rotated_to, k.updated_at";

/// The insert of a new key, for an existing, enabled owner only.
const API_KEY_INSERT: &str = "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes, created_at, expires_at, \
     rate_limit, quota, updated_at) SELECT $1, id, $3, $4, $5, $6, $7, $8, $9, $10, $7 FROM users \
     WHERE id = $2 AND disabled_at IS NULL RETURNING id";

#[async_trait]
impl<D: Dialect> ApiKeyStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    for<'q> String: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn create_key(&self, key: ApiKey) -> Result<bool, StoreError> {
        let created = sqlx::query_scalar::<_, String>(API_KEY_INSERT)
            .bind(key.id.as_str())
            .bind(key.user_id)
            .bind(key.name.as_str())
            .bind(key.prefix.as_str())
            .bind(key.key_hash.as_slice())
            .bind(key.scopes.as_str())
            .bind(key.created_at)
            .bind(key.expires_at)
            .bind(key.rate_limit.as_deref())
            .bind(key.quota.as_deref())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error);
        self.wrote(created).map(|ids| !ids.is_empty())
    }

    async fn find_key_by_hash(&self, key_hash: &[u8]) -> Result<Option<ApiKeyLookup>, StoreError> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS}, u.username, u.disabled_at, u.kind FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.key_hash = $1"
        );
        let row = sqlx::query_as::<_, ApiKeyOwnerRow>(sqlx::AssertSqlSafe(sql))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(row.map(|row| ApiKeyLookup {
            key: ApiKey::from(row.key),
            username: row.username,
            owner_disabled: row.disabled_at.is_some(),
            owner_service_account: row.kind == SERVICE_KIND,
        }))
    }

    async fn find_key(&self, user_id: i64, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.user_id = $1 AND k.id = $2");
        sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(ApiKey::from))
            .map_err(store_error)
    }

    async fn list_keys(&self, user_id: i64, now: i64) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.user_id = $1 AND (k.revoked_at IS NULL OR k.revoked_at > $2) \
             ORDER BY k.created_at, k.id COLLATE {}",
            D::BYTE_ORDER
        );
        sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(ApiKey::from).collect())
            .map_err(store_error)
    }

    async fn rotate_key(
        &self,
        user_id: i64,
        id: &str,
        new: ApiKey,
        grace_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let rotated = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let old = sqlx::query_scalar::<_, String>(
                "UPDATE api_keys SET revoked_at = $3, rotated_to = $4, updated_at = $5 \
                 WHERE user_id = $1 AND id = $2 AND rotated_to IS NULL \
                 AND (revoked_at IS NULL OR revoked_at > $5) AND (expires_at IS NULL OR expires_at > $5) RETURNING id",
            )
            .bind(user_id)
            .bind(id)
            .bind(grace_until)
            .bind(new.id.as_str())
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if old.is_empty() {
                return Ok(false);
            }
            let inserted = sqlx::query_scalar::<_, String>(API_KEY_INSERT)
                .bind(new.id.as_str())
                .bind(user_id)
                .bind(new.name.as_str())
                .bind(new.prefix.as_str())
                .bind(new.key_hash.as_slice())
                .bind(new.scopes.as_str())
                .bind(new.created_at)
                .bind(new.expires_at)
                .bind(new.rate_limit.as_deref())
                .bind(new.quota.as_deref())
                .fetch_all(&mut *tx)
                .await?;
            if inserted.is_empty() {
                // The owner was disabled meanwhile: no new key, the old one unchanged.
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        };
        let rotated = rotated.await;
        if rotated.is_err() {
            conn.close_on_drop();
        }
        self.wrote(rotated.map_err(store_error))
    }

    async fn revoke_key(&self, user_id: i64, id: &str, now: i64) -> Result<bool, StoreError> {
        let revoked = sqlx::query_scalar::<_, String>(
            "UPDATE api_keys SET revoked_at = $3, updated_at = $3 WHERE user_id = $1 AND id = $2 \
             AND (revoked_at IS NULL OR revoked_at > $3) RETURNING id",
        )
        .bind(user_id)
        .bind(id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(revoked).map(|ids| !ids.is_empty())
    }

    async fn keys_changed_since(&self, since: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>(
            "SELECT id FROM api_keys WHERE (updated_at >= $1 AND revoked_at IS NOT NULL) \
             OR user_id IN (SELECT id FROM users WHERE disabled_at >= $1) \
             UNION ALL SELECT id FROM deleted_credentials WHERE kind = 'api_key' AND deleted_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn record_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError> {
        // One statement per key, never moving last_used_at backwards; a batch is small (one
        // row per key used since the last flush).
        for used in usage {
            let done = sqlx::query(
                "UPDATE api_keys SET last_used_at = $2, last_used_ip = $3 WHERE id = $1 \
                 AND (last_used_at IS NULL OR last_used_at <= $2)",
            )
            .bind(used.id.as_str())
            .bind(used.at)
            .bind(used.ip.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error);
            self.wrote(done)?;
        }
        Ok(())
    }
}

#[derive(FromRow)]
struct EmailTokenRow {
    user_id: i64,
    purpose: String,
    email: String,
    expires_at: i64,
}

impl TryFrom<EmailTokenRow> for EmailToken {
    type Error = StoreError;

    fn try_from(row: EmailTokenRow) -> Result<EmailToken, StoreError> {
        Ok(EmailToken {
            user_id: row.user_id,
            purpose: EmailTokenPurpose::from_name(&row.purpose)
                .ok_or_else(|| StoreError::Internal(format!("email token: bad purpose {}", row.purpose)))?,
            email: row.email,
            expires_at: row.expires_at,
        })
    }
}

#[async_trait]
impl<D: Dialect> EmailTokenStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    for<'q> String: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn issue_email_token(&self, token: NewEmailToken) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let issued = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("DELETE FROM email_tokens WHERE (user_id = $1 AND purpose = $2) OR expires_at <= $3")
                .bind(token.user_id)
                .bind(token.purpose.as_str())
                .bind(token.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token.token_hash.as_slice())
            .bind(token.user_id)
            .bind(token.purpose.as_str())
            .bind(token.email.as_str())
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        let issued = issued.await;
        if issued.is_err() {
            conn.close_on_drop();
        }
        self.wrote(issued.map_err(store_error))
    }

    async fn find_email_token(&self, token_hash: &[u8], now: i64) -> Result<Option<EmailToken>, StoreError> {
        let rows = sqlx::query_as::<_, EmailTokenRow>(
            "SELECT user_id, purpose, email, expires_at FROM email_tokens WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        first(rows).map(EmailToken::try_from).transpose()
    }

    async fn redeem_email_token(
        &self,
        token_hash: &[u8],
        redemption: Redemption<'_>,
        now: i64,
    ) -> Result<Option<Redeemed>, StoreError> {
        let purpose = redemption.purpose().as_str();
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let redeemed = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let token = first(
                sqlx::query_as::<_, (i64, String)>(
                    "DELETE FROM email_tokens WHERE token_hash = $1 AND purpose = $2 AND expires_at > $3 \
                     RETURNING user_id, email",
                )
                .bind(token_hash)
                .bind(purpose)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?,
            );
            let Some((user_id, email)) = token else {
                return Ok(None);
            };
            let previous = first(
                sqlx::query_scalar::<_, String>("SELECT email FROM users WHERE id = $1 AND disabled_at IS NULL")
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?,
            );
            let Some(previous_email) = previous else {
                return Ok(None);
            };
            let mut revoked_sessions = Vec::new();
            let applied = match redemption {
                Redemption::VerifyEmail => sqlx::query_scalar::<_, i64>(
                    "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) \
                     WHERE id = $2 AND email = $3 RETURNING id",
                )
                .bind(now)
                .bind(user_id)
                .bind(email.as_str())
                .fetch_all(&mut *tx)
                .await?
                .len(),
                Redemption::ChangeEmail { email_normalized } => {
                    let changed = sqlx::query_scalar::<_, i64>(
                        "UPDATE users SET email = $1, email_normalized = $2, email_verified_at = $3 \
                         WHERE id = $4 RETURNING id",
                    )
                    .bind(email.as_str())
                    .bind(email_normalized)
                    .bind(now)
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .len();
                    // Links to verify the old address mean nothing now.
                    sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND purpose = 'verify_email'")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    changed
                }
                Redemption::ResetPassword { password_hash } => {
                    let changed =
                        sqlx::query_scalar::<_, i64>("UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING id")
                            .bind(password_hash)
                            .bind(user_id)
                            .fetch_all(&mut *tx)
                            .await?
                            .len();
                    revoked_sessions = sqlx::query_scalar::<_, String>(
                        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 \
                         AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
                    )
                    .bind(now)
                    .bind(user_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    changed
                }
            };
            if applied == 0 {
                return Ok(None);
            }
            sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND purpose = $2")
                .bind(user_id)
                .bind(purpose)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(Redeemed {
                user_id,
                email,
                previous_email,
                revoked_sessions,
            }))
        };
        let redeemed: Result<Option<Redeemed>, sqlx::Error> = redeemed.await;
        if redeemed.is_err() {
            conn.close_on_drop();
        }
        match redeemed {
            Err(error) => self.wrote(Err(user_write_error::<D>(error))),
            ok => self.wrote(ok.map_err(store_error)),
        }
    }
}

#[derive(FromRow)]
struct TotpRow {
    secret: Vec<u8>,
    confirmed_at: Option<i64>,
    created_at: i64,
    last_step: i64,
}

#[derive(FromRow)]
struct MfaChallengeRow {
    user_id: i64,
    ip_address: Option<String>,
    user_agent: Option<String>,
    attempts: i64,
    expires_at: i64,
}

#[async_trait]
impl<D: Dialect> MfaStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    for<'q> String: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db>,
    for<'q> Option<&'q [u8]>: Encode<'q, D::Db>,
    for<'q> Option<Vec<u8>>: Decode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn start_totp(&self, user_id: i64, secret: &[u8], now: i64) -> Result<bool, StoreError> {
        // One statement: a pending factor is replaced, a confirmed one is left alone (the
        // upsert's WHERE), and the row count says which happened.
        let started = sqlx::query_scalar::<_, i64>(
            "INSERT INTO mfa_totp (user_id, secret, confirmed_at, created_at, last_step) \
             VALUES ($1, $2, NULL, $3, -1) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, \
             last_step = -1 WHERE mfa_totp.confirmed_at IS NULL RETURNING user_id",
        )
        .bind(user_id)
        .bind(secret)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(started.map(|rows| !rows.is_empty()))
    }

    async fn find_totp(&self, user_id: i64) -> Result<Option<TotpFactor>, StoreError> {
        let rows = sqlx::query_as::<_, TotpRow>(
            "SELECT secret, confirmed_at, created_at, last_step FROM mfa_totp WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(first(rows).map(|row| TotpFactor {
            secret: row.secret,
            confirmed_at: row.confirmed_at,
            created_at: row.created_at,
            last_step: row.last_step,
        }))
    }

    async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_code_hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let confirmed = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let confirmed = sqlx::query_scalar::<_, i64>(
                "UPDATE mfa_totp SET confirmed_at = $1, last_step = $2 \
                 WHERE user_id = $3 AND confirmed_at IS NULL AND last_step < $2 RETURNING user_id",
            )
            .bind(now)
            .bind(step)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            if confirmed.is_empty() {
                return Ok(false);
            }
            replace_codes(&mut tx, user_id, recovery_code_hashes, now).await?;
            tx.commit().await?;
            Ok(true)
        };
        let confirmed: Result<bool, sqlx::Error> = confirmed.await;
        if confirmed.is_err() {
            conn.close_on_drop();
        }
        self.wrote(confirmed.map_err(store_error))
    }

    async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        // The replay check and the update are one statement: of two uses of one step, on any
        // instance, exactly one finds `last_step < step`.
        let used = sqlx::query_scalar::<_, i64>(
            "UPDATE mfa_totp SET last_step = $1 \
             WHERE user_id = $2 AND confirmed_at IS NOT NULL AND last_step < $1 RETURNING user_id",
        )
        .bind(step)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(used.map(|rows| !rows.is_empty()))
    }

    async fn delete_mfa(&self, user_id: i64) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let deleted = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let gone = sqlx::query_scalar::<_, i64>("DELETE FROM mfa_totp WHERE user_id = $1 RETURNING user_id")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(!gone.is_empty())
        };
        let deleted: Result<bool, sqlx::Error> = deleted.await;
        if deleted.is_err() {
            conn.close_on_drop();
        }
        self.wrote(deleted.map_err(store_error))
    }

    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        recovery_code_hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let replaced = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let enrolled = sqlx::query_scalar::<_, i64>(
                "SELECT user_id FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL",
            )
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            if enrolled.is_empty() {
                return Ok(false);
            }
            replace_codes(&mut tx, user_id, recovery_code_hashes, now).await?;
            tx.commit().await?;
            Ok(true)
        };
        let replaced: Result<bool, sqlx::Error> = replaced.await;
        if replaced.is_err() {
            conn.close_on_drop();
        }
        self.wrote(replaced.map_err(store_error))
    }

    async fn consume_recovery_code(&self, user_id: i64, code_hash: &[u8]) -> Result<bool, StoreError> {
        let used = sqlx::query_scalar::<_, i64>(
            "DELETE FROM mfa_recovery_codes WHERE user_id = $1 AND code_hash = $2 RETURNING user_id",
        )
        .bind(user_id)
        .bind(code_hash)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(used.map(|rows| !rows.is_empty()))
    }

    async fn recovery_codes_left(&self, user_id: i64) -> Result<u32, StoreError> {
        let count = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(first(count).and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
    }

    async fn create_mfa_challenge(&self, challenge: NewMfaChallenge) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let created = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1")
                .bind(challenge.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO mfa_challenges (token_hash, user_id, ip_address, user_agent, attempts, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6)",
            )
            .bind(challenge.token_hash.as_slice())
            .bind(challenge.user_id)
            .bind(challenge.ip_address.as_deref())
            .bind(challenge.user_agent.as_deref())
            .bind(challenge.created_at)
            .bind(challenge.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        let created = created.await;
        if created.is_err() {
            conn.close_on_drop();
        }
        self.wrote(created.map_err(store_error))
    }

    async fn attempt_mfa_challenge(
        &self,
        token_hash: &[u8],
        max_attempts: i64,
        now: i64,
    ) -> Result<Option<MfaChallenge>, StoreError> {
        // Counting the attempt and checking the budget is one conditional update: parallel
        // guesses at one token cannot get more than `max_attempts` between them.
        let rows = sqlx::query_as::<_, MfaChallengeRow>(
            "UPDATE mfa_challenges SET attempts = attempts + 1 \
             WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3 \
             RETURNING user_id, ip_address, user_agent, attempts, expires_at",
        )
        .bind(token_hash)
        .bind(now)
        .bind(max_attempts)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(rows.map(|rows| {
            first(rows).map(|row| MfaChallenge {
                user_id: row.user_id,
                ip_address: row.ip_address,
                user_agent: row.user_agent,
                attempts: row.attempts,
                expires_at: row.expires_at,
            })
        }))
    }

    async fn consume_mfa_challenge(&self, token_hash: &[u8], now: i64) -> Result<bool, StoreError> {
        let gone = sqlx::query_scalar::<_, i64>(
            "DELETE FROM mfa_challenges WHERE token_hash = $1 AND expires_at > $2 RETURNING user_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(gone.map(|rows| !rows.is_empty()))
    }
}

/// Replaces an account's recovery codes inside the caller's transaction.
async fn replace_codes<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    user_id: i64,
    recovery_code_hashes: &[Vec<u8>],
    now: i64,
) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for hash in recovery_code_hashes {
        sqlx::query("INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(hash.as_slice())
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[derive(FromRow)]
struct PasskeyRow {
    credential_id: Vec<u8>,
    user_id: i64,
    name: String,
    user_handle: Vec<u8>,
    public_key: Vec<u8>,
    state: Vec<u8>,
    sign_count: i64,
    transports: i64,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<PasskeyRow> for Passkey {
    fn from(row: PasskeyRow) -> Passkey {
        Passkey {
            credential_id: row.credential_id,
            user_id: row.user_id,
            name: row.name,
            user_handle: row.user_handle,
            public_key: row.public_key,
            state: row.state,
            sign_count: row.sign_count,
            transports: row.transports,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(FromRow)]
struct CeremonyRow {
    id_hash: Vec<u8>,
    user_id: Option<i64>,
    mfa_token_hash: Option<Vec<u8>>,
    state: Vec<u8>,
    created_at: i64,
    expires_at: i64,
}

#[async_trait]
impl<D: Dialect> PasskeyStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    for<'q> String: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db>,
    for<'q> Option<&'q [u8]>: Encode<'q, D::Db>,
    for<'q> Option<Vec<u8>>: Decode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn create_ceremony(&self, ceremony: PasskeyCeremony) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let created = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
                .bind(ceremony.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO passkey_ceremonies (id_hash, kind, user_id, mfa_token_hash, state, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(ceremony.id_hash.as_slice())
            .bind(ceremony.kind.as_str())
            .bind(ceremony.user_id)
            .bind(ceremony.mfa_token_hash.as_deref())
            .bind(ceremony.state.as_slice())
            .bind(ceremony.created_at)
            .bind(ceremony.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        let created = created.await;
        if created.is_err() {
            conn.close_on_drop();
        }
        self.wrote(created.map_err(store_error))
    }

    async fn take_ceremony(
        &self,
        id_hash: &[u8],
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<PasskeyCeremony>, StoreError> {
        // One statement: of two finishes of one ceremony, on any instance, one gets the row.
        let rows = sqlx::query_as::<_, CeremonyRow>(
            "DELETE FROM passkey_ceremonies WHERE id_hash = $1 AND kind = $2 AND expires_at > $3 \
             RETURNING id_hash, user_id, mfa_token_hash, state, created_at, expires_at",
        )
        .bind(id_hash)
        .bind(kind.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        let rows = self.wrote(rows)?;
        Ok(first(rows).map(|row| PasskeyCeremony {
            id_hash: row.id_hash,
            kind,
            user_id: row.user_id,
            mfa_token_hash: row.mfa_token_hash,
            state: row.state,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }))
    }

    async fn add_passkey(&self, passkey: Passkey) -> Result<bool, StoreError> {
        let added = sqlx::query_scalar::<_, i64>(
            "INSERT INTO passkeys (credential_id, user_id, name, user_handle, public_key, state, sign_count, transports, \
             created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (credential_id) DO NOTHING RETURNING user_id",
        )
        .bind(passkey.credential_id.as_slice())
        .bind(passkey.user_id)
        .bind(passkey.name.as_str())
        .bind(passkey.user_handle.as_slice())
        .bind(passkey.public_key.as_slice())
        .bind(passkey.state.as_slice())
        .bind(passkey.sign_count)
        .bind(passkey.transports)
        .bind(passkey.created_at)
        .bind(passkey.last_used_at)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(added.map(|rows| !rows.is_empty()))
    }

    async fn list_passkeys(&self, user_id: i64) -> Result<Vec<Passkey>, StoreError> {
        let rows = sqlx::query_as::<_, PasskeyRow>(
            "SELECT credential_id, user_id, name, user_handle, public_key, state, sign_count, transports, \
             created_at, last_used_at FROM passkeys WHERE user_id = $1 ORDER BY created_at, credential_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.into_iter().map(Passkey::from).collect())
    }

    async fn find_passkey(&self, credential_id: &[u8]) -> Result<Option<Passkey>, StoreError> {
        let rows = sqlx::query_as::<_, PasskeyRow>(
            "SELECT credential_id, user_id, name, user_handle, public_key, state, sign_count, transports, \
                 created_at, last_used_at FROM passkeys WHERE credential_id = $1",
        )
        .bind(credential_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(first(rows).map(Passkey::from))
    }

    async fn record_passkey_use(
        &self,
        credential_id: &[u8],
        expected_state: &[u8],
        state: &[u8],
        sign_count: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let used = sqlx::query_scalar::<_, i64>(
            "UPDATE passkeys SET state = $1, sign_count = $2, last_used_at = $3 \
             WHERE credential_id = $4 AND state = $5 RETURNING user_id",
        )
        .bind(state)
        .bind(sign_count)
        .bind(now)
        .bind(credential_id)
        .bind(expected_state)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(used.map(|rows| !rows.is_empty()))
    }

    async fn delete_passkey(&self, user_id: i64, credential_id: &[u8]) -> Result<bool, StoreError> {
        let gone = sqlx::query_scalar::<_, i64>(
            "DELETE FROM passkeys WHERE user_id = $1 AND credential_id = $2 RETURNING user_id",
        )
        .bind(user_id)
        .bind(credential_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error);
        self.wrote(gone.map(|rows| !rows.is_empty()))
    }

    async fn delete_passkeys(&self, user_id: i64) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(store_error)?;
        let deleted = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let gone = sqlx::query_scalar::<_, i64>("DELETE FROM passkeys WHERE user_id = $1 RETURNING user_id")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM passkey_ceremonies WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(gone.len() as u64)
        };
        let deleted: Result<u64, sqlx::Error> = deleted.await;
        if deleted.is_err() {
            conn.close_on_drop();
        }
        self.wrote(deleted.map_err(store_error))
    }
}
