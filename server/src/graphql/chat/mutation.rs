//! Mutations of the chat: conversations, knowledge, `sendMessage` and `cancelReply`.

use async_graphql::{Context, ID, Object};

use super::{
    Conversation, CreateConversationInput, Knowledge, Message, SendMessagePayload, state,
    text_between,
};
use crate::{
    authz::{Action, Object as Guarded, requires},
    error::{AppError, AppResult},
    graphql::{connection::parse_id, principal, scope},
    services::chat::{self as service, SendContext},
};

/// Longest knowledge note, in characters.
const MAX_KNOWLEDGE_CHARS: usize = 20_000;

/// Mutations of the chat.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Starts a conversation of the caller's.
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Create))]
    async fn create_conversation(
        &self,
        ctx: &Context<'_>,
        input: CreateConversationInput,
    ) -> AppResult<Conversation> {
        let title = match input.title {
            Some(title) => text_between("input.title", &title, 200)?,
            None => "New conversation".to_owned(),
        };
        let system_prompt = input
            .system_prompt
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if system_prompt
            .as_ref()
            .is_some_and(|s| s.chars().count() > 20_000)
        {
            return Err(AppError::bad_input(
                "input.systemPrompt",
                "`systemPrompt` is longer than 20000 characters",
            ));
        }
        let principal = principal(ctx)?.clone();
        let row = scope(ctx)?
            .write(|tx| {
                Box::pin(async move {
                    service::create_conversation(tx.conn(), &principal, title, system_prompt).await
                })
            })
            .await?;
        Ok(row.into())
    }

    /// Renames one of the caller's conversations (1 to 200 characters).
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Update))]
    async fn rename_conversation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        title: String,
    ) -> AppResult<Conversation> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let title = text_between("title", &title, 200)?;
        let principal = principal.clone();
        let row = scope(ctx)?
            .write(|tx| {
                Box::pin(async move {
                    service::rename_conversation(tx.conn(), &principal, id, title).await
                })
            })
            .await?;
        Ok(row.into())
    }

    /// Deletes the messages of one of the caller's conversations and keeps the conversation.
    /// `CONFLICT` while a reply streams (cancel it first).
    #[graphql(directive = requires::apply(Guarded::Message, Action::Delete))]
    async fn clear_conversation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Conversation> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let principal = principal.clone();
        let row = scope(ctx)?
            .write(|tx| {
                Box::pin(
                    async move { service::clear_conversation(tx.conn(), &principal, id).await },
                )
            })
            .await?;
        Ok(row.into())
    }

    /// Deletes one of the caller's conversations and its messages; a reply streaming in it
    /// is stopped.
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Delete))]
    async fn delete_conversation(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let principal = principal.clone();
        let streaming = scope(ctx)?
            .write(|tx| {
                Box::pin(
                    async move { service::delete_conversation(tx.conn(), &principal, id).await },
                )
            })
            .await?;
        if let Some(message) = streaming {
            state(ctx)?.chat.request_cancel(message).await;
        }
        Ok(true)
    }

    /// Stores the caller's message, creates the reply (`STREAMING`) and starts generating it
    /// in the background; returns at once. The reply's text arrives over
    /// `conversationEvents`. `CONFLICT` while another reply streams in the conversation;
    /// `RATE_LIMITED` past `CHAT_MESSAGES_PER_MINUTE` or when the company already has
    /// `CHAT_MAX_CONCURRENT_PER_COMPANY` replies streaming; `UNAVAILABLE` while the AI
    /// provider keeps failing, and once the server shuts down (retry: another instance takes
    /// it).
    #[graphql(directive = requires::apply(Guarded::Message, Action::Create))]
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        content: String,
    ) -> AppResult<SendMessagePayload> {
        let principal = principal(ctx)?;
        let state = state(ctx)?;
        let conversation_id = parse_id("conversationId", &conversation_id)?;
        let content = text_between("content", &content, state.config.chat_max_message_chars)?;
        let send = SendContext {
            chat: &state.chat,
            limiter: &state.ratelimit,
            history_budget: state.config.chat_history_budget,
        };
        let (user_message, reply) =
            service::send_message(scope(ctx)?, send, principal, conversation_id, content).await?;
        Ok(SendMessagePayload {
            user_message: user_message.into(),
            assistant_message: reply.into(),
        })
    }

    /// Stops a streaming reply of the caller's, on whichever instance generates it: the
    /// upstream request is aborted and the text so far is stored as `CANCELLED`. A reply
    /// that already ended is returned as it is.
    #[graphql(directive = requires::apply(Guarded::Message, Action::Update))]
    async fn cancel_reply(&self, ctx: &Context<'_>, message_id: ID) -> AppResult<Message> {
        let principal = principal(ctx)?;
        let id = parse_id("messageId", &message_id)?;
        let message = service::cancel_reply(scope(ctx)?, &state(ctx)?.chat, principal, id).await?;
        Ok(message.into())
    }

    /// Adds a note of the caller's (1 to 20000 characters), given to the assistant as
    /// context in their conversations.
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Create))]
    async fn add_knowledge(&self, ctx: &Context<'_>, content: String) -> AppResult<Knowledge> {
        let principal = principal(ctx)?;
        let content = text_between("content", &content, MAX_KNOWLEDGE_CHARS)?;
        let principal = principal.clone();
        let row = scope(ctx)?
            .write(|tx| {
                Box::pin(
                    async move { service::add_knowledge(tx.conn(), &principal, content).await },
                )
            })
            .await?;
        Ok(row.into())
    }

    /// Deletes a note of the caller's.
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Delete))]
    async fn delete_knowledge(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let principal = principal.clone();
        scope(ctx)?
            .write(|tx| {
                Box::pin(async move { service::delete_knowledge(tx.conn(), &principal, id).await })
            })
            .await?;
        Ok(true)
    }
}
