//! What travels on a conversation's pub/sub topic, from the generating instance to the
//! subscribers on every instance.

use chrono::{DateTime, Utc};
pub use entity::messages::{MessageRole, MessageStatus};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The pub/sub topic of a conversation's events.
pub fn topic(conversation_id: Uuid) -> String {
    format!("chat:{conversation_id}")
}

/// The pub/sub topic every instance listens on for `cancelReply`.
pub const CANCEL_TOPIC: &str = "chat:cancel";

/// A message as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageData {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
}

/// A message as stored, as the chat service reads it for the streaming: what events carry, and
/// what the stored row adds for a subscriber who joins while a reply streams or reads the end
/// of a reply back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub message: MessageData,
    /// The reason stored with a failed reply.
    pub error: Option<String>,
    /// How many deltas the stored text of a streaming reply is made of (`None`: not counted).
    pub content_deltas: Option<i64>,
}

/// The end of a stored reply as an event: `Failed` with the stored reason, else `Completed`.
/// `None` while it still streams.
pub fn final_event(stored: StoredMessage) -> Option<ChatEvent> {
    let StoredMessage { message, error, .. } = stored;
    match message.status {
        MessageStatus::Streaming => None,
        MessageStatus::Failed => {
            let reason = error.unwrap_or_else(|| "the reply failed".to_owned());
            Some(ChatEvent::Failed { message, reason })
        }
        MessageStatus::Complete | MessageStatus::Cancelled => {
            Some(ChatEvent::Completed { message })
        }
    }
}

/// One event of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// An assistant reply started streaming.
    Started { message: MessageData },
    /// More text of a streaming reply; `index` counts deltas of the message from 0.
    Delta {
        message_id: Uuid,
        index: i64,
        text: String,
    },
    /// The reply ended and is stored: complete, or cancelled with its partial text.
    Completed { message: MessageData },
    /// The reply failed; its partial text is stored with status `failed`.
    Failed {
        message: MessageData,
        reason: String,
    },
}

impl crate::pubsub::Event for ChatEvent {
    /// The end of a reply with a long text cannot travel as a PostgreSQL notification: a
    /// [`Notice::Stored`] goes instead, and each subscription reads the message itself.
    fn stand_in(&self) -> Option<String> {
        match self {
            Self::Completed { message } | Self::Failed { message, .. } => {
                serde_json::to_string(&Notice::Stored {
                    message_id: message.id,
                })
                .ok()
            }
            Self::Started { .. } | Self::Delta { .. } => None,
        }
    }
}

/// What stands in for an event too large to be carried (see [`ChatEvent::stand_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// The reply `message_id` ended and is stored; subscribers read it from the database.
    Stored { message_id: Uuid },
}

/// Reads a message of the conversation as its subscriber (Row Level Security applies), for a
/// [`Notice::Stored`]; `None` when it cannot be read.
pub type LoadMessage = std::sync::Arc<
    dyn Fn(Uuid) -> futures_util::future::BoxFuture<'static, Option<StoredMessage>> + Send + Sync,
>;

/// Asks whichever instance runs a generation to stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub message_id: Uuid,
}

impl crate::pubsub::Event for CancelRequest {}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(content: String) -> MessageData {
        MessageData {
            id: Uuid::now_v7(),
            conversation_id: Uuid::now_v7(),
            role: MessageRole::Assistant,
            content,
            status: MessageStatus::Complete,
            created_at: Utc::now(),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
        }
    }

    #[test]
    fn the_end_of_a_reply_stands_in_as_a_stored_notice() {
        use crate::pubsub::Event as _;
        let message = message("long".repeat(5000));
        let id = message.id;
        let stand_in = ChatEvent::Completed { message }.stand_in();
        let parsed: Option<Notice> = stand_in
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        assert_eq!(parsed, Some(Notice::Stored { message_id: id }));
        // A notice is no event, and no event is a notice.
        assert!(stand_in.is_some_and(|s| serde_json::from_str::<ChatEvent>(&s).is_err()));
        let delta = ChatEvent::Delta {
            message_id: id,
            index: 0,
            text: "x".into(),
        };
        assert_eq!(delta.stand_in(), None);
        let json = serde_json::to_string(&delta).unwrap_or_default();
        assert!(serde_json::from_str::<Notice>(&json).is_err());
    }
}
