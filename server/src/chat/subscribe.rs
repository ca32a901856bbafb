//! A subscriber's view of a conversation: the catch-up of a reply already streaming (one
//! `Started` and one delta holding the text so far), then the live events without the deltas
//! the catch-up already holds. See `live` for why nothing is lost or repeated.

use std::{collections::VecDeque, sync::Arc};

use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::{
    Chat,
    events::{ChatEvent, LoadMessage, Notice, StoredMessage, final_event},
};

/// Replies whose end a subscriber remembers, to drop a repeated end.
const ENDED: usize = 16;

/// What a subscriber has already been given of the streaming reply.
#[derive(Debug, Default)]
struct Seen {
    /// The reply being followed, and the index of the last delta given (by the catch-up or
    /// live): a delta at or below it is a repeat.
    caught_up: Option<(Uuid, i64)>,
    /// The replies whose end was given, latest last: anything more of them is a repeat.
    ended: VecDeque<Uuid>,
}

impl Seen {
    /// Whether to pass `event` on; remembers what it passes.
    fn pass(&mut self, event: &ChatEvent) -> bool {
        let keep = self.keeps(event);
        if keep {
            match event {
                ChatEvent::Delta {
                    message_id, index, ..
                } => self.caught_up = Some((*message_id, *index)),
                ChatEvent::Started { message } => self.caught_up = Some((message.id, -1)),
                ChatEvent::Completed { message } | ChatEvent::Failed { message, .. } => {
                    if self.ended.len() == ENDED {
                        self.ended.pop_front();
                    }
                    self.ended.push_back(message.id);
                }
            }
        }
        keep
    }

    fn keeps(&self, event: &ChatEvent) -> bool {
        let id = match event {
            ChatEvent::Started { message }
            | ChatEvent::Completed { message }
            | ChatEvent::Failed { message, .. } => message.id,
            ChatEvent::Delta { message_id, .. } => *message_id,
        };
        if self.ended.contains(&id) {
            return false;
        }
        let Some((message, index)) = self.caught_up else {
            return true;
        };
        match event {
            ChatEvent::Started { message: m } => m.id != message,
            ChatEvent::Delta {
                message_id,
                index: i,
                ..
            } => *message_id != message || *i > index,
            _ => true,
        }
    }
}

/// What arrives on a conversation's topic.
enum Received {
    Event(ChatEvent),
    /// The end of a reply, to be read from the database.
    Stored(Uuid),
}

/// A delta as it travels (see [`ChatEvent`]), read as a plain struct: a reply's deltas are
/// nearly all a subscriber receives, and an internally tagged enum is read through a buffer of
/// its own.
#[derive(serde::Deserialize)]
struct DeltaPayload {
    message_id: Uuid,
    index: i64,
    text: String,
}

/// How a delta's payload begins (`serde_json` writes the tag first).
const DELTA_PREFIX: &str = r#"{"type":"delta","#;

fn decode(payload: &str) -> Option<Received> {
    if payload.starts_with(DELTA_PREFIX)
        && let Ok(delta) = serde_json::from_str::<DeltaPayload>(payload)
    {
        return Some(Received::Event(ChatEvent::Delta {
            message_id: delta.message_id,
            index: delta.index,
            text: delta.text,
        }));
    }
    if let Ok(event) = serde_json::from_str::<ChatEvent>(payload) {
        return Some(Received::Event(event));
    }
    match serde_json::from_str::<Notice>(payload).ok()? {
        Notice::Stored { message_id } => Some(Received::Stored(message_id)),
    }
}

/// The text so far of a streaming reply and the index of its last delta: the longer of what
/// Redis holds and what the generator last stored in PostgreSQL (`streaming.content`, made of
/// its first `content_deltas` deltas), or what PostgreSQL holds alone when Redis cannot be read.
fn text_so_far(
    from_redis: Option<(String, i64)>,
    streaming: &StoredMessage,
) -> Option<(String, i64)> {
    let persisted = streaming
        .content_deltas
        .filter(|deltas| *deltas > 0)
        .map(|deltas| (streaming.message.content.clone(), deltas - 1));
    match (from_redis, persisted) {
        (Some(redis), Some(db)) => Some(if db.1 > redis.1 { db } else { redis }),
        (redis, db) => redis.or(db),
    }
}

/// The events of a conversation for one subscriber. `live` must have been subscribed to
/// before `streaming` (the reply streaming, if any) was read from the database; `load` reads
/// the end of a reply that arrives as a [`Notice::Stored`].
pub async fn conversation_events<L>(
    chat: &Chat,
    live: L,
    streaming: Option<StoredMessage>,
    load: LoadMessage,
) -> impl Stream<Item = ChatEvent> + Send + 'static + use<L>
where
    L: Stream<Item = Arc<str>> + Send + 'static,
{
    let mut first = Vec::new();
    let mut seen = Seen::default();
    if let Some(row) = streaming {
        let id = row.message.id;
        // Generated here: the reply itself holds every delta handed to the subscribers here
        // (each is added to it before it is handed out), and those of the other instances.
        let so_far = match chat.so_far_here(id) {
            Some(here) => text_so_far(here, &row),
            None => {
                let from_redis = match chat.live().read(id).await {
                    Ok(so_far) => so_far,
                    Err(error) => {
                        tracing::warn!(%error, "redis unavailable: the catch-up of a late subscriber comes from postgresql");
                        None
                    }
                };
                text_so_far(from_redis, &row)
            }
        };
        first.push(ChatEvent::Started {
            message: row.message,
        });
        match so_far {
            Some((text, index)) => {
                first.push(ChatEvent::Delta {
                    message_id: id,
                    index,
                    text,
                });
                seen.caught_up = Some((id, index));
            }
            None => seen.caught_up = Some((id, -1)),
        }
    }
    let live = live
        .filter_map(move |payload| {
            let load = Arc::clone(&load);
            async move {
                match decode(&payload)? {
                    Received::Event(event) => Some(event),
                    Received::Stored(id) => load(id).await.and_then(final_event),
                }
            }
        })
        .filter_map(move |event| {
            let keep = seen.pass(&event);
            async move { keep.then_some(event) }
        });
    futures_util::stream::iter(first).chain(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::events::MessageData;

    #[test]
    fn drops_what_the_catch_up_holds_and_keeps_the_rest() {
        let id = Uuid::now_v7();
        let other = Uuid::now_v7();
        let seen = Seen {
            caught_up: Some((id, 3)),
            ..Seen::default()
        };
        let delta = |message_id, index| ChatEvent::Delta {
            message_id,
            index,
            text: "x".into(),
        };
        assert!(!seen.keeps(&delta(id, 2)));
        assert!(!seen.keeps(&delta(id, 3)));
        assert!(seen.keeps(&delta(id, 4)));
        assert!(seen.keeps(&delta(other, 0)));
        assert!(Seen::default().keeps(&delta(id, 0)));
    }

    #[test]
    fn every_event_decodes_as_it_was_published() {
        let id = Uuid::now_v7();
        let events = [
            ChatEvent::Delta {
                message_id: id,
                index: 7,
                text: "a \"quoted\" \u{e9} delta\n".into(),
            },
            ChatEvent::Started {
                message: message(id),
            },
            ChatEvent::Completed {
                message: message(id),
            },
            ChatEvent::Failed {
                message: message(id),
                reason: "x".into(),
            },
        ];
        for event in events {
            let payload = serde_json::to_string(&event).unwrap_or_default();
            assert_eq!(
                payload.starts_with(DELTA_PREFIX),
                matches!(event, ChatEvent::Delta { .. })
            );
            assert!(matches!(decode(&payload), Some(Received::Event(e)) if e == event));
        }
        let notice = serde_json::to_string(&Notice::Stored { message_id: id }).unwrap_or_default();
        assert!(matches!(decode(&notice), Some(Received::Stored(m)) if m == id));
        assert!(decode(r#"{"type":"delta","index":"nonsense"}"#).is_none());
    }

    #[test]
    fn a_repeated_live_delta_is_dropped() {
        let id = Uuid::now_v7();
        let mut seen = Seen::default();
        let delta = |index| ChatEvent::Delta {
            message_id: id,
            index,
            text: "x".into(),
        };
        assert!(seen.pass(&delta(0)));
        assert!(seen.pass(&delta(1)));
        assert!(!seen.pass(&delta(1)));
        assert!(seen.pass(&delta(2)));
    }

    fn message(id: Uuid) -> MessageData {
        MessageData {
            id,
            conversation_id: Uuid::now_v7(),
            role: crate::chat::events::MessageRole::Assistant,
            content: String::new(),
            status: crate::chat::events::MessageStatus::Complete,
            created_at: chrono::Utc::now(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
        }
    }

    #[test]
    fn a_repeated_start_or_end_is_dropped_and_nothing_follows_an_end() {
        let id = Uuid::now_v7();
        let mut seen = Seen::default();
        let started = ChatEvent::Started {
            message: message(id),
        };
        let completed = ChatEvent::Completed {
            message: message(id),
        };
        let delta = |index| ChatEvent::Delta {
            message_id: id,
            index,
            text: "x".into(),
        };
        assert!(seen.pass(&started));
        assert!(!seen.pass(&started));
        assert!(seen.pass(&delta(0)));
        assert!(seen.pass(&completed));
        assert!(!seen.pass(&completed));
        assert!(!seen.pass(&delta(1)));
        assert!(!seen.pass(&started));
        let failed = ChatEvent::Failed {
            message: message(id),
            reason: "x".into(),
        };
        assert!(!seen.pass(&failed));
        // The next reply goes through.
        assert!(seen.pass(&ChatEvent::Started {
            message: message(Uuid::now_v7())
        }));
    }

    #[test]
    fn the_catch_up_is_the_longer_of_redis_and_postgresql() {
        let row = |content: &str, deltas: Option<i64>| StoredMessage {
            message: MessageData {
                content: content.into(),
                status: crate::chat::events::MessageStatus::Streaming,
                ..message(Uuid::now_v7())
            },
            error: None,
            content_deltas: deltas,
        };
        let redis = Some(("ab".to_owned(), 1));
        assert_eq!(text_so_far(redis.clone(), &row("a", Some(1))), redis);
        assert_eq!(
            text_so_far(redis.clone(), &row("abc", Some(3))),
            Some(("abc".to_owned(), 2))
        );
        assert_eq!(
            text_so_far(None, &row("abc", Some(3))),
            Some(("abc".to_owned(), 2))
        );
        // Nothing stored yet, or stored without its delta count: no catch-up from PostgreSQL.
        assert_eq!(text_so_far(None, &row("", Some(0))), None);
        assert_eq!(text_so_far(None, &row("abc", None)), None);
        assert_eq!(text_so_far(redis.clone(), &row("abc", None)), redis);
    }
}
