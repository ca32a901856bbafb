//! A friendship between two users of one company: one row per unordered pair
//! (`user_a < user_b`), pending, accepted or blocked.

use sea_orm::entity::prelude::*;

/// Where a pair stands (`text` in the database).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum FriendshipStatus {
    /// One asked the other; no answer yet.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Friends.
    #[sea_orm(string_value = "accepted")]
    Accepted,
    /// One blocked the other (`blocked_by`).
    #[sea_orm(string_value = "blocked")]
    Blocked,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "friendships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub company_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_a: Uuid,
    pub user_b: Uuid,
    pub status: FriendshipStatus,
    pub requested_by: Uuid,
    pub blocked_by: Option<Uuid>,
    pub message: Option<String>,
    pub responded_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The member of the pair who is not `user`.
    pub fn other(&self, user: Uuid) -> Uuid {
        if self.user_a == user {
            self.user_b
        } else {
            self.user_a
        }
    }
}
