//! A friendship between two users of one company: one row per unordered pair
//! (`user_a < user_b`), pending, accepted or blocked.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "friendships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub company_id: Uuid,
    pub user_a: Uuid,
    pub user_b: Uuid,
    /// `pending`, `accepted` or `blocked`.
    pub status: String,
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
