//! The PostgreSQL backend, for deployments that run more than one instance (B1).
//!
//! It mirrors [`crate::sqlite`] statement for statement, so the two backends answer the contract
//! suite identically: same tables (migrations/postgres), same conditional `UPDATE ... RETURNING`
//! for rotation, same ordering. What differs is what Postgres needs: a pool sized for a server,
//! unique violations told apart by constraint name, and `insert_initial` serialised by a table
//! lock instead of SQLite's `BEGIN IMMEDIATE`, since here several processes share the database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, FromRow, PgPool};
use tessera_core::Algorithm;
use tessera_core::keys::KeyState;
use tessera_core::store::{
    InsertCondition, KeyPurpose, KeyStore, NewSession, NewUser, RefreshRotation, Rotation, RotationOutcome, Session,
    SessionStore, StoreError, StoredKey, User, UserStore, check_account_then_rotate,
};

use crate::store_error;

/// Upper bound on pooled connections per instance; Postgres' default `max_connections` is 100,
/// so a handful of instances fit.
const MAX_CONNECTIONS: u32 = 16;

/// How long a query waits for a pooled connection (or a new one to be established) before the
/// store reports [`StoreError::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Users, sessions and keys in one PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`) and applies
    /// migrations. An unreachable server is [`StoreError::Unavailable`] after at most the
    /// acquire timeout (5 s), never a hang.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(store_error)?;
        PgStore::connect_options(options).await
    }

    /// Like [`PgStore::connect`], but everything lives in `schema`: it is created if missing and
    /// every pooled connection gets it as its `search_path`, so the migrations and all queries
    /// land there. The tests use one schema per test to stay isolated on a shared database.
    ///
    /// `schema` must be a plain lowercase identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<PgStore, StoreError> {
        if !is_plain_identifier(schema) {
            return Err(StoreError::Internal(format!("invalid schema name {schema:?}")));
        }
        let options = PgConnectOptions::from_str(url).map_err(store_error)?;
        create_schema(&options, schema).await?;
        PgStore::connect_options(options.options([("search_path", schema)])).await
    }

    async fn connect_options(options: PgConnectOptions) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(store_error)?;
        // The migrator holds a Postgres advisory lock while it runs, so instances starting
        // together apply each migration once.
        if let Err(error) = crate::migrations::POSTGRES_MIGRATOR.run(&pool).await {
            pool.close().await;
            return Err(migrate_error(error));
        }
        Ok(PgStore { pool })
    }

    /// Closes the pool (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `[a-z_][a-z0-9_]*`, at most 63 bytes (Postgres' identifier limit): safe to quote into SQL
/// and to pass as a `search_path` option without escaping.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// Creates `schema` over a one-off connection (the pool's connections already point their
/// `search_path` at it). Two callers racing on the same name both succeed.
async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<(), StoreError> {
    let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| StoreError::Unavailable("timed out connecting to postgres".into()))?
        .map_err(store_error)?;
    let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    let created = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
    // IF NOT EXISTS is not race-free: a concurrent creator surfaces as duplicate_schema
    // (42P06) or as a unique violation on pg_namespace (23505). Either way the schema exists.
    let result = match created {
        Err(sqlx::Error::Database(db)) if matches!(db.code().as_deref(), Some("42P06" | "23505")) => Ok(()),
        other => other.map(|_| ()).map_err(store_error),
    };
    let _ = conn.close().await;
    result
}

/// A migration that failed for want of a connection is `Unavailable` (retry later); any other
/// failure (bad checksum, broken SQL) is `Internal`.
fn migrate_error(error: MigrateError) -> StoreError {
    match &error {
        MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _) if crate::is_unavailable(inner) => {
            StoreError::Unavailable(format!("migration failed: {error}"))
        }
        _ => StoreError::Internal(format!("migration failed: {error}")),
    }
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

/// Maps a unique violation to the field it concerns, by the constraint names of the migration.
fn user_write_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        match db.constraint() {
            Some("users_email_key") => return StoreError::Conflict("email"),
            Some("users_username_key") => return StoreError::Conflict("username"),
            _ => {}
        }
    }
    store_error(error)
}

#[async_trait]
impl UserStore for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        let sql = format!(
            "INSERT INTO users (email, email_normalized, username, username_normalized, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
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
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(login.to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(store_error)
    }

    async fn update_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn set_disabled(&self, id: i64, disabled_at: Option<i64>) -> Result<bool, StoreError> {
        sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(disabled_at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }

    async fn list(&self, limit: i64, offset: i64) -> Result<Vec<User>, StoreError> {
        // SQLite reads a negative LIMIT as "no limit" and a negative OFFSET as 0; Postgres
        // rejects both, so translate (LIMIT NULL is LIMIT ALL).
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY id \
             LIMIT CASE WHEN $1 < 0 THEN NULL ELSE $1 END OFFSET GREATEST($2, 0)"
        );
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(User::from).collect())
            .map_err(store_error)
    }

    async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM users WHERE id = $1")
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
impl SessionStore for PgStore {
    async fn create(&self, session: NewSession) -> Result<Session, StoreError> {
        let sql = format!(
            "INSERT INTO sessions (id, user_id, current_jti, refresh_issued_at, rotated_at, created_at, last_used_at, \
             expires_at, ip_address, user_agent) VALUES ($1, $2, $3, $4, $4, $4, $4, $5, $6, $7) RETURNING {SESSION_COLUMNS}"
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
        // exactly one matches `current_jti = presented`. Under READ COMMITTED the losers block
        // on the winner's row lock, then re-check the WHERE against the new row and match
        // nothing.
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
        // Half-open: exactly `grace_secs` after the rotation the window is over.
        let is_just_replaced = session.previous_jti.as_deref() == Some(rotation.presented_jti)
            && rotation.now - session.rotated_at < rotation.grace_secs;
        if is_just_replaced {
            return Ok(RotationOutcome::WithinGrace(session));
        }
        // A spent token came back: whoever holds it, the family is compromised.
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
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
        let returned: Vec<String> = SESSION_COLUMNS.split(", ").map(|c| format!("s.{}", c.trim())).collect();
        let sql = format!(
            "UPDATE sessions s SET previous_jti = s.current_jti, current_jti = $1, refresh_issued_at = $2, rotated_at = $2, \
             last_used_at = $2, expires_at = $3 FROM users u \
             WHERE s.id = $4 AND s.current_jti = $5 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.user_id = $6 \
             AND u.id = s.user_id AND u.disabled_at IS NULL RETURNING {}, u.username",
            returned.join(", ")
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
        // COLLATE "C": byte order on the text id, as SQLite's default BINARY collation.
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id COLLATE \"C\""
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
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
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
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as::<_, (String, i64)>("SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1")
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
impl KeyStore for PgStore {
    async fn list(&self, purpose: KeyPurpose) -> Result<Vec<StoredKey>, StoreError> {
        sqlx::query_as::<_, KeyRow>(
            "SELECT kid, purpose, alg, state, created_at, deactivated_at, activates_at, retired_at, private_key \
             FROM signing_keys WHERE purpose = $1 ORDER BY created_at, kid COLLATE \"C\"",
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
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // SHARE ROW EXCLUSIVE conflicts with itself and every writer: concurrent inserters take
        // turns, and each one's check sees what the previous one committed.
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let blocking: i64 = match condition {
            InsertCondition::Always => 0,
            InsertCondition::IfNone => sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE purpose = $1")
                .bind(key.purpose.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?,
            InsertCondition::IfNoneCreatedAfter(cutoff) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE purpose = $1 AND created_at > $2")
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
             private_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2")
            .bind(at)
            .bind(kid)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }

    async fn delete(&self, kid: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(store_error)
    }
}
