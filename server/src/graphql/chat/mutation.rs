//! Mutations of the chat: conversations, knowledge, `sendMessage` and `cancelReply`.

use std::time::Duration;

use async_graphql::{Context, ID, Object};
use entity::{conversations, knowledge, messages};
use futures_util::StreamExt;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use uuid::Uuid;

use super::{
    Conversation, CreateConversationInput, Knowledge, Message, SendMessagePayload, not_found,
    state, text_between,
};
use crate::{
    authz::{Action, Object as Guarded, requires},
    chat::{Chat, ChatEvent, Generation, MessageData, events::topic, prompt, store},
    error::{AppError, AppResult},
    graphql::{connection::parse_id, principal, scope},
};

/// How long `cancelReply` waits for the generating instance to store the partial reply.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
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
        let principal = principal(ctx)?;
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
        let now = chrono::Utc::now().fixed_offset();
        let tx = scope(ctx)?.begin_write().await?;
        let row = conversations::ActiveModel {
            id: Set(Uuid::now_v7()),
            company_id: Set(principal.company_id),
            user_id: Set(principal.user_id),
            title: Set(title),
            system_prompt: Set(system_prompt),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(tx.conn())
        .await?;
        tx.commit().await?;
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
        let tx = scope(ctx)?.begin_write().await?;
        let row = store::conversation(tx.conn(), principal, id)
            .await?
            .ok_or_else(not_found)?;
        let mut active = row.into_active_model();
        active.title = Set(title);
        let row = active.update(tx.conn()).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes the messages of one of the caller's conversations and keeps the conversation.
    /// `CONFLICT` while a reply streams (cancel it first).
    #[graphql(directive = requires::apply(Guarded::Message, Action::Delete))]
    async fn clear_conversation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Conversation> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let tx = scope(ctx)?.begin_write().await?;
        let row = store::conversation_for_update(tx.conn(), principal, id)
            .await?
            .ok_or_else(not_found)?;
        if store::streaming_message(tx.conn(), principal, id)
            .await?
            .is_some()
        {
            return Err(AppError::Conflict(
                "a reply is streaming in this conversation; cancel it first".into(),
            ));
        }
        store::clear(tx.conn(), principal, id).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes one of the caller's conversations and its messages; a reply streaming in it
    /// is stopped.
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Delete))]
    async fn delete_conversation(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let tx = scope(ctx)?.begin_write().await?;
        store::conversation_for_update(tx.conn(), principal, id)
            .await?
            .ok_or_else(not_found)?;
        let streaming = store::streaming_message(tx.conn(), principal, id).await?;
        conversations::Entity::delete_many()
            .filter(conversations::Column::CompanyId.eq(principal.company_id))
            .filter(conversations::Column::UserId.eq(principal.user_id))
            .filter(conversations::Column::Id.eq(id))
            .exec(tx.conn())
            .await?;
        tx.commit().await?;
        if let Some(message) = streaming {
            state(ctx)?.chat.request_cancel(message.id).await;
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
        let chat = &state.chat;
        let conversation_id = parse_id("conversationId", &conversation_id)?;
        let content = text_between("content", &content, state.config.chat_max_message_chars)?;
        chat.check_accepting()?;
        chat.check_breaker()?;
        chat.check_rate(&state.ratelimit, principal.user_id).await?;
        let reply_id = Uuid::now_v7();
        chat.acquire_slot(principal.company_id, reply_id).await?;
        let prepared = prepare(ctx, conversation_id, reply_id, &content).await;
        let (user_message, reply, request) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = chat
                    .live()
                    .release_slot(principal.company_id, reply_id)
                    .await;
                return Err(error);
            }
        };
        let reply = MessageData::from(reply);
        chat.pubsub()
            .publish(
                &topic(conversation_id),
                &ChatEvent::Started {
                    message: reply.clone(),
                },
            )
            .await;
        chat.spawn(Generation {
            company_id: principal.company_id,
            message_id: reply_id,
            message: reply.clone(),
            request,
        });
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
        let chat = &state(ctx)?.chat;
        let id = parse_id("messageId", &message_id)?;
        let message = {
            let tx = scope(ctx)?.read_guard().await?;
            store::message(tx.conn(), principal, id).await?
        }
        .ok_or_else(|| AppError::NotFound("no such message".into()))?;
        scope(ctx)?.finish().await?;
        if message.status != "streaming" {
            return Ok(message.into());
        }
        let ended = wait_for_end(chat, message.conversation_id, id);
        chat.request_cancel(id).await;
        let stored = ended.await;
        if let Some(message) = stored {
            return Ok(message.into());
        }
        // Nobody generates it any more (its instance stopped): cancel it here.
        let tx = scope(ctx)?.begin_write().await?;
        let row = store::message(tx.conn(), principal, id)
            .await?
            .ok_or_else(|| AppError::NotFound("no such message".into()))?;
        if row.status != "streaming" {
            return Ok(row.into());
        }
        let mut active = row.into_active_model();
        active.status = Set("cancelled".to_owned());
        let row = active.update(tx.conn()).await?;
        tx.commit().await?;
        let _ = chat.live().release_slot(principal.company_id, id).await;
        let data = MessageData::from(row.clone());
        chat.pubsub()
            .publish(
                &topic(data.conversation_id),
                &ChatEvent::Completed { message: data },
            )
            .await;
        Ok(row.into())
    }

    /// Adds a note of the caller's (1 to 20000 characters), given to the assistant as
    /// context in their conversations.
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Create))]
    async fn add_knowledge(&self, ctx: &Context<'_>, content: String) -> AppResult<Knowledge> {
        let principal = principal(ctx)?;
        let content = text_between("content", &content, MAX_KNOWLEDGE_CHARS)?;
        let now = chrono::Utc::now().fixed_offset();
        let tx = scope(ctx)?.begin_write().await?;
        let row = knowledge::ActiveModel {
            id: Set(Uuid::now_v7()),
            company_id: Set(principal.company_id),
            user_id: Set(principal.user_id),
            content: Set(content),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes a note of the caller's.
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Delete))]
    async fn delete_knowledge(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let tx = scope(ctx)?.begin_write().await?;
        let deleted = knowledge::Entity::delete_many()
            .filter(knowledge::Column::CompanyId.eq(principal.company_id))
            .filter(knowledge::Column::UserId.eq(principal.user_id))
            .filter(knowledge::Column::Id.eq(id))
            .exec(tx.conn())
            .await?
            .rows_affected;
        tx.commit().await?;
        if deleted == 0 {
            return Err(AppError::NotFound("no such note".into()));
        }
        Ok(true)
    }
}

/// In one transaction: checks the conversation and that no reply streams in it, stores the
/// user's message and the reply (`streaming`), and builds the prompt.
async fn prepare(
    ctx: &Context<'_>,
    conversation_id: Uuid,
    reply_id: Uuid,
    content: &str,
) -> AppResult<(messages::Model, messages::Model, crate::llm::ChatRequest)> {
    let principal = principal(ctx)?;
    let budget = state(ctx)?.config.chat_history_budget;
    let tx = scope(ctx)?.begin_write().await?;
    let conversation = store::conversation_for_update(tx.conn(), principal, conversation_id)
        .await?
        .ok_or_else(not_found)?;
    if store::streaming_message(tx.conn(), principal, conversation_id)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(
            "a reply is already streaming in this conversation; wait for it or cancel it".into(),
        ));
    }
    let user_message = store::insert_message(
        tx.conn(),
        principal,
        Uuid::now_v7(),
        conversation_id,
        "user",
        content,
        "complete",
    )
    .await?;
    let history = store::history(tx.conn(), principal, conversation_id).await?;
    let notes = store::knowledge_for_prompt(tx.conn(), principal).await?;
    let reply = store::insert_message(
        tx.conn(),
        principal,
        reply_id,
        conversation_id,
        "assistant",
        "",
        "streaming",
    )
    .await?;
    tx.commit().await?;
    let request = prompt::build(
        conversation.system_prompt.as_deref(),
        &notes,
        &history,
        budget,
    );
    Ok((user_message, reply, request))
}

/// Resolves with the stored reply once `message` ends (or `None` after [`CANCEL_WAIT`]).
/// Subscribed at once, so the end cannot slip past between the call and the first poll.
fn wait_for_end(
    chat: &Chat,
    conversation: Uuid,
    message: Uuid,
) -> impl std::future::Future<Output = Option<MessageData>> + use<> {
    let mut events = Box::pin(chat.pubsub().subscribe(&topic(conversation)));
    async move {
        let ended = async {
            while let Some(payload) = events.next().await {
                match serde_json::from_str::<ChatEvent>(&payload) {
                    Ok(
                        ChatEvent::Completed { message: m } | ChatEvent::Failed { message: m, .. },
                    ) if m.id == message => {
                        return Some(m);
                    }
                    _ => {}
                }
            }
            None
        };
        tokio::time::timeout(CANCEL_WAIT, ended)
            .await
            .ok()
            .flatten()
    }
}
