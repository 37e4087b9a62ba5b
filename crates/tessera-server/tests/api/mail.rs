//! Mail flows (C1, C2) against a real SMTP server: aiosmtpd (PyPI, in `.venv-ci`) runs as a
//! separate process on a loopback port and stores what it receives in a maildir; Python's own
//! `email` package decodes the messages. Password reset, email verification (required and
//! optional), email change, enumeration-safe answers, single use, expiry, a newer link voiding
//! the older, SMTP down then back (retry with backoff), mails as files without SMTP_URL, and the
//! send limits.
//!
//! Needs `TESSERA_PYTHON` with aiosmtpd; skipped with a note without it, a failure under
//! `TESSERA_REQUIRE_SERVICES=1` (CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::config::mail::{EmailVerification, PublicUrl};
use tessera_server::config::{Config, ServiceUrl};

use crate::helpers::{PASSWORD, TestApp, assert_error, assert_field_error, spawn_app_on_manual_clock, spawn_app_with};

const PUBLIC: &str = "https://tessera.test";
const NEW_PASSWORD: &str = "violet harbour lantern 42";

/// An aiosmtpd process writing every message it accepts to a maildir. Killed on drop.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
    python: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts a sink on a free port, or `None` (after a note) without TESSERA_PYTHON.
    async fn start() -> Option<SmtpSink> {
        let python = crate::keys::python()?;
        Some(SmtpSink::start_on(&python, free_port()).await)
    }

    async fn start_on(python: &Path, port: u16) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temporary directory");
        let maildir = dir.path().join("maildir");
        let child = Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts (pip install aiosmtpd into TESSERA_PYTHON's venv)");
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpSink {
            child,
            port,
            maildir,
            python: python.to_owned(),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, decoded.
    fn mails(&self) -> Vec<Mail> {
        read_mails(&self.python, &self.maildir.join("new"))
    }

    /// Waits until `n` messages to `to` arrived; returns them, oldest first.
    async fn wait_for(&self, to: &str, n: usize) -> Vec<Mail> {
        wait_for_mails(|| self.mails(), to, n).await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received mail, as Python's `email` package decodes it.
#[derive(Debug, Clone)]
struct Mail {
    to: String,
    from: String,
    subject: String,
    text: String,
    html: String,
    name: String,
}

impl Mail {
    /// The token of the link under `path` in the plain-text body.
    fn token(&self, path: &str) -> String {
        let prefix = format!("{PUBLIC}{path}?token=");
        let start = self
            .text
            .find(&prefix)
            .unwrap_or_else(|| panic!("no {prefix} link in {}", self.text));
        self.text[start + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

/// Decodes every message file in `dir` (in arrival order: maildir and Tessera's files both start
/// with the time) with Python's `email` package, an implementation independent of lettre.
fn read_mails(python: &Path, dir: &Path) -> Vec<Mail> {
    const SCRIPT: &str = r#"
import email, email.policy, json, os, re, sys
out = []
d = sys.argv[1]
def order(n):
    # Maildir names are "SECONDS.M<micro>P<pid>Q<n>.host" with unpadded microseconds: sort by
    # their numbers, not as text. Tessera's own files start with zero-padded nanoseconds.
    m = re.match(r'(\d+)\.M(\d+)P\d+Q(\d+)', n)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (int(n.split('-')[0]), 0, 0)
names = sorted((n for n in os.listdir(d) if not n.startswith('.')), key=order) if os.path.isdir(d) else []
for name in names:
    with open(os.path.join(d, name), 'rb') as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    text = m.get_body(('plain',))
    html = m.get_body(('html',))
    out.append({'name': name, 'to': str(m['To']), 'from': str(m['From']), 'subject': str(m['Subject']),
                'text': text.get_content() if text else '', 'html': html.get_content() if html else ''})
print(json.dumps(out))
"#;
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(dir)
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mails: Vec<Value> = serde_json::from_slice(&output.stdout).expect("json");
    mails
        .iter()
        .map(|m| Mail {
            to: m["to"].as_str().unwrap_or_default().to_owned(),
            from: m["from"].as_str().unwrap_or_default().to_owned(),
            subject: m["subject"].as_str().unwrap_or_default().to_owned(),
            text: m["text"].as_str().unwrap_or_default().to_owned(),
            html: m["html"].as_str().unwrap_or_default().to_owned(),
            name: m["name"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

async fn wait_for_mails(read: impl Fn() -> Vec<Mail>, to: &str, n: usize) -> Vec<Mail> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mails: Vec<Mail> = read().into_iter().filter(|m| m.to.contains(to)).collect();
        if mails.len() >= n {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "{n} mail(s) to {to} did not arrive; have {mails:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The test configuration with mail through `smtp` and links under [`PUBLIC`].
fn with_smtp(config: &mut Config, smtp: &str) {
    config.mail.smtp_url = Some(ServiceUrl::new(smtp));
    config.public_url = PublicUrl::parse(PUBLIC).expect("url");
    config.mail.rate_limit_address = "100/minute".parse().expect("limit");
    config.mail.rate_limit_ip = "100/minute".parse().expect("limit");
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn forgot(app: &TestApp, email: &str) -> (StatusCode, Value) {
    let response = app
        .post("/password/forgot")
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post("/password/reset")
        .json(&json!({ "token": token, "new_password": password }))
        .send()
        .await
        .unwrap()
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/email/verify")
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

async fn login_status(app: &TestApp, login: &str, password: &str) -> StatusCode {
    app.login(login, password).await.status()
}

#[tokio::test]
async fn a_forgotten_password_is_reset_through_the_mailed_link_once() {
    let Some(smtp) = SmtpSink::start().await else { return };
    let app = spawn_app_with(|c| with_smtp(c, &smtp.url())).await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let _second = app.login_user(&user).await;

    // A forged Host (or X-Forwarded-Host) does not move the link off PUBLIC_URL.
    let response = app
        .post("/password/forgot")
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .json(&json!({ "email": user.email }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // The sign-up's verification mail (EMAIL_VERIFICATION=optional), then the reset mail.
    let mail = smtp
        .wait_for(&user.email, 2)
        .await
        .into_iter()
        .find(|m| m.text.contains("/password/reset"))
        .expect("a reset mail");
    assert!(mail.subject.contains("Reset your Tessera password"), "{mail:?}");
    assert!(mail.from.starts_with("no-reply@"), "SMTP_FROM derived: {mail:?}");
    let token = mail.token("/password/reset");
    assert_eq!(token.len(), 43, "256 bits, base64url");
    assert!(mail.html.contains(&format!("{PUBLIC}/password/reset?token={token}")));
    assert!(!mail.text.contains("evil.example") && !mail.html.contains("evil.example"));

    // Opening the link (what a mail scanner does) is not refused as a credential in the URL, and
    // consumes nothing.
    let opened = app.get(&format!("/password/reset?token={token}")).send().await.unwrap();
    assert_ne!(
        opened.status(),
        StatusCode::BAD_REQUEST,
        "the link's GET is not a credentials-in-URL error"
    );
    assert_eq!(opened.headers().get("referrer-policy").unwrap(), "no-referrer");
    // Another credential in that query still is.
    let smuggled = app
        .get(&format!("/password/reset?token={token}&password=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(smuggled.status(), StatusCode::BAD_REQUEST);

    // The policy applies; a refused password consumes nothing either.
    assert_field_error(reset(&app, &token, "short").await, "new_password", "password_too_short").await;
    let response = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sessions_revoked"], 2, "{body}");

    // Every session is over, the old password is gone, the new one works; the link is spent.
    let after = app.profile(&first.access).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&app, &user.email, &user.password).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login_status(&app, &user.email, NEW_PASSWORD).await, StatusCode::OK);
    assert_error(
        reset(&app, &token, "another fine passphrase 7").await,
        StatusCode::BAD_REQUEST,
        "invalid_link",
    )
    .await;
    assert_eq!(
        metric(
            &app,
            r#"tessera_email_tokens_total{purpose="reset_password",result="redeemed"}"#
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&app, r#"tessera_mail_sent_total{kind="reset_password"}"#).await,
        1.0
    );
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_unknown_addresses_and_mails_nobody() {
    let Some(smtp) = SmtpSink::start().await else { return };
    let app = spawn_app_with(|c| {
        with_smtp(c, &smtp.url());
        c.email_verification = EmailVerification::Off;
    })
    .await;
    let user = app.register_user().await;
    let known = forgot(&app, &user.email).await;
    let unknown = forgot(&app, "nobody-here@example.com").await;
    assert_eq!(known, unknown, "same status and body");
    smtp.wait_for(&user.email, 1).await;
    // Give a (wrong) mail to the unknown address time to arrive: none does.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "only the known address got a mail: {mails:?}");
    // Malformed input is a validation error, not a silent 202.
    let response = app
        .post("/password/forgot")
        .json(&json!({ "email": "not-an-address" }))
        .send()
        .await
        .unwrap();
    assert_field_error(response, "email", "invalid_email").await;
    let response = app.post("/password/forgot").json(&json!({})).send().await.unwrap();
    assert_field_error(response, "email", "missing").await;
}

#[tokio::test]
async fn a_newer_link_voids_the_older_and_links_expire() {
    let Some(smtp) = SmtpSink::start().await else { return };
    let app = spawn_app_on_manual_clock(|c| {
        with_smtp(c, &smtp.url());
        c.email_verification = EmailVerification::Off;
    })
    .await;
    let user = app.register_user().await;
    forgot(&app, &user.email).await;
    let older = smtp.wait_for(&user.email, 1).await[0].token("/password/reset");
    forgot(&app, &user.email).await;
    let newer = smtp.wait_for(&user.email, 2).await[1].token("/password/reset");
    assert_ne!(older, newer);
    assert_error(
        reset(&app, &older, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_link",
    )
    .await;

    // 30 minutes, not a second more.
    app.advance(Duration::from_secs(30 * 60));
    assert_error(
        reset(&app, &newer, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_link",
    )
    .await;
    forgot(&app, &user.email).await;
    let fresh = smtp.wait_for(&user.email, 3).await[2].token("/password/reset");
    app.advance(Duration::from_secs(30 * 60 - 1));
    assert_eq!(reset(&app, &fresh, NEW_PASSWORD).await.status(), StatusCode::OK);

    // Garbage is refused the same way, before any lookup.
    for bad in ["", "not a token", &"A".repeat(200)] {
        assert_error(
            reset(&app, bad, NEW_PASSWORD).await,
            StatusCode::BAD_REQUEST,
            "invalid_link",
        )
        .await;
    }
}

#[tokio::test]
async fn required_verification_refuses_login_until_the_link_is_followed() {
    let Some(smtp) = SmtpSink::start().await else { return };
    let app = spawn_app_with(|c| {
        with_smtp(c, &smtp.url());
        c.email_verification = EmailVerification::Required;
    })
    .await;
    let user = app.register_user().await;
    let first = smtp.wait_for(&user.email, 1).await[0].clone();
    assert!(first.subject.contains("Verify your email address"), "{first:?}");
    let first = first.token("/email/verify");

    // The right password meets `email_not_verified`; a wrong one learns nothing more.
    assert_error(
        app.login(&user.email, &user.password).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    assert_eq!(
        login_status(&app, &user.email, "wrong password entirely").await,
        StatusCode::UNAUTHORIZED
    );

    // Signed out, a new link can be asked for; same answer for an unknown address.
    let resend = |email: &str| app.post("/email/verify/resend").json(&json!({ "email": email })).send();
    let known = resend(&user.email).await.unwrap();
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    let known: Value = known.json().await.unwrap();
    let unknown: Value = resend("nobody-here@example.com").await.unwrap().json().await.unwrap();
    assert_eq!(known, unknown);
    let second = smtp.wait_for(&user.email, 2).await[1].token("/email/verify");
    assert_error(verify(&app, &first).await, StatusCode::BAD_REQUEST, "invalid_link").await;

    let response = verify(&app, &second).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["email"].as_str(), body["changed"].as_bool()),
        (Some(user.email.as_str()), Some(false))
    );
    assert_error(verify(&app, &second).await, StatusCode::BAD_REQUEST, "invalid_link").await;

    let login = app.login_user(&user).await;
    let full: Value = app
        .get_bearer("/profile/full", &login.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(full["email_verified"], true);
    // Signed in and verified: nothing to resend.
    let response = app
        .post("/email/verify/resend")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A malformed address is refused even signed in (where the body's address is not used).
    let response = app
        .post("/email/verify/resend")
        .bearer_auth(&login.access)
        .json(&json!({ "email": format!("a@{}.example", "b".repeat(300)) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_email_change_takes_effect_only_when_the_new_address_confirms_and_the_old_is_told() {
    let Some(smtp) = SmtpSink::start().await else { return };
    let app = spawn_app_with(|c| {
        with_smtp(c, &smtp.url());
        c.email_verification = EmailVerification::Off;
    })
    .await;
    let user = app.register_user().await;
    let other = app.register_user().await;
    let login = app.login_user(&user).await;
    let new_email = format!("moved-{}@example.org", crate::helpers::unique());
    let change = |email: &str, password: &str| {
        app.post("/account/email")
            .bearer_auth(&login.access)
            .json(&json!({ "new_email": email, "current_password": password }))
            .send()
    };

    assert_field_error(
        change(&new_email, "wrong password entirely").await.unwrap(),
        "current_password",
        "incorrect_password",
    )
    .await;
    assert_field_error(
        change("nope", &user.password).await.unwrap(),
        "new_email",
        "invalid_email",
    )
    .await;
    assert_field_error(
        change(&user.email, &user.password).await.unwrap(),
        "new_email",
        "same_email",
    )
    .await;
    // Another account's address: the same answer, and no mail to it.
    assert_eq!(
        change(&other.email, &user.password).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        change(&new_email, &user.password).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let link = smtp.wait_for(&new_email, 1).await[0].clone();
    assert!(link.subject.contains("Confirm your new email address"), "{link:?}");
    assert!(
        smtp.mails().iter().all(|m| !m.to.contains(&other.email)),
        "nothing to the taken address"
    );

    // Not yet: the account keeps its address.
    assert_eq!(
        login_status(&app, &new_email, &user.password).await,
        StatusCode::UNAUTHORIZED
    );
    let response = verify(&app, &link.token("/email/verify")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["email"].as_str(), body["changed"].as_bool()),
        (Some(new_email.as_str()), Some(true))
    );

    let notice = smtp.wait_for(&user.email, 1).await[0].clone();
    assert!(notice.subject.contains("email address was changed"), "{notice:?}");
    assert!(notice.text.contains(&new_email));
    assert!(!notice.text.contains("token="), "the notice carries no link");
    assert_eq!(
        login_status(&app, &user.email, &user.password).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login_status(&app, &new_email, &user.password).await, StatusCode::OK);
    let full: Value = app
        .get_bearer("/profile/full", &login.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (full["email"].as_str(), full["email_verified"].as_bool()),
        (Some(new_email.as_str()), Some(true))
    );
}

#[tokio::test]
async fn smtp_down_still_answers_then_the_mail_goes_out_when_it_is_back() {
    let Some(python) = crate::keys::python() else { return };
    let port = free_port();
    let app = spawn_app_with(|c| {
        with_smtp(c, &format!("smtp://127.0.0.1:{port}"));
        c.email_verification = EmailVerification::Off;
    })
    .await;
    let user = app.register_user().await;
    let (status, _) = forgot(&app, &user.email).await;
    assert_eq!(status, StatusCode::ACCEPTED, "no 500 while SMTP is down");
    let failures = r#"tessera_mail_send_failures_total{kind="reset_password"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, failures).await < 1.0 {
        assert!(Instant::now() < deadline, "the failed attempt is counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&app, "tessera_mail_queue").await, 1.0, "waiting for its retry");

    let smtp = SmtpSink::start_on(&python, port).await;
    let mail = smtp.wait_for(&user.email, 1).await[0].clone();
    assert_eq!(
        reset(&app, &mail.token("/password/reset"), NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        metric(&app, r#"tessera_mail_sent_total{kind="reset_password"}"#).await,
        1.0
    );
    assert_eq!(metric(&app, "tessera_mail_queue").await, 0.0);
}

#[tokio::test]
async fn without_smtp_mails_are_files_in_the_clients_language() {
    let Some(python) = crate::keys::python() else { return };
    let app = spawn_app_with(|c| {
        c.public_url = PublicUrl::parse(PUBLIC).expect("url");
    })
    .await;
    let response = app
        .post("/register")
        .header("accept-language", "zh-CN,zh;q=0.9")
        .json(&json!({ "email": "lang@example.com", "username": "lang_user", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let dir = app.dir.path().join("mail");
    let mail = wait_for_mails(|| read_mails(&python, &dir), "lang@example.com", 1).await[0].clone();
    assert!(
        mail.name.contains("-verify_email-") && mail.name.ends_with(".eml"),
        "{}",
        mail.name
    );
    assert!(mail.subject.contains("验证"), "Chinese subject: {}", mail.subject);
    assert!(mail.text.contains("24 小时"), "{}", mail.text);
    let token = mail.token("/email/verify");
    assert_eq!(verify(&app, &token).await.status(), StatusCode::OK);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let file = dir.join(&mail.name);
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mails carry live tokens: owner only");
    }
}

#[tokio::test]
async fn mail_requests_are_limited_per_ip_and_per_address() {
    let Some(smtp) = SmtpSink::start().await else { return };
    let app = spawn_app_with(|c| {
        with_smtp(c, &smtp.url());
        c.email_verification = EmailVerification::Off;
        c.mail.rate_limit_address = "1/hour".parse().expect("limit");
        c.mail.rate_limit_ip = "3/hour".parse().expect("limit");
    })
    .await;
    let user = app.register_user().await;
    assert_eq!(forgot(&app, &user.email).await.0, StatusCode::ACCEPTED);
    // Over the address's limit: the same answer, no second mail.
    assert_eq!(forgot(&app, &user.email).await.0, StatusCode::ACCEPTED);
    smtp.wait_for(&user.email, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, r#"tessera_mail_dropped_total{reason="limited"}"#).await < 1.0 {
        assert!(Instant::now() < deadline, "the limited mail is counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(smtp.mails().len(), 1);
    // Over the IP's limit: 429, whatever the address.
    assert_eq!(forgot(&app, "someone-else@example.com").await.0, StatusCode::ACCEPTED);
    let response = app
        .post("/password/forgot")
        .json(&json!({ "email": "third@example.com" }))
        .send()
        .await
        .unwrap();
    let (headers, _) = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(headers.contains_key("retry-after"));
}
