//! One background generation: stream the reply from the provider, hand every delta to this
//! instance's subscribers and queue it for Redis, which keeps the text and takes it to the other
//! instances (see `relay`; once Redis failed, the delta is stored in PostgreSQL first and
//! published the slow way, until Redis answers again), then store the outcome with `app.chat_finish_message` (no request
//! transaction: the user may be gone, or their session revoked; the reply is stored anyway)
//! and announce it.
//!
//! While it streams, the generation holds a lease on the reply: in Redis (a key naming this
//! instance) and in PostgreSQL (the message's `heartbeat_at`, bumped with the text so far by
//! `app.chat_progress_message`), both renewed every third of `CHAT_LEASE_SECS`. Should the
//! instance die, the lease lapses and another instance finalises the reply (see `sweep`).

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures_util::StreamExt;
use tokio::{sync::watch, time::Instant};
use uuid::Uuid;

use super::{
    Chat, Stop,
    events::{ChatEvent, MessageData, MessageStatus, topic},
    live::SLOT_LEASE,
    relay::Relay,
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
    /// The conversation's pub/sub topic.
    topic: String,
    /// The Redis list of the reply's deltas.
    deltas: String,
}

/// How long a reply whose deltas go the slow way (Redis failed) waits before it writes its
/// text so far back to Redis, once Redis takes its events again.
const BACK_TO_REDIS: Duration = Duration::from_secs(1);

#[derive(Default, Clone)]
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
}

/// The reply as it streams, shared by the stream and the lease keeper of one generation, and
/// read by the subscribers on this instance that join while it streams.
#[derive(Default)]
pub(super) struct Shared(Mutex<Reply>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Reply> {
        // Nothing panics while holding it; should something, the text is still good.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The text so far and the index of its last delta; `None` before the first delta.
    pub(super) fn so_far(&self) -> Option<(String, i64)> {
        let reply = self.lock();
        (reply.deltas > 0).then(|| (reply.text.clone(), reply.deltas - 1))
    }
}

/// How the deltas of a reply whose Redis list missed some go out (see `relay`).
#[derive(Default)]
struct SlowWay {
    /// When the reply's text so far may be written back to Redis.
    retry_at: Option<Instant>,
    /// Whether the last delta published the slow way went through Redis (which is then back).
    via_redis: bool,
}

impl Generation {
    pub(super) async fn run(
        self,
        chat: &Chat,
        reply: &Arc<Shared>,
        mut stop: watch::Receiver<Stop>,
    ) {
        crate::metrics::chat_reply_started();
        let topic = topic(self.message.conversation_id);
        let names = Names {
            deltas: chat.live().deltas_key(self.message_id),
            topic,
        };
        let relay = Relay::new(names.deltas.clone(), names.topic.clone());
        let mut slow = SlowWay::default();
        // The keeper only returns when the reply was lost; the stream ends the generation.
        let outcome = tokio::select! {
            outcome = self.stream(chat, &names, &relay, &mut slow, reply, &mut stop) => outcome,
            () = self.keep_lease(chat, reply) => Outcome::Lost,
        };
        // Every delta reaches the other instances before the end does: the end is published
        // once Redis took the last batch holding one of this reply's deltas.
        chat.outbox().settle(&relay).await;
        self.resend(chat, &names, &relay, &mut slow, reply).await;
        crate::metrics::chat_reply_finished(match &outcome {
            Outcome::Complete => "complete",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed(_) => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Lost => "lost",
        });
        let reply = reply.lock().clone();
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
        names: &Names,
        relay: &Arc<Relay>,
        slow: &mut SlowWay,
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
        loop {
            let event = tokio::select! {
                biased;
                Ok(s) = stop.wait_for(|s| *s != Stop::No) => return stopped(*s),
                // Redis missed deltas: they go the slow way at once, not with the next one.
                () = relay.handed_back.notified() => None,
                event = events.next() => Some(event),
            };
            let Some(event) = event else {
                self.resend(chat, names, relay, slow, reply).await;
                continue;
            };
            let Some(event) = event else { break };
            match event {
                Ok(StreamEvent::Delta(text)) => {
                    let (index, before) = {
                        let mut reply = reply.lock();
                        let index = reply.deltas;
                        if index == 0 {
                            crate::metrics::chat_first_token(asked.elapsed());
                        }
                        reply.deltas += 1;
                        let before = reply.text.len();
                        reply.text.push_str(&text);
                        (index, before)
                    };
                    self.publish_delta(chat, names, relay, slow, reply, index, before, text)
                        .await;
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

    /// Hands delta `index` (appended to the reply at byte `before`) to this instance's
    /// subscribers and queues it for Redis, which stores it before it publishes it to the other
    /// instances (see `relay`). Once Redis missed a delta of this reply, the delta is stored in
    /// PostgreSQL (with the whole text so far) before it is published instead, so a late
    /// subscriber catches up from there; the event goes through `PubSub`, which falls back to
    /// PostgreSQL too. A second after that, once Redis takes the events again, the text so far
    /// is written back to Redis and the deltas go the fast way again.
    #[allow(clippy::too_many_arguments)]
    async fn publish_delta(
        &self,
        chat: &Chat,
        names: &Names,
        relay: &Arc<Relay>,
        slow: &mut SlowWay,
        reply: &Shared,
        index: i64,
        before: usize,
        text: String,
    ) {
        let event = ChatEvent::Delta {
            message_id: self.message_id,
            index,
            text,
        };
        let mut json = match serde_json::to_string(&event) {
            Ok(json) => json,
            Err(error) => {
                tracing::error!(%error, "a delta that is not serializable");
                return;
            }
        };
        let ChatEvent::Delta { text, .. } = &event else {
            return;
        };
        if relay.is_lost() {
            self.resend(chat, names, relay, slow, reply).await;
            self.back_to_redis(chat, relay, slow, reply, index, before)
                .await;
        }
        if !relay.is_lost() {
            // Stored in the reply before it is handed out: a subscriber that joins meanwhile
            // reads it there (see `subscribe`).
            chat.pubsub().dispatch_here(&names.topic, &json);
            match chat.outbox().queue(relay, text, json) {
                Ok(()) => return,
                // Lost meanwhile: the subscribers here have it (they drop the repeat below).
                Err(back) => json = back,
            }
        }
        self.resend(chat, names, relay, slow, reply).await;
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
        let route = chat.pubsub().publish_json(&names.topic, &json, None).await;
        slow.via_redis = route == crate::pubsub::Route::Redis;
    }

    /// Publishes the slow way the deltas Redis missed (once none of this reply is still
    /// queued), after storing the text so far in PostgreSQL.
    async fn resend(
        &self,
        chat: &Chat,
        names: &Names,
        relay: &Relay,
        slow: &mut SlowWay,
        reply: &Shared,
    ) {
        if !relay.is_lost() {
            return;
        }
        chat.outbox().settle(relay).await;
        let unsent = relay.take_unsent();
        if unsent.is_empty() {
            return;
        }
        if slow.retry_at.is_none() {
            tracing::warn!(message_id = %self.message_id,
                "redis unavailable: the reply's deltas are stored in postgresql first");
        }
        slow.retry_at = Some(Instant::now() + BACK_TO_REDIS);
        let (so_far, deltas) = {
            let reply = reply.lock();
            (reply.text.clone(), reply.deltas)
        };
        if let Err(error) = progress(
            chat,
            self.company_id,
            self.message_id,
            Some(&so_far),
            deltas,
        )
        .await
        {
            tracing::warn!(%error, message_id = %self.message_id,
                "could not store a reply's text so far: late subscribers may miss some");
        }
        for json in unsent {
            let route = chat.pubsub().publish_json(&names.topic, &json, None).await;
            slow.via_redis = route == crate::pubsub::Route::Redis;
        }
    }

    /// Writes the text so far before delta `index` (the reply's first `before` bytes) back to
    /// Redis when it is time to and Redis takes events again: the deltas go the fast way again.
    async fn back_to_redis(
        &self,
        chat: &Chat,
        relay: &Relay,
        slow: &mut SlowWay,
        reply: &Shared,
        index: i64,
        before: usize,
    ) {
        if !slow.via_redis || slow.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let base = reply.lock().text.get(..before).map(str::to_owned);
        let Some(base) = base else { return };
        match chat.live().rebase(self.message_id, &base, index - 1).await {
            Ok(()) => {
                tracing::info!(message_id = %self.message_id,
                    "redis answers again: the reply's deltas go through it again");
                relay.recovered();
                slow.retry_at = None;
            }
            Err(error) => {
                tracing::debug!(%error, "redis still unavailable for a reply's text");
                slow.retry_at = Some(Instant::now() + BACK_TO_REDIS);
            }
        }
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
        chat.pubsub().publish_here_first(&topic, &event).await;
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
