//! Preset rows: lookups, the keyset-paged listing, and writes. Every query names the company
//! explicitly; Row Level Security decides which of its rows the caller sees and changes.

use entity::presets;
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, sea_query::Expr,
};
use uuid::Uuid;

use super::super::connection::like_pattern;
use crate::{
    error::AppResult,
    paging::{self, Page, PageRequest, Sort},
};

/// The list name preset cursors carry.
pub const LIST: &str = "presets";

/// A preset's sort key: its name, then its id.
pub type Key = (String, Uuid);

/// The preset `id` of `company`, if the caller sees it.
pub async fn find(
    conn: &impl ConnectionTrait,
    company: Uuid,
    id: Uuid,
) -> AppResult<Option<presets::Model>> {
    Ok(presets::Entity::find_by_id(id)
        .filter(presets::Column::CompanyId.eq(company))
        .one(conn)
        .await?)
}

fn visible(company: Uuid, search: Option<&str>) -> sea_orm::Select<presets::Entity> {
    let mut query = presets::Entity::find().filter(presets::Column::CompanyId.eq(company));
    if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
        query = query.filter(Expr::cust_with_values(
            "(name ILIKE $1 OR description ILIKE $1)",
            [like_pattern(search)],
        ));
    }
    query
}

/// The page `request` asks for of the presets the caller sees, by name then id.
pub async fn list(
    conn: &impl ConnectionTrait,
    company: Uuid,
    search: Option<&str>,
    request: &PageRequest<Key>,
) -> AppResult<Page<presets::Model>> {
    let sort = Sort::asc([
        Expr::col(presets::Column::Name),
        Expr::col(presets::Column::Id),
    ]);
    paging::fetch(conn, visible(company, search), &sort, LIST, request, |p| {
        (p.name.clone(), p.id)
    })
    .await
}

/// How many presets the caller sees that match `search`.
pub async fn count(
    conn: &impl ConnectionTrait,
    company: Uuid,
    search: Option<&str>,
) -> AppResult<u64> {
    Ok(visible(company, search).count(conn).await?)
}

/// What a new preset holds.
pub struct NewPreset {
    pub name: String,
    pub description: String,
    pub filter: serde_json::Value,
    pub visibility: &'static str,
}

/// Inserts a preset owned by `owner`; a taken name is `CONFLICT` (unique index).
pub async fn insert(
    conn: &impl ConnectionTrait,
    company: Uuid,
    owner: Uuid,
    new: NewPreset,
) -> AppResult<presets::Model> {
    Ok(presets::ActiveModel {
        company_id: Set(company),
        owner_id: Set(owner),
        name: Set(new.name),
        description: Set(new.description),
        filter: Set(new.filter),
        visibility: Set(new.visibility.to_owned()),
        ..Default::default()
    }
    .insert(conn)
    .await?)
}

/// Applies `changes` to preset `id`; `None` when Row Level Security let no row change.
pub async fn update(
    conn: &impl ConnectionTrait,
    company: Uuid,
    id: Uuid,
    changes: presets::ActiveModel,
) -> AppResult<Option<presets::Model>> {
    let updated = presets::Entity::update_many()
        .set(changes)
        .filter(presets::Column::CompanyId.eq(company))
        .filter(presets::Column::Id.eq(id))
        .exec_with_returning(conn)
        .await?;
    Ok(updated.into_iter().next())
}

/// Deletes preset `id`; false when Row Level Security let no row go.
pub async fn delete(conn: &impl ConnectionTrait, company: Uuid, id: Uuid) -> AppResult<bool> {
    let result = presets::Entity::delete_many()
        .filter(presets::Column::CompanyId.eq(company))
        .filter(presets::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}
