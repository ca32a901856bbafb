//! The preset fields of Query and Mutation.

use async_graphql::{Context, ID, Json, Object};
use entity::presets;
use sea_orm::{ActiveModelTrait as _, ActiveValue::Set, ConnectionTrait};
use uuid::Uuid;

use super::{
    super::{
        connection::{Defaulted, page_args, page_cost, parse_id},
        principal, scope,
    },
    CreatePresetInput, Preset, PresetConnection, PresetVisibility, UpdatePresetInput,
    service::{self, NewPreset},
};
use crate::{
    audience::{cost, store},
    authz::{Action, Object as PermissionObject, requires},
    error::{AppError, AppResult},
    paging::DefaultSize,
    state::AppState,
};

fn check_name(path: &str, name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::bad_input(
            path,
            "a preset name has 1 to 200 characters",
        ));
    }
    Ok(name.to_owned())
}

fn check_description(path: &str, text: &str) -> AppResult<String> {
    let text = text.trim();
    if text.chars().count() > 2000 {
        return Err(AppError::bad_input(
            path,
            "the description is longer than 2000 characters",
        ));
    }
    Ok(text.to_owned())
}

/// A preset holds at most AUDIENCE_MAX_VALUES values, as the filters of one request do, so
/// that using one is bounded like a filter written into the document.
fn check_values(ctx: &Context<'_>, doc: &serde_json::Value) -> AppResult<()> {
    let state = ctx
        .data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no state in the GraphQL context")))?;
    cost::check_filter(
        doc,
        state.config.audience_max_values as usize,
        "input.filter",
    )
}

/// Validates a filter document before it is saved.
async fn check_filter(
    conn: &impl ConnectionTrait,
    company: Uuid,
    doc: &serde_json::Value,
) -> AppResult<()> {
    store::parse_for(conn, company, doc).await.map(|_| ())
}

/// Preset queries.
#[derive(Default)]
pub struct PresetQuery;

#[Object]
impl PresetQuery {
    /// The presets the caller sees (their own, company-visible ones, and for managers and
    /// admins every preset of the company), by name; `search` matches name or description.
    #[graphql(
        directive = requires::apply(PermissionObject::Preset, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    async fn presets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        search: Option<String>,
    ) -> AppResult<PresetConnection> {
        let principal = principal(ctx)?;
        let request = page_args(ctx, Defaulted::First, first, after, last, before)
            .validate(service::LIST, DefaultSize::First(20))?;
        let tx = scope(ctx)?.read_guard().await?;
        let company = principal.company_id;
        let page = service::list(tx.conn(), company, search.as_deref(), &request).await?;
        let total_count = service::count(tx.conn(), company, search.as_deref()).await?;
        Ok(PresetConnection::from_page(
            page.map(Preset::from),
            total_count,
        ))
    }

    /// One preset the caller sees; null otherwise.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Read))]
    async fn preset(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Preset>> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let tx = scope(ctx)?.read_guard().await?;
        let row = service::find(tx.conn(), principal.company_id, id).await?;
        Ok(row.map(Preset::from))
    }
}

/// Preset mutations.
#[derive(Default)]
pub struct PresetMutation;

#[Object]
impl PresetMutation {
    /// Saves a filter as a preset owned by the caller. The filter is validated first
    /// (`BAD_USER_INPUT` with its path); a name taken in the company is `CONFLICT`.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Create))]
    async fn create_preset(
        &self,
        ctx: &Context<'_>,
        input: CreatePresetInput,
    ) -> AppResult<Preset> {
        let principal = principal(ctx)?;
        let name = check_name("input.name", &input.name)?;
        let description = check_description("input.description", &input.description)?;
        check_values(ctx, &input.filter.0)?;
        let tx = scope(ctx)?.begin_write().await?;
        check_filter(tx.conn(), principal.company_id, &input.filter.0).await?;
        let new = NewPreset {
            name,
            description,
            filter: input.filter.0,
            visibility: input.visibility.as_str(),
        };
        let row = service::insert(tx.conn(), principal.company_id, principal.user_id, new).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Changes a preset: members their own, managers and admins any of the company's.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Update))]
    async fn update_preset(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdatePresetInput,
    ) -> AppResult<Preset> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut changes = <presets::ActiveModel as Default>::default();
        if let Some(name) = &input.name {
            changes.name = Set(check_name("input.name", name)?);
        }
        if let Some(text) = &input.description {
            changes.description = Set(check_description("input.description", text)?);
        }
        if let Some(visibility) = input.visibility {
            changes.visibility = Set(visibility.as_str().to_owned());
        }
        if let Some(Json(filter)) = &input.filter {
            check_values(ctx, filter)?;
        }
        let tx = scope(ctx)?.begin_write().await?;
        let company = principal.company_id;
        let Some(current) = service::find(tx.conn(), company, id).await? else {
            return Err(AppError::NotFound("no such preset".into()));
        };
        if let Some(Json(filter)) = input.filter {
            check_filter(tx.conn(), company, &filter).await?;
            changes.filter = Set(filter);
        }
        if !changes.is_changed() {
            return Ok(current.into());
        }
        let row = service::update(tx.conn(), company, id, changes)
            .await?
            .ok_or_else(not_yours)?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Deletes a preset: members their own, managers and admins any of the company's.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Delete))]
    async fn delete_preset(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let tx = scope(ctx)?.begin_write().await?;
        if service::find(tx.conn(), principal.company_id, id)
            .await?
            .is_none()
        {
            return Err(AppError::NotFound("no such preset".into()));
        }
        if !service::delete(tx.conn(), principal.company_id, id).await? {
            return Err(not_yours());
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Copies a preset the caller sees into a new private preset of theirs named `name`.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Create))]
    async fn duplicate_preset(&self, ctx: &Context<'_>, id: ID, name: String) -> AppResult<Preset> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let name = check_name("name", &name)?;
        let tx = scope(ctx)?.begin_write().await?;
        let source = service::find(tx.conn(), principal.company_id, id)
            .await?
            .ok_or_else(|| AppError::NotFound("no such preset".into()))?;
        let new = NewPreset {
            name,
            description: source.description,
            filter: source.filter,
            visibility: PresetVisibility::Private.as_str(),
        };
        let row = service::insert(tx.conn(), principal.company_id, principal.user_id, new).await?;
        tx.commit().await?;
        Ok(row.into())
    }
}

fn not_yours() -> AppError {
    AppError::Forbidden("only its owner, managers and admins may change this preset".into())
}
