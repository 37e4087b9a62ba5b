//! The embedded SQLite backend: the zero-configuration default (B1).
//!
//! The database file is created with mode 0600 (it holds password hashes and, in the managed
//! key ring, private keys), in WAL mode so readers never block the writer, with foreign keys
//! on and a busy timeout so concurrent writers queue instead of failing. The statements are
//! [`crate::sql`]'s; this module holds what is SQLite's own.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tessera_core::store::StoreError;

use crate::sql::{Dialect, SqlStore};
use crate::store_error;

/// SQLite's side of [`Dialect`].
#[derive(Debug, Clone, Copy)]
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    const BYTE_ORDER: &'static str = "BINARY";
    const ACCOUNT_SHARE_LOCK: &'static str = "";
    const KEY_INSERT_BEGIN: &'static str = "BEGIN IMMEDIATE";
    const KEY_INSERT_LOCK: Option<&'static str> = None;

    /// SQLite's driver names no constraint; its message names the column
    /// (`UNIQUE constraint failed: users.email_normalized`).
    fn conflict_field(error: &dyn DatabaseError) -> Option<&'static str> {
        let message = error.message();
        if message.contains("users.email") {
            Some("email")
        } else if message.contains("users.username") {
            Some("username")
        } else {
            None
        }
    }

    fn pool_options() -> PoolOptions<Sqlite> {
        SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
    }

    fn migrator() -> &'static Migrator {
        &crate::migrations::SQLITE_MIGRATOR
    }
}

/// Users, sessions and keys in one SQLite database.
pub type SqliteStore = SqlStore<SqliteDialect>;

impl SqlStore<SqliteDialect> {
    /// Opens (creating if needed, mode 0600) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteDialect::pool_options()).await
    }

    /// [`SqliteStore::open`] with a pool of the caller's making: the tests use one connection
    /// whose per-connection pragmas (`max_page_count`, `query_only`) they then control.
    pub async fn open_with(path: &Path, pool: SqlitePoolOptions) -> Result<SqliteStore, StoreError> {
        create_private_file(path)?;
        let options = connect_options(SqliteConnectOptions::new().filename(path));
        let pool = pool.connect_with(options).await.map_err(store_error)?;
        SqliteStore::with_pool(pool).await
    }

    /// Opens a database from a `sqlite:` URL (DATABASE_URL).
    pub async fn open_url(url: &str) -> Result<SqliteStore, StoreError> {
        let options = connect_options(SqliteConnectOptions::from_str(url).map_err(store_error)?);
        if let Some(path) = options
            .get_filename()
            .to_str()
            .filter(|p| !p.is_empty() && *p != ":memory:")
        {
            create_private_file(Path::new(path))?;
        }
        SqliteStore::connect_with(options).await
    }
}

/// The options every connection gets: created if missing, WAL, NORMAL sync (durable at every
/// checkpoint, and WAL commits survive a process crash), foreign keys (the cascade from users
/// to sessions), a busy timeout so writers queue.
fn connect_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
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
