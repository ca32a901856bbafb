//! An activity a user recorded: a kind of the company, when, the metrics (checked against the
//! kind by PostgreSQL), a note, and who else may read it.

use sea_orm::entity::prelude::*;

/// Who besides the owner reads an activity (`text` in the database). Explicit shares add
/// people to any of them; a block between the two removes them from all.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum ActivityVisibility {
    /// The owner, and those it is shared with.
    #[sea_orm(string_value = "private")]
    Private,
    /// Also the owner's friends.
    #[sea_orm(string_value = "friends")]
    Friends,
    /// Also everyone in the company.
    #[sea_orm(string_value = "company")]
    Company,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "activities")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub company_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind_id: Uuid,
    pub occurred_at: DateTimeWithTimeZone,
    pub metrics: Json,
    pub note: Option<String>,
    pub visibility: ActivityVisibility,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
