//! A message of a conversation: the user's, or the assistant's reply (streamed, then stored).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Who wrote a message (`text` in the database).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// Instructions for the assistant.
    #[sea_orm(string_value = "system")]
    System,
    /// The user.
    #[sea_orm(string_value = "user")]
    User,
    /// The AI assistant.
    #[sea_orm(string_value = "assistant")]
    Assistant,
}

/// Where a message stands (`text` in the database).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// A reply being generated.
    #[sea_orm(string_value = "streaming")]
    Streaming,
    /// Finished and stored.
    #[sea_orm(string_value = "complete")]
    Complete,
    /// The provider failed (or the reply was interrupted); the text until then is stored.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Stopped by the user; the text until then is stored.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub company_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Order within the conversation (an identity column: never written by the server).
    pub seq: i64,
    pub user_id: Uuid,
    pub conversation_id: Uuid,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub model: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    /// Why a reply failed (never shown verbatim to other users; the owner sees it).
    pub error: Option<String>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    /// When the generator of a streaming reply last showed signs of life (stamped at insert,
    /// bumped by the generator; never written by a request).
    pub heartbeat_at: DateTimeWithTimeZone,
    /// How many deltas of a streaming reply `content` holds, as its generator last stored it
    /// (so a late subscriber knows which live deltas follow); `NULL` when unknown. Never
    /// written by a request.
    pub content_deltas: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
