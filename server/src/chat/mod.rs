//! Chat with streamed AI replies, apart from GraphQL: the prompt (system prompt, knowledge,
//! recent history within a budget), the background generation that streams a reply to every
//! instance and stores it, the cancel registry, the catch-up for late subscribers, the limits,
//! the leases that keep a reply from being stranded by a lost instance, and the drain on
//! shutdown. Its reads and writes on behalf of a request are `crate::services::chat`.

pub mod events;
mod generate;
pub mod live;
pub mod prompt;
mod relay;
mod subscribe;
mod sweep;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use tokio::{sync::watch, task::AbortHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

pub use events::{ChatEvent, MessageData};
pub use generate::Generation;
pub use subscribe::conversation_events;

use crate::{
    config::Config,
    db::DatabaseConnection,
    error::{AppError, AppResult},
    llm::{CircuitBreaker, company::CompanyProviders},
    pubsub::PubSub,
    ratelimit::{Quota, RateLimiter},
};

/// How long `cancelReply` waits for the generating instance to store the partial reply.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// The chat machinery of one instance. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    /// The server's default provider, and each company's own (see `crate::llm::company`).
    providers: CompanyProviders,
    breaker: CircuitBreaker,
    db: DatabaseConnection,
    pubsub: PubSub,
    live: live::LiveStore,
    /// Sends the deltas of this instance's replies to the other instances.
    outbox: relay::Outbox,
    /// Generations running on this instance, by assistant message id.
    running: Mutex<HashMap<Uuid, Running>>,
    /// The generation tasks, so a drain can wait for them.
    generations: TaskTracker,
    /// Background tasks of this instance (the sweep, the cancel listener).
    background: Mutex<Vec<AbortHandle>>,
    /// Names this instance as the holder of its leases.
    instance: Uuid,
    /// The lease on each streaming reply (`CHAT_LEASE_SECS`).
    lease: Duration,
    /// How often lapsed leases are looked for (`CHAT_SWEEP_SECS`).
    sweep_every: Duration,
    /// How often the text so far is stored (`CHAT_PERSIST_INTERVAL_MS`).
    persist_every: Duration,
    /// Cancelled when the server begins to drain: no new replies.
    draining: CancellationToken,
    max_concurrent_per_company: u32,
    messages_per_minute: u32,
}

/// A generation running on this instance.
struct Running {
    stop: watch::Sender<Stop>,
    /// The reply so far: the catch-up of a subscriber on this instance.
    reply: Arc<generate::Shared>,
    task: Option<AbortHandle>,
}

/// What a running generation is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Go on.
    No,
    /// `cancelReply`: store the text so far as `cancelled`.
    Cancel,
    /// The server shuts down: store the text so far as `failed`, interrupted.
    Interrupt,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("model", &self.model())
            .finish_non_exhaustive()
    }
}

impl Chat {
    /// Builds the chat on the configured provider (and the companies' own, whose keys
    /// `secrets` opens), starts listening for cancellations and sweeping replies whose lease
    /// lapsed (at once, then every `CHAT_SWEEP_SECS`). `draining` is cancelled when the server
    /// begins to drain.
    pub fn start(
        config: &Config,
        secrets: crate::secrets::Secrets,
        db: DatabaseConnection,
        redis: crate::kv::Redis,
        pubsub: PubSub,
        draining: CancellationToken,
    ) -> anyhow::Result<Self> {
        let provider = crate::llm::from_config(config)?;
        let (outbox, sending) =
            relay::Outbox::start(redis.clone(), pubsub.clone(), live::STREAMING_TTL);
        let chat = Self {
            inner: Arc::new(Inner {
                providers: CompanyProviders::new(config, provider, secrets),
                breaker: CircuitBreaker::new(
                    config.llm_breaker_threshold,
                    Duration::from_secs(config.llm_breaker_cool_down_secs),
                ),
                db,
                live: live::LiveStore::new(redis, &config.redis_key_prefix),
                outbox,
                pubsub,
                running: Mutex::new(HashMap::new()),
                generations: TaskTracker::new(),
                background: Mutex::new(Vec::new()),
                instance: Uuid::new_v4(),
                lease: Duration::from_secs(config.chat_lease_secs.max(1)),
                sweep_every: Duration::from_secs(config.chat_sweep_secs.max(1)),
                persist_every: Duration::from_millis(config.chat_persist_interval_ms.max(50)),
                draining,
                max_concurrent_per_company: config.chat_max_concurrent_per_company,
                messages_per_minute: config.chat_messages_per_minute,
            }),
        };
        chat.keep_background(sending.abort_handle());
        chat.listen_for_cancels();
        chat.start_sweeping();
        Ok(chat)
    }

    /// The model the server's default provider is asked for.
    pub fn model(&self) -> &str {
        self.inner.providers.default_provider().model()
    }

    pub(crate) fn pubsub(&self) -> &PubSub {
        &self.inner.pubsub
    }

    pub(crate) fn live(&self) -> &live::LiveStore {
        &self.inner.live
    }

    fn outbox(&self) -> &relay::Outbox {
        &self.inner.outbox
    }

    /// The text so far of reply `message_id` and the index of its last delta when this instance
    /// generates it (`Some(None)` before its first delta); `None` when it does not.
    fn so_far_here(&self, message_id: Uuid) -> Option<Option<(String, i64)>> {
        let reply = self
            .inner
            .running
            .lock()
            .ok()?
            .get(&message_id)
            .map(|running| Arc::clone(&running.reply))?;
        Some(reply.so_far())
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
        self.inner.breaker.is_open()
    }

    /// `UNAVAILABLE` once the server drains (it shuts down): a load balancer sends the
    /// message to another instance.
    pub fn check_accepting(&self) -> AppResult<()> {
        if self.inner.draining.is_cancelled() {
            return Err(AppError::Unavailable(
                "the server is shutting down; retry shortly".into(),
            ));
        }
        Ok(())
    }

    /// `UNAVAILABLE` at once while the circuit breaker is open, with `retryAfter` the seconds
    /// until it lets a reply try again.
    pub fn check_breaker(&self) -> AppResult<()> {
        self.inner.breaker.check().map_err(|e| match e {
            crate::llm::LlmError::CircuitOpen(secs) => AppError::Overloaded {
                message: e.reason(),
                retry_after_secs: secs.max(1),
            },
            other => AppError::Unavailable(other.reason()),
        })
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
                crate::metrics::redis_fallback("chat_slots");
                tracing::warn!(%error, "redis unavailable: chat concurrency not limited");
                Ok(())
            }
        }
    }

    /// Starts a generation in the background. It does not depend on any client: it finishes
    /// and stores the reply whoever listens, holding a lease on it meanwhile.
    pub fn spawn(&self, generation: Generation) {
        let message_id = generation.message_id;
        let (stop_tx, stop_rx) = watch::channel(Stop::No);
        let reply = Arc::new(generate::Shared::default());
        if let Ok(mut running) = self.inner.running.lock() {
            running.insert(
                message_id,
                Running {
                    stop: stop_tx,
                    reply: Arc::clone(&reply),
                    task: None,
                },
            );
        }
        let chat = self.clone();
        // A child of the request's span: the reply belongs to the trace of `sendMessage`.
        let span = tracing::info_span!("chat_reply", %message_id);
        let task = self
            .inner
            .generations
            .spawn(tracing::Instrument::instrument(
                async move {
                    generation.run(&chat, &reply, stop_rx).await;
                    if let Ok(mut running) = chat.inner.running.lock() {
                        running.remove(&message_id);
                    }
                },
                span,
            ));
        if let Ok(mut running) = self.inner.running.lock()
            && let Some(entry) = running.get_mut(&message_id)
        {
            entry.task = Some(task.abort_handle());
        }
    }

    /// How many generations run on this instance.
    pub fn running_count(&self) -> usize {
        self.inner.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Resolves once no generation runs on this instance. For a drain: new ones are refused
    /// by then (see [`Chat::check_accepting`]).
    pub async fn until_idle(&self) {
        self.inner.generations.close();
        self.inner.generations.wait().await;
    }

    /// Stops every generation of this instance: each stores its text so far as `failed`
    /// (interrupted by the shutdown) and announces it.
    pub fn interrupt_all(&self) {
        if let Ok(running) = self.inner.running.lock() {
            for entry in running.values() {
                let _ = entry.stop.send(Stop::Interrupt);
            }
        }
    }

    /// Stops everything of this instance at once, storing nothing, as if its process were
    /// killed: the generations (their leases then lapse and another instance finalises their
    /// replies), the sweep and the cancel listener.
    pub fn abort(&self) {
        if let Ok(mut running) = self.inner.running.lock() {
            for (_, entry) in running.drain() {
                if let Some(task) = entry.task {
                    task.abort();
                }
            }
        }
        if let Ok(mut background) = self.inner.background.lock() {
            for task in background.drain(..) {
                task.abort();
            }
        }
    }

    fn keep_background(&self, task: AbortHandle) {
        if let Ok(mut background) = self.inner.background.lock() {
            background.push(task);
        }
    }

    /// Asks every instance to stop the generation of `message_id` (the one running it does).
    pub async fn request_cancel(&self, message_id: Uuid) {
        self.inner
            .pubsub
            .publish(events::CANCEL_TOPIC, &events::CancelRequest { message_id })
            .await;
    }

    /// Resolves with the stored reply once `message` ends (or `None` after a while).
    /// Subscribed at once, so the end cannot slip past between the call and the first poll.
    pub fn wait_for_end(
        &self,
        conversation: Uuid,
        message: Uuid,
    ) -> impl std::future::Future<Output = Option<MessageData>> + use<> {
        let mut events = Box::pin(self.pubsub().subscribe(&events::topic(conversation)));
        async move {
            let ended = async {
                while let Some(payload) = events.next().await {
                    match serde_json::from_str::<ChatEvent>(&payload) {
                        Ok(
                            ChatEvent::Completed { message: m }
                            | ChatEvent::Failed { message: m, .. },
                        ) if m.id == message => {
                            return Some(m);
                        }
                        _ => {}
                    }
                }
                None
            };
            tokio::time::timeout(CANCEL_WAIT, ended)
                .await
                .ok()
                .flatten()
        }
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
            && let Some(entry) = running.get(&message_id)
        {
            let _ = entry.stop.send(Stop::Cancel);
        }
    }

    fn listen_for_cancels(&self) {
        let weak = Arc::downgrade(&self.inner);
        let mut requests = Box::pin(self.inner.pubsub.subscribe(events::CANCEL_TOPIC));
        let task = tokio::spawn(async move {
            while let Some(payload) = requests.next().await {
                let Some(inner) = weak.upgrade() else { return };
                if let Ok(request) = serde_json::from_str::<events::CancelRequest>(&payload) {
                    Chat { inner }.cancel_local(request.message_id);
                }
            }
        });
        self.keep_background(task.abort_handle());
    }
}
