//! In-process state: the access-token denylist.
//!
//! Lookups happen on every authenticated request, so they take a read lock on two small hash
//! maps and nothing else. Entries carry their expiry and are purged as the maps grow, so the
//! memory used is bounded by the number of revocations within one access-token lifetime.

use std::collections::HashMap;
use std::sync::RwLock;

use tessera_core::store::Denylist;

/// Maps are purged of expired entries whenever they grow past this many entries since the
/// last purge.
const PURGE_EVERY: usize = 1024;

#[derive(Default)]
struct Entries {
    until: HashMap<String, i64>,
    inserted_since_purge: usize,
}

impl Entries {
    fn insert(&mut self, id: &str, until: i64, now: i64) {
        let entry = self.until.entry(id.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        self.inserted_since_purge += 1;
        if self.inserted_since_purge >= PURGE_EVERY {
            self.until.retain(|_, expires| *expires > now);
            self.inserted_since_purge = 0;
        }
    }

    fn is_live(&self, id: &str, now: i64) -> bool {
        self.until.get(id).is_some_and(|until| *until > now)
    }
}

/// A denylist held in this process only.
#[derive(Default)]
pub struct MemoryDenylist {
    tokens: RwLock<Entries>,
    sessions: RwLock<Entries>,
}

impl MemoryDenylist {
    /// An empty denylist.
    pub fn new() -> MemoryDenylist {
        MemoryDenylist::default()
    }

    /// How many entries are held (tokens, sessions).
    pub fn len(&self) -> (usize, usize) {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner()).until.len();
        let sessions = self.sessions.read().unwrap_or_else(|e| e.into_inner()).until.len();
        (tokens, sessions)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

impl Denylist for MemoryDenylist {
    fn revoke_token(&self, jti: &str, until: i64, now: i64) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti, until, now);
    }

    fn revoke_session(&self, sid: &str, until: i64, now: i64) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid, until, now);
    }

    fn is_revoked(&self, jti: &str, sid: &str, now: i64) -> bool {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_live(sid, now)
            || self.tokens.read().unwrap_or_else(|e| e.into_inner()).is_live(jti, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_token_is_refused_until_its_expiry() {
        let list = MemoryDenylist::new();
        list.revoke_token("j1", 100, 0);
        assert!(list.is_revoked("j1", "s", 99));
        assert!(!list.is_revoked("j1", "s", 100));
        assert!(!list.is_revoked("j2", "s", 99));
    }

    #[test]
    fn revoked_session_refuses_every_token_of_it() {
        let list = MemoryDenylist::new();
        list.revoke_session("s1", 100, 0);
        assert!(list.is_revoked("any", "s1", 50));
        assert!(!list.is_revoked("any", "s2", 50));
    }

    #[test]
    fn a_later_revocation_extends_never_shortens() {
        let list = MemoryDenylist::new();
        list.revoke_session("s1", 100, 0);
        list.revoke_session("s1", 50, 0);
        assert!(list.is_revoked("j", "s1", 80));
    }

    #[test]
    fn expired_entries_are_purged_as_the_map_grows() {
        let list = MemoryDenylist::new();
        for i in 0..PURGE_EVERY - 1 {
            list.revoke_token(&format!("old{i}"), 10, 0);
        }
        list.revoke_token("new", 1_000_000, 500);
        assert!(list.len().0 < 10, "{:?}", list.len());
        assert!(list.is_revoked("new", "s", 999_999));
    }
}
