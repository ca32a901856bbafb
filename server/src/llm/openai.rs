//! The OpenAI-compatible client: `POST {base}/chat/completions` with `stream: true`, reading
//! the server-sent events as they arrive (see `sse`). Connection errors, 429 and 5xx before
//! the first token are retried with backoff (honouring `Retry-After`); connect, first-token
//! and idle (silence between tokens) timeouts are configurable.

use std::{collections::VecDeque, time::Duration};

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::time::{Instant, timeout_at};

use super::{
    ChatRequest, EventStream, LlmError, Provider, StreamEvent, backoff, parse_retry_after,
    sse::{SseData, SseError},
};

/// How to reach the provider.
#[derive(Clone)]
pub struct OpenAiSettings {
    /// E.g. `https://api.openai.com/v1`, without the trailing `/chat/completions`.
    pub base_url: String,
    /// Zeroized when the last client holding it is dropped.
    pub api_key: Option<zeroize::Zeroizing<String>>,
    pub model: String,
    pub connect_timeout: Duration,
    /// From sending the request to the first token (response headers included).
    pub first_token_timeout: Duration,
    /// Longest silence between two events once the reply streams.
    pub idle_timeout: Duration,
    /// Retries before the first token (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Whether redirects are followed (not for a company's own provider: see `company`).
    pub follow_redirects: bool,
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A streaming chat-completions client.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    settings: OpenAiSettings,
}

impl OpenAiClient {
    pub fn new(settings: OpenAiSettings) -> anyhow::Result<Self> {
        let redirects = if settings.follow_redirects {
            reqwest::redirect::Policy::default()
        } else {
            reqwest::redirect::Policy::none()
        };
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .redirect(redirects)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { http, settings })
    }

    /// One attempt, by `deadline`: the response, then the events up to and including the
    /// first token.
    async fn attempt(
        &self,
        body: &serde_json::Value,
        deadline: Instant,
    ) -> Result<EventStream, LlmError> {
        let mut request = self
            .http
            .post(format!("{}/chat/completions", self.settings.base_url))
            .header("accept", "text/event-stream")
            .json(body);
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key.as_str());
        }
        let response = timeout_at(deadline, request.send())
            .await
            .map_err(|_| LlmError::FirstTokenTimeout(self.settings.first_token_timeout))?
            .map_err(|e| LlmError::Connect(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(LlmError::Status {
                status: status.as_u16(),
                retry_after,
            });
        }
        let mut events = Box::pin(parse_events(response.bytes_stream()));
        let mut first = Vec::new();
        loop {
            match timeout_at(deadline, events.next()).await {
                Err(_) => {
                    return Err(LlmError::FirstTokenTimeout(
                        self.settings.first_token_timeout,
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(error))) => return Err(error),
                Ok(Some(Ok(event))) => {
                    let token = matches!(event, StreamEvent::Delta(_));
                    first.push(Ok(event));
                    if token {
                        break;
                    }
                }
            }
        }
        let rest = idle_limited(events, self.settings.idle_timeout);
        Ok(futures_util::stream::iter(first).chain(rest).boxed())
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiClient {
    fn model(&self) -> &str {
        &self.settings.model
    }

    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let body = json!({
            "model": self.settings.model,
            "messages": request.messages,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        // One deadline for the first token, retries and their waits included.
        let deadline = Instant::now() + self.settings.first_token_timeout;
        let mut attempt = 0;
        loop {
            match self.attempt(&body, deadline).await {
                Ok(stream) => return Ok(stream),
                Err(error) if error.is_retryable() && attempt < self.settings.max_retries => {
                    let wait = backoff(attempt, error.retry_after());
                    if Instant::now() + wait >= deadline {
                        tracing::info!(%error, attempt, "AI provider failed before the first token; no time left to retry");
                        return Err(error);
                    }
                    tracing::info!(%error, attempt, ?wait, "AI provider failed before the first token; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct Chunk<'a> {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    /// Borrowed: every chunk names the model, only the first one's is kept.
    #[serde(borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    error: Option<serde_json::Value>,
    /// Groq puts usage here.
    x_groq: Option<XGroq>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[derive(Debug, Deserialize)]
struct XGroq {
    usage: Option<Usage>,
}

/// What one `data:` payload means.
fn chunk_events(
    data: &str,
    model_seen: &mut bool,
    events: &mut VecDeque<StreamEvent>,
) -> Result<(), LlmError> {
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
        LlmError::Malformed(format!(
            "not a chat-completions chunk ({})",
            e.classify_str()
        ))
    })?;
    if let Some(error) = chunk.error {
        let message = error
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("unknown error")
            .chars()
            .take(200)
            .collect();
        return Err(LlmError::Provider(message));
    }
    if let Some(model) = chunk.model.filter(|m| !m.is_empty())
        && !*model_seen
    {
        *model_seen = true;
        events.push_back(StreamEvent::Model(model.into_owned()));
    }
    for choice in chunk.choices {
        if let Some(text) = choice
            .delta
            .and_then(|d| d.content)
            .filter(|t| !t.is_empty())
        {
            events.push_back(StreamEvent::Delta(text));
        }
    }
    if let Some(usage) = chunk.usage.or(chunk.x_groq.and_then(|x| x.usage)) {
        events.push_back(StreamEvent::Usage {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
        });
    }
    Ok(())
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

struct ParseState<S> {
    events: S,
    pending: VecDeque<StreamEvent>,
    model_seen: bool,
    finished: bool,
}

/// The SSE body as reply events. Ends after `data: [DONE]`; a body that ends without it
/// yields `Truncated`, a broken connection `Broken`, a chunk that is not JSON `Malformed`.
fn parse_events<B, T, E>(body: B) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send
where
    B: Stream<Item = Result<T, E>> + Send + Unpin + 'static,
    T: AsRef<[u8]> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let state = ParseState {
        events: SseData::new(body),
        pending: VecDeque::new(),
        model_seen: false,
        finished: false,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.finished {
                return None;
            }
            let fail = |state: ParseState<_>, error| Some((Err(error), state));
            match state.events.next().await {
                None => {
                    state.finished = true;
                    return fail(state, LlmError::Truncated);
                }
                Some(Err(SseError::Body(error))) => {
                    state.finished = true;
                    return fail(state, LlmError::Broken(error.to_string()));
                }
                Some(Err(SseError::Malformed(what))) => {
                    state.finished = true;
                    return fail(state, LlmError::Malformed(what.to_owned()));
                }
                Some(Ok(data)) => {
                    let data = data.trim();
                    if data == "[DONE]" {
                        state.finished = true;
                        continue;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    match chunk_events(data, &mut state.model_seen, &mut state.pending) {
                        Ok(()) => {}
                        Err(error) => {
                            state.finished = true;
                            return fail(state, error);
                        }
                    }
                }
            }
        }
    })
}

/// Ends the stream with `IdleTimeout` when no event arrives within `idle`. One timer serves
/// the whole stream: an event only notes the time, and the timer, once it fires, is set again
/// from the last event when one came meanwhile (rather than a timer set and cancelled for
/// every token).
fn idle_limited<S>(events: S, idle: Duration) -> impl Stream<Item = Result<StreamEvent, LlmError>>
where
    S: Stream<Item = Result<StreamEvent, LlmError>> + Unpin,
{
    IdleLimited {
        events: Some(events),
        idle,
        last: Instant::now(),
        timer: Box::pin(tokio::time::sleep(idle)),
    }
}

struct IdleLimited<S> {
    /// `None` once ended.
    events: Option<S>,
    idle: Duration,
    /// When the last event arrived.
    last: Instant,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S> Stream for IdleLimited<S>
where
    S: Stream<Item = Result<StreamEvent, LlmError>> + Unpin,
{
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        let Some(events) = this.events.as_mut() else {
            return Poll::Ready(None);
        };
        match events.poll_next_unpin(cx) {
            Poll::Ready(Some(item)) => {
                this.last = Instant::now();
                if item.is_err() {
                    this.events = None;
                }
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.events = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            let due = this.last + this.idle;
            if due <= Instant::now() {
                this.events = None;
                return Poll::Ready(Some(Err(LlmError::IdleTimeout(this.idle))));
            }
            this.timer.as_mut().reset(due);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(body: &str) -> Vec<Result<StreamEvent, LlmError>> {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.as_bytes().chunks(7).map(|c| Ok(c.to_vec())).collect();
        parse_events(futures_util::stream::iter(chunks))
            .collect()
            .await
    }

    #[tokio::test]
    async fn parses_deltas_usage_and_done() {
        let body = "data: {\"model\":\"m1\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                    : keep-alive\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
                    data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n\
                    data: [DONE]\n\n";
        assert_eq!(
            parse(body).await,
            vec![
                Ok(StreamEvent::Model("m1".into())),
                Ok(StreamEvent::Delta("Hel".into())),
                Ok(StreamEvent::Delta("lo".into())),
                Ok(StreamEvent::Usage {
                    prompt: 3,
                    completion: 2
                }),
            ]
        );
    }

    #[tokio::test]
    async fn a_stream_without_done_is_truncated() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        assert_eq!(
            parse(body).await,
            vec![
                Ok(StreamEvent::Delta("Hi".into())),
                Err(LlmError::Truncated)
            ]
        );
    }

    #[tokio::test]
    async fn a_malformed_chunk_ends_the_stream() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {nope\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"more\"}}]}\n\n";
        let events = parse(body).await;
        assert_eq!(events.len(), 2);
        assert!(matches!(events[1], Err(LlmError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_provider_error_chunk_is_reported() {
        let body = "data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        assert_eq!(
            parse(body).await,
            vec![Err(LlmError::Provider("overloaded".into()))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn events_within_the_idle_time_go_on_and_silence_beyond_it_ends_the_stream() {
        let idle = Duration::from_secs(10);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let received = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut events = Box::pin(idle_limited(received, idle));
        // Three events, each 8 s after the last: 24 s in all, never 10 s of silence.
        for n in 0..3 {
            tokio::time::sleep(Duration::from_secs(8)).await;
            let _ = tx.send(Ok(StreamEvent::Delta(n.to_string())));
            assert_eq!(
                events.next().await,
                Some(Ok(StreamEvent::Delta(n.to_string())))
            );
        }
        let silent_from = Instant::now();
        assert_eq!(events.next().await, Some(Err(LlmError::IdleTimeout(idle))));
        assert_eq!(silent_from.elapsed(), idle);
        assert_eq!(events.next().await, None);
        drop(tx);
    }

    #[test]
    fn retryable_failures() {
        assert!(LlmError::Connect("x".into()).is_retryable());
        assert!(
            LlmError::Status {
                status: 429,
                retry_after: None
            }
            .is_retryable()
        );
        assert!(
            LlmError::Status {
                status: 503,
                retry_after: None
            }
            .is_retryable()
        );
        assert!(
            !LlmError::Status {
                status: 400,
                retry_after: None
            }
            .is_retryable()
        );
        assert!(!LlmError::Malformed("x".into()).is_retryable());
    }
}
