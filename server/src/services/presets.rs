//! The presets service (see the module documentation of `services`): saved audience filters.
//! Every query names the caller's company explicitly; Row Level Security decides which of its
//! rows the caller sees and changes (their own and company-visible ones, and for whoever may
//! manage audiences every preset of the company).

use chrono::{DateTime, Utc};
use entity::presets;
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    audience,
    keyset::{self, Sort},
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    paging::like_pattern,
    paging::{Page, PageRequest},
};

/// A saved audience filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub id: Uuid,
    pub company_id: Uuid,
    pub owner_id: Uuid,
    /// Unique in the company, whatever its case.
    pub name: String,
    pub description: String,
    /// The filter document (validated against the company's fields when it was saved).
    pub filter: serde_json::Value,
    pub visibility: Visibility,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<presets::Model> for Preset {
    fn from(m: presets::Model) -> Self {
        Self {
            id: m.id,
            company_id: m.company_id,
            owner_id: m.owner_id,
            name: m.name,
            description: m.description,
            filter: m.filter,
            visibility: m.visibility,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// Who sees a preset.
pub use presets::Visibility;

/// The list name preset cursors carry.
pub const LIST: &str = "presets";

/// A preset's sort key: its name, then its id.
pub type Key = (String, Uuid);

/// The preset `id` of the caller's company, if the caller sees it.
pub async fn find(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
) -> AppResult<Option<Preset>> {
    Ok(presets::Entity::find_by_id(id)
        .filter(presets::Column::CompanyId.eq(caller.company_id))
        .one(conn)
        .await?
        .map(Preset::from))
}

/// The preset `id`, or `NOT_FOUND` when the caller does not see it.
async fn get(conn: &impl ConnectionTrait, caller: &Principal, id: Uuid) -> AppResult<Preset> {
    find(conn, caller, id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such preset".into()))
}

/// Which presets a list shows: those of the caller's company the caller sees, matching
/// `search` (trimmed; empty matches all) in their name or description.
#[derive(Debug, Clone)]
pub struct PresetFilter {
    company: Uuid,
    search: Option<String>,
}

impl PresetFilter {
    pub fn new(caller: &Principal, search: Option<&str>) -> Self {
        Self {
            company: caller.company_id,
            search: search
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        }
    }

    fn select(&self) -> sea_orm::Select<presets::Entity> {
        let mut query = presets::Entity::find().filter(presets::Column::CompanyId.eq(self.company));
        if let Some(search) = &self.search {
            query = query.filter(Expr::cust_with_values(
                "(name ILIKE $1 OR description ILIKE $1)",
                [like_pattern(search)],
            ));
        }
        query
    }
}

/// Whether a list reads the presets' filter documents. A page that shows neither a filter nor
/// anything computed from one (its audience's size) leaves the documents unread: PostgreSQL
/// then neither reads nor sends them, nor the server decodes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Documents {
    Read,
    /// Every preset of the page holds JSON `null` as its filter.
    Skip,
}

/// The page `request` asks for of the presets `filter` shows, by name then id.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &PresetFilter,
    request: &PageRequest<Key>,
    documents: Documents,
) -> AppResult<Page<Preset>> {
    use presets::Column as C;
    let sort = Sort::asc([Expr::col(C::Name), Expr::col(C::Id)]);
    let select = match documents {
        Documents::Read => filter.select(),
        Documents::Skip => filter
            .select()
            .select_only()
            .columns([
                C::Id,
                C::CompanyId,
                C::OwnerId,
                C::Name,
                C::Description,
                C::Visibility,
                C::CreatedAt,
                C::UpdatedAt,
            ])
            .expr_as(Expr::cust("'null'::jsonb"), "filter"),
    };
    keyset::fetch(conn, select, &sort, LIST, request, |p| {
        (p.name.clone(), p.id)
    })
    .await
    .map(|page| page.map(Preset::from))
}

/// How many presets `filter` shows, over all pages.
pub async fn count(conn: &impl ConnectionTrait, filter: &PresetFilter) -> AppResult<u64> {
    Ok(filter
        .select()
        .select_only()
        .column(presets::Column::Id)
        .count(conn)
        .await?)
}

/// What a new preset holds (name and description already checked).
pub struct NewPreset {
    pub name: String,
    pub description: String,
    pub filter: serde_json::Value,
    pub visibility: Visibility,
}

/// Saves a preset owned by the caller. The filter is validated against the company's fields
/// first (`BAD_USER_INPUT` with its path); a taken name is `CONFLICT` (unique index).
pub async fn create(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    new: NewPreset,
) -> AppResult<Preset> {
    audience::parse_for(conn, caller.company_id, &new.filter).await?;
    insert(conn, caller, new).await
}

async fn insert(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    new: NewPreset,
) -> AppResult<Preset> {
    Ok(presets::ActiveModel {
        company_id: Set(caller.company_id),
        owner_id: Set(caller.user_id),
        name: Set(new.name),
        description: Set(new.description),
        filter: Set(new.filter),
        visibility: Set(new.visibility),
        ..Default::default()
    }
    .insert(conn)
    .await?
    .into())
}

/// Changes to a preset (name and description already checked); `None` keeps a value.
#[derive(Debug, Default)]
pub struct PresetChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub filter: Option<serde_json::Value>,
    pub visibility: Option<Visibility>,
}

/// Applies `changes` to preset `id`: `NOT_FOUND` when the caller does not see it, the new
/// filter validated like a new preset's, `FORBIDDEN` when Row Level Security lets no row
/// change. No change answers the preset as it is.
pub async fn update(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
    changes: PresetChanges,
) -> AppResult<Preset> {
    let company = caller.company_id;
    let current = get(conn, caller, id).await?;
    let mut row = <presets::ActiveModel as Default>::default();
    if let Some(name) = changes.name {
        row.name = Set(name);
    }
    if let Some(description) = changes.description {
        row.description = Set(description);
    }
    if let Some(visibility) = changes.visibility {
        row.visibility = Set(visibility);
    }
    if let Some(filter) = changes.filter {
        audience::parse_for(conn, company, &filter).await?;
        row.filter = Set(filter);
    }
    if !row.is_changed() {
        return Ok(current);
    }
    let updated = presets::Entity::update_many()
        .set(row)
        .filter(presets::Column::CompanyId.eq(company))
        .filter(presets::Column::Id.eq(id))
        .exec_with_returning(conn)
        .await?;
    updated
        .into_iter()
        .next()
        .map(Preset::from)
        .ok_or_else(not_yours)
}

/// Deletes preset `id`: `NOT_FOUND` when the caller does not see it, `FORBIDDEN` when Row
/// Level Security lets no row go.
pub async fn delete(conn: &impl ConnectionTrait, caller: &Principal, id: Uuid) -> AppResult<()> {
    get(conn, caller, id).await?;
    let result = presets::Entity::delete_many()
        .filter(presets::Column::CompanyId.eq(caller.company_id))
        .filter(presets::Column::Id.eq(id))
        .exec(conn)
        .await?;
    if result.rows_affected == 0 {
        return Err(not_yours());
    }
    Ok(())
}

/// Copies preset `id`, which the caller sees (`NOT_FOUND` otherwise), into a new private
/// preset of theirs named `name` (already checked).
pub async fn duplicate(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
    name: String,
) -> AppResult<Preset> {
    let source = get(conn, caller, id).await?;
    let new = NewPreset {
        name,
        description: source.description,
        filter: source.filter,
        visibility: Visibility::Private,
    };
    insert(conn, caller, new).await
}

fn not_yours() -> AppError {
    AppError::Forbidden("only its owner, managers and admins may change this preset".into())
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum as _;

    use super::Visibility;

    #[test]
    fn visibility_is_stored_as_today_and_unknown_values_are_errors() {
        assert_eq!(Visibility::Private.to_value(), "private");
        assert_eq!(Visibility::Company.to_value(), "company");
        for visibility in [Visibility::Private, Visibility::Company] {
            assert_eq!(
                Visibility::try_from_value(&visibility.to_value()).ok(),
                Some(visibility)
            );
        }
        assert!(Visibility::try_from_value(&"public".to_owned()).is_err());
        assert!(Visibility::try_from_value(&String::new()).is_err());
    }
}
