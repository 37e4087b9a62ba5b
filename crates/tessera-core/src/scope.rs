//! Scopes and roles (G4): what a credential may do, decided without I/O.
//!
//! A scope names one kind of call (`profile:read`, `agent:chat`, ...); `*` grants them all. The
//! vocabulary is small and fixed: an unknown name is refused where a caller asks for it (a key's
//! scopes) and ignored where Tessera itself wrote it (a token's `scope` claim from a newer
//! version), so a scope never grants more than this version knows. A user's full scope follows
//! from their roles: the built-in `admin` role holds `*`, everyone else the user scopes
//! ([`ScopeSet::USER`]). `introspect` is for service accounts only and never part of a user's
//! default scope.

use std::fmt;

/// One scope of the fixed vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `agent:chat`: the agent API (`POST /agent/chat`).
    AgentChat,
    /// `profile:read`: the caller's own profile and sessions.
    ProfileRead,
    /// `sessions:write`: logout, ending sessions.
    SessionsWrite,
    /// `keys:write`: creating, rotating and revoking API keys.
    KeysWrite,
    /// `introspect`: RFC 7662 token introspection (service accounts).
    Introspect,
    /// `*`: every scope.
    All,
}

impl Scope {
    /// Every scope, in display order.
    pub const ALL: [Scope; 6] = [
        Scope::AgentChat,
        Scope::ProfileRead,
        Scope::SessionsWrite,
        Scope::KeysWrite,
        Scope::Introspect,
        Scope::All,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::AgentChat => "agent:chat",
            Scope::ProfileRead => "profile:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::KeysWrite => "keys:write",
            Scope::Introspect => "introspect",
            Scope::All => "*",
        }
    }

    /// The scope of a name, exactly (case-sensitive).
    pub fn from_name(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`")]
pub struct UnknownScope(pub String);

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scope at all.
    pub const EMPTY: ScopeSet = ScopeSet(0);
    /// `*`.
    pub const ALL: ScopeSet = ScopeSet(1 << (Scope::All as u8));
    /// A user's full scope without the `admin` role: everything a person does with their own
    /// account (not `introspect`).
    pub const USER: ScopeSet = ScopeSet(
        (1 << (Scope::AgentChat as u8))
            | (1 << (Scope::ProfileRead as u8))
            | (1 << (Scope::SessionsWrite as u8))
            | (1 << (Scope::KeysWrite as u8)),
    );

    /// Parses a list of scope names separated by spaces or commas (OAuth's `scope` syntax, or
    /// a CLI list); an unknown name is an error. Empty input is the empty set.
    pub fn parse(text: &str) -> Result<ScopeSet, UnknownScope> {
        ScopeSet::from_names(text.split([' ', ',']).filter(|n| !n.is_empty()))
    }

    /// The set of these names; an unknown name is an error.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ScopeSet, UnknownScope> {
        names.into_iter().try_fold(ScopeSet::EMPTY, |set, name| {
            Scope::from_name(name)
                .map(|scope| set.with(scope))
                .ok_or_else(|| UnknownScope(name.to_owned()))
        })
    }

    /// The scopes of an access token's `scope` claim. Names this version does not know are
    /// ignored (they grant nothing here). A token without the claim was issued before scopes
    /// existed, by a password login: it gets the user scope, so tokens issued before the upgrade
    /// keep working for the rest of their (at most `ACCESS_TOKEN_TTL`) life.
    pub fn from_claim(claim: Option<&str>) -> ScopeSet {
        match claim {
            None => ScopeSet::USER,
            Some(text) => text
                .split(' ')
                .filter_map(Scope::from_name)
                .fold(ScopeSet::EMPTY, ScopeSet::with),
        }
    }

    /// This set with `scope` added.
    #[must_use]
    pub fn with(self, scope: Scope) -> ScopeSet {
        ScopeSet(self.0 | scope.bit())
    }

    /// Whether the set holds exactly this scope (no `*` expansion).
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set grants `scope`: it holds it, or `*`.
    pub fn allows(self, scope: Scope) -> bool {
        self.contains(Scope::All) || self.contains(scope)
    }

    /// Whether every scope of `self` is granted by `other` (`*` only by `*`).
    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        other.contains(Scope::All) || self.0 & !other.0 == 0
    }

    /// The scopes both sets grant (`*` stands for every scope).
    #[must_use]
    pub fn intersection(self, other: ScopeSet) -> ScopeSet {
        match (self.contains(Scope::All), other.contains(Scope::All)) {
            (true, true) => ScopeSet::ALL,
            (true, false) => other,
            (false, true) => self,
            (false, false) => ScopeSet(self.0 & other.0),
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in display order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The names, in display order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl fmt::Display for ScopeSet {
    /// Space-separated names in display order (the `scope` claim's form, RFC 8693).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

/// The built-in administrator role: its holders' full scope is `*`.
pub const ADMIN_ROLE: &str = "admin";

/// Longest role name.
pub const MAX_ROLE_LEN: usize = 64;

/// Whether `name` is an acceptable role name: 1 to 64 characters of `a-z`, `0-9`, `_`, `-`,
/// `.` and `:` (roles are free-form, but they travel in tokens and logs, so they stay plain).
pub fn is_valid_role(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROLE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// A user's full scope from their roles: `*` for `admin`, the user scope otherwise.
pub fn scope_for_roles<S: AsRef<str>>(roles: &[S]) -> ScopeSet {
    if roles.iter().any(|r| r.as_ref() == ADMIN_ROLE) {
        ScopeSet::ALL
    } else {
        ScopeSet::USER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        let set = ScopeSet::parse("profile:read agent:chat").unwrap();
        assert!(set.contains(Scope::AgentChat) && set.contains(Scope::ProfileRead));
        assert!(!set.contains(Scope::KeysWrite));
        assert_eq!(set.to_string(), "agent:chat profile:read");
        assert_eq!(ScopeSet::parse(&set.to_string()).unwrap(), set);
        assert_eq!(ScopeSet::parse("a,b"), Err(UnknownScope("a".into())));
        assert_eq!(
            ScopeSet::parse("Profile:read"),
            Err(UnknownScope("Profile:read".into()))
        );
        assert_eq!(ScopeSet::parse("").unwrap(), ScopeSet::EMPTY);
        assert_eq!(
            ScopeSet::parse("keys:write,introspect").unwrap().to_string(),
            "keys:write introspect"
        );
    }

    #[test]
    fn star_allows_everything_and_is_only_a_subset_of_star() {
        for scope in Scope::ALL {
            assert!(ScopeSet::ALL.allows(scope));
        }
        assert!(ScopeSet::USER.is_subset_of(ScopeSet::ALL));
        assert!(!ScopeSet::ALL.is_subset_of(ScopeSet::USER));
        assert!(ScopeSet::ALL.is_subset_of(ScopeSet::ALL));
        let chat = ScopeSet::EMPTY.with(Scope::AgentChat);
        assert!(chat.is_subset_of(ScopeSet::USER));
        assert!(!ScopeSet::USER.is_subset_of(chat));
        assert!(!ScopeSet::EMPTY.with(Scope::Introspect).is_subset_of(ScopeSet::USER));
        assert!(!ScopeSet::USER.allows(Scope::Introspect));
        assert!(!chat.allows(Scope::ProfileRead));
        assert_eq!(ScopeSet::ALL.intersection(chat), chat);
        assert_eq!(chat.intersection(ScopeSet::ALL), chat);
        assert_eq!(ScopeSet::ALL.intersection(ScopeSet::ALL), ScopeSet::ALL);
        let introspect = ScopeSet::EMPTY.with(Scope::Introspect).with(Scope::AgentChat);
        assert_eq!(introspect.intersection(ScopeSet::USER), chat);
    }

    #[test]
    fn claim_without_scope_is_the_user_scope_and_unknown_names_grant_nothing() {
        assert_eq!(ScopeSet::from_claim(None), ScopeSet::USER);
        assert_eq!(
            ScopeSet::from_claim(Some("profile:read future:thing")),
            ScopeSet::EMPTY.with(Scope::ProfileRead)
        );
        assert_eq!(ScopeSet::from_claim(Some("")), ScopeSet::EMPTY);
    }

    #[test]
    fn roles_decide_the_full_scope() {
        assert_eq!(scope_for_roles::<&str>(&[]), ScopeSet::USER);
        assert_eq!(scope_for_roles(&["support"]), ScopeSet::USER);
        assert_eq!(scope_for_roles(&["support", "admin"]), ScopeSet::ALL);
        assert!(is_valid_role("admin") && is_valid_role("team:ops-1"));
        assert!(!is_valid_role("") && !is_valid_role("Admin") && !is_valid_role("a b"));
        assert!(!is_valid_role(&"a".repeat(65)));
    }
}
