//! Login (S1, S7, B6, B7): limits per client IP and per account before any hashing work, the
//! same hashing work and answer for an unknown account as for a wrong password, rehashing
//! after a parameter change, and a new session with its first token pair.

use tessera_core::limits::Decision;
use tessera_core::password::Verification;
use tessera_core::store::{NewSession, User};
use zeroize::Zeroizing;

use super::App;
use super::error::{Error, FieldError};
use super::mfa::LoginOutcome;
use crate::clock::Stopwatch;

/// Passwords longer than this (in bytes) are refused before any hashing work.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Logins (email or username) longer than this are refused before any lookup.
pub const MAX_LOGIN_CHARS: usize = 254;

/// A login attempt as the client sent it.
pub struct LoginAttempt {
    /// Email or username, trimmed.
    pub login: String,
    /// The password.
    pub password: Zeroizing<String>,
}

/// Where a request comes from, for limits, sessions and security events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client IP (through TRUSTED_PROXIES).
    pub ip: String,
    /// The User-Agent header, if any.
    pub user_agent: Option<String>,
}

/// A new or refreshed session's tokens.
#[derive(Debug)]
pub struct SessionTokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// The session id (`sid`).
    pub session_id: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// The rate-limit decision of this request, if it was limited (login).
    pub limit: Option<Decision>,
}

impl App {
    /// Logs in: checks the credentials and starts a session, or, for an account with a second
    /// factor (C3), answers with a challenge instead ([`LoginOutcome::MfaRequired`]). Counts the
    /// attempt in `auth_login_attempts_total` (a challenge counts when its code completes the
    /// login, in [`App::login_mfa`]) and times it in `auth_login_duration_seconds`.
    pub async fn login(&self, attempt: LoginAttempt, client: &ClientInfo) -> Result<LoginOutcome, Error> {
        let started = Stopwatch::start();
        let result = self.login_attempt(attempt, client).await;
        self.metrics.login_duration.observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(LoginOutcome::Session(_)) => self.metrics.login_attempts.with_label_values(&["success"]).inc(),
            Ok(LoginOutcome::MfaRequired(_)) => {}
            Err(_) => self.metrics.login_attempts.with_label_values(&["failure"]).inc(),
        }
        result
    }

    async fn login_attempt(&self, attempt: LoginAttempt, client: &ClientInfo) -> Result<LoginOutcome, Error> {
        let LoginAttempt { login, password } = attempt;
        let ip = client.ip.as_str();
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::Validation(vec![FieldError::new(
                "password", "too_long", "too long",
            )]));
        }
        if login.len() > MAX_LOGIN_CHARS {
            return Err(Error::Validation(vec![FieldError::new(
                "email", "too_long", "too long",
            )]));
        }

        // Per client IP (S7) first, before any database work. Then per account whatever the
        // IP (B7), keyed by the account id when the login names one, so its email and its
        // username share one bucket; unknown logins are keyed by the text. Both before any
        // hashing work. The X-RateLimit-* headers describe whichever leaves fewer attempts:
        // the one the client runs into first. The reason tells the two apart: `rate_limited`
        // (this client IP is over its limit) or `locked` (the account is throttled after too
        // many attempts, whatever the IP).
        let refused = |reason: &'static str| {
            let login = &login;
            move |error: Error| {
                tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason, "login refused by the rate limit");
                error
            }
        };
        let per_ip = self
            .enforce_limit("login", ip, &self.config.rate_limit_login, ip)
            .await
            .map_err(refused("rate_limited"))?;
        let started = Stopwatch::start();
        let lookup = super::accounts::login_lookup_key(&login);
        let user = self.users.find_by_login(&lookup).await?;
        let account_key = match &user {
            Some(user) => format!("id:{}", user.id),
            None => format!("login:{}", lookup.to_lowercase()),
        };
        let per_account = self
            .enforce_limit("login_account", &account_key, &self.config.rate_limit_login_account, ip)
            .await
            .map_err(refused("locked"))?;
        let decision = if per_account.remaining < per_ip.remaining {
            per_account
        } else {
            per_ip
        };
        // Unknown user or not, the same hashing work happens (dummy hash), so the answer and
        // its timing do not tell whether the account exists (B6).
        // A service account has no password: it is verified against the dummy hash like an
        // unknown account, and refused like a wrong password.
        let stored = user
            .as_ref()
            .filter(|u| !u.service_account)
            .map(|u| u.password_hash.clone());
        let verification = self
            .accounts
            .hashing()
            .verify(password.clone(), stored)
            .await
            .map_err(|e| self.hashing_error(e))?;
        let elapsed_ms = started.elapsed().as_millis() as u64;

        let user = match (user, verification) {
            (Some(user), Verification::Valid { needs_rehash }) if !user.service_account => {
                if needs_rehash {
                    self.rehash_in_background(user.id, password);
                }
                user
            }
            (user, _) => {
                let reason = if user.is_some() {
                    "wrong_password"
                } else {
                    "user_not_found"
                };
                tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason, elapsed_ms, "login failed");
                return Err(Error::InvalidCredentials { limit: Some(decision) });
            }
        };
        if user.disabled_at.is_some() {
            tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason = "disabled", "login to a disabled account");
            return Err(Error::AccountDisabled);
        }
        // Only after the password: the refusal tells nothing to someone without it.
        if !self.email_verified_enough(&user) {
            tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason = "email_not_verified", "login before the email address was verified");
            return Err(Error::EmailNotVerified);
        }
        // Only after the password and every limit: whether an account has a second factor is
        // told to no one without its password, and the code step cannot skip a limit.
        if self.requires_mfa(&user).await? {
            let mut challenge = self.issue_mfa_challenge(&user, client).await?;
            challenge.limit = Some(decision);
            tracing::info!(event = "login_mfa_required", user_id = user.id, ip_address = %ip, elapsed_ms, "password accepted; waiting for the second factor");
            return Ok(LoginOutcome::MfaRequired(challenge));
        }
        let mut tokens = self.start_session(&user, client).await.inspect_err(|error| {
            if matches!(error, Error::AccountDisabled) {
                // Disabled between the check above and the session insert (`users disable`
                // racing this login): the conditional insert refused it.
                tracing::warn!(event = "login_failure", email = %login, ip_address = %ip, reason = "disabled", "account disabled during login");
            }
        })?;
        tokens.limit = Some(decision);
        tracing::info!(event = "login_success", user_id = user.id, username = %user.username, ip_address = %ip, elapsed_ms, "login succeeded");
        Ok(LoginOutcome::Session(tokens))
    }

    /// Upgrades a password hash made with old parameters, after the response has gone.
    fn rehash_in_background(&self, user_id: i64, password: Zeroizing<String>) {
        let hashing = self.accounts.hashing().clone();
        let users = self.users.clone();
        tokio::spawn(async move {
            let result = match hashing.hash(password).await {
                Ok(hash) => users
                    .update_password_hash(user_id, &hash)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => tracing::info!(
                    event = "password_rehashed",
                    user_id,
                    "password hash upgraded to current parameters"
                ),
                Err(error) => {
                    tracing::warn!(event = "password_rehash_failed", user_id, %error, "password rehash failed; will retry at next login")
                }
            }
        });
    }

    /// Creates a session and issues its first token pair.
    pub(super) async fn start_session(&self, user: &User, client: &ClientInfo) -> Result<SessionTokens, Error> {
        let now = self.clock.now();
        let sid = super::random_id();
        let refresh_jti = super::random_id();
        let expires_at = now + self.config.refresh_ttl_secs;
        // Sign first: if signing failed after the insert, a session would exist that no
        // client holds.
        let roles = self.users.roles(user.id).await?;
        let access = self
            .issue_access(user.id, &user.username, roles, &sid, now)
            .map_err(anyhow::Error::from)?;
        let refresh = self
            .issue_refresh(user.id, &user.username, &sid, &refresh_jti, now, expires_at)
            .map_err(anyhow::Error::from)?;
        let created = self
            .sessions
            .create(NewSession {
                id: sid.clone(),
                user_id: user.id,
                refresh_jti,
                now,
                expires_at,
                ip_address: Some(client.ip.clone()),
                user_agent: client.user_agent.clone(),
            })
            .await?;
        // Disabled (or deleted) after the check above: the insert was conditional on it.
        if created.is_none() {
            return Err(Error::AccountDisabled);
        }
        Ok(SessionTokens {
            access_token: access.token,
            refresh_token: refresh,
            csrf_token: self.csrf_token(&sid),
            session_id: sid,
            limit: None,
        })
    }
}
