//! A circuit breaker in front of a database's stores (issue 13, finding 4): once the database
//! is known to be down, calls fail at once instead of each waiting out the pool's acquire
//! timeout.
//!
//! [`guard`] wraps the three stores of one database in [`Guarded`] decorators that share one
//! [`Breaker`]. While the breaker is closed, calls go through unchanged. The first call that
//! fails with [`StoreError::Unavailable`] opens it: from then on every call (the readiness
//! `ping` included) fails immediately with `Unavailable` (the server answers 503 with
//! `Retry-After`), and a background probe pings the database, at once and then every
//! `probe_interval`, each ping bounded by [`PROBE_TIMEOUT`]. The first ping that succeeds
//! closes the breaker; the probe task then ends (no task runs while the database is healthy).
//!
//! Calls already in flight when the breaker opens finish on their own (bounded by the pool's
//! timeouts). A transient `Unavailable` (a busy SQLite file, a pool exhausted under load) also
//! opens the breaker, but the immediate probe closes it again as soon as a ping gets through.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_core::store::{
    ApiKey, ApiKeyLookup, ApiKeyStore, CeremonyKind, DeletedAccount, EmailToken, EmailTokenStore, InsertCondition,
    KeyPurpose, KeyStore, KeyUsage, MfaChallenge, MfaStore, NewEmailToken, NewMfaChallenge, NewSession, NewUser,
    Passkey, PasskeyCeremony, PasskeyStore, Redeemed, Redemption, RefreshRotation, Rotation, RotationOutcome, Session,
    SessionStore, StoreError, StoredKey, TotpFactor, User, UserStore,
};

/// Each probe ping gives up after this long (the pool's own acquire timeout is longer).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared state of one database's breaker.
pub struct Breaker {
    /// What the breaker guards, for logs and error messages (`database`).
    name: &'static str,
    open: AtomicBool,
    /// The unguarded store the probe pings.
    probe: Arc<dyn UserStore>,
    probe_interval: Duration,
}

impl Breaker {
    /// A closed breaker for `name`, whose probe pings `probe` every `probe_interval`.
    pub fn new(name: &'static str, probe: Arc<dyn UserStore>, probe_interval: Duration) -> Arc<Breaker> {
        Arc::new(Breaker {
            name,
            open: AtomicBool::new(false),
            probe,
            probe_interval,
        })
    }

    /// Whether calls are currently refused.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Runs `call` unless the breaker is open; opens it when `call` finds the store unavailable.
    pub async fn call<T>(self: &Arc<Self>, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        if self.is_open() {
            return Err(StoreError::Unavailable(format!(
                "{} unavailable (circuit open until a probe succeeds)",
                self.name
            )));
        }
        let result = call.await;
        if let Err(StoreError::Unavailable(reason)) = &result {
            self.trip(reason);
        }
        result
    }

    /// Opens the breaker and starts the probe, unless it is open already.
    fn trip(self: &Arc<Self>, reason: &str) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            event = "circuit_opened",
            dependency = self.name,
            reason,
            "{} unavailable: failing fast until a probe succeeds",
            self.name
        );
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to probe from: stay closed rather than refuse forever.
            self.open.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(Arc::clone(self).probe_until_closed());
    }

    async fn probe_until_closed(self: Arc<Self>) {
        let opened = Instant::now();
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            let started = Instant::now();
            match tokio::time::timeout(PROBE_TIMEOUT, self.probe.ping()).await {
                Ok(Ok(())) => {
                    self.open.store(false, Ordering::Release);
                    tracing::info!(
                        event = "circuit_closed",
                        dependency = self.name,
                        open_ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX),
                        attempts,
                        "{} answers again",
                        self.name
                    );
                    return;
                }
                Ok(Err(error)) => {
                    tracing::debug!(dependency = self.name, %error, "probe failed");
                }
                Err(_) => {
                    tracing::debug!(dependency = self.name, "probe timed out");
                }
            }
            tokio::time::sleep(self.probe_interval.saturating_sub(started.elapsed())).await;
        }
    }
}

/// A store behind a [`Breaker`].
pub struct Guarded<S: ?Sized> {
    inner: Arc<S>,
    breaker: Arc<Breaker>,
}

impl<S: ?Sized> Guarded<S> {
    /// Wraps `inner` with `breaker`.
    pub fn new(inner: Arc<S>, breaker: Arc<Breaker>) -> Guarded<S> {
        Guarded { inner, breaker }
    }
}

/// The three stores of one database, each behind the same new breaker named `database`.
pub struct GuardedStores {
    /// Accounts.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Keys.
    pub keys: Arc<dyn KeyStore>,
    /// The breaker they share.
    pub breaker: Arc<Breaker>,
}

/// Puts the stores of one database behind one breaker whose probe pings `users` every
/// `probe_interval`.
pub fn guard(
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    keys: Arc<dyn KeyStore>,
    probe_interval: Duration,
) -> GuardedStores {
    let breaker = Breaker::new("database", Arc::clone(&users), probe_interval);
    GuardedStores {
        users: Arc::new(Guarded::new(users, Arc::clone(&breaker))),
        sessions: Arc::new(Guarded::new(sessions, Arc::clone(&breaker))),
        keys: Arc::new(Guarded::new(keys, Arc::clone(&breaker))),
        breaker,
    }
}

#[async_trait]
impl UserStore for Guarded<dyn UserStore> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.breaker.call(self.inner.ping()).await
    }

    async fn create(&self, user: NewUser) -> Result<User, StoreError> {
        self.breaker.call(self.inner.create(user)).await
    }

    async fn find_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.breaker.call(self.inner.find_by_id(id)).await
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        self.breaker.call(self.inner.find_by_login(login)).await
    }

    async fn create_service_account(&self, name: &str, now: i64) -> Result<User, StoreError> {
        self.breaker.call(self.inner.create_service_account(name, now)).await
    }

    async fn list_service_accounts(&self) -> Result<Vec<User>, StoreError> {
        self.breaker.call(self.inner.list_service_accounts()).await
    }

    async fn change_password(
        &self,
        id: i64,
        password_hash: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.breaker
            .call(self.inner.change_password(id, password_hash, keep, now))
            .await
    }

    async fn delete_account(&self, id: i64, now: i64, purge_before: i64) -> Result<Option<DeletedAccount>, StoreError> {
        self.breaker
            .call(self.inner.delete_account(id, now, purge_before))
            .await
    }

    async fn update_email(&self, id: i64, email: &str, email_normalized: &str) -> Result<bool, StoreError> {
        self.breaker
            .call(self.inner.update_email(id, email, email_normalized))
            .await
    }

    async fn find_by_normalized_email(&self, email_normalized: &str) -> Result<Option<User>, StoreError> {
        self.breaker
            .call(self.inner.find_by_normalized_email(email_normalized))
            .await
    }

    async fn update_password_hash(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        self.breaker
            .call(self.inner.update_password_hash(id, password_hash))
            .await
    }

    async fn set_disabled(&self, id: i64, disabled_at: Option<i64>) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.set_disabled(id, disabled_at)).await
    }

    async fn list(&self, limit: i64, offset: i64) -> Result<Vec<User>, StoreError> {
        self.breaker.call(self.inner.list(limit, offset)).await
    }

    async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.delete(id)).await
    }

    async fn roles(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        self.breaker.call(self.inner.roles(user_id)).await
    }

    async fn add_role(&self, user_id: i64, role: &str, now: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.add_role(user_id, role, now)).await
    }

    async fn remove_role(&self, user_id: i64, role: &str) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.remove_role(user_id, role)).await
    }
}

#[async_trait]
impl SessionStore for Guarded<dyn SessionStore> {
    async fn create(&self, session: NewSession) -> Result<Option<Session>, StoreError> {
        self.breaker.call(self.inner.create(session)).await
    }

    async fn find(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.breaker.call(self.inner.find(id)).await
    }

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<RotationOutcome, StoreError> {
        self.breaker.call(self.inner.rotate(rotation)).await
    }

    async fn rotate_for_refresh(
        &self,
        users: &dyn UserStore,
        user_id: i64,
        rotation: Rotation<'_>,
    ) -> Result<RefreshRotation, StoreError> {
        // The inner store's own (one-statement) refresh, not the trait's two-step default.
        self.breaker
            .call(self.inner.rotate_for_refresh(users, user_id, rotation))
            .await
    }

    async fn list_active(&self, user_id: i64, now: i64) -> Result<Vec<Session>, StoreError> {
        self.breaker.call(self.inner.list_active(user_id, now)).await
    }

    async fn revoke(&self, user_id: i64, id: &str, now: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.revoke(user_id, id, now)).await
    }

    async fn revoke_all(&self, user_id: i64, now: i64) -> Result<Vec<String>, StoreError> {
        self.breaker.call(self.inner.revoke_all(user_id, now)).await
    }

    async fn revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.breaker.call(self.inner.revoked_since(since)).await
    }

    async fn count_active(&self, now: i64) -> Result<i64, StoreError> {
        self.breaker.call(self.inner.count_active(now)).await
    }
}

#[async_trait]
impl KeyStore for Guarded<dyn KeyStore> {
    async fn list(&self, purpose: KeyPurpose) -> Result<Vec<StoredKey>, StoreError> {
        self.breaker.call(self.inner.list(purpose)).await
    }

    async fn insert(&self, key: StoredKey, condition: InsertCondition) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.insert(key, condition)).await
    }

    async fn retire(&self, kid: &str, at: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.retire(kid, at)).await
    }

    async fn delete(&self, kid: &str) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.delete(kid)).await
    }
}

#[async_trait]
impl ApiKeyStore for Guarded<dyn ApiKeyStore> {
    async fn create_key(&self, key: ApiKey) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.create_key(key)).await
    }

    async fn find_key_by_hash(&self, key_hash: &[u8]) -> Result<Option<ApiKeyLookup>, StoreError> {
        self.breaker.call(self.inner.find_key_by_hash(key_hash)).await
    }

    async fn find_key(&self, user_id: i64, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.breaker.call(self.inner.find_key(user_id, id)).await
    }

    async fn list_keys(&self, user_id: i64, now: i64) -> Result<Vec<ApiKey>, StoreError> {
        self.breaker.call(self.inner.list_keys(user_id, now)).await
    }

    async fn rotate_key(
        &self,
        user_id: i64,
        id: &str,
        new: ApiKey,
        grace_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.breaker
            .call(self.inner.rotate_key(user_id, id, new, grace_until, now))
            .await
    }

    async fn revoke_key(&self, user_id: i64, id: &str, now: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.revoke_key(user_id, id, now)).await
    }

    async fn keys_changed_since(&self, since: i64) -> Result<Vec<String>, StoreError> {
        self.breaker.call(self.inner.keys_changed_since(since)).await
    }

    async fn record_usage(&self, usage: &[KeyUsage]) -> Result<(), StoreError> {
        self.breaker.call(self.inner.record_usage(usage)).await
    }
}

#[async_trait]
impl EmailTokenStore for Guarded<dyn EmailTokenStore> {
    async fn issue_email_token(&self, token: NewEmailToken) -> Result<(), StoreError> {
        self.breaker.call(self.inner.issue_email_token(token)).await
    }

    async fn find_email_token(&self, token_hash: &[u8], now: i64) -> Result<Option<EmailToken>, StoreError> {
        self.breaker.call(self.inner.find_email_token(token_hash, now)).await
    }

    async fn redeem_email_token(
        &self,
        token_hash: &[u8],
        redemption: Redemption<'_>,
        now: i64,
    ) -> Result<Option<Redeemed>, StoreError> {
        self.breaker
            .call(self.inner.redeem_email_token(token_hash, redemption, now))
            .await
    }
}

#[async_trait]
impl MfaStore for Guarded<dyn MfaStore> {
    async fn start_totp(&self, user_id: i64, secret: &[u8], now: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.start_totp(user_id, secret, now)).await
    }

    async fn find_totp(&self, user_id: i64) -> Result<Option<TotpFactor>, StoreError> {
        self.breaker.call(self.inner.find_totp(user_id)).await
    }

    async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_code_hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool, StoreError> {
        self.breaker
            .call(self.inner.confirm_totp(user_id, step, recovery_code_hashes, now))
            .await
    }

    async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.use_totp_step(user_id, step)).await
    }

    async fn delete_mfa(&self, user_id: i64) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.delete_mfa(user_id)).await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        recovery_code_hashes: &[Vec<u8>],
        now: i64,
    ) -> Result<bool, StoreError> {
        self.breaker
            .call(self.inner.replace_recovery_codes(user_id, recovery_code_hashes, now))
            .await
    }

    async fn consume_recovery_code(&self, user_id: i64, code_hash: &[u8]) -> Result<bool, StoreError> {
        self.breaker
            .call(self.inner.consume_recovery_code(user_id, code_hash))
            .await
    }

    async fn recovery_codes_left(&self, user_id: i64) -> Result<u32, StoreError> {
        self.breaker.call(self.inner.recovery_codes_left(user_id)).await
    }

    async fn create_mfa_challenge(&self, challenge: NewMfaChallenge) -> Result<(), StoreError> {
        self.breaker.call(self.inner.create_mfa_challenge(challenge)).await
    }

    async fn attempt_mfa_challenge(
        &self,
        token_hash: &[u8],
        max_attempts: i64,
        now: i64,
    ) -> Result<Option<MfaChallenge>, StoreError> {
        self.breaker
            .call(self.inner.attempt_mfa_challenge(token_hash, max_attempts, now))
            .await
    }

    async fn consume_mfa_challenge(&self, token_hash: &[u8], now: i64) -> Result<bool, StoreError> {
        self.breaker
            .call(self.inner.consume_mfa_challenge(token_hash, now))
            .await
    }
}

#[async_trait]
impl PasskeyStore for Guarded<dyn MfaStore> {
    async fn create_ceremony(&self, ceremony: PasskeyCeremony) -> Result<(), StoreError> {
        self.breaker.call(self.inner.create_ceremony(ceremony)).await
    }

    async fn take_ceremony(
        &self,
        id_hash: &[u8],
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<PasskeyCeremony>, StoreError> {
        self.breaker.call(self.inner.take_ceremony(id_hash, kind, now)).await
    }

    async fn add_passkey(&self, passkey: Passkey) -> Result<bool, StoreError> {
        self.breaker.call(self.inner.add_passkey(passkey)).await
    }

    async fn list_passkeys(&self, user_id: i64) -> Result<Vec<Passkey>, StoreError> {
        self.breaker.call(self.inner.list_passkeys(user_id)).await
    }

    async fn find_passkey(&self, credential_id: &[u8]) -> Result<Option<Passkey>, StoreError> {
        self.breaker.call(self.inner.find_passkey(credential_id)).await
    }

    async fn record_passkey_use(
        &self,
        credential_id: &[u8],
        expected_state: &[u8],
        state: &[u8],
        sign_count: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.breaker
            .call(
                self.inner
                    .record_passkey_use(credential_id, expected_state, state, sign_count, now),
            )
            .await
    }

    async fn delete_passkey(&self, user_id: i64, credential_id: &[u8]) -> Result<bool, StoreError> {
        self.breaker
            .call(self.inner.delete_passkey(user_id, credential_id))
            .await
    }

    async fn delete_passkeys(&self, user_id: i64) -> Result<u64, StoreError> {
        self.breaker.call(self.inner.delete_passkeys(user_id)).await
    }
}
