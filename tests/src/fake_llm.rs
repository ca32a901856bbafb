//! A fake OpenAI-compatible provider: a real HTTP server on 127.0.0.1 speaking the streaming
//! chat-completions protocol (server-sent events over chunked HTTP/1.1), scripted per test:
//! normal streams, slow tokens, pauses the test releases, error statuses with `Retry-After`,
//! connections dropped mid-stream, malformed chunks, streams without `[DONE]`.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore},
};

/// How a scripted stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `data: [DONE]`, then the end of the body.
    Done,
    /// The body ends properly, but without `[DONE]`.
    NoDone,
    /// The connection is closed mid-body.
    Drop,
    /// A chunk that is not JSON, then `[DONE]`.
    Malformed,
}

/// A scripted streaming reply.
#[derive(Debug, Clone)]
pub struct StreamScript {
    pub tokens: Vec<String>,
    /// Pause before each token.
    pub delay: Duration,
    /// After this many tokens, wait for [`FakeLlm::release`].
    pub pause_after: Option<usize>,
    pub end: End,
    pub usage: Option<(u32, u32)>,
    pub model: String,
    /// Replace each token by the time it is sent (µs since the epoch) and a space.
    pub stamp: bool,
}

impl StreamScript {
    /// A normal reply of these tokens.
    pub fn tokens<S: Into<String>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Self {
            tokens: tokens.into_iter().map(Into::into).collect(),
            delay: Duration::ZERO,
            pause_after: None,
            end: End::Done,
            usage: Some((11, 7)),
            model: "fake-model".into(),
            stamp: false,
        }
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn pause_after(mut self, tokens: usize) -> Self {
        self.pause_after = Some(tokens);
        self
    }

    pub fn end(mut self, end: End) -> Self {
        self.end = end;
        self
    }

    /// The concatenated text of the tokens.
    pub fn text(&self) -> String {
        self.tokens.concat()
    }
}

/// What the fake answers one request with.
#[derive(Debug, Clone)]
pub enum Reply {
    Stream(StreamScript),
    Status {
        code: u16,
        retry_after: Option<String>,
    },
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Value>>,
    /// The `Authorization` header of each request, in the order of `requests`.
    authorizations: Mutex<Vec<Option<String>>>,
    gate: Semaphore,
    /// How many upcoming requests wait for a release before being answered.
    held: AtomicUsize,
    aborted: AtomicUsize,
    changed: Notify,
}

/// The running fake; it stops when dropped.
pub struct FakeLlm {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeLlm {
    /// Starts a fake that answers every request with `fallback` unless [`FakeLlm::push`] queued
    /// other replies.
    pub async fn start(fallback: Reply) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(Some(fallback)),
            requests: Mutex::new(Vec::new()),
            authorizations: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            held: AtomicUsize::new(0),
            aborted: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let shared = accepting.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, shared).await;
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The `LLM_BASE_URL` of this fake.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Reply) {
        if let Ok(mut script) = self.shared.script.lock() {
            script.push_back(reply);
        }
    }

    /// Makes the next request wait for [`FakeLlm::release`] before it is answered at all.
    pub fn hold_next(&self) {
        self.shared.held.fetch_add(1, Ordering::SeqCst);
    }

    /// Lets one held request or paused stream go on.
    pub fn release(&self) {
        self.shared.gate.add_permits(1);
    }

    /// The JSON bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The `Authorization` header of each request received so far (`None`: it had none).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.shared
            .authorizations
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// How many streams the client abandoned (closed the connection) while paused.
    pub fn aborted(&self) -> usize {
        self.shared.aborted.load(Ordering::SeqCst)
    }

    /// Waits until `condition` holds on the fake's counters, for at most `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl Fn(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            if condition(self) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                anyhow::bail!("fake LLM: timed out after {timeout:?} waiting for {what}");
            }
        }
    }
}

async fn serve(mut socket: TcpStream, shared: Arc<Shared>) -> anyhow::Result<()> {
    let (authorization, body) = read_request(&mut socket).await?;
    let reply = {
        let next = shared
            .script
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .pop_front();
        match next {
            Some(reply) => reply,
            None => shared
                .fallback
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no reply scripted"))?,
        }
    };
    if let (Ok(mut requests), Ok(mut authorizations)) =
        (shared.requests.lock(), shared.authorizations.lock())
    {
        requests.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        authorizations.push(authorization);
    }
    shared.changed.notify_waiters();
    let held = shared
        .held
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if held && let Ok(permit) = shared.gate.acquire().await {
        permit.forget();
    }
    match reply {
        Reply::Status { code, retry_after } => {
            let body = json!({ "error": { "message": "scripted failure" } }).to_string();
            let retry = retry_after
                .map(|r| format!("Retry-After: {r}\r\n"))
                .unwrap_or_default();
            let head = format!(
                "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(body.as_bytes()).await?;
            socket.shutdown().await?;
        }
        Reply::Stream(script) => stream(socket, &shared, script).await?,
    }
    Ok(())
}

/// Reads one request: its `Authorization` header, if any, and its body.
async fn read_request(socket: &mut TcpStream) -> anyhow::Result<(Option<String>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = socket.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "client closed before sending a request");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let original = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let authorization = original.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_owned())
    });
    let head = original.to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = socket.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "client closed mid-request");
        buffer.extend_from_slice(&chunk[..n]);
    }
    Ok((
        authorization,
        buffer[header_end..header_end + length].to_vec(),
    ))
}

fn sse_chunk(data: &str) -> Vec<u8> {
    let event = format!("data: {data}\n\n");
    format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
}

fn delta(model: &str, text: &str) -> String {
    json!({ "id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
            "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] })
    .to_string()
}

async fn stream(socket: TcpStream, shared: &Shared, script: StreamScript) -> anyhow::Result<()> {
    let (mut reader, mut writer) = socket.into_split();
    // Notices the client going away even while the stream is paused.
    let closed = Arc::new(Notify::new());
    let watcher = {
        let closed = closed.clone();
        tokio::spawn(async move {
            let mut sink = [0u8; 256];
            while let Ok(n) = reader.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
            closed.notify_one();
        })
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    writer.write_all(head.as_bytes()).await?;
    let role = json!({ "model": script.model, "choices": [{ "index": 0, "delta": { "role": "assistant" } }] });
    writer.write_all(&sse_chunk(&role.to_string())).await?;
    for (i, token) in script.tokens.iter().enumerate() {
        if script.pause_after == Some(i) {
            tokio::select! {
                permit = shared.gate.acquire() => {
                    if let Ok(permit) = permit { permit.forget(); }
                }
                _ = closed.notified() => {
                    shared.aborted.fetch_add(1, Ordering::SeqCst);
                    shared.changed.notify_waiters();
                    return Ok(());
                }
            }
        }
        if !script.delay.is_zero() {
            tokio::time::sleep(script.delay).await;
        }
        let text = if script.stamp {
            format!("{} ", chrono::Utc::now().timestamp_micros())
        } else {
            token.clone()
        };
        writer
            .write_all(&sse_chunk(&delta(&script.model, &text)))
            .await?;
        writer.flush().await?;
    }
    match script.end {
        End::Drop => {
            watcher.abort();
            // Closing without the terminating chunk: the body is cut short.
            drop(writer);
            return Ok(());
        }
        End::Malformed => writer.write_all(&sse_chunk("{this is not json")).await?,
        End::Done | End::NoDone => {}
    }
    if let Some((prompt, completion)) = script.usage {
        let usage = json!({ "model": script.model, "choices": [],
                            "usage": { "prompt_tokens": prompt, "completion_tokens": completion,
                                       "total_tokens": prompt + completion } });
        writer.write_all(&sse_chunk(&usage.to_string())).await?;
    }
    if script.end != End::NoDone {
        writer.write_all(&sse_chunk("[DONE]")).await?;
    }
    writer.write_all(b"0\r\n\r\n").await?;
    writer.flush().await?;
    watcher.abort();
    Ok(())
}
