//! Storage backends for Tessera, behind the traits of `tessera_core::store`.
//!
//! # Layout
//!
//! - [`sqlite`]: the embedded default. One file under DATA_DIR, created with mode 0600, WAL
//!   journal, migrations embedded in the binary and applied at start.
//! - [`memory`]: in-process state that needs no durability of its own: the access-token
//!   denylist (rebuilt from the database at start).
//!
//! Every write is one statement or one transaction, so a failure leaves nothing half done.

pub mod memory;
pub mod sqlite;

use tessera_core::store::StoreError;

/// Maps a sqlx error to the store's error: connection trouble is `Unavailable` (the server
/// answers 503 and the client may retry), everything else `Internal`.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

/// SQLITE_BUSY (5) and SQLITE_LOCKED (6), after the busy timeout ran out.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "262"))
}
