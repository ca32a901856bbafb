//! Database side of audiences: the company's field registry, and counting or listing the
//! users a filter selects, always scoped to one company (and to RLS underneath).

use chrono::Utc;
use entity::{audience_fields, audience_users};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
    sea_query::{Alias, Expr},
};
use uuid::Uuid;

use super::{FieldType, Filter, Registry, compile::compile, parse};
use crate::{
    error::AppResult,
    paging::{self, Page, PageRequest, Sort},
};

/// The built-in fields plus those `company` declared.
pub async fn registry(conn: &impl ConnectionTrait, company: Uuid) -> AppResult<Registry> {
    let declared = audience_fields::Entity::find()
        .filter(audience_fields::Column::CompanyId.eq(company))
        .order_by_asc(audience_fields::Column::Name)
        .all(conn)
        .await?;
    Ok(Registry::with_attributes(declared.into_iter().filter_map(
        |f| FieldType::parse(&f.r#type).map(|ty| (f.name, ty, f.description)),
    )))
}

/// Validates `doc` against the fields of `company`.
pub async fn parse_for(
    conn: &impl ConnectionTrait,
    company: Uuid,
    doc: &serde_json::Value,
) -> AppResult<Filter> {
    let registry = registry(conn, company).await?;
    Ok(parse(doc, &registry, Utc::now())?)
}

/// Plans the next statements for their actual values. Prepared statements otherwise switch to a
/// generic plan after a few runs, and a generic plan cannot know how many rows `attributes @>
/// $1` matches (it assumes few): broad filters would get index scans slower than a scan.
async fn plan_for_values(conn: &impl ConnectionTrait) -> AppResult<()> {
    conn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
        .await?;
    Ok(())
}

/// The people an audience is drawn from: everyone for admins (`audience_users_admin`), else
/// those who share their whole profile with the company (`audience_users`), so a filter cannot
/// probe attributes their owners keep private. Both views re-check the caller in PostgreSQL.
fn ids(admin: bool, company: Uuid, filter: &Filter) -> sea_orm::Select<audience_users::Entity> {
    let view = if admin {
        "audience_users_admin"
    } else {
        "audience_users"
    };
    let mut select = audience_users::Entity::find()
        .select_only()
        .column(audience_users::Column::Id)
        .filter(audience_users::Column::CompanyId.eq(company))
        .filter(compile(filter));
    // Keep the entity's table name as the alias: the selected columns are qualified with it.
    QueryTrait::query(&mut select)
        .from_clear()
        .from_as(Alias::new(view), Alias::new("audience_users"));
    select
}

/// How many users of `company` the filter selects.
pub async fn count(
    conn: &impl ConnectionTrait,
    admin: bool,
    company: Uuid,
    filter: &Filter,
) -> AppResult<u64> {
    plan_for_values(conn).await?;
    Ok(ids(admin, company, filter).count(conn).await?)
}

/// The list name audience cursors carry.
pub const LIST: &str = "audience";

/// The page `request` asks for of the users of `company` the filter selects, by id.
pub async fn page(
    conn: &impl ConnectionTrait,
    admin: bool,
    company: Uuid,
    filter: &Filter,
    request: &PageRequest<(Uuid,)>,
) -> AppResult<Page<Uuid>> {
    plan_for_values(conn).await?;
    let sort = Sort::asc([Expr::col(audience_users::Column::Id)]);
    let rows = paging::keyset(ids(admin, company, filter), &sort, request)
        .into_tuple::<Uuid>()
        .all(conn)
        .await?;
    Ok(Page::build(rows, request, LIST, |id| (*id,)))
}
