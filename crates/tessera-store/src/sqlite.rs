//! The embedded SQLite backend: the zero-configuration default (B1).
//!
//! The database file is created with mode 0600 (it holds password hashes and, in the managed
//! key ring, private keys), in WAL mode so readers never block the writer, with foreign keys
//! on and a busy timeout so concurrent writers queue instead of failing.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};
use tessera_core::Algorithm;
use tessera_core::keys::KeyState;
use tessera_core::store::{
    InsertCondition, KeyPurpose, KeyStore, NewSession, NewUser, RefreshRotation, Rotation, RotationOutcome, Session,
    SessionStore, StoreError, StoredKey, User, UserStore, check_account_then_rotate,
};

use crate::store_error;

/// Users, sessions and keys in one SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        SqliteStore::connect(options).await
    }

    /// Opens a database from a `sqlite:` URL (DATABASE_URL).
    pub async fn open_url(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(store_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(path) = options
            .get_filename()
            .to_str()
            .filter(|p| !p.is_empty() && *p != ":memory:")
        {
            create_private_file(Path::new(path))?;
        }
        SqliteStore::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<SqliteStore, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(store_error)?;
        crate::migrations::SQLITE_MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        Ok(SqliteStore { pool })
    }

    /// Closes the pool (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the file with mode 0600 if it does not exist, and tightens it if it does.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
    }
    Ok(())
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    email: String,
    username: String,
    password_hash: String,
    created_at: i64,
    disabled_at: Option<i64>,
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
        }
    }
}

const USER_COLUMNS: &str = "id, email, username, password_hash, created_at, disabled_at";

/// Maps a unique violation to the field it concerns.
fn user_write_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        return if db.message().contains("email") {
            StoreError::Conflict("email")
        } else {
            StoreError::Conflict("username")
        };
    }
    store_error(error)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let sql = format!(
            "INSERT INTO users (email, email_normalized, username, username_normalized, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING {USER_COLUMNS}"
        );
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(&user.email)
            .bind(user.email.to_lowercase())
            .bind(&user.username)
            .bind(user.username.to_lowercase())
            .bind(&user.password_hash)
            .bind(user.created_at)
            .fetch_one(&self.pool)
            .await
            .map(User::from)
            .map_err(user_write_error)
    }

    async fn find_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(store_error)
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_normalized = ?1 OR username_normalized = ?1");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(login.to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(store_error)
    }

    async fn update_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn set_disabled(&self, id: i64, disabled_at: Option<i64>) -> Result<bool, StoreError> {
        sqlx::query("UPDATE users SET disabled_at = ? WHERE id = ?")
            .bind(disabled_at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }

    async fn list(&self, limit: i64, offset: i64) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT ? OFFSET ?");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(User::from).collect())
            .map_err(store_error)
    }

    async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }
}

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

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, session: NewSession) -> Result<Session, StoreError> {
        let sql = format!(
            "INSERT INTO sessions (id, user_id, current_jti, refresh_issued_at, rotated_at, created_at, last_used_at, \
             expires_at, ip_address, user_agent) VALUES (?1, ?2, ?3, ?4, ?4, ?4, ?4, ?5, ?6, ?7) RETURNING {SESSION_COLUMNS}"
        );
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(&session.id)
            .bind(session.user_id)
            .bind(&session.refresh_jti)
            .bind(session.now)
            .bind(session.expires_at)
            .bind(&session.ip_address)
            .bind(&session.user_agent)
            .fetch_one(&self.pool)
            .await
            .map(Session::from)
            .map_err(store_error)
    }

    async fn find(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?");
        sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(Session::from))
            .map_err(store_error)
    }

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<RotationOutcome, StoreError> {
        // One conditional UPDATE: of any number of concurrent rotations of the same token,
        // exactly one matches `current_jti = presented`.
        let sql = format!(
            "UPDATE sessions SET previous_jti = current_jti, current_jti = ?1, refresh_issued_at = ?2, rotated_at = ?2, \
             last_used_at = ?2, expires_at = ?3 \
             WHERE id = ?4 AND current_jti = ?5 AND revoked_at IS NULL AND expires_at > ?2 RETURNING {SESSION_COLUMNS}"
        );
        let rotated = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(rotation.new_jti)
            .bind(rotation.now)
            .bind(rotation.new_expires_at)
            .bind(rotation.session_id)
            .bind(rotation.presented_jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        if let Some(row) = rotated {
            return Ok(RotationOutcome::Rotated(row.into()));
        }
        let Some(session) = SessionStore::find(self, rotation.session_id).await? else {
            return Ok(RotationOutcome::Invalid);
        };
        if session.revoked_at.is_some() || session.expires_at <= rotation.now {
            return Ok(RotationOutcome::Invalid);
        }
        let is_just_replaced = session.previous_jti.as_deref() == Some(rotation.presented_jti)
            && rotation.now - session.rotated_at < rotation.grace_secs;
        if is_just_replaced {
            return Ok(RotationOutcome::WithinGrace(session));
        }
        // A spent token came back: whoever holds it, the family is compromised.
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(rotation.now)
            .bind(rotation.session_id)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
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
        // two-step path, which sorts out which it is.
        let sql = format!(
            "UPDATE sessions SET previous_jti = current_jti, current_jti = ?1, refresh_issued_at = ?2, rotated_at = ?2, \
             last_used_at = ?2, expires_at = ?3 \
             WHERE id = ?4 AND current_jti = ?5 AND revoked_at IS NULL AND expires_at > ?2 AND user_id = ?6 \
             AND EXISTS (SELECT 1 FROM users WHERE users.id = ?6 AND users.disabled_at IS NULL) \
             RETURNING {SESSION_COLUMNS}, (SELECT username FROM users WHERE users.id = ?6) AS username"
        );
        let rotated = sqlx::query_as::<_, RotatedRow>(sqlx::AssertSqlSafe(sql))
            .bind(rotation.new_jti)
            .bind(rotation.now)
            .bind(rotation.new_expires_at)
            .bind(rotation.session_id)
            .bind(rotation.presented_jti)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        match rotated {
            Some(row) => Ok(RefreshRotation::Attempted {
                username: row.username,
                outcome: RotationOutcome::Rotated(row.session.into()),
            }),
            None => check_account_then_rotate(self, users, user_id, rotation).await,
        }
    }

    async fn list_active(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
             ORDER BY created_at DESC, id"
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
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }

    async fn revoke_all(&self, user_id: i64, now: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>(
            "UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL AND expires_at > ?1 RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>("SELECT id, revoked_at FROM sessions WHERE revoked_at >= ?")
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)
    }

    async fn count_active(&self, now: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?")
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)
    }
}

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

#[async_trait]
impl KeyStore for SqliteStore {
    async fn list(&self, purpose: KeyPurpose) -> Result<Vec<StoredKey>, StoreError> {
        sqlx::query_as::<_, KeyRow>(
            "SELECT kid, purpose, alg, state, created_at, deactivated_at, activates_at, retired_at, private_key \
             FROM signing_keys WHERE purpose = ? ORDER BY created_at, kid",
        )
        .bind(purpose.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(StoredKey::try_from)
        .collect()
    }

    async fn insert(&self, key: StoredKey, condition: InsertCondition) -> Result<bool, StoreError> {
        // BEGIN IMMEDIATE takes the write lock first, so two processes cannot both pass the check.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(store_error)?;
        let blocking: i64 = match condition {
            InsertCondition::Always => 0,
            InsertCondition::IfNone => sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE purpose = ?")
                .bind(key.purpose.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?,
            InsertCondition::IfNoneCreatedAfter(cutoff) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE purpose = ? AND created_at > ?")
                    .bind(key.purpose.as_str())
                    .bind(cutoff)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(store_error)?
            }
        };
        if blocking > 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, purpose, alg, state, created_at, deactivated_at, activates_at, retired_at, \
             private_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(key.purpose.as_str())
        .bind(key.alg.as_str())
        .bind(key.state.as_str())
        .bind(key.created_at)
        .bind(key.deactivated_at)
        .bind(key.activates_at)
        .bind(key.retired_at)
        .bind(&key.private_key)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(true)
    }

    async fn retire(&self, kid: &str, at: i64) -> Result<bool, StoreError> {
        sqlx::query("UPDATE signing_keys SET retired_at = ? WHERE kid = ?")
            .bind(at)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }

    async fn delete(&self, kid: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
            .bind(kid)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }
}
