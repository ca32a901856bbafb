//! One background generation: stream the reply from the provider, keep its text in Redis and
//! publish every delta (in PostgreSQL first, once Redis failed), then store the outcome with `app.chat_finish_message` (no request
//! transaction: the user may be gone, or their session revoked; the reply is stored anyway)
//! and announce it.
//!
//! While it streams, the generation holds a lease on the reply: in Redis (a key naming this
//! instance) and in PostgreSQL (the message's `heartbeat_at`, bumped with the text so far by
//! `app.chat_progress_message`), both renewed every third of `CHAT_LEASE_SECS`. Should the
//! instance die, the lease lapses and another instance finalises the reply (see `sweep`).

use std::{
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use futures_util::StreamExt;
use tokio::{sync::watch, time::Instant};
use uuid::Uuid;

use super::{
    Chat, Stop,
    events::{ChatEvent, MessageData, MessageStatus, topic},
    live::SLOT_LEASE,
    sweep::SHUT_DOWN,
};
use crate::{
    db::functions as sql,
    llm::{ChatRequest, LlmError, StreamEvent},
};

/// What a generation needs, prepared (and committed) by `sendMessage`.
#[derive(Debug, Clone)]
pub struct Generation {
    pub company_id: Uuid,
    pub message_id: Uuid,
    /// The assistant message as created (status `streaming`).
    pub message: MessageData,
    pub request: ChatRequest,
}

/// How a generation ended.
enum Outcome {
    Complete,
    Cancelled,
    Failed(LlmError),
    /// The server shut down before the reply was complete.
    Interrupted,
    /// The reply no longer streams: another instance finalised it (this one was taken for
    /// dead), or it was cancelled or deleted. Nothing is stored or announced.
    Lost,
}

/// The names a generation publishes and stores its deltas under, made once.
struct Names {
    /// The conversation's pub/sub topic, and its Redis channel.
    topic: String,
    channel: String,
    /// The Redis list of the reply's deltas.
    deltas: String,
}

#[derive(Default)]
struct Reply {
    text: String,
    deltas: i64,
    model: Option<String>,
    /// The model the reply was asked of (the company's provider's, or the default's).
    asked_model: Option<String>,
    /// Whether the server's default provider answers (the circuit breaker counts only its
    /// outcomes: one company's broken provider must not refuse everyone's replies).
    by_default: bool,
    usage: Option<(u32, u32)>,
    /// A delta could not be written to Redis: from then on Redis' text of the reply stops
    /// growing, and every delta is stored in PostgreSQL before it is published instead.
    redis_lost: bool,
}

/// The reply as it streams, shared by the stream and the lease keeper of one generation.
#[derive(Default)]
struct Shared(Mutex<Reply>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Reply> {
        // Nothing panics while holding it; should something, the text is still good.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn into_inner(self) -> Reply {
        self.0
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Generation {
    pub(super) async fn run(self, chat: &Chat, mut stop: watch::Receiver<Stop>) {
        let reply = Shared::default();
        crate::metrics::chat_reply_started();
        // The keeper only returns when the reply was lost; the stream ends the generation.
        let outcome = tokio::select! {
            outcome = self.stream(chat, &reply, &mut stop) => outcome,
            () = self.keep_lease(chat, &reply) => Outcome::Lost,
        };
        crate::metrics::chat_reply_finished(match &outcome {
            Outcome::Complete => "complete",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed(_) => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Lost => "lost",
        });
        let reply = reply.into_inner();
        match &outcome {
            Outcome::Complete if reply.by_default => chat.inner.breaker.record_success(),
            Outcome::Complete => {}
            Outcome::Failed(error) => {
                tracing::warn!(message_id = %self.message_id, %error, "reply failed");
                if reply.by_default {
                    chat.inner.breaker.record_failure();
                }
            }
            Outcome::Interrupted => {
                tracing::warn!(message_id = %self.message_id, deltas = reply.deltas,
                    "reply interrupted by the shutdown: storing its text so far");
            }
            Outcome::Lost => {
                tracing::warn!(message_id = %self.message_id,
                    "reply no longer streaming (finalised elsewhere, cancelled or deleted): stopped");
            }
            Outcome::Cancelled => {}
        }
        self.finish(chat, reply, outcome).await;
    }

    /// Streams the reply into `reply` (so a cancel keeps the text so far). A stop is taken
    /// between deltas only, so every delta in the stored text was also published; dropping
    /// the provider's stream aborts the upstream request.
    async fn stream(
        &self,
        chat: &Chat,
        reply: &Shared,
        stop: &mut watch::Receiver<Stop>,
    ) -> Outcome {
        let asked = Instant::now();
        let stopped = |stop: Stop| match stop {
            Stop::Interrupt => Outcome::Interrupted,
            Stop::Cancel | Stop::No => Outcome::Cancelled,
        };
        let resolved = tokio::select! {
            resolved = chat.inner.providers.resolve(&chat.inner.db, self.company_id) => resolved,
            Ok(s) = stop.wait_for(|s| *s != Stop::No) => return stopped(*s),
        };
        let provider = match resolved {
            Ok(resolved) => {
                let mut reply = reply.lock();
                reply.by_default = resolved.is_default;
                reply.asked_model = Some(resolved.provider.model().to_owned());
                resolved.provider
            }
            Err(error) => return Outcome::Failed(error),
        };
        let started = tokio::select! {
            started = provider.stream(self.request.clone()) => started,
            Ok(s) = stop.wait_for(|s| *s != Stop::No) => return stopped(*s),
        };
        let mut events = match started {
            Ok(events) => events,
            Err(error) => return Outcome::Failed(error),
        };
        let topic = topic(self.message.conversation_id);
        let names = Names {
            channel: chat.channel(&topic),
            deltas: chat.live().deltas_key(self.message_id),
            topic,
        };
        loop {
            let event = tokio::select! {
                biased;
                Ok(s) = stop.wait_for(|s| *s != Stop::No) => return stopped(*s),
                event = events.next() => event,
            };
            let Some(event) = event else { break };
            match event {
                Ok(StreamEvent::Delta(text)) => {
                    let index = {
                        let mut reply = reply.lock();
                        let index = reply.deltas;
                        if index == 0 {
                            crate::metrics::chat_first_token(asked.elapsed());
                        }
                        reply.deltas += 1;
                        reply.text.push_str(&text);
                        index
                    };
                    self.publish_delta(chat, &names, reply, index, text).await;
                }
                Ok(StreamEvent::Usage { prompt, completion }) => {
                    crate::metrics::chat_tokens(prompt, completion);
                    reply.lock().usage = Some((prompt, completion));
                }
                Ok(StreamEvent::Model(model)) => reply.lock().model = Some(model),
                Err(error) => return Outcome::Failed(error),
            }
        }
        Outcome::Complete
    }

    /// Holds the lease on the reply while it streams: takes it in Redis at once and renews it
    /// every third of the lease, stores the text so far in PostgreSQL every
    /// `CHAT_PERSIST_INTERVAL_MS` when it grew (and the heartbeat alone every third of the
    /// lease otherwise), and renews the company's slot. Redis and PostgreSQL are renewed side by
    /// side, so neither's outage delays the other. Returns only when the reply no longer streams.
    async fn keep_lease(&self, chat: &Chat, reply: &Shared) {
        let lease = chat.inner.lease;
        let renew_every = lease / 3;
        let mut tick = tokio::time::interval(chat.inner.persist_every.min(renew_every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leased: Option<Instant> = None;
        // `sendMessage` stamped the heartbeat when it stored the placeholder.
        let mut heartbeat = Instant::now();
        let mut slot = Instant::now();
        let mut stored_len = 0;
        loop {
            tick.tick().await;
            let renew_redis = leased.is_none_or(|at| at.elapsed() >= renew_every);
            let renew_slot = slot.elapsed() >= SLOT_LEASE / 3;
            let (text, deltas) = {
                let reply = reply.lock();
                let text = (reply.text.len() != stored_len).then(|| reply.text.clone());
                (text, reply.deltas)
            };
            let write_db = text.is_some() || heartbeat.elapsed() >= renew_every;
            let redis = async {
                if renew_redis {
                    match chat
                        .live()
                        .renew_lease(self.message_id, chat.inner.instance, lease)
                        .await
                    {
                        Ok(()) => leased = Some(Instant::now()),
                        // The heartbeat in PostgreSQL holds the lease meanwhile.
                        Err(error) => {
                            tracing::debug!(%error, "could not renew a reply's lease in redis")
                        }
                    }
                }
                if renew_slot {
                    slot = Instant::now();
                    let _ = chat
                        .live()
                        .acquire_slot(self.company_id, self.message_id, 0)
                        .await;
                }
            };
            let db = async {
                if write_db {
                    Some(
                        progress(
                            chat,
                            self.company_id,
                            self.message_id,
                            text.as_deref(),
                            deltas,
                        )
                        .await,
                    )
                } else {
                    None
                }
            };
            let ((), stored) = tokio::join!(redis, db);
            match stored {
                Some(Ok(true)) => {
                    heartbeat = Instant::now();
                    if let Some(text) = &text {
                        stored_len = text.len();
                    }
                }
                Some(Ok(false)) => return,
                Some(Err(error)) => {
                    tracing::warn!(message_id = %self.message_id, %error,
                        "could not store a streaming reply's progress");
                }
                None => {}
            }
        }
    }

    /// Stores and publishes delta `index`: written before it is published (see `live`), in
    /// one Redis round trip. Once Redis failed for this reply, the delta is stored in
    /// PostgreSQL (with the whole text so far) before it is published instead, so a late
    /// subscriber catches up from there; the event goes through `PubSub`, which falls back to
    /// PostgreSQL too.
    async fn publish_delta(
        &self,
        chat: &Chat,
        names: &Names,
        reply: &Shared,
        index: i64,
        text: String,
    ) {
        let event = ChatEvent::Delta {
            message_id: self.message_id,
            index,
            text,
        };
        let ChatEvent::Delta { text, .. } = &event else {
            return;
        };
        if !reply.lock().redis_lost {
            let sent = match serde_json::to_string(&event) {
                Ok(payload) => {
                    chat.live()
                        .append_and_publish(&names.deltas, index, text, &names.channel, &payload)
                        .await
                }
                Err(error) => Err(error.into()),
            };
            let Err(error) = sent else { return };
            // Subscribers drop a delta they already have, should this repeat one.
            crate::metrics::redis_fallback("chat_live");
            tracing::warn!(%error, message_id = %self.message_id,
                "redis unavailable: the reply's deltas are stored in postgresql first");
            reply.lock().redis_lost = true;
        }
        // The text so far is deltas 0..=index: this task appends to it and then publishes.
        let so_far = reply.lock().text.clone();
        if let Err(error) = progress(
            chat,
            self.company_id,
            self.message_id,
            Some(&so_far),
            index + 1,
        )
        .await
        {
            tracing::warn!(%error, message_id = %self.message_id,
                "could not store a delta: late subscribers may miss it");
        }
        chat.pubsub().publish(&names.topic, &event).await;
    }

    async fn finish(self, chat: &Chat, reply: Reply, outcome: Outcome) {
        let (status, error) = match &outcome {
            Outcome::Complete => (Some(MessageStatus::Complete), None),
            Outcome::Cancelled => (Some(MessageStatus::Cancelled), None),
            Outcome::Failed(error) => (Some(MessageStatus::Failed), Some(error.reason())),
            Outcome::Interrupted => (Some(MessageStatus::Failed), Some(SHUT_DOWN.to_owned())),
            Outcome::Lost => (None, None),
        };
        let model = reply
            .model
            .clone()
            .or_else(|| reply.asked_model.clone())
            .unwrap_or_else(|| chat.model().to_owned());
        let (prompt, completion) = match reply.usage {
            Some((p, c)) => (Some(p as i32), Some(c as i32)),
            None => (None, None),
        };
        let stored = match status {
            None => Ok(false),
            Some(status) => {
                let finished = sql::FinishedReply {
                    company: self.company_id,
                    message: self.message_id,
                    content: &reply.text,
                    status,
                    model: &model,
                    prompt_tokens: prompt,
                    completion_tokens: completion,
                    error: error.as_deref(),
                };
                store(chat, &finished).await
            }
        };
        if let Err(error) = chat.live().finish(self.message_id).await {
            tracing::debug!(%error, "could not shorten the live state's lifetime");
        }
        if let Err(error) = chat
            .live()
            .release_slot(self.company_id, self.message_id)
            .await
        {
            tracing::warn!(%error, "could not release a chat slot; it expires by itself");
        }
        if let Err(error) = chat.live().release_lease(self.message_id).await {
            tracing::debug!(%error, "could not release a reply's lease; it expires by itself");
        }
        let (status, error) = match (stored, status) {
            (Ok(true), Some(status)) => (status, error),
            // Deleted, cleared or finalised meanwhile (or lost): nothing to announce.
            (Ok(_), _) => return,
            // Subscribers must not wait for an end that never comes.
            (Err(()), _) => (
                MessageStatus::Failed,
                Some("the reply could not be stored".to_owned()),
            ),
        };
        let message = MessageData {
            content: reply.text,
            status,
            model: Some(model),
            prompt_tokens: prompt,
            completion_tokens: completion,
            ..self.message
        };
        let topic = topic(message.conversation_id);
        let event = match error {
            Some(reason) => ChatEvent::Failed { message, reason },
            None => ChatEvent::Completed { message },
        };
        chat.pubsub().publish(&topic, &event).await;
        tracing::info!(message_id = %self.message_id, ?status, deltas = reply.deltas, "reply stored");
    }
}

/// Stores the text so far of a streaming reply (unless `None`), made of its first `deltas`
/// deltas, and bumps its heartbeat; whether it still streams. A text of fewer deltas than
/// the one stored is not stored (progress and deltas are written from two tasks).
async fn progress(
    chat: &Chat,
    company: Uuid,
    message: Uuid,
    text: Option<&str>,
    deltas: i64,
) -> Result<bool, crate::db::DbErr> {
    sql::chat_progress_message(&chat.inner.db, company, message, text, deltas).await
}

/// Stores the outcome, retrying briefly if the database is unavailable. Whether the message
/// was still streaming (and so changed); `Err` when it could not be stored at all.
async fn store(chat: &Chat, reply: &sql::FinishedReply<'_>) -> Result<bool, ()> {
    for attempt in 0..5u32 {
        match sql::chat_finish_message(&chat.inner.db, reply).await {
            Ok(changed) => return Ok(changed),
            Err(err) => {
                tracing::error!(message_id = %reply.message, error = %err, attempt, "could not store a reply");
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempt)).await;
            }
        }
    }
    Err(())
}
