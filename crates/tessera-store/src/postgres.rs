//! The PostgreSQL backend, for deployments that run more than one instance (B1).
//!
//! The statements are [`crate::sql`]'s, so the two backends answer the contract suite
//! identically: same tables (migrations/postgres), same conditional `UPDATE ... RETURNING` for
//! rotation, same ordering. What is Postgres' own is here: a pool sized for a server, unique
//! violations told apart by constraint name, the key insert serialised by a table lock (several
//! processes share the database), and the session insert taking a share lock on its account.

use std::str::FromStr;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, Postgres};
use tessera_core::store::StoreError;

use crate::sql::{Dialect, SqlStore};
use crate::store_error;

/// Upper bound on pooled connections per instance; Postgres' default `max_connections` is 100,
/// so a handful of instances fit.
const MAX_CONNECTIONS: u32 = 16;

/// How long a query waits for a pooled connection (or a new one to be established) before the
/// store reports [`StoreError::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL's side of [`Dialect`].
#[derive(Debug, Clone, Copy)]
pub struct PgDialect;

impl Dialect for PgDialect {
    type Db = Postgres;
    const BYTE_ORDER: &'static str = "\"C\"";
    const ACCOUNT_SHARE_LOCK: &'static str = " FOR SHARE";
    const KEY_INSERT_BEGIN: &'static str = "BEGIN";
    const KEY_INSERT_LOCK: Option<&'static str> = Some("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE");

    /// By the constraint names of the migration.
    fn conflict_field(error: &dyn DatabaseError) -> Option<&'static str> {
        match error.constraint() {
            Some("users_email_key") => Some("email"),
            Some("users_username_key") => Some("username"),
            _ => None,
        }
    }

    fn pool_options() -> PoolOptions<Postgres> {
        PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
    }

    fn migrator() -> &'static Migrator {
        &crate::migrations::POSTGRES_MIGRATOR
    }
}

/// Users, sessions and keys in one PostgreSQL database.
pub type PgStore = SqlStore<PgDialect>;

impl SqlStore<PgDialect> {
    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`) and applies
    /// migrations. An unreachable server is [`StoreError::Unavailable`] after at most the
    /// acquire timeout (5 s), never a hang.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(store_error)?;
        PgStore::connect_with(options).await
    }

    /// Like [`PgStore::connect`], but everything lives in `schema`: it is created if missing and
    /// every pooled connection gets it as its `search_path`, so the migrations and all queries
    /// land there. The tests use one schema per test to stay isolated on a shared database.
    ///
    /// `schema` must be a plain lowercase identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with_schema_and(url, schema, PgDialect::pool_options()).await
    }

    /// [`PgStore::connect_with_schema`] with a pool of the caller's making (tests: one
    /// connection whose session settings they control).
    pub async fn connect_with_schema_and(url: &str, schema: &str, pool: PgPoolOptions) -> Result<PgStore, StoreError> {
        if !is_plain_identifier(schema) {
            return Err(StoreError::Internal(format!("invalid schema name {schema:?}")));
        }
        let options = PgConnectOptions::from_str(url).map_err(store_error)?;
        create_schema(&options, schema).await?;
        let pool = pool
            .connect_with(options.options([("search_path", schema)]))
            .await
            .map_err(store_error)?;
        PgStore::with_pool(pool).await
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
