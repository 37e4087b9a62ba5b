//! Who a caller is, as the gateway tells an upstream (G1) or a proxy (G2): the identity headers
//! and the signed assertion.
//!
//! Plain headers are only as trustworthy as the network between the proxy and the upstream;
//! the assertion (`X-Tessera-Assertion`) is a JWT an upstream verifies with the JWK set, bound to
//! the upstream by `aud` and valid for at most [`ASSERTION_TTL_SECS`]. It is signed by the
//! identity key ring (IDENTITY_ALGORITHM, always asymmetric and managed, rotated like the access
//! keys), never by the access ring: an assertion carries `typ` `tessera-assertion+jwt`, so no
//! verifier of access tokens can take one for an access token.
//!
//! The email address is not in the access token; it comes from a bounded in-memory cache that
//! is trusted for at most [`PROFILE_CACHE_SECS`], so no request pays a database round trip once
//! the user's profile is cached.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::rngs::OsRng;
use serde::Serialize;
use tessera_core::ScopeSet;
use tessera_core::header::TYP_ASSERTION;
use tessera_core::jws;

pub use crate::keys::ASSERTION_TTL_SECS;

use super::App;
use super::api_keys::Authenticated;
use super::error::Error;

/// How long a signed assertion is handed out again for the same caller and audience: half its
/// lifetime, so an upstream always gets one valid for at least 30 more seconds. Signing is the
/// dearest step of a proxied request (ES256: over half its CPU), and an assertion is a
/// short-lived identity token, not a nonce: its `jti` names the token, not the request.
pub const ASSERTION_REUSE_SECS: i64 = ASSERTION_TTL_SECS / 2;
/// Assertions kept for reuse; when full, the cache starts over.
const ASSERTION_CACHE_CAPACITY: usize = 50_000;

/// How long a cached profile (email, account kind) is used before it is read again.
pub const PROFILE_CACHE_SECS: i64 = 60;
/// Profiles kept in memory; when full, the cache starts over.
const PROFILE_CACHE_CAPACITY: usize = 50_000;

/// The identity headers Tessera sets; a client's own copies of them must never reach an
/// upstream (see [`is_identity_header`]).
pub const TESSERA_HEADERS: [&str; 6] = [
    "x-tessera-user-id",
    "x-tessera-username",
    "x-tessera-session-id",
    "x-tessera-scopes",
    "x-tessera-roles",
    "x-tessera-assertion",
];

/// The forward-auth headers of Authelia's convention, understood by nginx, Caddy and Traefik set-ups.
pub const REMOTE_HEADERS: [&str; 4] = ["remote-user", "remote-email", "remote-groups", "remote-name"];

/// What kind of principal is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A service account (G3).
    ServiceAccount,
}

/// The authenticated caller, as upstreams see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub user_id: i64,
    /// Username.
    pub username: String,
    /// Email address (empty for service accounts, whose address is nobody's).
    pub email: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Session id; `None` for an API key.
    pub session_id: Option<String>,
    /// What the credential may do.
    pub scopes: ScopeSet,
    /// The API key's id, when the credential is a key.
    pub api_key_id: Option<String>,
    /// Person or service account.
    pub kind: PrincipalKind,
}

/// The claims of an assertion.
#[derive(Debug, Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    preferred_username: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    email: &'a str,
    roles: &'a [String],
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_id: Option<&'a str>,
    principal: PrincipalKind,
}

/// Whether a request header names an identity or forwarding header that only Tessera (or a
/// trusted proxy) may set: `X-Tessera-*`, `Remote-*`, `X-Forwarded-*`, `Forwarded`,
/// `X-Real-IP`, `X-Original-*`. The gateway strips them from every client request. `name` is
/// compared case-insensitively.
pub fn is_identity_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["x-tessera-", "remote-", "x-forwarded-", "x-original-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || name == "forwarded"
        || name == "x-real-ip"
}

/// A header value with every control character (CR, LF, NUL, ...) removed: values come from
/// usernames and addresses, which validation already keeps clean; this is the second lock.
fn header_safe(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

impl Identity {
    /// `X-Tessera-User-Id`, `-Username`, `-Session-Id` (when a session), `-Scopes`, `-Roles`
    /// (comma-separated). Not the assertion: see [`App::assertion`].
    pub fn tessera_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-tessera-user-id", self.user_id.to_string()),
            ("x-tessera-username", header_safe(&self.username)),
        ];
        if let Some(sid) = &self.session_id {
            headers.push(("x-tessera-session-id", header_safe(sid)));
        }
        headers.push(("x-tessera-scopes", self.scopes.to_string()));
        headers.push(("x-tessera-roles", header_safe(&self.roles.join(","))));
        headers
    }

    /// `Remote-User` (username), `Remote-Email` (when a person), `Remote-Groups` (roles,
    /// comma-separated), `Remote-Name` (the username: Tessera keeps no display name).
    pub fn remote_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("remote-user", header_safe(&self.username))];
        if !self.email.is_empty() {
            headers.push(("remote-email", header_safe(&self.email)));
        }
        headers.push(("remote-groups", header_safe(&self.roles.join(","))));
        headers.push(("remote-name", header_safe(&self.username)));
        headers
    }
}

/// A cached profile.
#[derive(Clone)]
struct Profile {
    email: String,
    kind: PrincipalKind,
    read_at: i64,
}

/// Profiles (email, account kind) by user id, bounded, each trusted for
/// [`PROFILE_CACHE_SECS`].
pub struct ProfileCache {
    entries: Mutex<HashMap<i64, Profile>>,
}

impl Default for ProfileCache {
    fn default() -> Self {
        ProfileCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl ProfileCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Profile>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, user_id: i64, now: i64) -> Option<Profile> {
        let entries = self.lock();
        entries
            .get(&user_id)
            .filter(|p| now >= p.read_at && now - p.read_at < PROFILE_CACHE_SECS)
            .cloned()
    }

    fn insert(&self, user_id: i64, profile: Profile) {
        let mut entries = self.lock();
        if entries.len() >= PROFILE_CACHE_CAPACITY && !entries.contains_key(&user_id) {
            entries.clear();
        }
        entries.insert(user_id, profile);
    }

    /// Forgets a user's profile (the address changed, the account went away).
    pub fn forget(&self, user_id: i64) {
        self.lock().remove(&user_id);
    }
}

/// Signed assertions by everything they say (audience, identity, signing key), each with when
/// it was issued; reused for [`ASSERTION_REUSE_SECS`].
#[derive(Default)]
pub struct AssertionCache {
    entries: Mutex<HashMap<String, (String, i64)>>,
}

impl AssertionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, i64)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &str, now: i64) -> Option<String> {
        let entries = self.lock();
        let (assertion, issued_at) = entries.get(key)?;
        (now >= *issued_at && now - issued_at < ASSERTION_REUSE_SECS).then(|| assertion.clone())
    }

    fn insert(&self, key: String, assertion: String, issued_at: i64) {
        let mut entries = self.lock();
        if entries.len() >= ASSERTION_CACHE_CAPACITY && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (assertion, issued_at));
    }
}

/// The cache key of an assertion: every claim that is not a timestamp or the `jti`, and the
/// key that signs (a rotation takes effect at once).
fn assertion_key(identity: &Identity, audience: &str, kid: &str) -> String {
    format!(
        "{audience}\0{kid}\0{}\0{}\0{}\0{}\0{}\0{}\0{}\0{:?}",
        identity.user_id,
        identity.username,
        identity.email,
        identity.roles.join(","),
        identity.scopes,
        identity.session_id.as_deref().unwrap_or(""),
        identity.api_key_id.as_deref().unwrap_or(""),
        identity.kind,
    )
}

impl App {
    /// The identity of an authenticated caller. The profile part (email, account kind) comes
    /// from the cache, read from the store at most once per [`PROFILE_CACHE_SECS`] per user;
    /// a user no longer in the store is refused as an invalid credential.
    pub async fn identity(&self, caller: &Authenticated) -> Result<Identity, Error> {
        let claims = &caller.claims;
        let now = self.clock.now();
        let profile = match self.profiles.get(claims.user_id, now) {
            Some(profile) => profile,
            None => {
                let user = self
                    .users
                    .find_by_id(claims.user_id)
                    .await?
                    .ok_or(Error::Token(super::error::TokenRejection::Invalid))?;
                let profile = Profile {
                    email: if user.service_account {
                        String::new()
                    } else {
                        user.email
                    },
                    kind: if user.service_account {
                        PrincipalKind::ServiceAccount
                    } else {
                        PrincipalKind::User
                    },
                    read_at: now,
                };
                self.profiles.insert(claims.user_id, profile.clone());
                profile
            }
        };
        Ok(Identity {
            user_id: claims.user_id,
            username: claims.username.clone(),
            email: profile.email,
            roles: claims.roles.clone(),
            session_id: (!claims.sid.is_empty()).then(|| claims.sid.clone()),
            scopes: caller.scopes,
            api_key_id: caller.api_key_id.clone(),
            kind: profile.kind,
        })
    }

    /// The signed assertion of `identity` for the upstream named `audience`: a JWT with `typ`
    /// `tessera-assertion+jwt`, `iss` = ISSUER, `aud` = `audience`, `sub` = the user id,
    /// valid for [`ASSERTION_TTL_SECS`], signed by the identity ring (verifiable with the JWK
    /// set).
    pub fn assertion(&self, identity: &Identity, audience: &str) -> Result<String, Error> {
        let now = self.clock.now();
        let ring = self.keys.identity.load();
        let key = ring
            .signing_key()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no identity signing key")))?;
        let cache_key = assertion_key(identity, audience, key.kid().as_str());
        if let Some(assertion) = self.assertions.get(&cache_key, now) {
            return Ok(assertion);
        }
        let claims = AssertionClaims {
            iss: &self.config.issuer,
            sub: identity.user_id.to_string(),
            aud: audience,
            iat: now,
            nbf: now,
            exp: now + ASSERTION_TTL_SECS,
            jti: super::random_id(),
            preferred_username: &identity.username,
            email: &identity.email,
            roles: &identity.roles,
            scope: identity.scopes.to_string(),
            sid: identity.session_id.as_deref(),
            api_key_id: identity.api_key_id.as_deref(),
            principal: identity.kind,
        };
        let payload = serde_json::to_vec(&claims).map_err(|e| Error::Internal(e.into()))?;
        let assertion = jws::sign(key, Some(TYP_ASSERTION), &payload, &mut OsRng)
            .map_err(|e| Error::Internal(anyhow::anyhow!("{e}")))?;
        self.assertions.insert(cache_key, assertion.clone(), now);
        Ok(assertion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_recognised_case_insensitively() {
        for name in [
            "X-Tessera-User-Id",
            "x-tessera-anything",
            "Remote-User",
            "REMOTE-EMAIL",
            "X-Forwarded-For",
            "x-forwarded-host",
            "Forwarded",
            "X-Real-IP",
            "X-Original-URL",
        ] {
            assert!(is_identity_header(name), "{name}");
        }
        for name in ["authorization", "x-request-id", "content-type", "x-tesserae", "remotes"] {
            assert!(!is_identity_header(name), "{name}");
        }
        for name in TESSERA_HEADERS.iter().chain(REMOTE_HEADERS.iter()) {
            assert!(is_identity_header(name), "{name}");
        }
    }

    #[test]
    fn header_values_never_carry_control_characters() {
        let identity = Identity {
            user_id: 7,
            username: "ann\r\nX-Evil: 1".into(),
            email: "ann@example.com\n".into(),
            roles: vec!["admin".into(), "ops\0".into()],
            session_id: Some("s1".into()),
            scopes: ScopeSet::from_claim(Some("profile:read")),
            api_key_id: None,
            kind: PrincipalKind::User,
        };
        for (name, value) in identity.tessera_headers().into_iter().chain(identity.remote_headers()) {
            assert!(!value.chars().any(char::is_control), "{name}: {value:?}");
        }
        let remote: HashMap<_, _> = identity.remote_headers().into_iter().collect();
        assert_eq!(remote["remote-user"], "annX-Evil: 1");
        assert_eq!(remote["remote-groups"], "admin,ops");
        assert_eq!(remote["remote-email"], "ann@example.com");
    }

    #[test]
    fn service_accounts_send_no_email_and_api_keys_no_session() {
        let identity = Identity {
            user_id: 9,
            username: "ci-bot".into(),
            email: String::new(),
            roles: vec![],
            session_id: None,
            scopes: ScopeSet::from_claim(Some("agent:chat")),
            api_key_id: Some("key_1".into()),
            kind: PrincipalKind::ServiceAccount,
        };
        let names: Vec<_> = identity.remote_headers().into_iter().map(|(n, _)| n).collect();
        assert!(!names.contains(&"remote-email"));
        let names: Vec<_> = identity.tessera_headers().into_iter().map(|(n, _)| n).collect();
        assert!(!names.contains(&"x-tessera-session-id"));
    }

    #[test]
    fn profile_cache_entries_expire_and_the_cache_is_bounded() {
        let cache = ProfileCache::default();
        let profile = |at| Profile {
            email: "a@b.c".into(),
            kind: PrincipalKind::User,
            read_at: at,
        };
        cache.insert(1, profile(100));
        assert!(cache.get(1, 100 + PROFILE_CACHE_SECS - 1).is_some());
        assert!(cache.get(1, 100 + PROFILE_CACHE_SECS).is_none());
        assert!(
            cache.get(1, 99).is_none(),
            "a clock that went back does not extend trust"
        );
        cache.forget(1);
        assert!(cache.get(1, 100).is_none());
        for id in 0..PROFILE_CACHE_CAPACITY as i64 + 1 {
            cache.insert(id, profile(0));
        }
        assert!(cache.lock().len() <= PROFILE_CACHE_CAPACITY);
    }
}
