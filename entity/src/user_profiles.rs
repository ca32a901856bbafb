//! The `user_profiles` view: people as the current request's caller may see them, with `email`
//! and `attributes` masked by the target's privacy settings (read-only).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "user_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub company_id: Uuid,
    /// `None` when the caller may not see it.
    pub email: Option<String>,
    pub display_name: String,
    pub role: String,
    /// Only the keys the caller may see (`{}` when none).
    pub attributes: Json,
    pub is_active: bool,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub last_active_at: Option<DateTimeWithTimeZone>,
    /// The caller's relation to this user: `self`, `none`, `pending_outgoing`,
    /// `pending_incoming`, `friends`, `blocked` (the caller blocked them) or `blocked_by`.
    pub relation: String,
    /// `company`, `friends` or `private`; shown to the user themselves and admins only.
    pub profile_visibility: Option<String>,
    /// Attribute keys others may see (`None`: all); shown like `profile_visibility`.
    pub visible_attributes: Option<Vec<String>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
