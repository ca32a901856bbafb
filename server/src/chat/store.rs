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
use crate::{auth::Principal, error::AppResult, graphql::connection::like_pattern, llm::Role};

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

/// A page of the caller's conversations, newest first, plus whether more follow.
pub async fn conversations(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    limit: u64,
    after: Option<TimeKey>,
    search: Option<&str>,
) -> AppResult<(Vec<conversations::Model>, bool)> {
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
    newest_first(
        conn,
        select,
        (conversations::Column::CreatedAt, conversations::Column::Id),
        after,
        limit,
    )
    .await
}

/// One page of `select` ordered by `(created_at DESC, id DESC)`, after the keyset position
/// `after`, and whether more rows follow.
async fn newest_first<E>(
    conn: &impl ConnectionTrait,
    mut select: sea_orm::Select<E>,
    (created_at, id): (E::Column, E::Column),
    after: Option<TimeKey>,
    limit: u64,
) -> AppResult<(Vec<E::Model>, bool)>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    if let Some((at, after_id)) = after {
        select = select.filter(Expr::cust_with_values(
            "(created_at, id) < ($1, $2)",
            [sea_orm::Value::from(at.fixed_offset()), after_id.into()],
        ));
    }
    let mut rows = select
        .order_by(created_at, Order::Desc)
        .order_by(id, Order::Desc)
        .limit(limit + 1)
        .all(conn)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
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

/// The `last` messages before `before` (a `seq`), oldest first, plus whether older ones exist.
pub async fn messages_page(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    conversation: Uuid,
    last: u64,
    before: Option<i64>,
) -> AppResult<(Vec<messages::Model>, bool)> {
    let mut select = owned(
        messages::Entity::find(),
        messages::Column::CompanyId,
        messages::Column::UserId,
        principal,
    )
    .filter(messages::Column::ConversationId.eq(conversation));
    if let Some(before) = before {
        select = select.filter(messages::Column::Seq.lt(before));
    }
    let mut rows = select
        .order_by(messages::Column::Seq, Order::Desc)
        .limit(last + 1)
        .all(conn)
        .await?;
    let more = rows.len() as u64 > last;
    rows.truncate(last as usize);
    rows.reverse();
    Ok((rows, more))
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

/// A page of the caller's knowledge, newest first, plus whether more follow.
pub async fn knowledge_page(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    limit: u64,
    after: Option<TimeKey>,
) -> AppResult<(Vec<knowledge::Model>, bool)> {
    let select = owned(
        knowledge::Entity::find(),
        knowledge::Column::CompanyId,
        knowledge::Column::UserId,
        principal,
    );
    newest_first(
        conn,
        select,
        (knowledge::Column::CreatedAt, knowledge::Column::Id),
        after,
        limit,
    )
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
