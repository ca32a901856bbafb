//! Output and input types of the chat, converted from the chat service's types and events.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject, Union};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::{
    connection::{Defaulted, PageInfo, connection, page_args, page_cost},
    principal, scope,
};
use crate::{
    chat::{ChatEvent, MessageData, events as stored},
    error::AppResult,
    paging,
    services::chat::{self as service, Note},
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

impl From<stored::MessageRole> for MessageRole {
    fn from(role: stored::MessageRole) -> Self {
        match role {
            stored::MessageRole::System => Self::System,
            stored::MessageRole::User => Self::User,
            stored::MessageRole::Assistant => Self::Assistant,
        }
    }
}

impl From<stored::MessageStatus> for MessageStatus {
    fn from(status: stored::MessageStatus) -> Self {
        match status {
            stored::MessageStatus::Streaming => Self::Streaming,
            stored::MessageStatus::Complete => Self::Complete,
            stored::MessageStatus::Failed => Self::Failed,
            stored::MessageStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<MessageData> for Message {
    fn from(m: MessageData) -> Self {
        Self {
            id: ID(m.id.to_string()),
            role: m.role.into(),
            content: m.content,
            status: m.status.into(),
            created_at: m.created_at,
            model: m.model,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
        }
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

impl From<service::Conversation> for Conversation {
    fn from(m: service::Conversation) -> Self {
        Self {
            id: ID(m.id.to_string()),
            uuid: m.id,
            title: m.title,
            system_prompt: m.system_prompt,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Where a page of messages starts.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessagePageInfo {
    /// Whether older messages exist.
    pub has_previous_page: bool,
    /// Cursor of the oldest message of this page; pass it as `before` for older ones.
    pub start_cursor: Option<String>,
    /// Whether newer messages exist. Exact for a forward page (`first`); for a backward one,
    /// whether it ends before a cursor.
    pub has_next_page: bool,
    /// Cursor of the newest message of this page; pass it as `after` for newer ones.
    pub end_cursor: Option<String>,
}

impl From<paging::PageInfo> for MessagePageInfo {
    fn from(info: paging::PageInfo) -> Self {
        Self {
            has_previous_page: info.has_previous_page,
            start_cursor: info.start_cursor,
            has_next_page: info.has_next_page,
            end_cursor: info.end_cursor,
        }
    }
}

connection! {
    /// The newest messages of a conversation (or those before a cursor), oldest first.
    pub struct MessageConnection {
        /// The messages, oldest first.
        edges,
        /// Where the page starts.
        page_info: MessagePageInfo,
    }
    /// An item of a [`MessageConnection`].
    pub struct MessageEdge {
        /// Pass it as `before` for older messages.
        cursor,
        /// The message.
        node: Message,
    }
}

#[ComplexObject]
impl Conversation {
    /// The last `last` messages (1 to 100), or the last ones before the cursor `before`,
    /// oldest first.
    /// With `first` (and `after`) instead: the first `first` messages (after the cursor).
    #[graphql(complexity = "page_cost(first, last, 50, child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] last: Option<i32>,
        before: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<MessageConnection> {
        let principal = principal(ctx)?.clone();
        let conversation = self.uuid;
        let args = page_args(ctx, Defaulted::Last, first, after, last, before);
        let page = scope(ctx)?
            .read(|tx| {
                Box::pin(async move {
                    service::messages_page(tx.conn(), &principal, conversation, args).await
                })
            })
            .await?;
        Ok(MessageConnection::from_page(page.map(Message::from)))
    }
}

connection! {
    /// A page of the caller's conversations, newest first.
    pub struct ConversationConnection {
        /// The conversations.
        edges,
        /// Where the page ends.
        page_info: PageInfo,
    }
    /// An item of a [`ConversationConnection`].
    pub struct ConversationEdge {
        /// Pass it as `after` for the next page.
        cursor,
        /// The conversation.
        node: Conversation,
    }
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

impl From<Note> for Knowledge {
    fn from(m: Note) -> Self {
        Self {
            id: ID(m.id.to_string()),
            content: m.content,
            created_at: m.created_at,
        }
    }
}

connection! {
    /// A page of the caller's knowledge, newest first.
    pub struct KnowledgeConnection {
        /// The notes.
        edges,
        /// Where the page ends.
        page_info: PageInfo,
    }
    /// An item of a [`KnowledgeConnection`].
    pub struct KnowledgeEdge {
        /// Pass it as `after` for the next page.
        cursor,
        /// The note.
        node: Knowledge,
    }
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
