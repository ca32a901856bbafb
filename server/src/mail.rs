//! Delivery of the outbox: every instance runs a mailer that, every `MAIL_POLL_MS`, claims the
//! e-mails of `outbound_emails` that are due (`app.mail_claim`: `FOR UPDATE SKIP LOCKED`, and a
//! lease that makes a claimed message not due elsewhere), sends them over SMTP (`SMTP_URL`,
//! from `MAIL_FROM`) and marks them `sent`. A failed attempt is retried after an exponential
//! backoff (`MAIL_RETRY_BASE_MS`, doubling, at most `MAIL_RETRY_MAX_SECS`); after
//! `MAIL_MAX_ATTEMPTS` attempts, or at once when the SMTP server refuses the message for good
//! (a 5xx reply), it is `failed` with the reason.
//!
//! Several instances never send one message twice while each reports within its lease: a
//! message is claimed by one of them only, and is due again only after the lease. An instance
//! that dies mid-send leaves its messages to be retried once their lease lapses (at least once,
//! as any mailer that cannot share a transaction with the SMTP server).
//!
//! Without `SMTP_URL` nothing is sent: the messages stay pending in the outbox (in private
//! mode their links are also written to the log when they are queued).

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use anyhow::Context as _;
use futures_util::future::join_all;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use tokio::task::AbortHandle;

use crate::{
    config::Config,
    db::DatabaseConnection,
    db::functions::{self as sql, ClaimedMail},
};

/// Most messages one instance claims (and sends concurrently) at a time.
const BATCH: i32 = 10;
/// How many of its SMTP timeouts one message may take in all (connecting, greeting, STARTTLS,
/// authentication, envelope, data).
const TIMEOUTS_PER_MESSAGE: u32 = 4;
/// What the lease of a claimed message adds to the longest its sending may take.
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// The mailer of this instance: sending when `SMTP_URL` is set, idle otherwise. Cheap to clone.
#[derive(Clone, Default)]
pub struct Mailer {
    inner: Option<Arc<Inner>>,
    background: Arc<Mutex<Vec<AbortHandle>>>,
}

struct Inner {
    db: DatabaseConnection,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    poll: Duration,
    backoff: Backoff,
    /// The longest one message may take to send.
    deadline: Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("sending", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

/// When a failed message is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Backoff {
    /// The wait after attempt number `attempts` (1 for the first) failed: `base` doubled for each
    /// attempt after the first, at most `max`; `None` when no attempt is left or the failure is
    /// permanent.
    pub fn retry_in(&self, attempts: i32, permanent: bool) -> Option<Duration> {
        let attempts = u32::try_from(attempts.max(1)).unwrap_or(1);
        if permanent || attempts >= self.max_attempts {
            return None;
        }
        let doublings = (attempts - 1).min(31);
        Some(
            self.base
                .saturating_mul(1u32 << doublings)
                .min(self.max.max(self.base)),
        )
    }
}

/// Why an attempt failed, and whether trying again could help.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    reason: String,
    permanent: bool,
}

impl Mailer {
    /// Starts sending the outbox when `SMTP_URL` is set (then `MAIL_FROM` is required); an idle
    /// mailer otherwise. Sends once at once, then every `MAIL_POLL_MS`.
    pub fn start(config: &Config, db: DatabaseConnection) -> anyhow::Result<Self> {
        let Some(url) = config.smtp_url.as_deref() else {
            if !config.private_mode {
                tracing::warn!(
                    "SMTP_URL is not set: e-mails (invitations, password resets, verifications) \
                     stay unsent in outbound_emails"
                );
            }
            return Ok(Self::default());
        };
        let (transport, from) = transport(config, url)?;
        let timeout = Duration::from_secs(config.mail_timeout_secs);
        let inner = Arc::new(Inner {
            db,
            transport,
            from,
            poll: Duration::from_millis(config.mail_poll_ms),
            backoff: Backoff {
                base: Duration::from_millis(config.mail_retry_base_ms),
                max: Duration::from_secs(config.mail_retry_max_secs),
                max_attempts: config.mail_max_attempts,
            },
            deadline: timeout * TIMEOUTS_PER_MESSAGE,
        });
        let mailer = Self {
            inner: Some(inner.clone()),
            background: Arc::default(),
        };
        let task = tokio::spawn(run(Arc::downgrade(&inner)));
        if let Ok(mut background) = mailer.background.lock() {
            background.push(task.abort_handle());
        }
        Ok(mailer)
    }

    /// Whether this instance sends the outbox (`SMTP_URL` is set).
    pub fn is_sending(&self) -> bool {
        self.inner.is_some()
    }

    /// Claims and sends the messages due now, one batch; how many it claimed.
    pub async fn deliver_due(&self) -> usize {
        match &self.inner {
            Some(inner) => inner.deliver_due().await,
            None => 0,
        }
    }

    /// Stops sending (messages being sent are retried once their lease lapses).
    pub fn abort(&self) {
        if let Ok(mut background) = self.background.lock() {
            for task in background.drain(..) {
                task.abort();
            }
        }
    }
}

/// The SMTP transport of `url` and the sender, as configured.
fn transport(
    config: &Config,
    url: &str,
) -> anyhow::Result<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)> {
    let from: Mailbox = config
        .mail_from
        .as_deref()
        .context("MAIL_FROM must be set when SMTP_URL is")?
        .parse()
        .context("MAIL_FROM is not an e-mail address (`Name <address>` or `address`)")?;
    // Neither the URL nor lettre's reading of it is in the error: it may hold a password.
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| {
        anyhow::anyhow!(
            "SMTP_URL: expected smtp://[user:password@]host[:port][?tls=opportunistic|required] \
             or smtps://[user:password@]host[:port]"
        )
    })?;
    let transport = builder
        .timeout(Some(Duration::from_secs(config.mail_timeout_secs)))
        .build();
    Ok((transport, from))
}

/// Delivers the outbox every poll until the mailer is dropped or aborted.
async fn run(inner: Weak<Inner>) {
    let Some(poll) = inner.upgrade().map(|inner| inner.poll) else {
        return;
    };
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        // A full batch: more may be due at once.
        while inner.deliver_due().await >= BATCH as usize {}
    }
}

impl Inner {
    async fn deliver_due(&self) -> usize {
        let lease = self.deadline + LEASE_MARGIN;
        let claimed = match sql::mail_claim(&self.db, lease, BATCH).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "could not claim the e-mails due");
                return 0;
            }
        };
        let count = claimed.len();
        join_all(claimed.into_iter().map(|mail| self.deliver(mail))).await;
        count
    }

    async fn deliver(&self, mail: ClaimedMail) {
        let sent = match self.message(&mail) {
            Ok(message) => {
                match tokio::time::timeout(self.deadline, self.transport.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(Failure {
                        reason: error.to_string(),
                        permanent: error.is_permanent(),
                    }),
                    Err(_) => Err(Failure {
                        reason: format!(
                            "the SMTP server did not take the message within {} s",
                            self.deadline.as_secs()
                        ),
                        permanent: false,
                    }),
                }
            }
            Err(failure) => Err(failure),
        };
        match sent {
            Ok(()) => match sql::mail_sent(&self.db, mail.id).await {
                Ok(_) => {
                    crate::metrics::mail_sent();
                    tracing::info!(email_id = %mail.id, attempts = mail.attempts, "e-mail sent");
                }
                Err(error) => tracing::error!(email_id = %mail.id, %error,
                    "an e-mail was sent but could not be marked sent: it is sent again after its lease"),
            },
            Err(failure) => self.failed(&mail, failure).await,
        }
    }

    async fn failed(&self, mail: &ClaimedMail, failure: Failure) {
        crate::metrics::mail_attempt_failed(if failure.permanent {
            "permanent"
        } else {
            "transient"
        });
        let retry_in = self.backoff.retry_in(mail.attempts, failure.permanent);
        match sql::mail_attempt_failed(&self.db, mail.id, &failure.reason, retry_in).await {
            Ok(Some(status)) if status == "failed" => {
                crate::metrics::mail_failed();
                tracing::warn!(email_id = %mail.id, attempts = mail.attempts, reason = %failure.reason,
                    "an e-mail could not be sent: failed");
            }
            Ok(_) => tracing::info!(email_id = %mail.id, attempts = mail.attempts,
                reason = %failure.reason, retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
                "an e-mail could not be sent: retried later"),
            Err(error) => tracing::warn!(email_id = %mail.id, %error,
                "could not record a failed e-mail attempt: it is retried after its lease"),
        }
    }

    /// The message to send; a failure (permanent) when it cannot be built.
    fn message(&self, mail: &ClaimedMail) -> Result<Message, Failure> {
        let permanent = |reason: String| Failure {
            reason,
            permanent: true,
        };
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|e| permanent(format!("the recipient is not a valid address: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            // Stable across retries: a receiver can tell a message it already has.
            .message_id(Some(format!("<{}@{}>", mail.id, self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| permanent(format!("the message could not be built: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(30),
        max: Duration::from_secs(600),
        max_attempts: 6,
    };

    #[test]
    fn retries_double_up_to_the_cap() {
        let waits: Vec<_> = (1..=5).map(|n| BACKOFF.retry_in(n, false)).collect();
        assert_eq!(
            waits,
            [30, 60, 120, 240, 480].map(|s| Some(Duration::from_secs(s)))
        );
        let capped = Backoff {
            max_attempts: 100,
            ..BACKOFF
        };
        assert_eq!(capped.retry_in(6, false), Some(Duration::from_secs(600)));
        assert_eq!(capped.retry_in(99, false), Some(Duration::from_secs(600)));
    }

    fn smtp_config(url: &str, from: Option<&str>) -> Config {
        let mut config = Config::defaults();
        config.smtp_url = Some(url.to_owned());
        config.mail_from = from.map(str::to_owned);
        config
    }

    // Building the transport starts its pool's clean-up task: on a runtime.
    #[tokio::test]
    async fn smtp_urls_of_every_kind_are_understood() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://user:p%40ss@mail.example.com:587?tls=opportunistic",
            "smtp://user:pass@mail.example.com:587?tls=required",
            "smtps://user:pass@mail.example.com",
        ] {
            let config = smtp_config(url, Some("Acme <no-reply@acme.example>"));
            assert!(transport(&config, url).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_bad_smtp_url_or_sender_is_refused_without_the_password() {
        let url = "smtpx://user:hunter2-secret@mail.example.com";
        let config = smtp_config(url, Some("no-reply@acme.example"));
        let error = transport(&config, url).err().map(|e| format!("{e:#}"));
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("SMTP_URL") && !e.contains("hunter2"))
        );
        let url = "smtp://mail.example.com?tls=sometimes";
        assert!(transport(&config, url).is_err());
        let url = "smtp://mail.example.com";
        assert!(
            transport(&smtp_config(url, None), url).is_err(),
            "MAIL_FROM is required"
        );
        assert!(transport(&smtp_config(url, Some("not an address")), url).is_err());
    }

    #[test]
    fn the_last_attempt_and_permanent_failures_give_up() {
        assert_eq!(BACKOFF.retry_in(6, false), None);
        assert_eq!(BACKOFF.retry_in(7, false), None);
        assert_eq!(BACKOFF.retry_in(1, true), None);
        let once = Backoff {
            max_attempts: 1,
            ..BACKOFF
        };
        assert_eq!(once.retry_in(1, false), None);
    }
}
