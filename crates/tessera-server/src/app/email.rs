//! Mail-backed flows (C1, C2): verifying an address, changing it, and resetting a forgotten
//! password.
//!
//! Each sends a one-time token by mail: 256 random bits, base64url, stored only as its SHA-256,
//! single use, 30 minutes (reset) or 24 hours (verification, email change), and a new token of
//! a purpose voids the account's older ones. The link in the mail opens a page; only the page's
//! POST redeems the token (mail scanners that fetch links burn nothing), and the token is
//! consumed in the same transaction as its effect.
//!
//! No answer tells whether an address has an account: `/password/forgot` and the signed-out
//! `/email/verify/resend` do the lookup, the token and the mail after answering, in a background
//! task, so the answer and its timing are the same either way. Mails are queued
//! ([`crate::mail::Mailer`]) and never waited for. Limits: RATE_LIMIT_MAIL_IP per client IP
//! (429: it counts every request, known address or not, so it tells nothing), and
//! RATE_LIMIT_MAIL_ADDRESS per recipient (over it nothing is sent, and the answer is the same).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tessera_core::identity::Email;
use tessera_core::store::{EmailToken, EmailTokenPurpose, NewEmailToken, Redemption, User};
use zeroize::Zeroizing;

use super::App;
use super::api_keys::Authenticated;
use super::error::{Error, FieldError};
use super::login::MAX_PASSWORD_BYTES;
use crate::config::mail::EmailVerification;
use crate::mail::Mail;
use crate::mail::templates::{self, MailKind, MailLang, Params};

/// Lifetime of a password-reset token.
pub const RESET_TOKEN_TTL_SECS: i64 = 30 * 60;
/// Lifetime of a verification or email-change token.
pub const VERIFY_TOKEN_TTL_SECS: i64 = 24 * 60 * 60;
/// Tokens longer than this are refused before any lookup.
const MAX_TOKEN_CHARS: usize = 128;

/// What `POST /email/verify` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The account's address is verified.
    Address(String),
    /// The account's address was replaced by this (verified) one.
    Changed(String),
}

/// What a resend did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resent {
    /// A new link is on its way (or, signed out, would be if the address needs one).
    Queued,
    /// The signed-in caller's address is verified already: nothing was sent.
    AlreadyVerified,
}

/// A fresh token and its hash.
fn new_token() -> (String, Vec<u8>) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, bytes.as_mut());
    let token = tessera_core::b64::encode(bytes.as_ref());
    let hash = token_hash(&token);
    (token, hash)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A token as presented: plausible base64url of bounded length, else refused before any lookup.
fn presented_hash(token: &str) -> Result<Vec<u8>, Error> {
    let token = token.trim();
    if token.is_empty()
        || token.len() > MAX_TOKEN_CHARS
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::InvalidMailToken);
    }
    Ok(token_hash(token))
}

impl App {
    /// The product name mails are signed with (PRODUCT_NAME).
    fn product_name(&self) -> &str {
        &self.config.product_name
    }

    /// Issues a token for `user` and queues its mail to `to`. Over RATE_LIMIT_MAIL_ADDRESS
    /// for `to`, nothing is issued or sent (logged and counted).
    async fn mail_token(
        &self,
        user: &User,
        purpose: EmailTokenPurpose,
        to: &str,
        lang: MailLang,
        ip: &str,
    ) -> Result<(), Error> {
        if !self.mail_allowed(to, ip).await {
            return Ok(());
        }
        let now = self.clock.now();
        let (token, hash) = new_token();
        let (ttl, path, kind) = match purpose {
            EmailTokenPurpose::ResetPassword => (RESET_TOKEN_TTL_SECS, "/password/reset", MailKind::ResetPassword),
            EmailTokenPurpose::VerifyEmail => (VERIFY_TOKEN_TTL_SECS, "/email/verify", MailKind::VerifyEmail),
            EmailTokenPurpose::ChangeEmail => (VERIFY_TOKEN_TTL_SECS, "/email/verify", MailKind::ChangeEmail),
        };
        self.email_tokens
            .issue_email_token(NewEmailToken {
                token_hash: hash,
                user_id: user.id,
                purpose,
                email: to.to_owned(),
                created_at: now,
                expires_at: now + ttl,
            })
            .await?;
        self.metrics
            .email_tokens
            .with_label_values(&[purpose.as_str(), "issued"])
            .inc();
        let link = self.config.public_url.join(&format!("{path}?token={token}"));
        let content = templates::render(
            kind,
            lang,
            &Params {
                product: self.product_name(),
                link: Some(&link),
                new_email: None,
            },
        );
        self.mailer.send(Mail {
            kind,
            to: to.to_owned(),
            content,
        });
        tracing::info!(event = "email_token_sent", purpose = purpose.as_str(), user_id = user.id, ip_address = %ip, "one-time link mailed");
        Ok(())
    }

    /// Counts a mail to `to` against RATE_LIMIT_MAIL_ADDRESS; false (logged and counted) when
    /// over it.
    async fn mail_allowed(&self, to: &str, ip: &str) -> bool {
        let key = Email::parse(to).map_or_else(|_| to.to_lowercase(), Email::into_string);
        let decision = self
            .limits
            .hit(&format!("mail_address:{key}"), &self.config.mail.rate_limit_address)
            .await;
        if !decision.allowed {
            self.metrics.mail_dropped.with_label_values(&["limited"]).inc();
            tracing::warn!(event = "mail_limited", ip_address = %ip, "mail not sent: the address's send limit is reached");
        }
        decision.allowed
    }

    /// Runs `work` after the answer: the enumeration-safe flows do their lookups and writes
    /// here, so the answer and its timing never depend on whether an account exists.
    fn after_answer<F>(self: &Arc<Self>, action: &'static str, work: F)
    where
        F: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(error) = work.await {
                tracing::warn!(event = "mail_flow_failed", action, error = %error, "a mail flow failed after the answer");
            }
        });
    }

    /// The address as given, checked (422 `invalid_email`).
    fn parse_email(field: &'static str, email: &str) -> Result<Email, Error> {
        Email::parse(email.trim()).map_err(|_| {
            Error::Validation(vec![FieldError::new(
                field,
                "invalid_email",
                "not a valid email address",
            )])
        })
    }

    /// `POST /password/forgot`: the same answer whether or not the address has an account.
    pub async fn forgot_password(self: &Arc<Self>, email: &str, lang: MailLang, ip: &str) -> Result<(), Error> {
        let email = Self::parse_email("email", email)?;
        self.enforce_limit("mail_ip", ip, &self.config.mail.rate_limit_ip, ip)
            .await?;
        let app = Arc::clone(self);
        let ip = ip.to_owned();
        self.after_answer("password_forgot", async move {
            let user = app.users.find_by_login(email.as_str()).await?;
            let Some(user) = user.filter(|u| u.disabled_at.is_none() && !u.service_account) else {
                tracing::info!(event = "password_reset_requested", known = false, ip_address = %ip, "reset asked for an address without an active account; nothing sent");
                return Ok(());
            };
            tracing::info!(event = "password_reset_requested", known = true, user_id = user.id, ip_address = %ip, "password reset requested");
            let to = user.email.clone();
            app.mail_token(&user, EmailTokenPurpose::ResetPassword, &to, lang, &ip).await
        });
        Ok(())
    }

    /// A live token of one of `purposes`, else [`Error::InvalidMailToken`] (counted).
    async fn live_token(&self, hash: &[u8], purposes: &[EmailTokenPurpose]) -> Result<EmailToken, Error> {
        let found = self.email_tokens.find_email_token(hash, self.clock.now()).await?;
        match found {
            Some(token) if purposes.contains(&token.purpose) => Ok(token),
            _ => Err(self.invalid_mail_token(purposes[0])),
        }
    }

    fn invalid_mail_token(&self, purpose: EmailTokenPurpose) -> Error {
        self.metrics
            .email_tokens
            .with_label_values(&[purpose.as_str(), "invalid"])
            .inc();
        tracing::warn!(
            event = "email_token_refused",
            purpose = purpose.as_str(),
            "unknown, used or expired mail token"
        );
        Error::InvalidMailToken
    }

    /// `POST /password/reset`: sets the password and ends every session of the account.
    /// Returns how many sessions were ended.
    pub async fn reset_password(&self, token: &str, new_password: Zeroizing<String>, ip: &str) -> Result<usize, Error> {
        if new_password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::Validation(vec![FieldError::new(
                "new_password",
                "too_long",
                "too long",
            )]));
        }
        let hash = presented_hash(token)?;
        let purpose = EmailTokenPurpose::ResetPassword;
        let live = self.live_token(&hash, &[purpose]).await?;
        let user = self
            .users
            .find_by_id(live.user_id)
            .await?
            .ok_or_else(|| self.invalid_mail_token(purpose))?;
        if let Err(violations) = self.accounts.policy().check(&new_password, &user.email, &user.username) {
            return Err(Error::Validation(
                violations
                    .iter()
                    .map(|v| FieldError::new("new_password", v.code(), v.to_string()))
                    .collect(),
            ));
        }
        let password_hash = self
            .accounts
            .hashing()
            .hash(new_password)
            .await
            .map_err(|e| self.hashing_error(e))?;
        let now = self.clock.now();
        let redeemed = self
            .email_tokens
            .redeem_email_token(
                &hash,
                Redemption::ResetPassword {
                    password_hash: &password_hash,
                },
                now,
            )
            .await?
            // Used (or the account disabled) while the password was being hashed.
            .ok_or_else(|| self.invalid_mail_token(purpose))?;
        self.deny_sessions(redeemed.revoked_sessions.iter().map(String::as_str), now);
        self.metrics
            .email_tokens
            .with_label_values(&[purpose.as_str(), "redeemed"])
            .inc();
        tracing::info!(event = "password_reset", user_id = redeemed.user_id, ip_address = %ip, sessions_revoked = redeemed.revoked_sessions.len(), "password reset by mailed link; every session ended");
        Ok(redeemed.revoked_sessions.len())
    }

    /// `POST /email/verify`: redeems a verification or email-change token. An email change
    /// tells the old address.
    pub async fn verify_email(&self, token: &str, lang: MailLang, ip: &str) -> Result<Verified, Error> {
        let hash = presented_hash(token)?;
        let live = self
            .live_token(&hash, &[EmailTokenPurpose::VerifyEmail, EmailTokenPurpose::ChangeEmail])
            .await?;
        let now = self.clock.now();
        let normalized;
        let redemption = match live.purpose {
            EmailTokenPurpose::ChangeEmail => {
                normalized = Email::parse(&live.email)
                    .map_err(|_| self.invalid_mail_token(live.purpose))?
                    .into_string();
                Redemption::ChangeEmail {
                    email_normalized: &normalized,
                }
            }
            _ => Redemption::VerifyEmail,
        };
        let redeemed = match self.email_tokens.redeem_email_token(&hash, redemption, now).await {
            Ok(Some(redeemed)) => redeemed,
            Ok(None) => return Err(self.invalid_mail_token(live.purpose)),
            Err(tessera_core::store::StoreError::Conflict(_)) => {
                tracing::warn!(event = "email_change_failed", user_id = live.user_id, ip_address = %ip, reason = "taken", "the new address belongs to another account now");
                return Err(Error::Conflict("email"));
            }
            Err(error) => return Err(error.into()),
        };
        self.metrics
            .email_tokens
            .with_label_values(&[live.purpose.as_str(), "redeemed"])
            .inc();
        if live.purpose == EmailTokenPurpose::VerifyEmail {
            tracing::info!(event = "email_verified", user_id = redeemed.user_id, ip_address = %ip, "email address verified");
            return Ok(Verified::Address(redeemed.email));
        }
        self.profiles.forget(redeemed.user_id);
        tracing::info!(event = "email_changed", user_id = redeemed.user_id, ip_address = %ip, "email address changed after the new one was verified");
        let content = templates::render(
            MailKind::EmailChanged,
            lang,
            &Params {
                product: self.product_name(),
                link: None,
                new_email: Some(&redeemed.email),
            },
        );
        if self.mail_allowed(&redeemed.previous_email, ip).await {
            self.mailer.send(Mail {
                kind: MailKind::EmailChanged,
                to: redeemed.previous_email.clone(),
                content,
            });
        }
        Ok(Verified::Changed(redeemed.email))
    }

    /// `POST /email/verify/resend`: signed in, a new link to the caller's own address; signed
    /// out with an address, the same answer whether or not it has an account needing one.
    pub async fn resend_verification(
        self: &Arc<Self>,
        caller: Option<&Authenticated>,
        email: Option<&str>,
        lang: MailLang,
        ip: &str,
    ) -> Result<Resent, Error> {
        if self.config.email_verification == EmailVerification::Off {
            return Err(Error::NotFound);
        }
        if let Some(caller) = caller {
            // Signed in, the link goes to the caller's own address; an address in the body is
            // still checked (a malformed request is refused, whoever sends it).
            if let Some(email) = email {
                Self::parse_email("email", email)?;
            }
            if caller.api_key_id.is_some() || caller.claims.sid.is_empty() {
                return Err(Error::SessionRequired);
            }
            self.enforce_limit("mail_ip", ip, &self.config.mail.rate_limit_ip, ip)
                .await?;
            let user = self
                .users
                .find_by_id(caller.claims.user_id)
                .await?
                .ok_or(Error::Token(super::error::TokenRejection::Invalid))?;
            if user.email_verified_at.is_some() {
                return Ok(Resent::AlreadyVerified);
            }
            let to = user.email.clone();
            self.mail_token(&user, EmailTokenPurpose::VerifyEmail, &to, lang, ip)
                .await?;
            return Ok(Resent::Queued);
        }
        let Some(email) = email else {
            return Err(Error::Validation(vec![FieldError::new(
                "email",
                "missing",
                "required when not signed in",
            )]));
        };
        let email = Self::parse_email("email", email)?;
        self.enforce_limit("mail_ip", ip, &self.config.mail.rate_limit_ip, ip)
            .await?;
        let app = Arc::clone(self);
        let ip = ip.to_owned();
        self.after_answer("verification_resend", async move {
            let user = app.users.find_by_login(email.as_str()).await?;
            let Some(user) =
                user.filter(|u| u.disabled_at.is_none() && !u.service_account && u.email_verified_at.is_none())
            else {
                return Ok(());
            };
            let to = user.email.clone();
            app.mail_token(&user, EmailTokenPurpose::VerifyEmail, &to, lang, &ip)
                .await
        });
        Ok(Resent::Queued)
    }

    /// After sign-up: mails the verification link (EMAIL_VERIFICATION optional or required).
    /// A failure here is logged, never the sign-up's: the person can ask for a new link.
    pub async fn send_sign_up_verification(&self, user: &User, lang: MailLang, ip: &str) {
        if self.config.email_verification == EmailVerification::Off {
            return;
        }
        let to = user.email.clone();
        if let Err(error) = self
            .mail_token(user, EmailTokenPurpose::VerifyEmail, &to, lang, ip)
            .await
        {
            tracing::warn!(event = "mail_flow_failed", action = "sign_up_verification", user_id = user.id, error = %error, "the verification link could not be issued");
        }
    }

    /// `POST /account/email`: checks the password, then mails a link to the new address; the
    /// account keeps its address until the link's page is submitted. The same answer when
    /// another account has the address (nothing is sent then).
    pub async fn request_email_change(
        &self,
        caller: &Authenticated,
        new_email: &str,
        password: Zeroizing<String>,
        lang: MailLang,
        ip: &str,
    ) -> Result<(), Error> {
        let email = Self::parse_email("new_email", new_email)?;
        let user = self
            .reauthenticate(caller, password, "current_password", "email_change", ip)
            .await?;
        if Email::parse(&user.email).is_ok_and(|current| current.as_str() == email.as_str()) {
            return Err(Error::Validation(vec![FieldError::new(
                "new_email",
                "same_email",
                "this is the account's address already",
            )]));
        }
        self.enforce_limit("mail_ip", ip, &self.config.mail.rate_limit_ip, ip)
            .await?;
        if self.users.find_by_login(email.as_str()).await?.is_some() {
            tracing::warn!(event = "email_change_requested", user_id = user.id, ip_address = %ip, taken = true, "email change to an address another account has; nothing sent");
            return Ok(());
        }
        tracing::info!(event = "email_change_requested", user_id = user.id, ip_address = %ip, taken = false, "email change requested; link mailed to the new address");
        self.mail_token(&user, EmailTokenPurpose::ChangeEmail, email.as_str(), lang, ip)
            .await
    }

    /// Whether `user` may log in under EMAIL_VERIFICATION (checked after the password).
    pub fn email_verified_enough(&self, user: &User) -> bool {
        self.config.email_verification != EmailVerification::Required
            || user.email_verified_at.is_some()
            || user.service_account
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_base64url_and_only_their_hash_is_kept() {
        let (token, hash) = new_token();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(hash, Sha256::digest(token.as_bytes()).to_vec());
        assert_ne!(new_token().0, token);
        assert_eq!(presented_hash(&format!(" {token} ")).unwrap(), hash);
        for bad in ["", "a b", "a.b", "%41", &"a".repeat(129), "a\u{0}b"] {
            assert!(matches!(presented_hash(bad), Err(Error::InvalidMailToken)), "{bad:?}");
        }
    }
}
