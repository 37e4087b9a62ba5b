//! Storage backends for Tessera, behind the traits of `tessera_core::store`.
//!
//! # Layout
//!
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
//! Every write is one statement or one transaction, so a failure leaves nothing half done.

pub mod breaker;
pub mod memory;
pub mod migrations;
pub mod postgres;
pub mod redis;
pub mod redis_bus;
pub mod sqlite;

use tessera_core::store::StoreError;

/// Maps a sqlx error to the store's error: connection trouble is `Unavailable` (the server
/// answers 503 and the client may retry), everything else `Internal`.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    if is_unavailable(&error) {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Internal(error.to_string())
    }
}

/// Whether a sqlx error means "the database cannot be reached right now" rather than a fault.
pub(crate) fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            is_busy(code.as_deref()) || is_pg_unavailable(code.as_deref())
        }
        _ => false,
    }
}

/// SQLITE_BUSY (5) and SQLITE_LOCKED (6), after the busy timeout ran out.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "262"))
}

/// Postgres SQLSTATEs for a server that is there but not serving: class 08 (connection
/// exception), 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting
/// up, recovering), 53300 too many connections.
fn is_pg_unavailable(code: Option<&str>) -> bool {
    code.is_some_and(|code| code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300"))
}
