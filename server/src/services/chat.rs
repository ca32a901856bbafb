//! The chat service: conversations, messages and knowledge on the request transaction, and
//! `sendMessage` / `cancelReply`, which check, store and hand the reply to the generation of
//! `crate::chat` (it streams and stores the reply outside any request). Every query names the
//! caller's company and user explicitly, on top of Row Level Security.

use chrono::{DateTime, Utc};
use entity::{
    conversations, knowledge,
    messages::{self, MessageRole, MessageStatus},
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, Order, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

use super::keyset::{self, Sort};
use crate::{
    auth::Principal,
    chat::{
        Chat, ChatEvent, Generation, MessageData,
        events::{StoredMessage, topic},
        prompt::{self, HistoryMessage},
    },
    db::RequestScope,
    error::{AppError, AppResult},
    llm::Role,
    paging::{DefaultSize, Page, PageArgs, PageRequest, like_pattern, search_text},
    ratelimit::RateLimiter,
};

/// A conversation of the caller with the assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: Uuid,
    pub title: String,
    /// Instructions given to the assistant first, if any.
    pub system_prompt: Option<String>,
    /// The owner's choice of whether it may be used as training data; `None`: as the
    /// company's default says.
    pub training_allowed: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<conversations::Model> for Conversation {
    fn from(m: conversations::Model) -> Self {
        Self {
            id: m.id,
            title: m.title,
            system_prompt: m.system_prompt,
            training_allowed: m.training_allowed,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// A knowledge note of the caller's, given to the assistant as context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: Uuid,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

impl From<knowledge::Model> for Note {
    fn from(m: knowledge::Model) -> Self {
        Self {
            id: m.id,
            content: m.content,
            created_at: m.created_at.with_timezone(&Utc),
        }
    }
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

impl From<messages::Model> for StoredMessage {
    fn from(mut m: messages::Model) -> Self {
        let error = m.error.take();
        let content_deltas = m.content_deltas.take();
        Self {
            message: m.into(),
            error,
            content_deltas,
        }
    }
}

/// The list names the chat's cursors carry.
pub const CONVERSATIONS: &str = "conversations";
/// See [`CONVERSATIONS`].
pub const KNOWLEDGE: &str = "knowledge";
/// See [`CONVERSATIONS`].
pub const MESSAGES: &str = "messages";

/// Most history messages read to build a prompt (the budget usually stops earlier).
const HISTORY_ROWS: u64 = 200;
/// Most knowledge notes read to build a prompt.
const KNOWLEDGE_ROWS: u64 = 100;

/// A keyset position in a list ordered by `(created_at DESC, id DESC)`.
pub type TimeKey = (DateTime<Utc>, Uuid);

/// The caller's conversations.
fn own_conversations(principal: &Principal) -> sea_orm::Select<conversations::Entity> {
    conversations::Entity::find()
        .filter(conversations::Column::CompanyId.eq(principal.company_id))
        .filter(conversations::Column::UserId.eq(principal.user_id))
}

/// The caller's messages.
fn own_messages(principal: &Principal) -> sea_orm::Select<messages::Entity> {
    messages::Entity::find()
        .filter(messages::Column::CompanyId.eq(principal.company_id))
        .filter(messages::Column::UserId.eq(principal.user_id))
}

/// The caller's knowledge notes.
fn own_knowledge(principal: &Principal) -> sea_orm::Select<knowledge::Entity> {
    knowledge::Entity::find()
        .filter(knowledge::Column::CompanyId.eq(principal.company_id))
        .filter(knowledge::Column::UserId.eq(principal.user_id))
}

/// The caller's conversation `id`, if it is theirs.
pub async fn conversation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<Conversation>> {
    Ok(conversation_row(conn, principal, id)
        .await?
        .map(Conversation::from))
}

async fn conversation_row(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<conversations::Model>> {
    Ok(own_conversations(principal)
        .filter(conversations::Column::Id.eq(id))
        .one(conn)
        .await?)
}

/// The same, locked for the rest of the transaction (serializes `sendMessage` per conversation).
async fn conversation_for_update(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<conversations::Model>> {
    Ok(own_conversations(principal)
        .filter(conversations::Column::Id.eq(id))
        .lock_exclusive()
        .one(conn)
        .await?)
}

/// A page of the caller's conversations, newest first; `search` (at most 200 characters)
/// matches titles.
pub async fn conversations(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    args: PageArgs,
    search: Option<String>,
) -> AppResult<Page<Conversation>> {
    let request: PageRequest<TimeKey> = args.validate(CONVERSATIONS, DefaultSize::First(20))?;
    let search = search_text(search)?;
    let mut select = own_conversations(principal);
    if let Some(search) = search {
        select = select.filter(Expr::cust_with_values(
            "title ILIKE $1",
            [like_pattern(&search)],
        ));
    }
    let sort = Sort::desc([
        Expr::col(conversations::Column::CreatedAt),
        Expr::col(conversations::Column::Id),
    ]);
    Ok(
        keyset::fetch(conn, select, &sort, CONVERSATIONS, &request, |c| {
            (c.created_at.to_utc(), c.id)
        })
        .await?
        .map(Conversation::from),
    )
}

/// The reply of the conversation that is streaming, if one is.
async fn streaming_message(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
) -> AppResult<Option<messages::Model>> {
    Ok(own_messages(principal)
        .filter(messages::Column::ConversationId.eq(conversation))
        .filter(messages::Column::Status.eq(MessageStatus::Streaming))
        .one(conn)
        .await?)
}

/// The caller's message `id` as stored, if it is theirs: how the chat's machinery
/// (`crate::chat`) reads the end of a reply back for a subscription.
pub async fn message(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<StoredMessage>> {
    Ok(message_row(conn, principal, id)
        .await?
        .map(StoredMessage::from))
}

/// The caller's message `id` as stored, if it is theirs.
async fn message_row(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<messages::Model>> {
    Ok(own_messages(principal)
        .filter(messages::Column::Id.eq(id))
        .one(conn)
        .await?)
}

/// A page of a conversation's messages, by `seq`: the last 50 unless `args` say otherwise,
/// oldest first.
pub async fn messages_page(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
    args: PageArgs,
) -> AppResult<Page<MessageData>> {
    let request: PageRequest<(i64,)> = args.validate(MESSAGES, DefaultSize::Last(50))?;
    let select = own_messages(principal).filter(messages::Column::ConversationId.eq(conversation));
    let sort = Sort::asc([Expr::col(messages::Column::Seq)]);
    Ok(
        keyset::fetch(conn, select, &sort, MESSAGES, &request, |m| (m.seq,))
            .await?
            .map(MessageData::from),
    )
}

/// Inserts message `id` of the caller's conversation.
async fn insert_message(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
    conversation: Uuid,
    role: MessageRole,
    content: &str,
    status: MessageStatus,
) -> AppResult<messages::Model> {
    let now = Utc::now().fixed_offset();
    let row = messages::ActiveModel {
        id: Set(id),
        seq: NotSet,
        company_id: Set(principal.company_id),
        user_id: Set(principal.user_id),
        conversation_id: Set(conversation),
        role: Set(role),
        content: Set(content.to_owned()),
        status: Set(status),
        model: Set(None),
        prompt_tokens: Set(None),
        completion_tokens: Set(None),
        error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        heartbeat_at: NotSet,
        content_deltas: NotSet,
    };
    Ok(messages::Entity::insert(row)
        .exec_with_returning(conn)
        .await?)
}

/// The history a prompt is built from, oldest first (replies still streaming left out).
async fn history(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
) -> AppResult<Vec<HistoryMessage>> {
    let rows = own_messages(principal)
        .filter(messages::Column::ConversationId.eq(conversation))
        .filter(messages::Column::Status.ne(MessageStatus::Streaming))
        .filter(messages::Column::Content.ne(""))
        .order_by(messages::Column::Seq, Order::Desc)
        .limit(HISTORY_ROWS)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .rev()
        .map(|m| HistoryMessage {
            role: match m.role {
                MessageRole::Assistant => Role::Assistant,
                MessageRole::System => Role::System,
                MessageRole::User => Role::User,
            },
            content: m.content,
        })
        .collect())
}

/// The caller's knowledge notes for a prompt, newest first.
async fn knowledge_for_prompt(
    conn: &impl ConnectionTrait,
    principal: &Principal,
) -> AppResult<Vec<String>> {
    let rows = own_knowledge(principal)
        .order_by(knowledge::Column::CreatedAt, Order::Desc)
        .limit(KNOWLEDGE_ROWS)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|k| k.content).collect())
}

/// A page of the caller's knowledge, newest first.
pub async fn knowledge_page(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    args: PageArgs,
) -> AppResult<Page<Note>> {
    let request: PageRequest<TimeKey> = args.validate(KNOWLEDGE, DefaultSize::First(20))?;
    let select = own_knowledge(principal);
    let sort = Sort::desc([
        Expr::col(knowledge::Column::CreatedAt),
        Expr::col(knowledge::Column::Id),
    ]);
    Ok(
        keyset::fetch(conn, select, &sort, KNOWLEDGE, &request, |k| {
            (k.created_at.to_utc(), k.id)
        })
        .await?
        .map(Note::from),
    )
}

/// The caller's knowledge note `id`, if it is theirs.
pub async fn note(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<Note>> {
    Ok(own_knowledge(principal)
        .filter(knowledge::Column::Id.eq(id))
        .one(conn)
        .await?
        .map(Note::from))
}

/// Deletes the messages of a conversation; how many.
async fn clear(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
) -> AppResult<u64> {
    Ok(messages::Entity::delete_many()
        .filter(messages::Column::CompanyId.eq(principal.company_id))
        .filter(messages::Column::UserId.eq(principal.user_id))
        .filter(messages::Column::ConversationId.eq(conversation))
        .exec(conn)
        .await?
        .rows_affected)
}

fn not_found() -> AppError {
    AppError::NotFound("no such conversation".into())
}

fn no_such_message() -> AppError {
    AppError::NotFound("no such message".into())
}

/// Starts a conversation of the caller's.
pub async fn create_conversation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    title: String,
    system_prompt: Option<String>,
) -> AppResult<Conversation> {
    let now = Utc::now().fixed_offset();
    Ok(conversations::ActiveModel {
        id: Set(Uuid::now_v7()),
        company_id: Set(principal.company_id),
        user_id: Set(principal.user_id),
        title: Set(title),
        system_prompt: Set(system_prompt),
        training_allowed: NotSet,
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?
    .into())
}

/// Renames one of the caller's conversations.
pub async fn rename_conversation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
    title: String,
) -> AppResult<Conversation> {
    let row = conversation_row(conn, principal, id)
        .await?
        .ok_or_else(not_found)?;
    let mut active = row.into_active_model();
    active.title = Set(title);
    Ok(active.update(conn).await?.into())
}

/// Deletes the messages of one of the caller's conversations and keeps the conversation;
/// `CONFLICT` while a reply streams in it.
pub async fn clear_conversation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Conversation> {
    let row = conversation_for_update(conn, principal, id)
        .await?
        .ok_or_else(not_found)?;
    if streaming_message(conn, principal, id).await?.is_some() {
        return Err(AppError::Conflict(
            "a reply is streaming in this conversation; cancel it first".into(),
        ));
    }
    clear(conn, principal, id).await?;
    Ok(row.into())
}

/// Deletes one of the caller's conversations and its messages; the reply that was streaming
/// in it, if one was, for the caller to stop once this is committed.
pub async fn delete_conversation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<Uuid>> {
    conversation_for_update(conn, principal, id)
        .await?
        .ok_or_else(not_found)?;
    let streaming = streaming_message(conn, principal, id).await?;
    conversations::Entity::delete_many()
        .filter(conversations::Column::CompanyId.eq(principal.company_id))
        .filter(conversations::Column::UserId.eq(principal.user_id))
        .filter(conversations::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(streaming.map(|m| m.id))
}

/// The reply streaming in one of the caller's conversations as stored, if one is, for the
/// chat's machinery (`crate::chat`) to catch a subscription up from; `NOT_FOUND` when the
/// conversation is not the caller's.
pub async fn subscription_start(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<StoredMessage>> {
    conversation_row(conn, principal, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(streaming_message(conn, principal, id)
        .await?
        .map(StoredMessage::from))
}

/// Adds a note of the caller's.
pub async fn add_knowledge(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    content: String,
) -> AppResult<Note> {
    let now = Utc::now().fixed_offset();
    Ok(knowledge::ActiveModel {
        id: Set(Uuid::now_v7()),
        company_id: Set(principal.company_id),
        user_id: Set(principal.user_id),
        content: Set(content),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?
    .into())
}

/// Deletes a note of the caller's; `NOT_FOUND` when there is none.
pub async fn delete_knowledge(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<()> {
    let deleted = knowledge::Entity::delete_many()
        .filter(knowledge::Column::CompanyId.eq(principal.company_id))
        .filter(knowledge::Column::UserId.eq(principal.user_id))
        .filter(knowledge::Column::Id.eq(id))
        .exec(conn)
        .await?
        .rows_affected;
    if deleted == 0 {
        return Err(AppError::NotFound("no such note".into()));
    }
    Ok(())
}

/// What `sendMessage` needs besides the caller and the message.
#[derive(Clone, Copy)]
pub struct SendContext<'a> {
    pub chat: &'a Chat,
    pub limiter: &'a RateLimiter,
    /// `CHAT_HISTORY_BUDGET`.
    pub history_budget: usize,
}

/// Stores the caller's message and the reply (`streaming`), and starts generating the reply
/// in the background; the two messages as stored. `content` is the validated text.
/// `CONFLICT` while another reply streams in the conversation; `RATE_LIMITED` past
/// `CHAT_MESSAGES_PER_MINUTE` or the company's concurrent replies; `UNAVAILABLE` while the
/// provider keeps failing and once the server drains.
pub async fn send_message(
    scope: &RequestScope,
    send: SendContext<'_>,
    principal: &Principal,
    conversation_id: Uuid,
    content: String,
) -> AppResult<(MessageData, MessageData)> {
    let chat = send.chat;
    chat.check_accepting()?;
    chat.check_breaker()?;
    chat.check_rate(send.limiter, principal.user_id).await?;
    let reply_id = Uuid::now_v7();
    chat.acquire_slot(principal.company_id, reply_id).await?;
    let budget = send.history_budget;
    let caller = principal.clone();
    let prepared = scope
        .write(|tx| {
            Box::pin(async move {
                prepare(tx.conn(), &caller, conversation_id, reply_id, &content).await
            })
        })
        .await;
    let (user_message, reply, history, notes, system_prompt) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let _ = chat
                .live()
                .release_slot(principal.company_id, reply_id)
                .await;
            return Err(error);
        }
    };
    let request = prompt::build(system_prompt.as_deref(), &notes, &history, budget);
    let reply = MessageData::from(reply);
    // Handed to the subscribers here at once: ahead of the deltas, which are too.
    chat.pubsub()
        .publish_here_first(
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
    Ok((user_message.into(), reply))
}

/// What [`prepare`] stored and read: the two messages, the history, the notes and the
/// conversation's system prompt.
type Prepared = (
    messages::Model,
    messages::Model,
    Vec<HistoryMessage>,
    Vec<String>,
    Option<String>,
);

/// Checks the conversation and that no reply streams in it, stores the user's message and
/// the reply (`streaming`), and reads what the prompt is built from.
async fn prepare(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation_id: Uuid,
    reply_id: Uuid,
    content: &str,
) -> AppResult<Prepared> {
    let conversation = conversation_for_update(conn, principal, conversation_id)
        .await?
        .ok_or_else(not_found)?;
    if streaming_message(conn, principal, conversation_id)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(
            "a reply is already streaming in this conversation; wait for it or cancel it".into(),
        ));
    }
    let user_message = insert_message(
        conn,
        principal,
        Uuid::now_v7(),
        conversation_id,
        MessageRole::User,
        content,
        MessageStatus::Complete,
    )
    .await?;
    let history = history(conn, principal, conversation_id).await?;
    let notes = knowledge_for_prompt(conn, principal).await?;
    let reply = insert_message(
        conn,
        principal,
        reply_id,
        conversation_id,
        MessageRole::Assistant,
        "",
        MessageStatus::Streaming,
    )
    .await?;
    Ok((
        user_message,
        reply,
        history,
        notes,
        conversation.system_prompt,
    ))
}

/// Stops a streaming reply of the caller's, on whichever instance generates it (the text so
/// far is stored as `cancelled`); the reply as stored. A reply that already ended is answered
/// as it is.
pub async fn cancel_reply(
    scope: &RequestScope,
    chat: &Chat,
    principal: &Principal,
    id: Uuid,
) -> AppResult<MessageData> {
    let caller = principal.clone();
    let found = scope
        .read(|tx| Box::pin(async move { message_row(tx.conn(), &caller, id).await }))
        .await?
        .ok_or_else(no_such_message)?;
    scope.finish().await?;
    if found.status != MessageStatus::Streaming {
        return Ok(found.into());
    }
    let ended = chat.wait_for_end(found.conversation_id, id);
    chat.request_cancel(id).await;
    if let Some(message) = ended.await {
        return Ok(message);
    }
    // Nobody generates it any more (its instance stopped): cancel it here.
    let caller = principal.clone();
    let (row, cancelled) = scope
        .write(|tx| Box::pin(async move { cancel_stranded(tx.conn(), &caller, id).await }))
        .await?;
    if !cancelled {
        return Ok(row.into());
    }
    let _ = chat.live().release_slot(principal.company_id, id).await;
    let data = MessageData::from(row);
    chat.pubsub()
        .publish(
            &topic(data.conversation_id),
            &ChatEvent::Completed {
                message: data.clone(),
            },
        )
        .await;
    Ok(data)
}

/// Marks the caller's reply `cancelled` if it still streams; the row, and whether it did.
async fn cancel_stranded(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<(messages::Model, bool)> {
    let row = message_row(conn, principal, id)
        .await?
        .ok_or_else(no_such_message)?;
    if row.status != MessageStatus::Streaming {
        return Ok((row, false));
    }
    let mut active = row.into_active_model();
    active.status = Set(MessageStatus::Cancelled);
    Ok((active.update(conn).await?, true))
}
