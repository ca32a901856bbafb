//! Database work of the chat, on the request transaction. Every query names the caller's
//! company and user explicitly, on top of Row Level Security.

use chrono::{DateTime, Utc};
use entity::{conversations, knowledge, messages};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

use super::prompt::HistoryMessage;
use crate::{
    auth::Principal,
    error::AppResult,
    graphql::connection::like_pattern,
    llm::Role,
    paging::{self, Page, PageRequest, Sort},
};

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

fn owned<E: EntityTrait>(
    select: sea_orm::Select<E>,
    company: impl ColumnTrait,
    user: impl ColumnTrait,
    principal: &Principal,
) -> sea_orm::Select<E> {
    select
        .filter(company.eq(principal.company_id))
        .filter(user.eq(principal.user_id))
}

/// The caller's conversation `id`, if it is theirs.
pub async fn conversation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<conversations::Model>> {
    Ok(owned(
        conversations::Entity::find_by_id(id),
        conversations::Column::CompanyId,
        conversations::Column::UserId,
        principal,
    )
    .one(conn)
    .await?)
}

/// The same, locked for the rest of the transaction (serializes `sendMessage` per conversation).
pub async fn conversation_for_update(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<conversations::Model>> {
    Ok(owned(
        conversations::Entity::find_by_id(id),
        conversations::Column::CompanyId,
        conversations::Column::UserId,
        principal,
    )
    .lock_exclusive()
    .one(conn)
    .await?)
}

/// The page `request` asks for of the caller's conversations, newest first.
pub async fn conversations(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    request: &PageRequest<TimeKey>,
    search: Option<&str>,
) -> AppResult<Page<conversations::Model>> {
    let mut select = owned(
        conversations::Entity::find(),
        conversations::Column::CompanyId,
        conversations::Column::UserId,
        principal,
    );
    if let Some(search) = search {
        select = select.filter(Expr::cust_with_values(
            "title ILIKE $1",
            [like_pattern(search)],
        ));
    }
    let sort = Sort::desc([
        Expr::col(conversations::Column::CreatedAt),
        Expr::col(conversations::Column::Id),
    ]);
    paging::fetch(conn, select, &sort, CONVERSATIONS, request, |c| {
        (c.created_at.to_utc(), c.id)
    })
    .await
}

/// The reply of the conversation that is streaming, if one is.
pub async fn streaming_message(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
) -> AppResult<Option<messages::Model>> {
    Ok(owned(
        messages::Entity::find(),
        messages::Column::CompanyId,
        messages::Column::UserId,
        principal,
    )
    .filter(messages::Column::ConversationId.eq(conversation))
    .filter(messages::Column::Status.eq("streaming"))
    .one(conn)
    .await?)
}

/// The caller's message `id`, if it is theirs.
pub async fn message(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<messages::Model>> {
    Ok(owned(
        messages::Entity::find_by_id(id),
        messages::Column::CompanyId,
        messages::Column::UserId,
        principal,
    )
    .one(conn)
    .await?)
}

/// The page `request` asks for of a conversation's messages, by `seq`: oldest first.
pub async fn messages_page(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
    request: &PageRequest<(i64,)>,
) -> AppResult<Page<messages::Model>> {
    let select = owned(
        messages::Entity::find(),
        messages::Column::CompanyId,
        messages::Column::UserId,
        principal,
    )
    .filter(messages::Column::ConversationId.eq(conversation));
    let sort = Sort::asc([Expr::col(messages::Column::Seq)]);
    paging::fetch(conn, select, &sort, MESSAGES, request, |m| (m.seq,)).await
}

/// Inserts message `id` of the caller's conversation.
pub async fn insert_message(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
    conversation: Uuid,
    role: &str,
    content: &str,
    status: &str,
) -> AppResult<messages::Model> {
    let now = Utc::now().fixed_offset();
    let row = messages::ActiveModel {
        id: Set(id),
        seq: NotSet,
        company_id: Set(principal.company_id),
        user_id: Set(principal.user_id),
        conversation_id: Set(conversation),
        role: Set(role.to_owned()),
        content: Set(content.to_owned()),
        status: Set(status.to_owned()),
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
pub async fn history(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
) -> AppResult<Vec<HistoryMessage>> {
    let rows = owned(
        messages::Entity::find(),
        messages::Column::CompanyId,
        messages::Column::UserId,
        principal,
    )
    .filter(messages::Column::ConversationId.eq(conversation))
    .filter(messages::Column::Status.ne("streaming"))
    .filter(messages::Column::Content.ne(""))
    .order_by(messages::Column::Seq, Order::Desc)
    .limit(HISTORY_ROWS)
    .all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .rev()
        .map(|m| HistoryMessage {
            role: match m.role.as_str() {
                "assistant" => Role::Assistant,
                "system" => Role::System,
                _ => Role::User,
            },
            content: m.content,
        })
        .collect())
}

/// The caller's knowledge notes for a prompt, newest first.
pub async fn knowledge_for_prompt(
    conn: &impl ConnectionTrait,
    principal: &Principal,
) -> AppResult<Vec<String>> {
    let rows = owned(
        knowledge::Entity::find(),
        knowledge::Column::CompanyId,
        knowledge::Column::UserId,
        principal,
    )
    .order_by(knowledge::Column::CreatedAt, Order::Desc)
    .limit(KNOWLEDGE_ROWS)
    .all(conn)
    .await?;
    Ok(rows.into_iter().map(|k| k.content).collect())
}

/// The page `request` asks for of the caller's knowledge, newest first.
pub async fn knowledge_page(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    request: &PageRequest<TimeKey>,
) -> AppResult<Page<knowledge::Model>> {
    let select = owned(
        knowledge::Entity::find(),
        knowledge::Column::CompanyId,
        knowledge::Column::UserId,
        principal,
    );
    let sort = Sort::desc([
        Expr::col(knowledge::Column::CreatedAt),
        Expr::col(knowledge::Column::Id),
    ]);
    paging::fetch(conn, select, &sort, KNOWLEDGE, request, |k| {
        (k.created_at.to_utc(), k.id)
    })
    .await
}

/// Deletes the messages of a conversation; how many.
pub async fn clear(
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
