//! Database side of audiences: the company's field registry, and counting or listing the
//! users a filter selects, always scoped to one company (and to RLS underneath).

use chrono::Utc;
use entity::{audience_fields, audience_users};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{FieldType, Filter, Registry, compile::compile, parse};
use crate::error::AppResult;

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

/// Audiences read `audience_users`: people whose whole profile the caller may see (everyone,
/// for admins), so a filter cannot probe attributes their owners keep private.
fn select(company: Uuid, filter: &Filter) -> sea_orm::Select<audience_users::Entity> {
    audience_users::Entity::find()
        .select_only()
        .column(audience_users::Column::Id)
        .filter(audience_users::Column::CompanyId.eq(company))
        .filter(compile(filter))
}

/// How many users of `company` the filter selects.
pub async fn count(conn: &impl ConnectionTrait, company: Uuid, filter: &Filter) -> AppResult<u64> {
    plan_for_values(conn).await?;
    Ok(select(company, filter).count(conn).await?)
}

/// Up to `limit` users of `company` the filter selects, by id, after `after`.
pub async fn page(
    conn: &impl ConnectionTrait,
    company: Uuid,
    filter: &Filter,
    after: Option<Uuid>,
    limit: u64,
) -> AppResult<Vec<Uuid>> {
    plan_for_values(conn).await?;
    let mut query = select(company, filter);
    if let Some(after) = after {
        query = query.filter(audience_users::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(audience_users::Column::Id)
        .limit(limit)
        .into_tuple::<Uuid>()
        .all(conn)
        .await?)
}
