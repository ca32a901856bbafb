//! Replies are never stranded: every instance looks, at start-up and every `CHAT_SWEEP_SECS`,
//! for streaming replies whose generator went silent — its heartbeat in PostgreSQL older than
//! `CHAT_LEASE_SECS` and its lease in Redis lapsed (or Redis unavailable) — and finalises them:
//! `failed`, with the text streamed so far (the generator's text in Redis when it is there,
//! else what the generator last stored in PostgreSQL) and a reason saying the generation was
//! interrupted. It announces `MessageFailed` and frees the company's slot, and the
//! conversation accepts messages again.
//!
//! Exactly once: an instance first claims the lapsed lease in Redis (`SET NX`), and
//! `app.chat_interrupt_message` changes a reply only while it is still streaming and silent,
//! skipping a row another sweeper has locked.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    Chat,
    events::{ChatEvent, MessageData, MessageStatus, topic},
};
use crate::db::functions::{self as sql, Interrupted};

/// The reason stored with a reply whose generator stopped showing signs of life.
pub const INTERRUPTED: &str =
    "the generation was interrupted: the server generating the reply stopped responding";
/// The reason stored with a reply still streaming when the drain time of a shutdown ran out.
pub const SHUT_DOWN: &str =
    "the generation was interrupted: the server shut down before the reply was complete";

/// Most replies one sweep finalises (the next sweep takes the rest).
const BATCH: i32 = 100;

impl Chat {
    /// Sweeps at once, then every `CHAT_SWEEP_SECS`, until the chat is dropped or aborted.
    pub(super) fn start_sweeping(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.sweep_every;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Chat { inner }.sweep().await;
            }
        });
        self.keep_background(task.abort_handle());
    }

    /// Finalises the replies whose lease lapsed; how many it finalised.
    pub async fn sweep(&self) -> usize {
        let silent = sql::chat_silent_replies(&self.inner.db, self.inner.lease, BATCH).await;
        let silent = match silent {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "could not look for stranded replies");
                return 0;
            }
        };
        let mut finalised = 0;
        for id in silent {
            if self.finalise(id).await {
                finalised += 1;
            }
        }
        finalised
    }

    /// Finalises reply `id`, silent in PostgreSQL, unless its lease in Redis is still held.
    async fn finalise(&self, id: Uuid) -> bool {
        let live = self.live();
        let text = match live
            .claim_lease(id, self.inner.instance, self.inner.lease)
            .await
        {
            // Its generator renews the lease in Redis (it may not reach PostgreSQL for now),
            // or another instance finalises it.
            Ok(false) => return false,
            Ok(true) => match live.read(id).await {
                Ok(so_far) => so_far.map(|(text, _)| text),
                Err(error) => {
                    tracing::debug!(%error, "the text so far of a stranded reply is not in redis");
                    None
                }
            },
            // From PostgreSQL alone while Redis is unavailable.
            Err(error) => {
                tracing::debug!(%error, "redis unavailable: a stranded reply is finalised from postgresql");
                None
            }
        };
        let row = sql::chat_interrupt_message(
            &self.inner.db,
            id,
            text.as_deref(),
            INTERRUPTED,
            self.inner.lease,
        )
        .await;
        let row = match row {
            Ok(row) => row,
            Err(error) => {
                tracing::warn!(message_id = %id, %error, "could not finalise a stranded reply");
                return false;
            }
        };
        let Some(row) = row else {
            // Finalised elsewhere meanwhile, or its generator spoke again.
            return false;
        };
        let (company, message) = interrupted_message(id, row);
        let _ = live.finish(id).await;
        let _ = live.release_slot(company, id).await;
        let _ = live.release_lease(id).await;
        tracing::warn!(message_id = %id, chars = message.content.chars().count(),
            "a reply whose generator went silent was stored as failed with its text so far");
        let topic = topic(message.conversation_id);
        self.pubsub()
            .publish(
                &topic,
                &ChatEvent::Failed {
                    message,
                    reason: INTERRUPTED.to_owned(),
                },
            )
            .await;
        true
    }
}

/// The company and the message `app.chat_interrupt_message` returned.
fn interrupted_message(id: Uuid, row: Interrupted) -> (Uuid, MessageData) {
    (
        row.company_id,
        MessageData {
            id,
            conversation_id: row.conversation_id,
            role: row.role,
            content: row.content,
            status: MessageStatus::Failed,
            created_at: row.created_at,
            model: row.model,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
        },
    )
}
