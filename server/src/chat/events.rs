//! What travels on a conversation's pub/sub topic, from the generating instance to the
//! subscribers on every instance.

use chrono::{DateTime, Utc};
use entity::messages;
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
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// `streaming`, `complete`, `failed` or `cancelled`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
}

impl From<messages::Model> for MessageData {
    fn from(m: messages::Model) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            role: m.role,
            content: m.content,
            status: m.status,
            created_at: m.created_at.with_timezone(&Utc),
            model: m.model,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
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

/// Asks whichever instance runs a generation to stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub message_id: Uuid,
}
