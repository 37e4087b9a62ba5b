//! The storage contracts the server depends on, and the plain data they move.
//!
//! Traits only: the implementations (SQLite, PostgreSQL, in-memory, Redis) live in
//! `tessera-store`, and the server holds them as `Arc<dyn Trait>` chosen from configuration, so
//! a handler never knows which backend answers. Every method is one atomic operation: a write
//! is either committed whole or not visible at all.

use async_trait::async_trait;

use crate::jws::Algorithm;
use crate::keys::KeyState;
use crate::limits::{Decision, RateLimitSpec};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated; the field names which one (`email`, `username`).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The backend cannot be reached right now; the request may be retried later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database answers but its storage cannot take writes: disk full, read-only, I/O
    /// error. Nothing was written; the request may be retried once space (or the disk) is back.
    #[error("storage cannot take writes ({fault}): {detail}")]
    StorageUnavailable {
        /// What is wrong with the storage.
        fault: StorageFault,
        /// The database's message, for the log.
        detail: String,
    },
    /// Anything else (corrupt row, unexpected database error). Logged, never shown.
    #[error("store error: {0}")]
    Internal(String),
}

/// Why storage cannot take writes ([`StoreError::StorageUnavailable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageFault {
    /// No space left (SQLite `SQLITE_FULL`, PostgreSQL `53100 disk_full`).
    Full,
    /// The database or its files are read-only (SQLite `SQLITE_READONLY`, PostgreSQL `25006`).
    ReadOnly,
    /// The disk failed a read or a write, or a file cannot be opened (SQLite `SQLITE_IOERR`,
    /// `SQLITE_CANTOPEN`, PostgreSQL class 58).
    Io,
}

impl StorageFault {
    /// Every fault, for metric label values.
    pub const ALL: [StorageFault; 3] = [StorageFault::Full, StorageFault::ReadOnly, StorageFault::Io];

    /// A short stable name (`full`, `read_only`, `io`), e.g. a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageFault::Full => "full",
            StorageFault::ReadOnly => "read_only",
            StorageFault::Io => "io",
        }
    }
}

impl std::fmt::Display for StorageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database id; also the JWT `user_id` claim.
    pub id: i64,
    /// Email address as registered.
    pub email: String,
    /// Username as registered.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Set when an operator disabled the account; disabled accounts cannot log in.
    pub disabled_at: Option<i64>,
    /// A service account (G3): non-human, owns API keys, never logs in with a password (its
    /// `password_hash` is [`SERVICE_ACCOUNT_PASSWORD_HASH`], which no password matches).
    pub service_account: bool,
    /// When the owner proved they receive mail at `email` (C2); `None` until then.
    pub email_verified_at: Option<i64>,
}

/// The stored password hash of a service account: not a PHC string, so no password verifies.
pub const SERVICE_ACCOUNT_PASSWORD_HASH: &str = "!service-account";

/// The email stored for service account `name` (unique like every email; `.invalid` is a
/// reserved top-level domain, so it is nobody's address).
pub fn service_account_email(name: &str) -> String {
    format!("{}@service-account.invalid", name.to_lowercase())
}

/// The data for a new account. Email and username are unique case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Email address as the user typed it (shown back to them).
    pub email: String,
    /// Its normal form (NFKC + case folding, `identity::Email`): unique, and what logins
    /// are looked up by.
    pub email_normalized: String,
    /// Username.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// What deleting an account took with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedAccount {
    /// Sessions that were live (their access tokens must be refused).
    pub sessions: Vec<String>,
    /// Every API key of the account (to drop from key caches).
    pub api_keys: Vec<String>,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Whether the backing database answers (readiness). After a write failed with
    /// [`StoreError::StorageUnavailable`], also whether writes commit again (the SQL stores
    /// then probe with a small write), so readiness recovers on its own when space returns.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Creates an account; [`StoreError::Conflict`] when the email or username is taken.
    async fn create(&self, user: NewUser) -> Result<User, StoreError>;
    /// Finds an account by id.
    async fn find_by_id(&self, id: i64) -> Result<Option<User>, StoreError>;
    /// Finds an account by email or username, case-insensitively.
    async fn find_by_login(&self, login: &str) -> Result<Option<User>, StoreError>;
    /// Replaces the password hash (rehash on login, password change).
    async fn update_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError>;
    /// A password change (C1): sets the new hash and revokes every live session of the user
    /// except `keep` (the session that asked), in one transaction. Returns the ids of the
    /// sessions it revoked, or `None` (nothing changed) when there is no such enabled account.
    async fn change_password(
        &self,
        id: i64,
        password_hash: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<Option<Vec<String>>, StoreError>;
    /// Deletes an account (C1) with everything that hangs on it (sessions, API keys, roles), in
    /// one transaction, leaving only the ids of its sessions and keys in `deleted_credentials`
    /// (seen by [`SessionStore::revoked_since`] and [`ApiKeyStore::keys_changed_since`]) and
    /// purging entries older than `purge_before`. `None` when there is no such account.
    async fn delete_account(&self, id: i64, now: i64, purge_before: i64) -> Result<Option<DeletedAccount>, StoreError>;
    /// Replaces the email address and its normal form. Returns false when there is no such
    /// account; [`StoreError::Conflict`] when another account has the normal form.
    async fn update_email(&self, id: i64, email: &str, email_normalized: &str) -> Result<bool, StoreError>;
    /// Finds an account by the normal form of its email (for a normalisation pass).
    async fn find_by_normalized_email(&self, email_normalized: &str) -> Result<Option<User>, StoreError>;
    /// Disables or re-enables an account. Returns false when there is no such account.
    async fn set_disabled(&self, id: i64, disabled_at: Option<i64>) -> Result<bool, StoreError>;
    /// Lists accounts, oldest first.
    async fn list(&self, limit: i64, offset: i64) -> Result<Vec<User>, StoreError>;
    /// Deletes an account and, with it, its sessions. Returns false when there is none.
    async fn delete(&self, id: i64) -> Result<bool, StoreError>;
    /// The account's roles (G4), sorted by name; empty for an unknown account.
    async fn roles(&self, user_id: i64) -> Result<Vec<String>, StoreError>;
    /// Grants a role. Returns false when the account already holds it or does not exist.
    async fn add_role(&self, user_id: i64, role: &str, now: i64) -> Result<bool, StoreError>;
    /// Takes a role away. Returns false when the account did not hold it.
    async fn remove_role(&self, user_id: i64, role: &str) -> Result<bool, StoreError>;
    /// Creates service account `name` (G3): username `name`, email
    /// [`service_account_email`], an unusable password hash. A taken name is
    /// [`StoreError::Conflict`].
    async fn create_service_account(&self, name: &str, now: i64) -> Result<User, StoreError>;
    /// Lists the service accounts, oldest first.
    async fn list_service_accounts(&self) -> Result<Vec<User>, StoreError>;
}

/// What a one-time email token is for (C2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailTokenPurpose {
    /// Proves the account's own address.
    VerifyEmail,
    /// Proves a new address before it replaces the account's (C1).
    ChangeEmail,
    /// Sets a forgotten password.
    ResetPassword,
}

impl EmailTokenPurpose {
    /// Every purpose, for metric label values.
    pub const ALL: [EmailTokenPurpose; 3] = [
        EmailTokenPurpose::VerifyEmail,
        EmailTokenPurpose::ChangeEmail,
        EmailTokenPurpose::ResetPassword,
    ];

    /// The stored name (`verify_email`, `change_email`, `reset_password`).
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTokenPurpose::VerifyEmail => "verify_email",
            EmailTokenPurpose::ChangeEmail => "change_email",
            EmailTokenPurpose::ResetPassword => "reset_password",
        }
    }

    /// The purpose of a stored name.
    pub fn from_name(name: &str) -> Option<EmailTokenPurpose> {
        EmailTokenPurpose::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// A one-time token about to be mailed (C2). Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmailToken {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Whose it is.
    pub user_id: i64,
    /// What it is for.
    pub purpose: EmailTokenPurpose,
    /// The address it is sent to: the account's, or the new one of an email change.
    pub email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A live one-time token, as found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// Whose it is.
    pub user_id: i64,
    /// What it is for.
    pub purpose: EmailTokenPurpose,
    /// The address it was sent to.
    pub email: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What redeeming a token does, in the transaction that consumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption<'a> {
    /// Marks the account's address verified, if it is still the address the token was sent to.
    VerifyEmail,
    /// Replaces the account's address with the token's (now verified); `email_normalized` is
    /// its normal form. Another account holding it is [`StoreError::Conflict`].
    ChangeEmail {
        /// The normal form of the token's address.
        email_normalized: &'a str,
    },
    /// Sets a new password hash and revokes every live session of the account.
    ResetPassword {
        /// argon2id PHC string.
        password_hash: &'a str,
    },
}

impl Redemption<'_> {
    /// The purpose a token must have to be redeemed this way.
    pub fn purpose(&self) -> EmailTokenPurpose {
        match self {
            Redemption::VerifyEmail => EmailTokenPurpose::VerifyEmail,
            Redemption::ChangeEmail { .. } => EmailTokenPurpose::ChangeEmail,
            Redemption::ResetPassword { .. } => EmailTokenPurpose::ResetPassword,
        }
    }
}

/// What a redeemed token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// Whose token it was.
    pub user_id: i64,
    /// The token's address.
    pub email: String,
    /// The account's address before an email change (the one to tell); otherwise the same.
    pub previous_email: String,
    /// Sessions a password reset revoked (their access tokens must be refused).
    pub revoked_sessions: Vec<String>,
}

/// One-time tokens sent by mail (C2): verification, email change, password reset. Each is
/// single use, lives until `expires_at`, and is stored only as a hash.
#[async_trait]
pub trait EmailTokenStore: Send + Sync {
    /// Stores a new token, and in the same transaction deletes every older token of the same
    /// account and purpose (a new link voids the old ones) and every expired token.
    async fn issue_email_token(&self, token: NewEmailToken) -> Result<(), StoreError>;
    /// The live (unexpired, unused) token with this hash, without consuming it.
    async fn find_email_token(&self, token_hash: &[u8], now: i64) -> Result<Option<EmailToken>, StoreError>;
    /// Consumes the live token with this hash and purpose and applies `redemption`, in one
    /// transaction: either both happen or neither. `None` (nothing changed) when there is no
    /// such live token, or its account is gone, disabled, or (verification) no longer has the
    /// token's address. Redeeming also deletes the account's other tokens of the purpose.
    async fn redeem_email_token(
        &self,
        token_hash: &[u8],
        redemption: Redemption<'_>,
        now: i64,
    ) -> Result<Option<Redeemed>, StoreError>;
}

/// A user's TOTP factor (C3), as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// The shared secret: sealed under MASTER_KEY when one is set, else the 20 raw bytes.
    pub secret: Vec<u8>,
    /// When enrolment was confirmed with a first code; `None` while pending.
    pub confirmed_at: Option<i64>,
    /// When enrolment started (Unix seconds).
    pub created_at: i64,
    /// The last time step accepted (RFC 6238 section 5.2: a code is accepted once); -1 before any.
    pub last_step: i64,
}

impl std::fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("secret", &"..")
            .field("confirmed_at", &self.confirmed_at)
            .field("created_at", &self.created_at)
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// A login's second-factor challenge about to be stored (C3): only the token's hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMfaChallenge {
    /// SHA-256 of the `mfa_token`.
    pub token_hash: Vec<u8>,
    /// The account whose password was just checked.
    pub user_id: i64,
    /// The client IP of the password step.
    pub ip_address: Option<String>,
    /// The User-Agent of the password step.
    pub user_agent: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A live challenge, as one attempt at it finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// The account.
    pub user_id: i64,
    /// The client IP of the password step.
    pub ip_address: Option<String>,
    /// The User-Agent of the password step.
    pub user_agent: Option<String>,
    /// Attempts made at it, this one included.
    pub attempts: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The second factor of an account (C3): its TOTP secret with the last accepted time step, its
/// one-time recovery codes (hashes only), and the short-lived challenges of logins waiting for a
/// code. Every row goes with its account (`ON DELETE CASCADE`).
#[async_trait]
pub trait MfaStore: PasskeyStore + Send + Sync {
    /// Stores a pending (unconfirmed) TOTP secret, replacing a pending one. `false` (nothing
    /// changed) when the account already has a confirmed one.
    async fn start_totp(&self, user_id: i64, secret: &[u8], now: i64) -> Result<bool, StoreError>;
    /// The account's TOTP factor, pending or confirmed.
    async fn find_totp(&self, user_id: i64) -> Result<Option<TotpFactor>, StoreError>;
    /// Confirms the pending factor with the step of its first code and, in the same transaction,
    /// replaces the recovery codes with `recovery_code_hashes`. `false` when there is no pending
    /// factor or `step` is not after its last step.
    async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_code_hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Accepts time step `step` for the confirmed factor: one conditional update that succeeds
    /// only if `step` is after the last accepted step, so of two uses of one code (here or on
    /// another instance) exactly one wins. `false` when refused.
    async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError>;
    /// Removes the TOTP factor, the recovery codes and the open challenges, in one transaction.
    /// `false` when the account had no factor (pending or confirmed).
    async fn delete_mfa(&self, user_id: i64) -> Result<bool, StoreError>;
    /// Replaces the recovery codes (a new set voids the old) if the account has a confirmed
    /// TOTP factor; `false` otherwise.
    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        recovery_code_hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Consumes one recovery code: deleted if it is the account's, in one statement. `true` if it
    /// was there (so of two concurrent uses exactly one wins).
    async fn consume_recovery_code(&self, user_id: i64, code_hash: &[u8]) -> Result<bool, StoreError>;
    /// How many unused recovery codes the account has.
    async fn recovery_codes_left(&self, user_id: i64) -> Result<u32, StoreError>;
    /// Stores a login challenge, and deletes the expired ones of every account.
    async fn create_mfa_challenge(&self, challenge: NewMfaChallenge) -> Result<(), StoreError>;
    /// Counts one attempt at the live challenge with this hash and returns it, in one conditional
    /// update: `None` when it is unknown, expired, used, or already had `max_attempts` attempts
    /// (concurrent attempts cannot exceed the budget).
    async fn attempt_mfa_challenge(
        &self,
        token_hash: &[u8],
        max_attempts: i64,
        now: i64,
    ) -> Result<Option<MfaChallenge>, StoreError>;
    /// Consumes the live challenge with this hash (a successful code): `true` if this call
    /// deleted it, so a token completes at most one login.
    async fn consume_mfa_challenge(&self, token_hash: &[u8], now: i64) -> Result<bool, StoreError>;
}

/// A passkey (WebAuthn credential, C3) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// The credential id the authenticator chose (unique across accounts).
    pub credential_id: Vec<u8>,
    /// The account.
    pub user_id: i64,
    /// The name its owner gave it.
    pub name: String,
    /// The WebAuthn user handle the credential was made for.
    pub user_handle: Vec<u8>,
    /// The verifier's encoding of the public key and its static data.
    pub public_key: Vec<u8>,
    /// The verifier's encoding of the changing data (signature counter, flags).
    pub state: Vec<u8>,
    /// The last signature counter seen (0: the authenticator keeps none).
    pub sign_count: i64,
    /// The transports the browser reported (the verifier's bit set).
    pub transports: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last sign-in with it.
    pub last_used_at: Option<i64>,
}

/// What a WebAuthn ceremony is for (C3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a passkey to an account.
    Registration,
    /// Signing in with a passkey alone (discoverable credentials).
    Login,
    /// A passkey as the second factor of a password login.
    SecondFactor,
}

impl CeremonyKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Registration => "registration",
            CeremonyKind::Login => "login",
            CeremonyKind::SecondFactor => "second_factor",
        }
    }
}

/// A WebAuthn ceremony waiting for the browser's answer: the verifier's state, stored in the
/// shared database so any instance can finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCeremony {
    /// SHA-256 of the `ceremony_id` given to the client.
    pub id_hash: Vec<u8>,
    /// What it is for.
    pub kind: CeremonyKind,
    /// The account (registration, second factor); `None` for a password-less login.
    pub user_id: Option<i64>,
    /// SHA-256 of the `mfa_token` of the login it belongs to (second factor).
    pub mfa_token_hash: Option<Vec<u8>>,
    /// The verifier's encoded server state.
    pub state: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Passkeys and their ceremonies (C3). Every row goes with its account (`ON DELETE CASCADE`).
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Stores a ceremony, and deletes the expired ones.
    async fn create_ceremony(&self, ceremony: PasskeyCeremony) -> Result<(), StoreError>;
    /// Takes (deletes and returns) the live ceremony with this id hash and kind, in one
    /// statement: a ceremony is finished at most once, on any instance.
    async fn take_ceremony(
        &self,
        id_hash: &[u8],
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<PasskeyCeremony>, StoreError>;
    /// Adds a passkey; `false` when its credential id is already registered (to anyone).
    async fn add_passkey(&self, passkey: Passkey) -> Result<bool, StoreError>;
    /// The account's passkeys, oldest first.
    async fn list_passkeys(&self, user_id: i64) -> Result<Vec<Passkey>, StoreError>;
    /// The passkey with this credential id.
    async fn find_passkey(&self, credential_id: &[u8]) -> Result<Option<Passkey>, StoreError>;
    /// Records a sign-in: the new state and counter, only if the stored state is still
    /// `expected_state` (of two sign-ins racing with one counter value, one wins). `false`
    /// when it changed meanwhile or the passkey is gone.
    async fn record_passkey_use(
        &self,
        credential_id: &[u8],
        expected_state: &[u8],
        state: &[u8],
        sign_count: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Removes one of the account's passkeys; `false` when it has no such passkey.
    async fn delete_passkey(&self, user_id: i64, credential_id: &[u8]) -> Result<bool, StoreError>;
    /// Removes all of the account's passkeys and open ceremonies; how many passkeys went.
    async fn delete_passkeys(&self, user_id: i64) -> Result<u64, StoreError>;
}

/// A login session: one refresh-token family (B2). The session id is the `sid` claim of every
/// token issued in it; the current refresh token is identified by `current_jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Random session id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// The jti of the one refresh token of this family that may be used.
    pub current_jti: String,
    /// The jti it replaced, accepted again only within the grace window.
    pub previous_jti: Option<String>,
    /// `iat` of the current refresh token; with `current_jti` it re-creates that token exactly.
    pub refresh_issued_at: i64,
    /// When the current refresh token was issued by rotation (or login).
    pub rotated_at: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Last login or refresh.
    pub last_used_at: i64,
    /// When the current refresh token expires.
    pub expires_at: i64,
    /// When the session was ended, if it was.
    pub revoked_at: Option<i64>,
    /// Client address at login.
    pub ip_address: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
}

/// The data for a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Random session id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// jti of the first refresh token.
    pub refresh_jti: String,
    /// Unix seconds.
    pub now: i64,
    /// When the first refresh token expires.
    pub expires_at: i64,
    /// Client address.
    pub ip_address: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

/// A rotation request: replace `presented_jti` by `new_jti` in session `session_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation<'a> {
    /// The session (`sid` claim of the presented refresh token).
    pub session_id: &'a str,
    /// The `jti` of the presented refresh token.
    pub presented_jti: &'a str,
    /// The `jti` for the next refresh token.
    pub new_jti: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// When the next refresh token expires.
    pub new_expires_at: i64,
    /// How long after a rotation the replaced token may still be presented (concurrent tabs).
    pub grace_secs: i64,
}

/// What a rotation attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The presented token was current; the session now holds `new_jti`.
    Rotated(Session),
    /// The presented token was replaced less than the grace window ago: a concurrent refresh.
    /// Nothing changed; the caller re-issues the current token, so one chain stays live.
    WithinGrace(Session),
    /// The presented token was already spent: the whole family has been revoked by this call.
    ReuseDetected(Session),
    /// The session is revoked, expired or unknown.
    Invalid,
}

/// What a refresh found: the account is gone or disabled (nothing was rotated), or the rotation
/// outcome and the account's current username.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "returned once per refresh, never stored")]
pub enum RefreshRotation {
    /// The session's account no longer exists or is disabled; the session was not rotated.
    AccountInactive,
    /// The account is active; the rotation was attempted.
    Attempted {
        /// The account's username (for the new tokens' claims).
        username: String,
        /// What the rotation found.
        outcome: RotationOutcome,
    },
}

/// [`SessionStore::rotate_for_refresh`] in two steps: the account lookup, then the rotation.
pub async fn check_account_then_rotate<S: SessionStore + ?Sized>(
    sessions: &S,
    users: &dyn UserStore,
    user_id: i64,
    rotation: Rotation<'_>,
) -> Result<RefreshRotation, StoreError> {
    match users.find_by_id(user_id).await? {
        Some(user) if user.disabled_at.is_none() => Ok(RefreshRotation::Attempted {
            username: user.username,
            outcome: sessions.rotate(rotation).await?,
        }),
        _ => Ok(RefreshRotation::AccountInactive),
    }
}

/// Sessions (refresh-token families).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session, in the same statement as checking that its account exists and is not
    /// disabled: `None` (nothing inserted) when it is gone or disabled, so a login racing
    /// `users disable` cannot leave a live session behind the disable.
    async fn create(&self, session: NewSession) -> Result<Option<Session>, StoreError>;
    /// Finds a session by id, revoked or not.
    async fn find(&self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Rotates the refresh token atomically: of any number of concurrent calls with the same
    /// presented token, exactly one gets [`RotationOutcome::Rotated`].
    async fn rotate(&self, rotation: Rotation<'_>) -> Result<RotationOutcome, StoreError>;
    /// A refresh: checks that account `user_id` exists and is not disabled, then [`rotate`]s.
    /// This default asks `users` first; the SQL stores, which hold both tables (and are then
    /// passed as `users` too), do the common case, a current token of an active account, in one
    /// `UPDATE ... RETURNING` and fall back to these two steps otherwise.
    ///
    /// [`rotate`]: SessionStore::rotate
    async fn rotate_for_refresh(
        &self,
        users: &dyn UserStore,
        user_id: i64,
        rotation: Rotation<'_>,
    ) -> Result<RefreshRotation, StoreError> {
        check_account_then_rotate(self, users, user_id, rotation).await
    }
    /// The user's sessions that are neither revoked nor expired, newest first.
    async fn list_active(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError>;
    /// Revokes one session of a user. Returns false when the user has no such live session.
    async fn revoke(&self, user_id: i64, id: &str, now: i64) -> Result<bool, StoreError>;
    /// Revokes every live session of a user; returns their ids.
    async fn revoke_all(&self, user_id: i64, now: i64) -> Result<Vec<String>, StoreError>;
    /// Sessions revoked since `since`, with when: the server loads them into its denylist at
    /// start, so a restart does not bring logged-out access tokens back to life.
    async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError>;
    /// How many sessions are live (the `auth_active_tokens` gauge).
    async fn count_active(&self, now: i64) -> Result<i64, StoreError>;
}

/// What a stored key is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Signs access tokens.
    Access,
    /// Signs refresh tokens.
    Refresh,
    /// Derives CSRF tokens.
    Csrf,
    /// Signs identity assertions for upstreams (the gateway's `X-Tessera-Assertion`): always
    /// asymmetric, so anyone can verify them with the JWK set.
    Identity,
}

impl KeyPurpose {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Access => "access",
            KeyPurpose::Refresh => "refresh",
            KeyPurpose::Csrf => "csrf",
            KeyPurpose::Identity => "identity",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<KeyPurpose> {
        [
            KeyPurpose::Access,
            KeyPurpose::Refresh,
            KeyPurpose::Csrf,
            KeyPurpose::Identity,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

/// A persisted key. `private_key` is the output of `Key::export_private` (for CSRF keys, the raw
/// secret), sealed when a master key is configured; the store treats it as opaque bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// What the key is for.
    pub purpose: KeyPurpose,
    /// Pinned algorithm (HS256 for CSRF keys).
    pub alg: Algorithm,
    /// The state it was created in (informative; the live state follows from the times).
    pub state: KeyState,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stopped signing (informative).
    pub deactivated_at: Option<i64>,
    /// When it starts signing; before that it is published only (rotation pre-publishes).
    pub activates_at: i64,
    /// When it stopped verifying, if retired.
    pub retired_at: Option<i64>,
    /// Private material, possibly sealed.
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// When [`KeyStore::insert`] may insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertCondition {
    /// Always (an operator's `tessera keys rotate`).
    Always,
    /// Only if the purpose has no key at all (first start; instances racing agree on one).
    IfNone,
    /// Only if no key of the purpose was created after this time (scheduled rotation: of many
    /// instances finding a rotation due, one inserts).
    IfNoneCreatedAfter(i64),
}

/// Persisted keys (the managed key ring, B1, S4, B4).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// All keys of a purpose, oldest first.
    async fn list(&self, purpose: KeyPurpose) -> Result<Vec<StoredKey>, StoreError>;
    /// Inserts a key if `condition` holds, atomically with the check. Returns whether it did.
    async fn insert(&self, key: StoredKey, condition: InsertCondition) -> Result<bool, StoreError>;
    /// Marks a key retired from `at`. Returns false when there is no such key.
    async fn retire(&self, kid: &str, at: i64) -> Result<bool, StoreError>;
    /// Deletes a key (prune). Returns false when there is no such key.
    async fn delete(&self, kid: &str) -> Result<bool, StoreError>;
}

/// A stored API key (G3): never the key itself, only its keyed hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id (in URLs: `/api-keys/{id}`).
    pub id: String,
    /// Owner (a user or a service account).
    pub user_id: i64,
    /// The owner's label.
    pub name: String,
    /// The first characters of the key (`tsk_` + 8), for listings.
    pub prefix: String,
    /// HMAC-SHA256 of the key under the server's key-hashing secret.
    pub key_hash: Vec<u8>,
    /// Granted scopes, space-separated.
    pub scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When the key stops working, if ever.
    pub expires_at: Option<i64>,
    /// When the key stops (or stopped) working because it was revoked or rotated: a rotation
    /// sets it to the end of the grace period, a revocation to now.
    pub revoked_at: Option<i64>,
    /// Per-key rate limit (slowapi syntax); `None` is the server's default.
    pub rate_limit: Option<String>,
    /// Per-key quota (slowapi syntax, e.g. `10000/day`); `None` is no quota.
    pub quota: Option<String>,
    /// Last use (flushed in batches, so up to a flush interval late).
    pub last_used_at: Option<i64>,
    /// Client address of the last use.
    pub last_used_ip: Option<String>,
    /// The key that replaced this one by rotation.
    pub rotated_to: Option<String>,
    /// When revoked_at or rotated_to last changed (what the revocation poll reads).
    pub updated_at: i64,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("prefix", &self.prefix)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Whether the key works at `now`: neither expired nor revoked (a rotated key works until
    /// the end of its grace period).
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| now < at) && self.revoked_at.is_none_or(|at| now < at)
    }
}

/// A key found by its hash, with what the server needs about its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyLookup {
    /// The key.
    pub key: ApiKey,
    /// The owner's name.
    pub username: String,
    /// Whether the owner is disabled (then the key does not work).
    pub owner_disabled: bool,
    /// Whether the owner is a service account (which may hold the `introspect` scope).
    pub owner_service_account: bool,
}

/// One key's last use, for [`ApiKeyStore::record_usage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    /// Key id.
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// Client address.
    pub ip: String,
}

/// API keys (G3).
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key (`last_used_*`, `rotated_to` and `revoked_at` are ignored). `false`
    /// when the owner does not exist or is disabled (nothing stored).
    async fn create_key(&self, key: ApiKey) -> Result<bool, StoreError>;
    /// The key with this hash and its owner's state, revoked or not.
    async fn find_key_by_hash(&self, key_hash: &[u8]) -> Result<Option<ApiKeyLookup>, StoreError>;
    /// One key of a user, revoked or not.
    async fn find_key(&self, user_id: i64, id: &str) -> Result<Option<ApiKey>, StoreError>;
    /// A user's keys that are not revoked at `now` (rotated ones within their grace included),
    /// oldest first.
    async fn list_keys(&self, user_id: i64, now: i64) -> Result<Vec<ApiKey>, StoreError>;
    /// Replaces key `id` of `user_id` by `new` in one transaction: `new` is stored, the old key
    /// keeps working until `grace_until` and points to `new`. `false` (nothing changed) when the
    /// user has no such key that works at `now` or that was already rotated.
    async fn rotate_key(
        &self,
        user_id: i64,
        id: &str,
        new: ApiKey,
        grace_until: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Revokes key `id` of `user_id` from `now`. `false` when the user has no such key that
    /// works at `now`.
    async fn revoke_key(&self, user_id: i64, id: &str, now: i64) -> Result<bool, StoreError>;
    /// Ids of the keys revoked or rotated since `since`, and of the keys of accounts disabled
    /// since then (the revocation poll).
    async fn keys_changed_since(&self, since: i64) -> Result<Vec<String>, StoreError>;
    /// Records last uses, many keys in one call (the batched flush).
    async fn record_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError>;
}

/// Revoked access tokens and sessions, checked on every authenticated request. Implementations
/// answer from memory: a lookup here must never be a database round trip.
pub trait Denylist: Send + Sync {
    /// Refuses the access token `jti` until `until` (its exp). `now` lets the implementation
    /// drop entries that have run out.
    fn revoke_token(&self, jti: &str, until: i64, now: i64);
    /// Refuses every access token of session `sid` until `until` (the longest access lifetime).
    fn revoke_session(&self, sid: &str, until: i64, now: i64);
    /// Whether a token with this jti and sid is refused at `now`.
    fn is_revoked(&self, jti: &str, sid: &str, now: i64) -> bool;
}

/// Rate-limit counters (S7, B7).
///
/// `hit` counts one request for `key` against every limit of `spec` and decides it with
/// [`crate::limits::decide`]; the request is counted only when allowed, and the check and the
/// count are one atomic step, so N concurrent requests against a limit of K never let more
/// than K through. Implementations that share counters across instances use one clock for all
/// of them (the Redis server's); in-process ones use `now_ms`.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts and decides one request.
    async fn hit(&self, key: &str, spec: &RateLimitSpec, now_ms: i64) -> Result<Decision, StoreError>;
}
