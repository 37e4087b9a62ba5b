//! Storage backends for Tessera, behind the traits of `tessera_core::store`.
//!
//! # Layout
//!
//! - [`sql`]: the one SQL store, [`sql::SqlStore`], generic over a [`sql::Dialect`]: every
//!   statement written once, run to completion so a write is committed before it returns.
//! - [`sqlite`]: the embedded default. One file under DATA_DIR, created with mode 0600, WAL
//!   journal, migrations embedded in the binary and applied at start.
//! - [`postgres`]: PostgreSQL, for several instances sharing one database. Same schema and
//!   semantics as SQLite (one contract suite judges both), migrations embedded and applied at
//!   start under an advisory lock.
//! - [`migrations`]: the embedded migrations against what a database has applied
//!   (`tessera migrate`); reading the status never writes.
//! - [`memory`]: in-process state that needs no durability of its own: the access-token
//!   denylist (rebuilt from the database at start), and the single-instance rate limiter.
//!
//! - [`breaker`]: a circuit breaker in front of a database's stores: once a call finds the
//!   database unavailable, calls fail at once until a background ping succeeds.
//! - [`redis_bus`]: Redis pub/sub between instances (revocations), with bounded timeouts.
//! - [`redis`]: rate-limit counters shared by every instance, one atomic Lua script per hit
//!   on the Redis server's clock, with bounded timeouts.
//!
//! Every write is one statement or one transaction, committed before it returns, so a failure
//! leaves nothing half done and nothing acknowledged is lost.

pub mod breaker;
pub mod memory;
pub mod migrations;
pub mod postgres;
pub mod redis;
pub mod redis_bus;
pub mod sql;
pub mod sqlite;

use tessera_core::store::{StorageFault, StoreError};

/// Maps a sqlx error to the store's error: storage that cannot take writes is
/// `StorageUnavailable`, connection trouble `Unavailable` (the server answers 503 and the client
/// may retry either), everything else `Internal`.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    if let Some(fault) = storage_fault(&error) {
        StoreError::StorageUnavailable {
            fault,
            detail: error.to_string(),
        }
    } else if is_unavailable(&error) {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Internal(error.to_string())
    }
}

/// Whether a sqlx error means "the database cannot be reached right now" rather than a fault.
pub(crate) fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => is_busy(db.as_ref()) || is_pg_unavailable(db.code().as_deref()),
        _ => false,
    }
}

/// Whether a sqlx error says the storage cannot take writes, and why. SQLite reports extended
/// result codes (`778` is SQLITE_IOERR_WRITE); their low byte is the primary code: SQLITE_FULL
/// (13), SQLITE_READONLY (8), SQLITE_IOERR (10), SQLITE_CANTOPEN (14). PostgreSQL SQLSTATEs:
/// 53100 disk_full, 25006 read_only_sql_transaction, class 58 (system errors: I/O, missing
/// files).
pub(crate) fn storage_fault(error: &sqlx::Error) -> Option<StorageFault> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return match sqlite_primary_code(db.code().as_deref()) {
            Some(13) => Some(StorageFault::Full),
            Some(8) => Some(StorageFault::ReadOnly),
            Some(10 | 14) => Some(StorageFault::Io),
            _ => None,
        };
    }
    match db.code()?.as_ref() {
        "53100" => Some(StorageFault::Full),
        "25006" => Some(StorageFault::ReadOnly),
        code if code.starts_with("58") => Some(StorageFault::Io),
        _ => None,
    }
}

/// SQLITE_BUSY (5) and SQLITE_LOCKED (6) with their extended codes, after the busy timeout ran
/// out.
fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && matches!(sqlite_primary_code(db.code().as_deref()), Some(5 | 6))
}

/// The primary result code of an SQLite (extended) result code.
fn sqlite_primary_code(code: Option<&str>) -> Option<i32> {
    code.and_then(|code| code.parse::<i32>().ok())
        .map(|extended| extended & 0xff)
}

/// Postgres SQLSTATEs for a server that is there but not serving: class 08 (connection
/// exception), 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting
/// up, recovering), 53300 too many connections.
fn is_pg_unavailable(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300"))
}
