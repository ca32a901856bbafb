//! The LLM: a provider trait, an OpenAI-compatible streaming client (Groq, OpenAI, Ollama,
//! vLLM, llama.cpp's server), the offline demo provider used when none is configured, and a
//! circuit breaker that fails fast while the provider keeps failing.

mod breaker;
pub mod company;
mod demo;
mod openai;
mod retry;
mod sse;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::Stream;

pub use breaker::CircuitBreaker;
pub use demo::{DEMO_MODEL, DemoProvider};
pub use openai::{OpenAiClient, OpenAiSettings};
pub use retry::{backoff, parse_retry_after};

use crate::config::Config;

/// Who wrote a message of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PromptMessage {
    pub role: Role,
    pub content: String,
}

/// What the provider is asked to continue.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<PromptMessage>,
}

/// What a reply stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// More text of the reply (never empty).
    Delta(String),
    /// Token usage, when the provider reports it (usually at the end).
    Usage { prompt: u32, completion: u32 },
    /// The model that answered, when the provider names it.
    Model(String),
}

/// Why a generation failed. [`LlmError::reason`] is safe to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("could not reach the AI provider: {0}")]
    Connect(String),
    #[error("the AI provider answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("the AI provider did not answer within {0:?}")]
    FirstTokenTimeout(Duration),
    #[error("the AI provider went silent for {0:?}")]
    IdleTimeout(Duration),
    #[error("the AI provider sent a malformed chunk: {0}")]
    Malformed(String),
    #[error("the AI provider reported an error: {0}")]
    Provider(String),
    #[error("the AI provider's stream ended before it was complete")]
    Truncated,
    #[error("the connection to the AI provider broke: {0}")]
    Broken(String),
    #[error("the AI provider is failing; new replies are refused for {0} s")]
    CircuitOpen(u64),
    /// The company's own provider cannot be used as it is set (its key does not open, its
    /// settings cannot be read): never retried, and no fallback to the default provider.
    #[error("{0}")]
    Misconfigured(String),
}

impl LlmError {
    /// Whether a failure before the first token is worth retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::FirstTokenTimeout(_) | Self::Broken(_) => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// What the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short reason for users and logs (no secrets, no message contents).
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// A reply as it streams. Dropping it aborts the upstream request.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// A chat-completions provider.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The model asked for.
    fn model(&self) -> &str;

    /// Starts a reply. Failures before the first token (after the provider's retries) are
    /// returned here; failures after it come through the stream.
    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError>;
}

/// The provider configured by `LLM_BASE_URL`, or the offline demo provider without one.
pub fn from_config(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    match config
        .llm_base_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(base_url) => Ok(Arc::new(OpenAiClient::new(OpenAiSettings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: config
                .llm_api_key
                .clone()
                .filter(|k| !k.is_empty())
                .map(zeroize::Zeroizing::new),
            model: config.llm_model.clone(),
            connect_timeout: Duration::from_millis(config.llm_connect_timeout_ms),
            first_token_timeout: Duration::from_millis(config.llm_first_token_timeout_ms),
            idle_timeout: Duration::from_millis(config.llm_idle_timeout_ms),
            max_retries: config.llm_max_retries,
            follow_redirects: true,
        })?)),
        None => Ok(Arc::new(DemoProvider::new(Duration::from_millis(
            config.llm_demo_token_ms,
        )))),
    }
}
