//! The preset fields of Query and Mutation.

use async_graphql::{Context, ID, Json, Object};

use super::{
    super::{
        connection::{Defaulted, page_args, page_cost, parse_id},
        principal, scope,
    },
    CreatePresetInput, Preset, PresetConnection, UpdatePresetInput,
};
use crate::{
    audience::cost,
    authz::{Action, Object as PermissionObject, requires},
    error::{AppError, AppResult},
    paging::DefaultSize,
    services::presets::{self as service, NewPreset, PresetChanges, Visibility},
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
        let filter = service::PresetFilter::new(principal(ctx)?, search.as_deref());
        let request = page_args(ctx, Defaulted::First, first, after, last, before)
            .validate(service::LIST, DefaultSize::First(20))?;
        let documents = documents_read(ctx);
        let page = scope(ctx)?
            .read({
                let filter = filter.clone();
                move |tx| {
                    Box::pin(
                        async move { service::list(tx.conn(), &filter, &request, documents).await },
                    )
                }
            })
            .await?;
        Ok(PresetConnection::from_page(page.map(Preset::from), filter))
    }

    /// One preset the caller sees; null otherwise.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Read))]
    async fn preset(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Preset>> {
        let caller = principal(ctx)?.clone();
        let id = parse_id("id", &id)?;
        let row = scope(ctx)?
            .read(move |tx| Box::pin(async move { service::find(tx.conn(), &caller, id).await }))
            .await?;
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
        let caller = principal(ctx)?.clone();
        let name = check_name("input.name", &input.name)?;
        let description = check_description("input.description", &input.description)?;
        check_values(ctx, &input.filter.0)?;
        let new = NewPreset {
            name,
            description,
            filter: input.filter.0,
            visibility: input.visibility.into(),
        };
        let row = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::create(tx.conn(), &caller, new).await })
            })
            .await?;
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
        let caller = principal(ctx)?.clone();
        let id = parse_id("id", &id)?;
        let mut changes = PresetChanges::default();
        if let Some(name) = &input.name {
            changes.name = Some(check_name("input.name", name)?);
        }
        if let Some(text) = &input.description {
            changes.description = Some(check_description("input.description", text)?);
        }
        changes.visibility = input.visibility.map(Visibility::from);
        if let Some(Json(filter)) = input.filter {
            check_values(ctx, &filter)?;
            changes.filter = Some(filter);
        }
        let row = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::update(tx.conn(), &caller, id, changes).await })
            })
            .await?;
        Ok(row.into())
    }

    /// Deletes a preset: members their own, managers and admins any of the company's.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Delete))]
    async fn delete_preset(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let caller = principal(ctx)?.clone();
        let id = parse_id("id", &id)?;
        scope(ctx)?
            .write(move |tx| Box::pin(async move { service::delete(tx.conn(), &caller, id).await }))
            .await?;
        Ok(true)
    }

    /// Copies a preset the caller sees into a new private preset of theirs named `name`.
    #[graphql(directive = requires::apply(PermissionObject::Preset, Action::Create))]
    async fn duplicate_preset(&self, ctx: &Context<'_>, id: ID, name: String) -> AppResult<Preset> {
        let caller = principal(ctx)?.clone();
        let id = parse_id("id", &id)?;
        let name = check_name("name", &name)?;
        let row = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::duplicate(tx.conn(), &caller, id, name).await })
            })
            .await?;
        Ok(row.into())
    }
}

/// Whether the `presets` field being resolved shows a filter document, or something computed
/// from one, of any of its presets. A selection this does not know reads them.
fn documents_read(ctx: &Context<'_>) -> service::Documents {
    fn needs(preset: async_graphql::SelectionField<'_>) -> bool {
        !matches!(
            preset.name(),
            "id" | "name"
                | "description"
                | "visibility"
                | "ownerId"
                | "createdAt"
                | "updatedAt"
                | "canEdit"
                | "__typename"
        )
    }
    let reads = ctx.field().selection_set().any(|field| match field.name() {
        "pageInfo" | "totalCount" | "__typename" => false,
        "edges" => field.selection_set().any(|edge| match edge.name() {
            "cursor" | "__typename" => false,
            "node" => edge.selection_set().any(needs),
            _ => true,
        }),
        "nodes" => field.selection_set().any(needs),
        _ => true,
    });
    if reads {
        service::Documents::Read
    } else {
        service::Documents::Skip
    }
}
