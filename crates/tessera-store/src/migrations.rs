//! Schema migrations: the ones embedded in this binary, the ones a database has applied, and
//! the difference between the two (`tessera migrate`, `tessera migrate --check`).
//!
//! The stores apply pending migrations whenever they connect (`serve`, and every CLI command
//! that opens them), through sqlx's migrator, which records each migration with its checksum
//! in `_sqlx_migrations`. Reading the status never writes: a database file that does not exist
//! is not created, and a database without the bookkeeping table is not given one.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tessera_core::store::StoreError;

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::store_error;

/// The SQLite migrations (`migrations/sqlite`), embedded at build time.
pub(crate) static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL migrations (`migrations/postgres`), embedded at build time.
pub(crate) static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The bookkeeping table sqlx's migrator keeps.
const TABLE: &str = "_sqlx_migrations";

/// How long the status check waits for a PostgreSQL connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One migration: its version (the number in the file name) and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// The version, e.g. 2 for `0002_key_schedule.sql`.
    pub version: i64,
    /// The description, from the file name (`key schedule`).
    pub description: String,
}

/// Something about the applied migrations that `tessera migrate` cannot fix by applying more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationProblem {
    /// The migration of this version failed part-way; the schema needs an operator.
    Failed(i64),
    /// The migration of this version was applied from different SQL than this binary holds
    /// (an applied migration was edited, or the binary belongs to another branch).
    Modified(i64),
    /// The database has a migration this binary does not know: a newer version migrated it.
    Unknown(i64),
}

impl std::fmt::Display for MigrationProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationProblem::Failed(v) => write!(f, "migration {v} failed part-way and must be repaired by hand"),
            MigrationProblem::Modified(v) => {
                write!(f, "migration {v} was applied from different SQL than this binary holds")
            }
            MigrationProblem::Unknown(v) => write!(
                f,
                "migration {v} is applied but unknown to this binary (was the database migrated by a newer version?)"
            ),
        }
    }
}

/// Where a database stands against the migrations of this binary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationStatus {
    /// Whether the database exists at all (an SQLite file that is not there yet is `false`;
    /// every migration is then pending).
    pub database_exists: bool,
    /// The migrations of this binary that the database has applied, oldest first.
    pub applied: Vec<MigrationInfo>,
    /// The migrations of this binary that the database has not applied, oldest first.
    pub pending: Vec<MigrationInfo>,
    /// Anything applying cannot fix.
    pub problems: Vec<MigrationProblem>,
}

impl MigrationStatus {
    /// Whether the schema is exactly what this binary expects: nothing pending, no problem.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.problems.is_empty()
    }
}

/// Compares the rows of `_sqlx_migrations` (version, checksum, success) with `migrator`.
fn compare(migrator: &Migrator, rows: &[(i64, Vec<u8>, bool)]) -> MigrationStatus {
    let mut status = MigrationStatus {
        database_exists: true,
        ..MigrationStatus::default()
    };
    for migration in migrator.iter().filter(|m| !m.migration_type.is_down_migration()) {
        let info = MigrationInfo {
            version: migration.version,
            description: migration.description.to_string(),
        };
        match rows.iter().find(|(version, _, _)| *version == migration.version) {
            None => status.pending.push(info),
            Some((version, checksum, success)) => {
                if !success {
                    status.problems.push(MigrationProblem::Failed(*version));
                } else if checksum.as_slice() != &*migration.checksum {
                    status.problems.push(MigrationProblem::Modified(*version));
                }
                status.applied.push(info);
            }
        }
    }
    for (version, _, success) in rows {
        if !migrator.version_exists(*version) {
            status.problems.push(if *success {
                MigrationProblem::Unknown(*version)
            } else {
                MigrationProblem::Failed(*version)
            });
        }
    }
    status
}

/// The migration status of the SQLite database at `path`, read without writing anything.
pub async fn sqlite_status(path: &Path) -> Result<MigrationStatus, StoreError> {
    if !path.exists() {
        return Ok(MigrationStatus {
            database_exists: false,
            ..compare(&SQLITE_MIGRATOR, &[])
        });
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(store_error)?;
    let has_table: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)")
            .bind(TABLE)
            .fetch_one(&mut conn)
            .await
            .map_err(store_error)?;
    let rows = if has_table {
        applied_rows_sqlite(&mut conn).await?
    } else {
        Vec::new()
    };
    let _ = conn.close().await;
    Ok(compare(&SQLITE_MIGRATOR, &rows))
}

async fn applied_rows_sqlite(conn: &mut SqliteConnection) -> Result<Vec<(i64, Vec<u8>, bool)>, StoreError> {
    sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(conn)
        .await
        .map_err(store_error)
}

/// Applies the pending migrations to the SQLite database at `path` (creating it, mode 0600,
/// if needed), exactly as `serve` does at start.
pub async fn sqlite_apply(path: &Path) -> Result<(), StoreError> {
    SqliteStore::open(path).await?.close().await;
    Ok(())
}

/// The migration status of the PostgreSQL database at `url` (its `search_path` decides the
/// schema), read without writing anything.
pub async fn postgres_status(url: &str) -> Result<MigrationStatus, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(store_error)?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| StoreError::Unavailable("timed out connecting to postgres".into()))?
        .map_err(store_error)?;
    // to_regclass follows the search_path, as the migrator's unqualified table name does.
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(TABLE)
        .fetch_one(&mut conn)
        .await
        .map_err(store_error)?;
    let rows = if has_table {
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .map_err(store_error)?
    } else {
        Vec::new()
    };
    let _ = conn.close().await;
    Ok(compare(&POSTGRES_MIGRATOR, &rows))
}

/// Applies the pending migrations to the PostgreSQL database at `url`, exactly as `serve`
/// does at start (under the migrator's advisory lock, so concurrent starts apply each once).
pub async fn postgres_apply(url: &str) -> Result<(), StoreError> {
    PgStore::connect(url).await?.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_for(migrator: &Migrator) -> Vec<(i64, Vec<u8>, bool)> {
        migrator
            .iter()
            .map(|m| (m.version, m.checksum.to_vec(), true))
            .collect()
    }

    #[test]
    fn a_database_with_every_migration_is_current() {
        let status = compare(&SQLITE_MIGRATOR, &rows_for(&SQLITE_MIGRATOR));
        assert!(status.is_current(), "{status:?}");
        assert_eq!(status.applied.len(), SQLITE_MIGRATOR.iter().count());
        assert_eq!(status.applied[0].version, 1);
        assert_eq!(status.applied[0].description, "init");
    }

    #[test]
    fn missing_modified_failed_and_unknown_migrations_are_each_reported() {
        // Arrange: the first migration applied from other SQL, the second missing, a failed
        // and an unknown one on top.
        let mut rows = rows_for(&POSTGRES_MIGRATOR);
        rows.truncate(1);
        rows[0].1 = vec![0; 48];
        rows.push((9_001, vec![1], true));
        rows.push((9_002, vec![2], false));
        // Act
        let status = compare(&POSTGRES_MIGRATOR, &rows);
        // Assert
        assert!(!status.is_current());
        assert_eq!(
            status.pending.iter().map(|m| m.version).collect::<Vec<_>>(),
            POSTGRES_MIGRATOR.iter().skip(1).map(|m| m.version).collect::<Vec<_>>()
        );
        assert_eq!(
            status.problems,
            [
                MigrationProblem::Modified(1),
                MigrationProblem::Unknown(9_001),
                MigrationProblem::Failed(9_002)
            ]
        );
    }

    #[tokio::test]
    async fn status_of_a_missing_file_creates_nothing_and_apply_makes_it_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        let before = sqlite_status(&path).await.unwrap();
        assert!(!before.database_exists);
        assert_eq!(before.pending.len(), SQLITE_MIGRATOR.iter().count());
        assert!(!path.exists(), "reading the status created the file");
        sqlite_apply(&path).await.unwrap();
        let after = sqlite_status(&path).await.unwrap();
        assert!(after.database_exists && after.is_current(), "{after:?}");
    }
}
