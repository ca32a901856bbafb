//! The audience service (see the module documentation of `services`): the company's field
//! registry, the filter an audience query asks for, and counting or listing the users a filter
//! selects, always scoped to the caller's company (and to Row Level Security underneath). The
//! filter language itself ([`crate::audience`]: parse, eval, cost, bitmap terms) stays pure;
//! its SQL is compiled here ([`compile`]).

pub mod compile;

use std::collections::HashMap;

use chrono::Utc;
use entity::{activity_kinds, audience_fields, audience_users, user_profiles};
use sea_orm::{
    ActiveModelTrait as _,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement,
    sea_query::{Alias, Expr},
};
use uuid::Uuid;

use self::compile::compile;
use super::{
    keyset::{self, Sort},
    presets,
};
use crate::{
    audience::{
        ActivityKind, Field, FieldType, Filter, MetricType, Registry, bits, cost::Budget, parse,
    },
    auth::Principal,
    caller::BuiltInRole,
    error::{AppError, AppResult},
    paging::{Page, PageRequest},
};

/// A user of an audience, as `user_profiles` shows them (privacy settings mask e-mails and
/// attributes).
pub use super::users::Profile as Member;

/// The built-in fields plus those `company` declared, and the activity kinds the caller may
/// read (for activity conditions). A declared field whose stored type is unknown is an error,
/// never skipped.
pub async fn registry(conn: &impl ConnectionTrait, company: Uuid) -> AppResult<Registry> {
    let declared = audience_fields::Entity::find()
        .filter(audience_fields::Column::CompanyId.eq(company))
        .order_by_asc(audience_fields::Column::Name)
        .all(conn)
        .await?;
    let kinds = activity_kinds::Entity::find()
        .filter(activity_kinds::Column::CompanyId.eq(company))
        .all(conn)
        .await?;
    Ok(Registry::with_attributes(
        declared
            .into_iter()
            .map(|f| (f.name, f.r#type, f.description)),
    )
    .with_activity_kinds(kinds.into_iter().map(activity_kind)))
}

/// An activity kind as filters see it: its metrics by name, `number` and `integer` ones numbers
/// (the CHECK of `activity_kinds.metrics` keeps the definitions well-formed).
fn activity_kind(row: activity_kinds::Model) -> ActivityKind {
    let metrics = row
        .metrics
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let name = m.get("name")?.as_str()?.to_owned();
            let ty = match m.get("type")?.as_str()? {
                "number" | "integer" => MetricType::Number,
                other => MetricType::Other(other.to_owned()),
            };
            Some((name, ty))
        })
        .collect();
    ActivityKind {
        id: row.id,
        name: row.name,
        metrics,
    }
}

/// Every field the caller's filters may use: the built-in ones, then the company's own.
pub async fn fields(conn: &impl ConnectionTrait, caller: &Principal) -> AppResult<Vec<Field>> {
    let registry = registry(conn, caller.company_id).await?;
    Ok(registry.fields().cloned().collect())
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

/// Where an audience query's filter comes from.
#[derive(Debug, Clone)]
pub enum FilterSource {
    /// Everyone.
    Everyone,
    /// A filter document given with the query (its values were paid for when it was parsed).
    Document(serde_json::Value),
    /// The filter of the visible preset of this id; its values are spent from the request's
    /// audience budget under `presetId`.
    Preset(Uuid),
}

/// The filter `source` stands for, validated against the caller's company's fields. An unknown
/// or invisible preset is `NOT_FOUND`.
pub async fn resolve_filter(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    source: FilterSource,
    budget: &Budget,
) -> AppResult<Filter> {
    let company = caller.company_id;
    match source {
        FilterSource::Everyone => Ok(Filter {
            include: None,
            exclude: None,
        }),
        FilterSource::Document(doc) => parse_for(conn, company, &doc).await,
        FilterSource::Preset(id) => {
            let preset = presets::find(conn, caller, id)
                .await?
                .ok_or_else(|| AppError::NotFound("no such preset".into()))?;
            budget.spend(crate::audience::cost::values(&preset.filter), "presetId")?;
            parse_for(conn, company, &preset.filter).await
        }
    }
}

/// Plans the next statements for their actual values. Prepared statements otherwise switch to a
/// generic plan after a few runs, and a generic plan cannot know how many rows `attributes @>
/// $1` matches (it assumes few): broad filters would get index scans slower than a scan. And no
/// JIT: compiling a scan of many users' rows takes longer than running it.
async fn plan_for_values(conn: &impl ConnectionTrait) -> AppResult<()> {
    conn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off")
        .await?;
    Ok(())
}

/// The people an audience is drawn from: everyone for admins (`audience_users_admin`), else
/// those who share their whole profile with the company (`audience_users`), so a filter cannot
/// probe attributes their owners keep private. Both views re-check the caller in PostgreSQL,
/// which knows admins by their role: the view is chosen the same way here.
fn ids(caller: &Principal, filter: &Filter) -> sea_orm::Select<audience_users::Entity> {
    let view = if caller.role == BuiltInRole::Admin {
        "audience_users_admin"
    } else {
        "audience_users"
    };
    let mut select = audience_users::Entity::find()
        .select_only()
        .column(audience_users::Column::Id)
        .filter(audience_users::Column::CompanyId.eq(caller.company_id))
        .filter(compile(filter));
    // Keep the entity's table name as the alias: the selected columns are qualified with it.
    QueryTrait::query(&mut select)
        .from_clear()
        .from_as(Alias::new(view), Alias::new("audience_users"));
    select
}

/// How many users of the caller's company the filter selects: from the bitmaps of its terms
/// when every condition is one ([`bits`]), else from the users' rows. Both read only the people
/// the caller may segment.
pub async fn count(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    filter: &Filter,
) -> AppResult<u64> {
    plan_for_values(conn).await?;
    let Some(counting) = bits::count(filter, caller.company_id) else {
        return Ok(ids(caller, filter).count(conn).await?);
    };
    let mut values: Vec<sea_orm::Value> = counting.terms.into_iter().map(Into::into).collect();
    values.push(counting.company.into());
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, counting.sql, values);
    let row = conn
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("an audience count gave no row")))?;
    let n: i64 = row.try_get("", "n")?;
    u64::try_from(n).map_err(AppError::internal)
}

/// How many users of the caller's company the filter document `doc` selects.
pub async fn count_document(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    doc: &serde_json::Value,
) -> AppResult<u64> {
    let filter = parse_for(conn, caller.company_id, doc).await?;
    count(conn, caller, &filter).await
}

/// The list name audience cursors carry.
pub const LIST: &str = "audience";

/// The page `request` asks for of the users of the caller's company the filter selects, by id.
pub async fn page(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    filter: &Filter,
    request: &PageRequest<(Uuid,)>,
) -> AppResult<Page<Uuid>> {
    plan_for_values(conn).await?;
    let sort = Sort::asc([Expr::col(audience_users::Column::Id)]);
    let rows = keyset::keyset(ids(caller, filter), &sort, request)
        .into_tuple::<Uuid>()
        .all(conn)
        .await?;
    Ok(Page::build(rows, request, LIST, |id| (*id,)))
}

/// The page `request` asks for of the audience, its users shown through `user_profiles`. A user
/// the profiles no longer show (gone since) is left out; the page's cursors still continue
/// where the audience's ids ended.
pub async fn members(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    filter: &Filter,
    request: &PageRequest<(Uuid,)>,
) -> AppResult<Page<Member>> {
    let page = page(conn, caller, filter, request).await?;
    let ids: Vec<Uuid> = page.nodes().copied().collect();
    let mut profiles: HashMap<Uuid, Member> = user_profiles::Entity::find()
        .filter(user_profiles::Column::CompanyId.eq(caller.company_id))
        .filter(user_profiles::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| Ok((u.id, Member::try_from(u)?)))
        .collect::<Result<_, sea_orm::DbErr>>()?;
    Ok(page.filter_map(|id| profiles.remove(&id)))
}

/// A company field the caller declares.
#[derive(Debug, Clone)]
pub struct NewField {
    pub name: String,
    pub ty: FieldType,
    pub description: String,
}

/// A declared company field, as stored.
#[derive(Debug, Clone)]
pub struct DeclaredField {
    pub name: String,
    pub ty: FieldType,
    pub description: String,
}

/// Declares a company field stored in `users.attributes`; one that exists is `CONFLICT`
/// (primary key), and Row Level Security refuses callers who may not manage audiences.
pub async fn define_field(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    new: NewField,
) -> AppResult<DeclaredField> {
    let row = audience_fields::ActiveModel {
        company_id: Set(caller.company_id),
        name: Set(new.name),
        r#type: Set(new.ty),
        description: Set(new.description),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(DeclaredField {
        name: row.name,
        ty: row.r#type,
        description: row.description,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum as _;

    use super::FieldType;

    #[test]
    fn field_types_are_stored_under_their_filter_names_and_unknown_ones_are_errors() {
        for ty in FieldType::ALL {
            assert_eq!(ty.to_value(), ty.as_str());
            assert_eq!(FieldType::try_from_value(&ty.to_value()).ok(), Some(ty));
            assert_eq!(FieldType::parse(ty.as_str()), Some(ty));
        }
        assert!(FieldType::try_from_value(&"text".to_owned()).is_err());
        assert!(FieldType::try_from_value(&"String".to_owned()).is_err());
        assert_eq!(FieldType::parse("text"), None);
    }
}
