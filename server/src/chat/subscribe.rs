//! A subscriber's view of a conversation: the catch-up of a reply already streaming (one
//! `Started` and one delta holding the text so far), then the live events without the deltas
//! the catch-up already holds. See `live` for why nothing is lost or repeated.

use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::{
    Chat,
    events::{ChatEvent, MessageData},
};

/// What a subscriber has already been given of the streaming reply.
#[derive(Debug, Default)]
struct Seen {
    /// The reply being followed, and the index of the last delta given (by the catch-up or
    /// live): a delta at or below it is a repeat.
    caught_up: Option<(Uuid, i64)>,
}

impl Seen {
    /// Whether to pass `event` on; remembers the deltas passed.
    fn pass(&mut self, event: &ChatEvent) -> bool {
        let keep = self.keeps(event);
        if keep
            && let ChatEvent::Delta {
                message_id, index, ..
            } = event
        {
            self.caught_up = Some((*message_id, *index));
        }
        keep
    }

    fn keeps(&self, event: &ChatEvent) -> bool {
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

/// The events of a conversation for one subscriber. `live` must have been subscribed to
/// before `streaming` (the reply streaming, if any) was read from the database.
pub async fn conversation_events<L>(
    chat: &Chat,
    live: L,
    streaming: Option<MessageData>,
) -> impl Stream<Item = ChatEvent> + Send + 'static + use<L>
where
    L: Stream<Item = Arc<str>> + Send + 'static,
{
    let mut first = Vec::new();
    let mut seen = Seen::default();
    if let Some(message) = streaming {
        let id = message.id;
        let so_far = match chat.live().read(id).await {
            Ok(so_far) => so_far,
            Err(error) => {
                tracing::warn!(%error, "redis unavailable: no catch-up for a late subscriber");
                None
            }
        };
        first.push(ChatEvent::Started { message });
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
    let live = live.filter_map(move |payload| {
        let event = serde_json::from_str::<ChatEvent>(&payload)
            .ok()
            .filter(|event| seen.pass(event));
        async move { event }
    });
    futures_util::stream::iter(first).chain(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_what_the_catch_up_holds_and_keeps_the_rest() {
        let id = Uuid::now_v7();
        let other = Uuid::now_v7();
        let seen = Seen {
            caught_up: Some((id, 3)),
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
}
