//! One background generation: stream the reply from the provider, keep its text in Redis and
//! publish every delta, then store the outcome with `app.chat_finish_message` (no request
//! transaction: the user may be gone, or their session revoked; the reply is stored anyway)
//! and announce it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sea_orm::{DbBackend, Statement};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    Chat,
    events::{ChatEvent, MessageData, topic},
    live::SLOT_LEASE,
};
use crate::llm::{ChatRequest, LlmError, StreamEvent};

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
}

#[derive(Default)]
struct Reply {
    text: String,
    deltas: i64,
    model: Option<String>,
    usage: Option<(u32, u32)>,
}

impl Generation {
    pub(super) async fn run(self, chat: &Chat, mut cancel: watch::Receiver<bool>) {
        let mut reply = Reply::default();
        crate::metrics::chat_reply_started();
        let outcome = self.stream(chat, &mut reply, &mut cancel).await;
        crate::metrics::chat_reply_finished(match &outcome {
            Outcome::Complete => "complete",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed(_) => "failed",
        });
        match &outcome {
            Outcome::Complete => chat.inner.breaker.record_success(),
            Outcome::Failed(error) => {
                tracing::warn!(message_id = %self.message_id, %error, "reply failed");
                chat.inner.breaker.record_failure();
            }
            Outcome::Cancelled => {}
        }
        self.finish(chat, reply, outcome).await;
    }

    /// Streams the reply into `reply` (so a cancel keeps the text so far). A cancel is taken
    /// between deltas only, so every delta in the stored text was also published; dropping
    /// the provider's stream aborts the upstream request.
    async fn stream(
        &self,
        chat: &Chat,
        reply: &mut Reply,
        cancel: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let asked = Instant::now();
        let started = tokio::select! {
            started = chat.inner.provider.stream(self.request.clone()) => started,
            Ok(_) = cancel.wait_for(|c| *c) => return Outcome::Cancelled,
        };
        let mut events = match started {
            Ok(events) => events,
            Err(error) => return Outcome::Failed(error),
        };
        let mut renewed = Instant::now();
        loop {
            let event = tokio::select! {
                biased;
                Ok(_) = cancel.wait_for(|c| *c) => return Outcome::Cancelled,
                event = events.next() => event,
            };
            let Some(event) = event else { break };
            match event {
                Ok(StreamEvent::Delta(text)) => {
                    let index = reply.deltas;
                    if index == 0 {
                        crate::metrics::chat_first_token(asked.elapsed());
                    }
                    reply.deltas += 1;
                    reply.text.push_str(&text);
                    self.publish_delta(chat, index, text).await;
                    if renewed.elapsed() > SLOT_LEASE / 3 {
                        renewed = Instant::now();
                        let _ = chat
                            .live()
                            .acquire_slot(self.company_id, self.message_id, 0)
                            .await;
                    }
                }
                Ok(StreamEvent::Usage { prompt, completion }) => {
                    crate::metrics::chat_tokens(prompt, completion);
                    reply.usage = Some((prompt, completion));
                }
                Ok(StreamEvent::Model(model)) => reply.model = Some(model),
                Err(error) => return Outcome::Failed(error),
            }
        }
        Outcome::Complete
    }

    /// Stores and publishes delta `index`: written before it is published (see `live`), in
    /// one Redis round trip. Without Redis, subscribers on this instance still get it.
    async fn publish_delta(&self, chat: &Chat, index: i64, text: String) {
        let topic = topic(self.message.conversation_id);
        let event = ChatEvent::Delta {
            message_id: self.message_id,
            index,
            text,
        };
        let ChatEvent::Delta { text, .. } = &event else {
            return;
        };
        let sent = match serde_json::to_string(&event) {
            Ok(payload) => {
                chat.live()
                    .append_and_publish(
                        self.message_id,
                        index,
                        text,
                        &chat.channel(&topic),
                        &payload,
                    )
                    .await
            }
            Err(error) => Err(error.into()),
        };
        if let Err(error) = sent {
            // Subscribers drop a delta they already have, should this repeat one.
            crate::metrics::redis_error("chat_live");
            crate::metrics::redis_fallback("chat_live");
            tracing::warn!(%error, "redis unavailable: late subscribers miss the catch-up");
            if let Err(error) = chat.live().append(self.message_id, index, text).await {
                tracing::debug!(%error, "partial text not kept");
            }
            chat.pubsub().publish(&topic, &event).await;
        }
    }

    async fn finish(self, chat: &Chat, reply: Reply, outcome: Outcome) {
        let (status, error) = match &outcome {
            Outcome::Complete => ("complete", None),
            Outcome::Cancelled => ("cancelled", None),
            Outcome::Failed(error) => ("failed", Some(error.reason())),
        };
        let model = reply
            .model
            .clone()
            .unwrap_or_else(|| chat.model().to_owned());
        let (prompt, completion) = match reply.usage {
            Some((p, c)) => (Some(p as i32), Some(c as i32)),
            None => (None, None),
        };
        let stored = store(
            chat,
            self.company_id,
            self.message_id,
            &reply.text,
            status,
            &model,
            (prompt, completion),
            error.as_deref(),
        )
        .await;
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
        let (status, error) = match stored {
            Ok(true) => (status, error),
            // Deleted or cleared meanwhile: nothing to announce.
            Ok(false) => return,
            // Subscribers must not wait for an end that never comes.
            Err(()) => ("failed", Some("the reply could not be stored".to_owned())),
        };
        let message = MessageData {
            content: reply.text,
            status: status.to_owned(),
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
        tracing::info!(message_id = %self.message_id, status, deltas = reply.deltas, "reply stored");
    }
}

/// Stores the outcome, retrying briefly if the database is unavailable. Whether the message
/// was still streaming (and so changed); `Err` when it could not be stored at all.
#[allow(clippy::too_many_arguments)]
async fn store(
    chat: &Chat,
    company: Uuid,
    message: Uuid,
    text: &str,
    status: &str,
    model: &str,
    (prompt, completion): (Option<i32>, Option<i32>),
    error: Option<&str>,
) -> Result<bool, ()> {
    for attempt in 0..5u32 {
        let result = crate::db::query_one_as(
            &chat.inner.db,
            crate::db::SystemRole::Worker,
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app.chat_finish_message($1, $2, $3, $4, $5, $6, $7, $8) AS changed",
                [
                    company.into(),
                    message.into(),
                    text.into(),
                    status.into(),
                    model.into(),
                    prompt.into(),
                    completion.into(),
                    error.map(str::to_owned).into(),
                ],
            ),
        )
        .await
        .and_then(|row| match row {
            Some(row) => row.try_get::<bool>("", "changed"),
            None => Ok(false),
        });
        match result {
            Ok(changed) => return Ok(changed),
            Err(err) => {
                tracing::error!(message_id = %message, error = %err, attempt, "could not store a reply");
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempt)).await;
            }
        }
    }
    Err(())
}
