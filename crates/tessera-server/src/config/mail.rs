//! Mail and the links in it (C2): PUBLIC_URL, SMTP_URL, SMTP_FROM, EMAIL_VERIFICATION and the
//! send limits.

use std::path::Path;
use std::time::Duration;

use lettre::message::Mailbox;
use tessera_core::limits::RateLimitSpec;

use super::{ConfigError, Reader, ServiceUrl, invalid, vars};

/// Whether an account must prove its address (EMAIL_VERIFICATION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailVerification {
    /// Sign-up mails a link; login is refused (`email_not_verified`) until it is followed.
    Required,
    /// Sign-up mails a link; login works either way (default).
    Optional,
    /// No verification mail.
    Off,
}

impl EmailVerification {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailVerification::Required => "required",
            EmailVerification::Optional => "optional",
            EmailVerification::Off => "off",
        }
    }
}

/// The base every link in a mail starts with: scheme, host, optional port and path, no
/// trailing slash. Never taken from a request's `Host` header (a forged one would send the
/// owner a reset link to the attacker's host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Checks an `http(s)://host[:port][/path]` URL without query, fragment or credentials.
    pub fn parse(text: &str) -> Result<PublicUrl, &'static str> {
        let text = text.trim().trim_end_matches('/');
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or("must start with https:// (or http:// for development)")?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err("has no host");
        }
        if text.contains(['?', '#', '@', ' ', '\\']) || text.chars().any(char::is_control) {
            return Err("must have no query, fragment, credentials or spaces");
        }
        Ok(PublicUrl(text.to_owned()))
    }

    /// `path` (starting with `/`) under this base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The base itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host part (for the default sender address).
    fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or("", |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.starts_with('[') {
            return authority.split(']').next().map_or("", |h| h.trim_start_matches('['));
        }
        authority.split(':').next().unwrap_or_default()
    }
}

impl std::fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How mail leaves.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// SMTP_URL: `smtp://` (STARTTLS when offered; `?tls=required` to insist), `smtps://`
    /// (TLS from the start), with optional `user:password@`; `None` = write files to `dir`.
    pub smtp_url: Option<ServiceUrl>,
    /// SMTP_FROM, checked as an RFC 5322 mailbox.
    pub from: Mailbox,
    /// SMTP_TIMEOUT_SECS: one SMTP exchange gives up after this long.
    pub smtp_timeout: Duration,
    /// Where mails go without SMTP_URL: `DATA_DIR/mail`.
    pub dir: std::path::PathBuf,
    /// RATE_LIMIT_MAIL_ADDRESS: mails to one address.
    pub rate_limit_address: RateLimitSpec,
    /// RATE_LIMIT_MAIL_IP: mail-sending requests from one IP.
    pub rate_limit_ip: RateLimitSpec,
}

/// PUBLIC_URL, else `http://BIND_ADDR`.
pub(super) fn public_url(r: &Reader<'_>, bind: std::net::SocketAddr) -> Result<PublicUrl, ConfigError> {
    match r.get(&vars::PUBLIC_URL) {
        Some(url) => PublicUrl::parse(url).map_err(|e| invalid(vars::PUBLIC_URL.name, e)),
        None => Ok(PublicUrl(format!("http://{bind}"))),
    }
}

/// EMAIL_VERIFICATION.
pub(super) fn email_verification(r: &Reader<'_>) -> Result<EmailVerification, ConfigError> {
    Ok(match r.choice(&vars::EMAIL_VERIFICATION)? {
        "required" => EmailVerification::Required,
        "off" => EmailVerification::Off,
        _ => EmailVerification::Optional,
    })
}

/// SMTP_URL, SMTP_FROM, SMTP_TIMEOUT_SECS and the send limits.
pub(super) fn mail(r: &Reader<'_>, data_dir: &Path, public_url: &PublicUrl) -> Result<MailConfig, ConfigError> {
    let smtp_url = match r.get(&vars::SMTP_URL) {
        None => None,
        Some(url) => {
            let url = url.trim();
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(invalid(
                    vars::SMTP_URL.name,
                    "must start with smtp:// or smtps:// (e.g. smtps://user:password@smtp.example.com:465)",
                ));
            }
            // lettre reads the URL when the transport is built; refuse a bad one at start.
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
                .map_err(|e| invalid(vars::SMTP_URL.name, format!("is not a usable SMTP URL ({e})")))?;
            Some(ServiceUrl(url.to_owned()))
        }
    };
    let from = match r.get(&vars::SMTP_FROM) {
        Some(text) => text.parse::<Mailbox>().map_err(|_| {
            invalid(
                vars::SMTP_FROM.name,
                "must be an address like `Tessera <no-reply@example.com>`",
            )
        })?,
        None => format!("no-reply@{}", public_url.host())
            .parse::<Mailbox>()
            .or_else(|_| "no-reply@localhost".parse::<Mailbox>())
            .map_err(|_| invalid(vars::SMTP_FROM.name, "must be set (no default address could be made)"))?,
    };
    Ok(MailConfig {
        smtp_url,
        from,
        smtp_timeout: Duration::from_secs(r.int(&vars::SMTP_TIMEOUT_SECS)?),
        dir: data_dir.join("mail"),
        rate_limit_address: r.limit(&vars::RATE_LIMIT_MAIL_ADDRESS)?,
        rate_limit_ip: r.limit(&vars::RATE_LIMIT_MAIL_IP)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_is_a_plain_http_base() {
        let url = PublicUrl::parse("https://auth.example.com/").unwrap();
        assert_eq!(url.join("/password/reset"), "https://auth.example.com/password/reset");
        assert_eq!(url.host(), "auth.example.com");
        let url = PublicUrl::parse("http://127.0.0.1:8000/tessera").unwrap();
        assert_eq!(url.join("/x"), "http://127.0.0.1:8000/tessera/x");
        assert_eq!(url.host(), "127.0.0.1");
        for bad in [
            "auth.example.com",
            "ftp://auth.example.com",
            "https://",
            "https://auth.example.com/?x=1",
            "https://auth.example.com/#x",
            "https://user:pw@auth.example.com",
            "javascript:alert(1)",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
