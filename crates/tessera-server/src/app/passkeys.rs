//! Passkeys (C3): adding and removing them, signing in with one alone (password-less), and one
//! as the second factor of a password login.
//!
//! Every ceremony (registration, password-less login, second factor) leaves its verifier state
//! in the shared database under the SHA-256 of a random `ceremony_id` (256 bits) handed to the
//! client, bound to the account (registration), to nothing (password-less login) or to the
//! login's `mfa_token` (second factor). It lives [`CEREMONY_TTL_SECS`] and is finished at most
//! once: the finish deletes it in the statement that reads it, on whichever instance. The
//! WebAuthn checks themselves are behind [`super::webauthn`].

use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::store::{CeremonyKind, Passkey, PasskeyCeremony, User};
use tessera_core::totp;
use zeroize::Zeroizing;

use super::App;
use super::api_keys::Authenticated;
use super::error::{Error, FieldError};
use super::login::{ClientInfo, SessionTokens};
use super::webauthn::{Asserted, Assertion, RelyingParty, StoredCredential, USER_HANDLE_LEN, VerifyError};

/// How long a ceremony waits for the browser (5 minutes, the options' `timeout` too).
pub const CEREMONY_TTL_SECS: i64 = 300;
/// Longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest `ceremony_id` looked at.
const MAX_CEREMONY_ID_CHARS: usize = 128;

/// A ceremony just started: what the client needs to run it.
pub struct PasskeyStart {
    /// The id to send back with the browser's answer.
    pub ceremony_id: Zeroizing<String>,
    /// The options for `navigator.credentials.create/get` (WebAuthn JSON form).
    pub public_key: serde_json::Value,
}

/// A passkey as its owner sees it.
pub struct PasskeyInfo {
    /// The credential id, base64url.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last sign-in with it.
    pub last_used_at: Option<i64>,
}

impl From<&Passkey> for PasskeyInfo {
    fn from(passkey: &Passkey) -> PasskeyInfo {
        PasskeyInfo {
            id: tessera_core::b64::encode(&passkey.credential_id),
            name: passkey.name.clone(),
            created_at: passkey.created_at,
            last_used_at: passkey.last_used_at,
        }
    }
}

/// A browser's answer to a ceremony.
pub struct PasskeyAnswer {
    /// The `ceremony_id` of the start.
    pub ceremony_id: Zeroizing<String>,
    /// `PublicKeyCredential.toJSON()`.
    pub credential: serde_json::Value,
}

fn malformed(e: &VerifyError) -> Error {
    Error::Validation(vec![FieldError::new(
        "credential",
        "invalid_format",
        format!("not a WebAuthn credential of this ceremony: {e}"),
    )])
}

/// The `(credential id, transports)` of passkeys, for allow and exclude lists.
fn descriptors(passkeys: &[Passkey]) -> Vec<(Vec<u8>, i64)> {
    passkeys
        .iter()
        .map(|p| (p.credential_id.clone(), p.transports))
        .collect()
}

/// A passkey's name as given: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
fn parse_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::Validation(vec![FieldError::new(
            "name",
            "invalid_format",
            "a passkey name is 1 to 64 characters",
        )]));
    }
    Ok(name.to_owned())
}

impl App {
    /// The relying party of PUBLIC_URL.
    fn relying_party(&self) -> Result<RelyingParty, Error> {
        RelyingParty::new(self.config.public_url.as_str()).map_err(Error::Internal)
    }

    fn count_passkey(&self, result: &str) {
        self.metrics.mfa.with_label_values(&["passkey", result]).inc();
    }

    /// Stores a started ceremony and returns what the client needs.
    async fn store_ceremony(
        &self,
        kind: CeremonyKind,
        user_id: Option<i64>,
        mfa_token_hash: Option<Vec<u8>>,
        state: Vec<u8>,
        public_key: serde_json::Value,
    ) -> Result<PasskeyStart, Error> {
        let ceremony_id = totp::generate_challenge_token(&mut OsRng);
        let now = self.clock.now();
        self.mfa
            .create_ceremony(PasskeyCeremony {
                id_hash: totp::challenge_token_hash(&ceremony_id),
                kind,
                user_id,
                mfa_token_hash,
                state,
                created_at: now,
                expires_at: now + CEREMONY_TTL_SECS,
            })
            .await?;
        Ok(PasskeyStart {
            ceremony_id,
            public_key,
        })
    }

    /// Takes the live ceremony of `kind` with this id (single use), or 400
    /// `invalid_passkey_ceremony`.
    async fn take_ceremony(&self, kind: CeremonyKind, ceremony_id: &str) -> Result<PasskeyCeremony, Error> {
        if ceremony_id.is_empty() || ceremony_id.chars().count() > MAX_CEREMONY_ID_CHARS {
            return Err(Error::PasskeyCeremonyInvalid);
        }
        self.mfa
            .take_ceremony(&totp::challenge_token_hash(ceremony_id), kind, self.clock.now())
            .await?
            .ok_or(Error::PasskeyCeremonyInvalid)
    }

    /// The caller's passkeys, oldest first.
    pub async fn list_passkeys(&self, caller: &Authenticated) -> Result<Vec<PasskeyInfo>, Error> {
        let passkeys = self.mfa.list_passkeys(caller.claims.user_id).await?;
        Ok(passkeys.iter().map(PasskeyInfo::from).collect())
    }

    /// Starts adding a passkey (password and a person's session required).
    pub async fn start_passkey_registration(
        &self,
        caller: &Authenticated,
        password: Zeroizing<String>,
        ip: &str,
    ) -> Result<PasskeyStart, Error> {
        let user = self
            .reauthenticate(caller, password, "password", "passkey_enrolment", ip)
            .await?;
        let existing = self.mfa.list_passkeys(user.id).await?;
        // One user handle per account: an authenticator keeps one passkey per account and RP.
        let handle = existing.first().map(|p| p.user_handle.clone()).unwrap_or_else(|| {
            let mut handle = vec![0u8; USER_HANDLE_LEN];
            OsRng.fill_bytes(&mut handle);
            handle
        });
        let started = self
            .relying_party()?
            .start_registration(&handle, &user.username, &descriptors(&existing))
            .map_err(Error::Internal)?;
        let start = self
            .store_ceremony(
                CeremonyKind::Registration,
                Some(user.id),
                None,
                started.state,
                started.options,
            )
            .await?;
        tracing::info!(event = "mfa_enrolment_started", user_id = user.id, ip_address = %ip, method = "passkey", "passkey registration started");
        Ok(start)
    }

    /// Finishes adding a passkey with the browser's answer.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Authenticated,
        answer: PasskeyAnswer,
        name: &str,
        ip: &str,
    ) -> Result<PasskeyInfo, Error> {
        super::mfa::require_session(caller)?;
        let user_id = caller.claims.user_id;
        let name = parse_name(name)?;
        if !answer.credential.is_object() {
            return Err(malformed(&VerifyError::Malformed("not an object".into())));
        }
        let ceremony = self
            .take_ceremony(CeremonyKind::Registration, &answer.ceremony_id)
            .await?;
        if ceremony.user_id != Some(user_id) {
            return Err(Error::PasskeyCeremonyInvalid);
        }
        let credential = match self
            .relying_party()?
            .finish_registration(&ceremony.state, answer.credential)
        {
            Ok(credential) => credential,
            Err(e @ VerifyError::Malformed(_)) => return Err(malformed(&e)),
            Err(e) => {
                self.count_passkey("failure");
                tracing::warn!(event = "mfa_failure", user_id, ip_address = %ip, method = "passkey", reason = "registration_refused", error = %e, "passkey registration refused");
                return Err(Error::PasskeyRefused);
            }
        };
        let passkey = Passkey {
            credential_id: credential.credential_id,
            user_id,
            name,
            user_handle: credential.user_handle,
            public_key: credential.public_key,
            state: credential.state,
            sign_count: credential.sign_count,
            transports: credential.transports,
            created_at: self.clock.now(),
            last_used_at: None,
        };
        let info = PasskeyInfo::from(&passkey);
        if !self.mfa.add_passkey(passkey).await? {
            return Err(Error::Conflict("passkey"));
        }
        self.count_passkey("success");
        tracing::info!(event = "mfa_enrolled", user_id, ip_address = %ip, method = "passkey", "passkey added");
        Ok(info)
    }

    /// Removes one of the caller's passkeys (password required); 404 when there is no such one.
    pub async fn remove_passkey(
        &self,
        caller: &Authenticated,
        id: &str,
        password: Zeroizing<String>,
        ip: &str,
    ) -> Result<(), Error> {
        let credential_id = tessera_core::b64::decode(id).ok_or(Error::NotFound)?;
        let user = self
            .reauthenticate(caller, password, "password", "passkey_removal", ip)
            .await?;
        if !self.mfa.delete_passkey(user.id, &credential_id).await? {
            return Err(Error::NotFound);
        }
        tracing::info!(event = "mfa_removed", user_id = user.id, ip_address = %ip, method = "passkey", "passkey removed by its owner");
        Ok(())
    }

    /// Starts a password-less sign-in. Counted against the per-IP login limit (each start
    /// stores a ceremony).
    pub async fn start_passkey_login(&self, client: &ClientInfo) -> Result<PasskeyStart, Error> {
        let ip = client.ip.as_str();
        self.enforce_limit("login", &format!("passkey:{ip}"), &self.config.rate_limit_login, ip)
            .await?;
        let started = self.relying_party()?.start_login().map_err(Error::Internal)?;
        self.store_ceremony(CeremonyKind::Login, None, None, started.state, started.options)
            .await
    }

    /// Finishes a password-less sign-in: answers as `/login` does.
    pub async fn finish_passkey_login(
        &self,
        answer: PasskeyAnswer,
        client: &ClientInfo,
    ) -> Result<SessionTokens, Error> {
        let ip = client.ip.as_str();
        let rp = self.relying_party()?;
        let assertion = rp.parse_assertion(answer.credential).map_err(|e| malformed(&e))?;
        let ceremony = self.take_ceremony(CeremonyKind::Login, &answer.ceremony_id).await?;
        let Some(passkey) = self.mfa.find_passkey(assertion.credential_id()).await? else {
            self.count_passkey("failure");
            tracing::warn!(event = "login_failure", ip_address = %ip, method = "passkey", reason = "unknown_passkey", "password-less sign-in with an unknown passkey");
            return Err(Error::PasskeyRefused);
        };
        let user_id = passkey.user_id;
        self.enforce_limit(
            "login_account",
            &format!("id:{user_id}"),
            &self.config.rate_limit_login_account,
            ip,
        )
        .await?;
        if let Err(reason) = self
            .verify_assertion(&rp, true, &ceremony.state, assertion, &passkey, ip)
            .await?
        {
            self.count_passkey("failure");
            tracing::warn!(event = "login_failure", user_id, ip_address = %ip, method = "passkey", reason, "password-less sign-in refused");
            return Err(Error::PasskeyRefused);
        }
        let user = self.users.find_by_id(user_id).await?.ok_or(Error::PasskeyRefused)?;
        if user.disabled_at.is_some() {
            tracing::warn!(event = "login_failure", user_id, ip_address = %ip, reason = "disabled", "passkey sign-in to a disabled account");
            return Err(Error::AccountDisabled);
        }
        if !self.email_verified_enough(&user) {
            tracing::warn!(event = "login_failure", user_id, ip_address = %ip, reason = "email_not_verified", "passkey sign-in before the email address was verified");
            return Err(Error::EmailNotVerified);
        }
        let tokens = self.start_session(&user, client).await?;
        self.count_passkey("success");
        self.metrics.login_attempts.with_label_values(&["success"]).inc();
        tracing::info!(event = "passkey_login", user_id, username = %user.username, ip_address = %ip, "password-less sign-in with a passkey");
        tracing::info!(event = "login_success", user_id, username = %user.username, ip_address = %ip, mfa = "passkey", "login succeeded");
        Ok(tokens)
    }

    /// Verifies an assertion with `passkey` and records the use; the refusal reason otherwise
    /// (a counter that went backwards is logged as `passkey_clone_suspected`). Counts the metric.
    pub(super) async fn verify_assertion(
        &self,
        rp: &RelyingParty,
        discoverable: bool,
        state: &[u8],
        assertion: Assertion,
        passkey: &Passkey,
        ip: &str,
    ) -> Result<Result<(), &'static str>, Error> {
        let stored = StoredCredential {
            credential_id: &passkey.credential_id,
            user_handle: &passkey.user_handle,
            public_key: &passkey.public_key,
            state: &passkey.state,
        };
        let asserted: Asserted = match rp.finish_assertion(discoverable, state, assertion, &stored) {
            Ok(asserted) => asserted,
            Err(VerifyError::CounterRegression) => {
                tracing::error!(event = "passkey_clone_suspected", user_id = passkey.user_id, ip_address = %ip, passkey = %tessera_core::b64::encode(&passkey.credential_id), stored_sign_count = passkey.sign_count, "a passkey's signature counter did not increase: the authenticator may have been cloned; refused");
                return Ok(Err("counter_regression"));
            }
            Err(e) => {
                tracing::debug!(error = %e, "passkey assertion refused");
                return Ok(Err("passkey_refused"));
            }
        };
        let recorded = self
            .mfa
            .record_passkey_use(
                &passkey.credential_id,
                &passkey.state,
                &asserted.state,
                asserted.sign_count,
                self.clock.now(),
            )
            .await?;
        if !recorded {
            // Another sign-in with this passkey changed its state meanwhile (or it was removed).
            return Ok(Err("concurrent_use"));
        }
        Ok(Ok(()))
    }

    /// Whether the account has a passkey.
    pub(super) async fn has_passkeys(&self, user: &User) -> Result<bool, Error> {
        Ok(!self.mfa.list_passkeys(user.id).await?.is_empty())
    }

    /// A second-factor ceremony for the login whose `mfa_token` hashes to `token_hash`, when the
    /// account has passkeys.
    pub(super) async fn start_passkey_second_factor(
        &self,
        user: &User,
        token_hash: &[u8],
    ) -> Result<Option<PasskeyStart>, Error> {
        let passkeys = self.mfa.list_passkeys(user.id).await?;
        if passkeys.is_empty() {
            return Ok(None);
        }
        let started = self
            .relying_party()?
            .start_second_factor(&descriptors(&passkeys))
            .map_err(Error::Internal)?;
        let start = self
            .store_ceremony(
                CeremonyKind::SecondFactor,
                Some(user.id),
                Some(token_hash.to_vec()),
                started.state,
                started.options,
            )
            .await?;
        Ok(Some(start))
    }

    /// Checks a passkey as the second factor of the login with `token_hash` for `user_id`; the
    /// refusal reason otherwise.
    pub(super) async fn check_passkey_second_factor(
        &self,
        user_id: i64,
        token_hash: &[u8],
        ceremony_id: &str,
        assertion: Assertion,
        ip: &str,
    ) -> Result<Result<(), &'static str>, Error> {
        let ceremony = match self.take_ceremony(CeremonyKind::SecondFactor, ceremony_id).await {
            Ok(ceremony) => ceremony,
            Err(Error::PasskeyCeremonyInvalid) => return Ok(Err("invalid_ceremony")),
            Err(e) => return Err(e),
        };
        if ceremony.user_id != Some(user_id) || ceremony.mfa_token_hash.as_deref() != Some(token_hash) {
            return Ok(Err("invalid_ceremony"));
        }
        let Some(passkey) = self
            .mfa
            .find_passkey(assertion.credential_id())
            .await?
            .filter(|p| p.user_id == user_id)
        else {
            return Ok(Err("unknown_passkey"));
        };
        let rp = self.relying_party()?;
        self.verify_assertion(&rp, false, &ceremony.state, assertion, &passkey, ip)
            .await
    }

    /// Parses an assertion for the second factor (422 on `passkey.credential` when malformed).
    pub(super) fn parse_second_factor(&self, credential: serde_json::Value) -> Result<Assertion, Error> {
        self.relying_party()?
            .parse_assertion(credential)
            .map_err(|e| malformed(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Laptop  ").unwrap(), "Laptop");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
        assert!(parse_name("a\u{7}b").is_err());
        assert_eq!(parse_name(&"é".repeat(64)).unwrap().chars().count(), 64);
    }
}
