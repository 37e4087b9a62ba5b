//! Outgoing mail (C2): a bounded queue, one background worker, retries with backoff.
//!
//! Flows never wait for a mail: they hand a [`Mail`] to [`Mailer::send`], which only queues it,
//! so a request that mails answers in the same time whether or not a mail goes out (the
//! enumeration-safe `/password/forgot` depends on that) and an SMTP server that is down never
//! turns into a 500. The worker sends each mail with lettre's SMTP client (SMTP_URL) or, without
//! SMTP_URL, writes it as an RFC 5322 file under `DATA_DIR/mail/`. A failed attempt is logged
//! (`mail_failed`) and counted (`tessera_mail_send_failures_total`), and retried after 1, 2, 4,
//! ... 60 seconds, [`MAX_ATTEMPTS`] times in all; then the mail is dropped
//! (`tessera_mail_dropped_total{reason="gave_up"}`). The queue lives in memory: a restart
//! loses what it held (a person asks again; the token in a lost mail is useless to anyone).

pub mod templates;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use prometheus::{IntCounterVec, IntGauge};
use tokio::sync::{Semaphore, mpsc};

pub use self::templates::{MailKind, MailLang};
use crate::config::mail::MailConfig;
use crate::metrics::Metrics;

/// Mails waiting for the worker; beyond this, new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 1_000;
/// Mails being sent or waiting out a retry delay at once.
const CONCURRENT_SENDS: usize = 4;
/// Attempts per mail before it is dropped.
pub const MAX_ATTEMPTS: u32 = 8;
/// The delay before the first retry; it doubles after each failure, up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// One mail to send.
#[derive(Debug, Clone)]
pub struct Mail {
    /// What it is (the metrics' `kind`).
    pub kind: MailKind,
    /// The recipient's address.
    pub to: String,
    /// The subject, the plain-text body and the HTML body.
    pub content: templates::Content,
}

/// Where mails go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

/// The metrics the worker keeps.
#[derive(Clone)]
struct MailMetrics {
    sent: IntCounterVec,
    failures: IntCounterVec,
    dropped: IntCounterVec,
    queue: IntGauge,
}

/// The handle flows send mail through.
pub struct Mailer {
    queue: mpsc::Sender<(Mail, Message)>,
    from: Mailbox,
    metrics: MailMetrics,
}

impl Mailer {
    /// Starts the worker. Without SMTP_URL, mails are written under `config.dir` (said once in
    /// the log). Needs a Tokio runtime.
    pub fn start(config: &MailConfig, metrics: &Metrics) -> anyhow::Result<Mailer> {
        let transport = match &config.smtp_url {
            Some(url) => {
                // lettre is built without a rustls provider of its own (no OpenSSL, one
                // crypto library): install ring once; a second call finds it installed.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
                    .timeout(Some(config.smtp_timeout))
                    .build();
                tracing::info!(smtp = %url, "mail is sent through SMTP_URL");
                Transport::Smtp(transport)
            }
            None => {
                tracing::info!(
                    dir = %config.dir.display(),
                    "SMTP_URL is not set: mails are written as files to {}",
                    config.dir.display()
                );
                Transport::Files(config.dir.clone())
            }
        };
        let metrics = MailMetrics {
            sent: metrics.mail_sent.clone(),
            failures: metrics.mail_failures.clone(),
            dropped: metrics.mail_dropped.clone(),
            queue: metrics.mail_queue.clone(),
        };
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(receiver, Arc::new(transport), metrics.clone()));
        Ok(Mailer {
            queue,
            from: config.from.clone(),
            metrics,
        })
    }

    /// Queues a mail; never waits. Returns false when it could not be queued (a bad address,
    /// a full queue): logged and counted here, nothing for the caller to do.
    pub fn send(&self, mail: Mail) -> bool {
        let message = match self.message(&mail) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(event = "mail_failed", kind = mail.kind.as_str(), %error, "mail could not be built");
                self.metrics.dropped.with_label_values(&["gave_up"]).inc();
                return false;
            }
        };
        match self.queue.try_send((mail, message)) {
            Ok(()) => {
                self.metrics.queue.inc();
                true
            }
            Err(error) => {
                let kind = error.into_inner().0.kind;
                tracing::error!(
                    event = "mail_dropped",
                    kind = kind.as_str(),
                    reason = "queue_full",
                    "mail queue full; mail dropped"
                );
                self.metrics.dropped.with_label_values(&["queue_full"]).inc();
                false
            }
        }
    }

    /// The RFC 5322 message: plain text and HTML alternatives.
    fn message(&self, mail: &Mail) -> anyhow::Result<Message> {
        let to: Mailbox = mail.to.parse()?;
        let content = &mail.content;
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(content.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                content.text.clone(),
                content.html.clone(),
            ))?)
    }
}

/// The worker: takes mails off the queue and sends each in its own task, a few at a time.
async fn run(mut receiver: mpsc::Receiver<(Mail, Message)>, transport: Arc<Transport>, metrics: MailMetrics) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_SENDS));
    while let Some((mail, message)) = receiver.recv().await {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let transport = Arc::clone(&transport);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            deliver(&transport, &mail, &message, &metrics).await;
            metrics.queue.dec();
            drop(permit);
        });
    }
}

/// Sends one mail, retrying with backoff.
async fn deliver(transport: &Transport, mail: &Mail, message: &Message, metrics: &MailMetrics) {
    let kind = mail.kind.as_str();
    let mut delay = FIRST_RETRY_DELAY;
    for attempt in 1..=MAX_ATTEMPTS {
        match transport.send(mail, message).await {
            Ok(()) => {
                metrics.sent.with_label_values(&[kind]).inc();
                tracing::info!(event = "mail_sent", kind, attempt, "mail sent");
                return;
            }
            Err(error) => {
                metrics.failures.with_label_values(&[kind]).inc();
                let retry = attempt < MAX_ATTEMPTS;
                tracing::warn!(
                    event = "mail_failed",
                    kind,
                    attempt,
                    retry_in_secs = retry.then_some(delay.as_secs()),
                    error = format!("{error:#}"),
                    "mail could not be sent"
                );
                if retry {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
    metrics.dropped.with_label_values(&["gave_up"]).inc();
    tracing::error!(
        event = "mail_dropped",
        kind,
        reason = "gave_up",
        attempts = MAX_ATTEMPTS,
        "every attempt to send a mail failed; dropped"
    );
}

impl Transport {
    async fn send(&self, mail: &Mail, message: &Message) -> anyhow::Result<()> {
        match self {
            Transport::Smtp(smtp) => {
                smtp.send(message.clone()).await?;
                Ok(())
            }
            Transport::Files(dir) => {
                let dir = dir.clone();
                let name = format!(
                    "{}-{}-{:016x}.eml",
                    time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
                    mail.kind.as_str(),
                    rand::random::<u64>()
                );
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_file(&dir, &name, &bytes)).await??;
                Ok(())
            }
        }
    }
}

/// Writes a mail file whole or not at all (a temporary name, then a rename), readable by the
/// owner only: mails carry live tokens.
fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)?;
    let partial = dir.join(format!(".{name}.partial"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, dir.join(name))
}
