//! A person in one company, as a request may read it: only the columns the request role
//! `app_user` may select. `email` and `attributes` are read through `user_profiles` (which
//! masks them by the person's privacy settings); `password_hash` only by definer functions.
//! Writes of columns this entity does not map name them explicitly.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub company_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub display_name: String,
    pub role: String,
    pub is_active: bool,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub last_active_at: Option<DateTimeWithTimeZone>,
    pub profile_visibility: ProfileVisibility,
    /// Attribute keys others may see (`None`: all).
    pub visible_attributes: Option<Vec<String>>,
}

/// Who may see a person's e-mail and attributes (the person and the company's admins always
/// may), stored as `company`, `friends` or `private`. A stored value outside these is an error
/// when the row is read, never a default.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum ProfileVisibility {
    /// Everyone in the company (the default).
    #[sea_orm(string_value = "company")]
    Company,
    /// Friends only.
    #[sea_orm(string_value = "friends")]
    Friends,
    /// Nobody but the person and the company's admins.
    #[sea_orm(string_value = "private")]
    Private,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::companies::Entity",
        from = "Column::CompanyId",
        to = "super::companies::Column::Id",
        on_delete = "Cascade"
    )]
    Company,
}

impl Related<super::companies::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Company.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
