//! The second factor (C3): TOTP enrolment and removal, recovery codes, and the login step that
//! asks for a code.
//!
//! Enrolment starts with a fresh secret (shown once as base32, `otpauth://` URI and QR code) that
//! stays pending until a first code confirms the person's app has it; confirmation hands out
//! ten one-time recovery codes, shown once and stored as hashes. Starting, removing and new
//! recovery codes need the account's password ([`App::reauthenticate`], counted against the
//! account's login limit), so a stolen access token alone can neither add a factor the owner
//! does not have nor remove the one they rely on. The secret is sealed under MASTER_KEY when one
//! is set (the same XChaCha20-Poly1305 sealing as the stored signing keys), bound to the account.
//!
//! At login, once the password is right and every login limit has counted the attempt, an
//! account with a confirmed factor gets no session but a challenge: an `mfa_token` (256 random
//! bits, stored hashed, bound to the account and the client of the password step, 5 minutes,
//! at most [`MAX_CODE_ATTEMPTS`] codes, single use). [`App::login_mfa`] then takes a TOTP code or
//! a recovery code and finishes the login exactly as `/login` would. Each code attempt also counts
//! against the account's login limit (RATE_LIMIT_LOGIN_ACCOUNT), so codes cannot be guessed
//! faster than passwords; the per-IP login limit already bounded the password step that made the
//! token, and is not charged twice for one sign-in. A TOTP code is accepted once: the store keeps the last accepted time
//! step and accepts a step only after it, in one conditional update (every instance shares it).

use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::limits::Decision;
use tessera_core::sealing::{MasterKey, is_sealed};
use tessera_core::store::{MfaStore, NewMfaChallenge, StoreError, User};
use tessera_core::totp::{self, TotpSecret};
use zeroize::Zeroizing;

use super::App;
use super::api_keys::Authenticated;
use super::error::{Error, FieldError};
use super::login::{ClientInfo, SessionTokens};

/// How long an `mfa_token` lives (5 minutes).
pub const CHALLENGE_TTL_SECS: i64 = 300;
/// Codes one `mfa_token` may be tried with; then it is void.
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// The second-factor methods a login challenge offers with an authenticator app.
pub const METHODS: [&str; 2] = ["totp", "recovery_code"];
/// The method a login challenge offers when the account has passkeys.
pub const PASSKEY_METHOD: &str = "passkey";
/// Longest `mfa_token` or code looked at (longer input is refused unread).
const MAX_INPUT_CHARS: usize = 128;

/// A TOTP enrolment just started: the only time the secret is shown.
pub struct TotpEnrollment {
    /// The secret, RFC 4648 base32 (for typing into an app).
    pub secret: Zeroizing<String>,
    /// The `otpauth://totp/...` URI (what the QR code holds).
    pub otpauth_uri: Zeroizing<String>,
    /// The QR code of the URI, as an SVG document.
    pub qr_svg: String,
}

/// The second factor of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaStatus {
    /// A confirmed TOTP factor: logins ask for a code.
    pub totp_enrolled: bool,
    /// An enrolment started and not yet confirmed.
    pub totp_pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

/// A login waiting for its second factor.
pub struct MfaRequired {
    /// The challenge token (`mfa_token`), for `POST /login/mfa`.
    pub mfa_token: Zeroizing<String>,
    /// Seconds it lives.
    pub expires_in: i64,
    /// What `POST /login/mfa` accepts for this account.
    pub methods: Vec<&'static str>,
    /// The passkey ceremony, when the account has passkeys.
    pub passkey: Option<super::passkeys::PasskeyStart>,
    /// The login's limit decision (for the `X-RateLimit-*` headers).
    pub limit: Option<Decision>,
}

/// The factor a person presents at `POST /login/mfa`.
pub enum SecondFactor {
    /// A code from the authenticator app.
    Totp(Zeroizing<String>),
    /// One of the recovery codes.
    RecoveryCode(Zeroizing<String>),
    /// A passkey's answer to the login's passkey ceremony.
    Passkey(super::passkeys::PasskeyAnswer),
}

impl SecondFactor {
    /// The metric's `method` label.
    fn method(&self) -> &'static str {
        match self {
            SecondFactor::Totp(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
            SecondFactor::Passkey(_) => PASSKEY_METHOD,
        }
    }
}

/// What a login attempt led to.
pub enum LoginOutcome {
    /// Logged in: a new session.
    Session(SessionTokens),
    /// The password was right; a second factor is required.
    MfaRequired(MfaRequired),
}

/// The associated data a sealed TOTP secret is bound to: a blob copied to another account's row
/// does not open.
fn seal_context(user_id: i64) -> Vec<u8> {
    format!("mfa-totp/{user_id}").into_bytes()
}

/// The `qr_svg` of an enrolment: black modules on white, 4-module quiet zone, scalable.
fn qr_svg(uri: &str) -> Result<String, Error> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| Error::Internal(anyhow::anyhow!("qr code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

impl App {
    /// The master key the TOTP secrets are sealed under, when MASTER_KEY is set.
    fn mfa_master(&self) -> Result<Option<MasterKey>, Error> {
        crate::keys::master_key(&self.config).map_err(Error::Internal)
    }

    fn seal_secret(&self, user_id: i64, secret: &TotpSecret) -> Result<Vec<u8>, Error> {
        Ok(match self.mfa_master()? {
            Some(master) => {
                let mut nonce = [0u8; 24];
                OsRng.fill_bytes(&mut nonce);
                master.seal(&seal_context(user_id), secret.as_bytes(), nonce)
            }
            None => secret.as_bytes().to_vec(),
        })
    }

    fn open_secret(&self, user_id: i64, stored: &[u8]) -> Result<TotpSecret, Error> {
        let secret = if is_sealed(stored) {
            let master = self.mfa_master()?.ok_or_else(|| {
                Error::Internal(anyhow::anyhow!(
                    "MASTER_KEY: the TOTP secrets are sealed; set the MASTER_KEY they were sealed with"
                ))
            })?;
            master
                .open(&seal_context(user_id), stored)
                .map_err(|e| Error::Internal(anyhow::anyhow!("TOTP secret of user {user_id}: {e}")))?
        } else {
            Zeroizing::new(stored.to_vec())
        };
        TotpSecret::from_bytes(&secret).map_err(|e| Error::Internal(anyhow::anyhow!("user {user_id}: {e}")))
    }

    fn count_mfa(&self, method: &str, result: &str) {
        self.metrics.mfa.with_label_values(&[method, result]).inc();
    }

    /// The caller's second factor.
    pub async fn mfa_status(&self, caller: &Authenticated) -> Result<MfaStatus, Error> {
        let user_id = caller.claims.user_id;
        let factor = self.mfa.find_totp(user_id).await?;
        let enrolled = factor.as_ref().is_some_and(|f| f.confirmed_at.is_some());
        Ok(MfaStatus {
            totp_enrolled: enrolled,
            totp_pending: factor.is_some() && !enrolled,
            recovery_codes_left: if enrolled {
                self.mfa.recovery_codes_left(user_id).await?
            } else {
                0
            },
        })
    }

    /// Starts a TOTP enrolment (password required): a new pending secret, replacing a pending
    /// one. [`Error::MfaAlreadyEnrolled`] when a confirmed factor exists (remove it first).
    pub async fn start_totp(
        &self,
        caller: &Authenticated,
        password: Zeroizing<String>,
        ip: &str,
    ) -> Result<TotpEnrollment, Error> {
        let user = self
            .reauthenticate(caller, password, "password", "mfa_enrolment", ip)
            .await?;
        let secret = TotpSecret::generate(&mut OsRng);
        let issuer = app_issuer(&self.config.issuer);
        let otpauth_uri = secret
            .otpauth_uri(issuer, &user.email)
            .map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
        let qr_svg = qr_svg(&otpauth_uri)?;
        let stored = self.seal_secret(user.id, &secret)?;
        if !self.mfa.start_totp(user.id, &stored, self.clock.now()).await? {
            return Err(Error::MfaAlreadyEnrolled);
        }
        tracing::info!(event = "mfa_enrolment_started", user_id = user.id, ip_address = %ip, method = "totp", "TOTP enrolment started; waiting for a first code");
        Ok(TotpEnrollment {
            secret: secret.to_base32(),
            otpauth_uri,
            qr_svg,
        })
    }

    /// Confirms the pending enrolment with a first code from the app; returns the recovery codes
    /// (shown once). A wrong code is 422 `code` / `incorrect_code`.
    pub async fn confirm_totp(
        &self,
        caller: &Authenticated,
        code: &str,
        ip: &str,
    ) -> Result<Vec<Zeroizing<String>>, Error> {
        require_session(caller)?;
        let user_id = caller.claims.user_id;
        let code = parse_code(code, "code")?;
        let factor = self
            .mfa
            .find_totp(user_id)
            .await?
            .filter(|f| f.confirmed_at.is_none())
            .ok_or(Error::MfaNotEnrolled)?;
        let secret = self.open_secret(user_id, &factor.secret)?;
        let now = self.clock.now();
        let Some(step) = secret.check(&code, now) else {
            self.count_mfa("totp", "failure");
            return Err(Error::Validation(vec![FieldError::new(
                "code",
                "incorrect_code",
                "the code is not correct",
            )]));
        };
        let codes = totp::generate_recovery_codes(&mut OsRng);
        let hashes = recovery_hashes(&codes);
        if !self.mfa.confirm_totp(user_id, step, &hashes, now).await? {
            // Confirmed meanwhile (another request), or removed: nothing pending any more.
            return Err(Error::MfaNotEnrolled);
        }
        self.count_mfa("totp", "success");
        tracing::info!(event = "mfa_enrolled", user_id, ip_address = %ip, method = "totp", "second factor enrolled");
        Ok(codes)
    }

    /// Removes the caller's second factor (password required): TOTP, recovery codes, open
    /// challenges. [`Error::NotFound`] when there is none.
    pub async fn remove_mfa(&self, caller: &Authenticated, password: Zeroizing<String>, ip: &str) -> Result<(), Error> {
        let user = self
            .reauthenticate(caller, password, "password", "mfa_removal", ip)
            .await?;
        if !self.mfa.delete_mfa(user.id).await? {
            return Err(Error::NotFound);
        }
        tracing::info!(event = "mfa_removed", user_id = user.id, ip_address = %ip, method = "totp", "second factor removed by its owner");
        Ok(())
    }

    /// A new set of recovery codes (password required); the old set stops working.
    /// [`Error::MfaNotEnrolled`] without a confirmed factor.
    pub async fn new_recovery_codes(
        &self,
        caller: &Authenticated,
        password: Zeroizing<String>,
        ip: &str,
    ) -> Result<Vec<Zeroizing<String>>, Error> {
        let user = self
            .reauthenticate(caller, password, "password", "recovery_codes", ip)
            .await?;
        let codes = totp::generate_recovery_codes(&mut OsRng);
        if !self
            .mfa
            .replace_recovery_codes(user.id, &recovery_hashes(&codes), self.clock.now())
            .await?
        {
            return Err(Error::MfaNotEnrolled);
        }
        tracing::info!(event = "recovery_codes_regenerated", user_id = user.id, ip_address = %ip, "new recovery codes; the old set is void");
        Ok(codes)
    }

    /// Whether a login of `user` must present a second factor: a confirmed TOTP app or a
    /// passkey.
    pub(super) async fn requires_mfa(&self, user: &User) -> Result<bool, Error> {
        Ok(self.has_totp(user).await? || self.has_passkeys(user).await?)
    }

    async fn has_totp(&self, user: &User) -> Result<bool, Error> {
        Ok(self
            .mfa
            .find_totp(user.id)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some()))
    }

    /// Stores a login challenge for `user` (whose password was just checked) and returns its
    /// token.
    pub(super) async fn issue_mfa_challenge(&self, user: &User, client: &ClientInfo) -> Result<MfaRequired, Error> {
        let token = totp::generate_challenge_token(&mut OsRng);
        let token_hash = totp::challenge_token_hash(&token);
        let now = self.clock.now();
        self.mfa
            .create_mfa_challenge(NewMfaChallenge {
                token_hash: token_hash.clone(),
                user_id: user.id,
                ip_address: Some(client.ip.clone()),
                user_agent: client.user_agent.clone(),
                created_at: now,
                expires_at: now + CHALLENGE_TTL_SECS,
            })
            .await?;
        let mut methods = Vec::new();
        if self.has_totp(user).await? {
            methods.extend(METHODS);
        }
        let passkey = self.start_passkey_second_factor(user, &token_hash).await?;
        if passkey.is_some() {
            methods.push(PASSKEY_METHOD);
        }
        Ok(MfaRequired {
            mfa_token: token,
            expires_in: CHALLENGE_TTL_SECS,
            methods,
            passkey,
            limit: None,
        })
    }

    /// Completes a login that answered `mfa_required`: checks the token and the factor, then
    /// starts the session exactly as a login without a second factor does.
    pub async fn login_mfa(
        &self,
        mfa_token: &str,
        factor: SecondFactor,
        client: &ClientInfo,
    ) -> Result<SessionTokens, Error> {
        let method = factor.method();
        let ip = client.ip.as_str();
        // Malformed input is refused before it can use up an attempt: it cannot be right.
        let mut passkey_assertion = None;
        let factor = match factor {
            SecondFactor::Totp(code) => SecondFactor::Totp(Zeroizing::new(parse_code(&code, "code")?)),
            SecondFactor::RecoveryCode(code) => SecondFactor::RecoveryCode(
                (code.chars().count() <= MAX_INPUT_CHARS)
                    .then(|| totp::normalize_recovery_code(&code))
                    .flatten()
                    .ok_or_else(|| {
                        Error::Validation(vec![FieldError::new(
                            "recovery_code",
                            "invalid_format",
                            "a recovery code is 16 letters and digits, as xxxx-xxxx-xxxx-xxxx",
                        )])
                    })?,
            ),
            SecondFactor::Passkey(answer) => {
                passkey_assertion = Some(self.parse_second_factor(answer.credential)?);
                SecondFactor::Passkey(super::passkeys::PasskeyAnswer {
                    ceremony_id: answer.ceremony_id,
                    credential: serde_json::Value::Null,
                })
            }
        };
        // Per client IP, the login budget again, on a counter of its own (a password login and
        // its code do not share one): tokens are unguessable, but each try costs a database
        // write, and nobody needs more codes a minute than passwords.
        self.enforce_limit("login", &format!("mfa:{ip}"), &self.config.rate_limit_login, ip)
            .await?;
        if mfa_token.is_empty() || mfa_token.len() > MAX_INPUT_CHARS {
            self.count_mfa(method, "invalid_token");
            return Err(Error::MfaTokenInvalid);
        }
        let token_hash = totp::challenge_token_hash(mfa_token);
        let now = self.clock.now();
        let Some(challenge) = self
            .mfa
            .attempt_mfa_challenge(&token_hash, MAX_CODE_ATTEMPTS, now)
            .await?
        else {
            self.count_mfa(method, "invalid_token");
            tracing::warn!(event = "mfa_failure", ip_address = %ip, method, reason = "invalid_token", "unknown, used, expired or exhausted mfa_token");
            return Err(Error::MfaTokenInvalid);
        };
        let user_id = challenge.user_id;
        // The account's login limit (B7) counts codes like passwords, whatever the IP.
        self.enforce_limit(
            "login_account",
            &format!("id:{user_id}"),
            &self.config.rate_limit_login_account,
            ip,
        )
        .await?;
        let user = self.users.find_by_id(user_id).await?.ok_or(Error::MfaTokenInvalid)?;
        if user.disabled_at.is_some() {
            tracing::warn!(event = "login_failure", user_id, ip_address = %ip, reason = "disabled", "second factor for a disabled account");
            return Err(Error::AccountDisabled);
        }
        let accepted = match &factor {
            SecondFactor::Totp(code) => self.check_totp(user_id, code, now).await?,
            SecondFactor::RecoveryCode(code) => {
                let used = self
                    .mfa
                    .consume_recovery_code(user_id, &totp::recovery_code_hash(code))
                    .await?;
                if used { Ok(()) } else { Err("wrong_code") }
            }
            SecondFactor::Passkey(answer) => match passkey_assertion.take() {
                Some(assertion) => {
                    self.check_passkey_second_factor(user_id, &token_hash, &answer.ceremony_id, assertion, ip)
                        .await?
                }
                None => Err("invalid_ceremony"),
            },
        };
        if let Err(reason) = accepted {
            let attempts_left = (MAX_CODE_ATTEMPTS - challenge.attempts).max(0);
            self.count_mfa(method, if reason == "replay" { "replay" } else { "failure" });
            tracing::warn!(event = "mfa_failure", user_id, ip_address = %ip, method, reason, attempts_left, "second factor refused");
            return Err(Error::InvalidMfaCode { attempts_left });
        }
        // Single use: of two logins racing on one token, one session.
        if !self.mfa.consume_mfa_challenge(&token_hash, now).await? {
            self.count_mfa(method, "invalid_token");
            return Err(Error::MfaTokenInvalid);
        }
        if method == "recovery_code" {
            let left = self.mfa.recovery_codes_left(user_id).await?;
            tracing::warn!(event = "recovery_code_used", user_id, ip_address = %ip, recovery_codes_left = left, "a recovery code was used to sign in");
        }
        let tokens = self.start_session(&user, client).await?;
        self.count_mfa(method, "success");
        self.metrics.login_attempts.with_label_values(&["success"]).inc();
        tracing::info!(event = "login_success", user_id, username = %user.username, ip_address = %ip, mfa = method, "login succeeded");
        Ok(tokens)
    }

    /// Checks a TOTP code of the confirmed factor and spends its time step; the refusal reason
    /// (`wrong_code`, `replay`) otherwise.
    async fn check_totp(&self, user_id: i64, code: &str, now: i64) -> Result<Result<(), &'static str>, Error> {
        let Some(factor) = self.mfa.find_totp(user_id).await?.filter(|f| f.confirmed_at.is_some()) else {
            // Removed since the password step.
            return Err(Error::MfaTokenInvalid);
        };
        let secret = self.open_secret(user_id, &factor.secret)?;
        let Some(step) = secret.check(code, now) else {
            return Ok(Err("wrong_code"));
        };
        if self.mfa.use_totp_step(user_id, step).await? {
            Ok(Ok(()))
        } else {
            Ok(Err("replay"))
        }
    }
}

/// The operator's reset (`tessera users mfa reset`): removes the account's second factor (the
/// app, its recovery codes and every passkey), logged
/// as `mfa_reset`. `false` when it had none.
pub async fn reset_mfa(mfa: &dyn MfaStore, user_id: i64, actor: &str) -> Result<bool, StoreError> {
    let totp_removed = mfa.delete_mfa(user_id).await?;
    let passkeys_removed = mfa.delete_passkeys(user_id).await?;
    let removed = totp_removed || passkeys_removed > 0;
    if removed {
        tracing::warn!(
            event = "mfa_reset",
            user_id,
            actor,
            passkeys_removed,
            "second factor (app, recovery codes, passkeys) removed by an operator"
        );
    }
    Ok(removed)
}

/// The issuer an authenticator app shows next to the code: TOKEN_ISSUER without its URL scheme
/// and trailing slash (`https://auth.example.com/` shows as `auth.example.com`), or `Tessera`.
fn app_issuer(issuer: &str) -> &str {
    let issuer = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer)
        .trim_end_matches('/');
    if issuer.is_empty() { "Tessera" } else { issuer }
}

/// Factor changes and their confirmation need a person's session, not an API key.
pub(super) fn require_session(caller: &Authenticated) -> Result<(), Error> {
    if caller.api_key_id.is_some() || caller.claims.sid.is_empty() {
        return Err(Error::SessionRequired);
    }
    Ok(())
}

/// A TOTP code as typed, normalised, or 422 on `field`.
fn parse_code(code: &str, field: &'static str) -> Result<String, Error> {
    (code.chars().count() <= MAX_INPUT_CHARS)
        .then(|| totp::normalize_code(code))
        .flatten()
        .ok_or_else(|| Error::Validation(vec![FieldError::new(field, "invalid_format", "a code is 6 digits")]))
}

fn recovery_hashes(codes: &[Zeroizing<String>]) -> Vec<Vec<u8>> {
    codes
        .iter()
        .filter_map(|code| totp::normalize_recovery_code(code))
        .map(|code| totp::recovery_code_hash(&code))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_issuer_is_the_token_issuer_without_its_scheme() {
        assert_eq!(app_issuer(""), "Tessera");
        assert_eq!(app_issuer("https://auth.example.com/"), "auth.example.com");
        assert_eq!(app_issuer("http://localhost:8000"), "localhost:8000");
        assert_eq!(app_issuer("tessera"), "tessera");
        assert_eq!(app_issuer("https://"), "Tessera");
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let svg = qr_svg("otpauth://totp/Tessera:alice?secret=JBSWY3DPEHPK3PXP&issuer=Tessera").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn codes_are_parsed_into_six_digits_or_refused_on_the_field() {
        assert_eq!(parse_code(" 123 456 ", "code").unwrap(), "123456");
        let Err(Error::Validation(errors)) = parse_code("12345x", "code") else {
            panic!("a malformed code is a validation error");
        };
        assert_eq!((errors[0].field.as_str(), errors[0].code), ("code", "invalid_format"));
        assert!(parse_code(&"1".repeat(200), "code").is_err());
    }
}
