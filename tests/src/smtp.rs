//! A real SMTP server on loopback for the mail tests. The protocol (commands, replies, the
//! envelope, dot-stuffed data, AUTH) is the `mailin` crate's state machine; this file only
//! carries its lines over tokio sockets, keeps what was received and refuses the recipients a
//! test asks it to.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::Context as _;
use mailin::{Action, AuthMechanism, Handler, Response, SessionBuilder, response};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinHandle,
};

/// How the server answers `RCPT TO` for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `451`: try again later.
    Transient,
    /// `550`: no such mailbox, for good.
    Permanent,
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// `MAIL FROM`.
    pub from: String,
    /// `RCPT TO`, each.
    pub to: Vec<String>,
    /// The message as sent: headers, a blank line, the body (transfer-encoded).
    pub data: String,
    /// The user that authenticated on the connection, if one did.
    pub user: Option<String>,
}

impl Received {
    /// The first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(current) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    current.push(' ');
                    current.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }

    /// The body, its transfer encoding undone.
    pub fn body(&self) -> anyhow::Result<String> {
        let raw = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        Ok(match encoding.as_str() {
            "quoted-printable" => String::from_utf8(quoted_printable::decode(
                raw,
                quoted_printable::ParseMode::Robust,
            )?)?,
            "base64" => {
                use base64::Engine as _;
                let compact: String = raw.split_whitespace().collect();
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact)?)?
            }
            _ => raw.to_owned(),
        })
    }

    /// The one-time token of the link in the body (`...?token=<token>`).
    pub fn token(&self) -> anyhow::Result<String> {
        let body = self.body()?;
        body.split("token=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .with_context(|| format!("no token in the e-mail: {body}"))
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    refusals: Mutex<HashMap<String, Refusal>>,
    /// `RCPT TO` seen per address, refused or not.
    rcpt_attempts: Mutex<HashMap<String, u32>>,
    /// The one user and password AUTH PLAIN accepts, if AUTH is offered.
    credentials: Option<(String, String)>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An SMTP server listening on 127.0.0.1; stopped when dropped.
pub struct SmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// A server that accepts every message, without AUTH.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(None).await
    }

    /// A server that offers AUTH PLAIN (over plain text: loopback only) and accepts only
    /// `user` with `password`.
    pub async fn start_with_auth(user: &str, password: &str) -> anyhow::Result<Self> {
        Self::start_inner(Some((user.to_owned(), password.to_owned()))).await
    }

    async fn start_inner(credentials: Option<(String, String)>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            credentials,
            ..Shared::default()
        });
        let mut builder = SessionBuilder::new("smtp.test");
        if shared.credentials.is_some() {
            builder
                .enable_auth(AuthMechanism::Plain)
                .insecure_enable_plaintext_auth();
        }
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    let (shared, builder) = (shared.clone(), builder.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, peer.ip(), &builder, shared).await;
                    });
                }
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP, as lettre's `smtp://` without `tls=`).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Refuses `RCPT TO:<address>` from now on.
    pub fn refuse(&self, address: &str, refusal: Refusal) {
        lock(&self.shared.refusals).insert(address.to_lowercase(), refusal);
    }

    /// How often a client named `address` in `RCPT TO`, refused or not.
    pub fn rcpt_attempts(&self, address: &str) -> u32 {
        lock(&self.shared.rcpt_attempts)
            .get(&address.to_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// The messages received so far for `address`.
    pub fn received_by(&self, address: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits until at least `count` messages have arrived, for at most `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> anyhow::Result<Vec<Received>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let received = self.received();
            if received.len() >= count {
                return Ok(received);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                anyhow::bail!(
                    "timed out after {timeout:?}: {} of {count} e-mails arrived",
                    self.received().len()
                );
            }
        }
    }

    /// Waits for the first message to `address`, for at most `timeout`.
    pub async fn wait_for_mail_to(
        &self,
        address: &str,
        timeout: Duration,
    ) -> anyhow::Result<Received> {
        self.wait_for_mail(address, None, timeout).await
    }

    /// Waits for the first message to `address` with `subject` (any when `None`), for at most
    /// `timeout`.
    pub async fn wait_for_mail(
        &self,
        address: &str,
        subject: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let found = self.received_by(address).into_iter().find(|mail| {
                subject.is_none_or(|subject| mail.header("Subject").as_deref() == Some(subject))
            });
            if let Some(mail) = found {
                return Ok(mail);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                anyhow::bail!(
                    "timed out after {timeout:?}: no e-mail to {address} with subject {subject:?}"
                );
            }
        }
    }
}

/// One SMTP connection: each line to the session, each reply back.
async fn serve(
    stream: TcpStream,
    peer: IpAddr,
    builder: &SessionBuilder,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut session = builder.build(peer, Connection::new(shared));
    write.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let reply = session.process(&line);
        match reply.action {
            Action::NoReply => {}
            Action::Reply => write.write_all(&reply.buffer()?).await?,
            Action::Close | Action::UpgradeTls => {
                write.write_all(&reply.buffer()?).await?;
                return Ok(());
            }
        }
    }
}

/// The handler of one connection: the message being received.
struct Connection {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    user: Option<String>,
}

impl Connection {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
            user: None,
        }
    }
}

impl Handler for Connection {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_owned();
        self.to.clear();
        self.data.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let address = to.to_lowercase();
        *lock(&self.shared.rcpt_attempts)
            .entry(address.clone())
            .or_default() += 1;
        match lock(&self.shared.refusals).get(&address) {
            Some(Refusal::Transient) => {
                Response::custom(451, "4.3.0 mailbox busy, try again later".to_owned())
            }
            Some(Refusal::Permanent) => response::NO_MAILBOX,
            None => {
                self.to.push(to.to_owned());
                response::OK
            }
        }
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = Received {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
            user: self.user.clone(),
        };
        lock(&self.shared.received).push(message);
        self.shared.arrived.notify_waiters();
        response::OK
    }

    fn auth_plain(
        &mut self,
        _authorization_id: &str,
        authentication_id: &str,
        password: &str,
    ) -> Response {
        match &self.shared.credentials {
            Some((user, expected)) if user == authentication_id && expected == password => {
                self.user = Some(user.clone());
                response::AUTH_OK
            }
            _ => response::INVALID_CREDENTIALS,
        }
    }
}
