//! Output and input types of the chat, converted from entities and events, and their cursors.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject, Union};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::{conversations, knowledge, messages};
use uuid::Uuid;

use super::super::{connection::PageInfo, principal, scope};
use crate::{
    chat::{ChatEvent, MessageData, store},
    error::{AppError, AppResult},
};

/// Who wrote a message.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    /// Instructions for the assistant.
    System,
    /// The user.
    User,
    /// The AI assistant.
    Assistant,
}

/// Where a message stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// The reply is being generated; its text arrives over `conversationEvents`.
    Streaming,
    /// Finished and stored.
    Complete,
    /// The provider failed; the text generated until then is stored.
    Failed,
    /// Stopped by `cancelReply`; the text generated until then is stored.
    Cancelled,
}

/// A message of a conversation.
#[derive(Debug, Clone, SimpleObject)]
pub struct Message {
    /// The message's id.
    pub id: ID,
    /// Who wrote it.
    pub role: MessageRole,
    /// The text (for a reply still streaming: empty here; see `conversationEvents`).
    pub content: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The model that wrote a reply.
    pub model: Option<String>,
    /// Tokens of the prompt of a reply, when the provider reported them.
    pub prompt_tokens: Option<i32>,
    /// Tokens of a reply, when the provider reported them.
    pub completion_tokens: Option<i32>,
}

fn role(text: &str) -> MessageRole {
    match text {
        "system" => MessageRole::System,
        "assistant" => MessageRole::Assistant,
        _ => MessageRole::User,
    }
}

fn status(text: &str) -> MessageStatus {
    match text {
        "streaming" => MessageStatus::Streaming,
        "failed" => MessageStatus::Failed,
        "cancelled" => MessageStatus::Cancelled,
        _ => MessageStatus::Complete,
    }
}

impl From<MessageData> for Message {
    fn from(m: MessageData) -> Self {
        Self {
            id: ID(m.id.to_string()),
            role: role(&m.role),
            content: m.content,
            status: status(&m.status),
            created_at: m.created_at,
            model: m.model,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
        }
    }
}

impl From<messages::Model> for Message {
    fn from(m: messages::Model) -> Self {
        MessageData::from(m).into()
    }
}

/// A conversation of the caller with the AI assistant.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Conversation {
    /// The conversation's id.
    pub id: ID,
    /// Its title.
    pub title: String,
    /// Instructions given to the assistant first, if any (a default one applies otherwise).
    pub system_prompt: Option<String>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it was last renamed.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub uuid: Uuid,
}

impl From<conversations::Model> for Conversation {
    fn from(m: conversations::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            uuid: m.id,
            title: m.title,
            system_prompt: m.system_prompt,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// An item of a [`MessageConnection`].
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageEdge {
    /// Pass it as `before` for older messages.
    pub cursor: String,
    /// The message.
    pub node: Message,
}

/// Where a page of messages starts.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessagePageInfo {
    /// Whether older messages exist.
    pub has_previous_page: bool,
    /// Cursor of the oldest message of this page; pass it as `before` for older ones.
    pub start_cursor: Option<String>,
}

/// The newest messages of a conversation (or those before a cursor), oldest first.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageConnection {
    /// The messages, oldest first.
    pub edges: Vec<MessageEdge>,
    /// Where the page starts.
    pub page_info: MessagePageInfo,
}

#[ComplexObject]
impl Conversation {
    /// The last `last` messages (1 to 100), or the last ones before the cursor `before`,
    /// oldest first.
    #[graphql(complexity = "last.unwrap_or(50).max(0) as usize * child_complexity + 1")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<MessageConnection> {
        let principal = principal(ctx)?;
        let last = last.unwrap_or(50);
        if !(1..=100).contains(&last) {
            return Err(AppError::bad_input(
                "last",
                format!("`last` must be between 1 and 100, got {last}"),
            ));
        }
        let before = before.as_deref().map(decode_seq).transpose()?;
        let tx = scope(ctx)?.read().await?;
        let (rows, more) =
            store::messages_page(tx.conn(), principal, self.uuid, last as u64, before).await?;
        let edges: Vec<MessageEdge> = rows
            .into_iter()
            .map(|m| MessageEdge {
                cursor: URL_SAFE_NO_PAD.encode(m.seq.to_string()),
                node: m.into(),
            })
            .collect();
        Ok(MessageConnection {
            page_info: MessagePageInfo {
                has_previous_page: more,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }
}

fn decode_seq(text: &str) -> AppResult<i64> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            AppError::bad_input("before", "`before` is not a cursor returned by this API")
        })
}

/// The cursor of a row in a list ordered by `(created_at DESC, id DESC)`.
pub fn encode_time_key(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.timestamp_micros()))
}

/// Decodes [`encode_time_key`]; `BAD_USER_INPUT` at `after` for anything else.
pub fn decode_time_key(text: &str) -> AppResult<store::TimeKey> {
    let bad = || AppError::bad_input("after", "`after` is not a cursor returned by this API");
    let decoded = URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (micros, id) = decoded.split_once(':').ok_or_else(bad)?;
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id))
}

/// An item of a [`ConversationConnection`].
#[derive(Debug, Clone, SimpleObject)]
pub struct ConversationEdge {
    /// Pass it as `after` for the next page.
    pub cursor: String,
    /// The conversation.
    pub node: Conversation,
}

/// A page of the caller's conversations, newest first.
#[derive(Debug, Clone, SimpleObject)]
pub struct ConversationConnection {
    /// The conversations.
    pub edges: Vec<ConversationEdge>,
    /// Where the page ends.
    pub page_info: PageInfo,
}

/// A note of the caller's, given to the assistant as context in their conversations.
#[derive(Debug, Clone, SimpleObject)]
pub struct Knowledge {
    /// The note's id.
    pub id: ID,
    /// The note.
    pub content: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl From<knowledge::Model> for Knowledge {
    fn from(m: knowledge::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            content: m.content,
            created_at: m.created_at.with_timezone(&Utc),
        }
    }
}

/// An item of a [`KnowledgeConnection`].
#[derive(Debug, Clone, SimpleObject)]
pub struct KnowledgeEdge {
    /// Pass it as `after` for the next page.
    pub cursor: String,
    /// The note.
    pub node: Knowledge,
}

/// A page of the caller's knowledge, newest first.
#[derive(Debug, Clone, SimpleObject)]
pub struct KnowledgeConnection {
    /// The notes.
    pub edges: Vec<KnowledgeEdge>,
    /// Where the page ends.
    pub page_info: PageInfo,
}

/// A new conversation.
#[derive(Debug, Clone, InputObject)]
pub struct CreateConversationInput {
    /// 1 to 200 characters; "New conversation" when omitted.
    pub title: Option<String>,
    /// Instructions given to the assistant first (at most 20000 characters); a default one
    /// applies when omitted.
    pub system_prompt: Option<String>,
}

/// What `sendMessage` stored.
#[derive(Debug, Clone, SimpleObject)]
pub struct SendMessagePayload {
    /// The caller's message.
    pub user_message: Message,
    /// The reply, `STREAMING`: its text arrives over `conversationEvents`.
    pub assistant_message: Message,
}

/// A reply started streaming.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageStarted {
    /// The reply (status `STREAMING`, no text yet).
    pub message: Message,
}

/// More text of a streaming reply. Concatenated in `index` order, deltas give the reply.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageDelta {
    /// The reply this text belongs to.
    pub message_id: ID,
    /// Increases by 1 per delta, from 0. A subscriber that joins while a reply streams first
    /// gets the text so far as one delta, whose index is that of the last delta it holds.
    pub index: i32,
    /// The text.
    pub text: String,
}

/// A reply ended and is stored: `COMPLETE`, or `CANCELLED` with the text generated until then.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageCompleted {
    /// The stored reply, with its full text, model and token usage.
    pub message: Message,
}

/// A reply failed; the text generated until then is stored with status `FAILED`.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageFailed {
    /// The stored reply.
    pub message: Message,
    /// Why it failed.
    pub reason: String,
}

/// Something that happened in a conversation.
#[derive(Debug, Clone, Union)]
pub enum ConversationEvent {
    /// A reply started streaming.
    Started(MessageStarted),
    /// More text of a streaming reply.
    Delta(MessageDelta),
    /// A reply ended and is stored.
    Completed(MessageCompleted),
    /// A reply failed.
    Failed(MessageFailed),
}

impl From<ChatEvent> for ConversationEvent {
    fn from(event: ChatEvent) -> Self {
        match event {
            ChatEvent::Started { message } => Self::Started(MessageStarted {
                message: message.into(),
            }),
            ChatEvent::Delta {
                message_id,
                index,
                text,
            } => Self::Delta(MessageDelta {
                message_id: ID(message_id.to_string()),
                index: index.clamp(0, i32::MAX as i64) as i32,
                text,
            }),
            ChatEvent::Completed { message } => Self::Completed(MessageCompleted {
                message: message.into(),
            }),
            ChatEvent::Failed { message, reason } => Self::Failed(MessageFailed {
                message: message.into(),
                reason,
            }),
        }
    }
}
