//! Chat with streamed AI replies, apart from GraphQL: the prompt (system prompt, knowledge,
//! recent history within a budget), the background generation that streams a reply to every
//! instance and stores it, the cancel registry, the catch-up for late subscribers, and the
//! limits.

pub mod events;
mod generate;
pub mod live;
pub mod prompt;
pub mod store;
mod subscribe;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use uuid::Uuid;

pub use events::{ChatEvent, MessageData};
pub use generate::Generation;
pub use subscribe::conversation_events;

use crate::{
    config::Config,
    error::{AppError, AppResult},
    llm::{CircuitBreaker, Provider},
    pubsub::PubSub,
    ratelimit::{Quota, RateLimiter},
};

/// The chat machinery of one instance. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<dyn Provider>,
    breaker: CircuitBreaker,
    db: DatabaseConnection,
    pubsub: PubSub,
    live: live::LiveStore,
    redis_prefix: String,
    /// Generations running on this instance, by assistant message id.
    running: Mutex<HashMap<Uuid, watch::Sender<bool>>>,
    max_concurrent_per_company: u32,
    messages_per_minute: u32,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("model", &self.inner.provider.model())
            .finish_non_exhaustive()
    }
}

impl Chat {
    /// Builds the chat on the configured provider and starts listening for cancellations.
    pub fn start(
        config: &Config,
        db: DatabaseConnection,
        redis: deadpool_redis::Pool,
        pubsub: PubSub,
    ) -> anyhow::Result<Self> {
        let provider = crate::llm::from_config(config)?;
        let chat = Self {
            inner: Arc::new(Inner {
                provider,
                breaker: CircuitBreaker::new(
                    config.llm_breaker_threshold,
                    Duration::from_secs(config.llm_breaker_cool_down_secs),
                ),
                db,
                live: live::LiveStore::new(redis, &config.redis_key_prefix),
                redis_prefix: config.redis_key_prefix.clone(),
                pubsub,
                running: Mutex::new(HashMap::new()),
                max_concurrent_per_company: config.chat_max_concurrent_per_company,
                messages_per_minute: config.chat_messages_per_minute,
            }),
        };
        chat.listen_for_cancels();
        Ok(chat)
    }

    /// The model replies are asked of.
    pub fn model(&self) -> &str {
        self.inner.provider.model()
    }

    pub(crate) fn pubsub(&self) -> &PubSub {
        &self.inner.pubsub
    }

    /// The Redis channel `PubSub` carries `topic` on (`{prefix}ev:{topic}`), for publishing
    /// in the same round trip as a write. The chat tests across instances fail if this ever
    /// disagrees with `crate::pubsub`.
    pub(crate) fn channel(&self, topic: &str) -> String {
        format!("{}ev:{topic}", self.inner.redis_prefix)
    }

    pub(crate) fn live(&self) -> &live::LiveStore {
        &self.inner.live
    }

    /// `RATE_LIMITED` when the user sent `CHAT_MESSAGES_PER_MINUTE` messages in the last minute.
    pub async fn check_rate(&self, limiter: &RateLimiter, user: Uuid) -> AppResult<()> {
        limiter
            .check(
                "chat_message",
                &user.to_string(),
                Quota::new(self.inner.messages_per_minute, Duration::from_secs(60)),
            )
            .await
    }

    /// Whether the circuit breaker refuses new replies now.
    pub fn breaker_open(&self) -> bool {
        self.inner.breaker.check().is_err()
    }

    /// `UNAVAILABLE` at once while the circuit breaker is open.
    pub fn check_breaker(&self) -> AppResult<()> {
        self.inner
            .breaker
            .check()
            .map_err(|e| AppError::Unavailable(e.reason()))
    }

    /// Takes a slot of the company's concurrent generations: `RATE_LIMITED` (retry in a few
    /// seconds) when `CHAT_MAX_CONCURRENT_PER_COMPANY` replies stream already. Without Redis the limit cannot be counted across instances and is not applied.
    pub async fn acquire_slot(&self, company: Uuid, message: Uuid) -> AppResult<()> {
        let limit = self.inner.max_concurrent_per_company;
        if limit == 0 {
            return Ok(());
        }
        match self.inner.live.acquire_slot(company, message, limit).await {
            Ok(true) => Ok(()),
            // Replies take seconds: a client may retry shortly.
            Ok(false) => {
                crate::metrics::rate_limited("chat_concurrent");
                tracing::info!(%company, limit, "chat: company at its concurrent replies limit");
                Err(AppError::RateLimited {
                    retry_after_secs: 5,
                })
            }
            Err(error) => {
                crate::metrics::redis_error("chat_slots");
                crate::metrics::redis_fallback("chat_slots");
                tracing::warn!(%error, "redis unavailable: chat concurrency not limited");
                Ok(())
            }
        }
    }

    /// Starts a generation in the background. It does not depend on any client: it finishes
    /// and stores the reply whoever listens.
    pub fn spawn(&self, generation: Generation) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        if let Ok(mut running) = self.inner.running.lock() {
            running.insert(generation.message_id, cancel_tx);
        }
        let chat = self.clone();
        // A child of the request's span: the reply belongs to the trace of `sendMessage`.
        let span = tracing::info_span!("chat_reply", message_id = %generation.message_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let message_id = generation.message_id;
                generation.run(&chat, cancel_rx).await;
                if let Ok(mut running) = chat.inner.running.lock() {
                    running.remove(&message_id);
                }
            },
            span,
        ));
    }

    /// Asks every instance to stop the generation of `message_id` (the one running it does).
    pub async fn request_cancel(&self, message_id: Uuid) {
        self.inner
            .pubsub
            .publish(events::CANCEL_TOPIC, &events::CancelRequest { message_id })
            .await;
    }

    /// Whether this instance runs the generation of `message_id`.
    pub fn runs(&self, message_id: Uuid) -> bool {
        self.inner
            .running
            .lock()
            .map(|r| r.contains_key(&message_id))
            .unwrap_or(false)
    }

    fn cancel_local(&self, message_id: Uuid) {
        if let Ok(running) = self.inner.running.lock()
            && let Some(cancel) = running.get(&message_id)
        {
            let _ = cancel.send(true);
        }
    }

    fn listen_for_cancels(&self) {
        let weak = Arc::downgrade(&self.inner);
        let mut requests = Box::pin(self.inner.pubsub.subscribe(events::CANCEL_TOPIC));
        tokio::spawn(async move {
            while let Some(payload) = requests.next().await {
                let Some(inner) = weak.upgrade() else { return };
                if let Ok(request) = serde_json::from_str::<events::CancelRequest>(&payload) {
                    Chat { inner }.cancel_local(request.message_id);
                }
            }
        });
    }
}
