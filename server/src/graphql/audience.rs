//! Audience segmentation: `audienceFields`, `audience`, `audienceSize` and (admins)
//! `defineAudienceField`. Filters are validated and compiled by [`crate::audience`].

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Json, Object, SimpleObject};

use super::{
    connection::{Defaulted, PageInfo, connection, page_args, page_cost, parse_id},
    principal, scope,
    users::User,
};
use crate::{
    audience::{self, Field, FieldType, Filter, Operators as _, Source, cost},
    authz::{Action, Object as PermissionObject, Permission, requires},
    error::{AppError, AppResult},
    paging::DefaultSize,
    services::audience::{self as service, FilterSource, NewField},
    state::AppState,
};

/// The type of an audience field.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceFieldType {
    /// Text; operators `eq`, `neq`, `in`, `not_in`, `starts_with`, `exists`, `not_exists`.
    String,
    /// A JSON number; `eq`, `neq`, `in`, `not_in`, `gt`, `gte`, `lt`, `lte`, `between`,
    /// `exists`, `not_exists`.
    Number,
    /// true / false; `eq`, `neq`, `exists`, `not_exists`.
    Boolean,
    /// A date (attributes hold `YYYY-MM-DD`); `gt`, `gte`, `lt`, `lte`, `between`, `before`,
    /// `after`, `within_last_days`, `exists`, `not_exists`.
    Date,
    /// A JSON array of strings; `contains`, `contains_any`, `contains_all`, `exists`,
    /// `not_exists`.
    StringList,
}

impl From<FieldType> for AudienceFieldType {
    fn from(ty: FieldType) -> Self {
        match ty {
            FieldType::String => Self::String,
            FieldType::Number => Self::Number,
            FieldType::Boolean => Self::Boolean,
            FieldType::Date => Self::Date,
            FieldType::StringList => Self::StringList,
        }
    }
}

impl From<AudienceFieldType> for FieldType {
    fn from(ty: AudienceFieldType) -> Self {
        match ty {
            AudienceFieldType::String => Self::String,
            AudienceFieldType::Number => Self::Number,
            AudienceFieldType::Boolean => Self::Boolean,
            AudienceFieldType::Date => Self::Date,
            AudienceFieldType::StringList => Self::StringList,
        }
    }
}

/// A field audience filters may use.
#[derive(Debug, Clone, SimpleObject)]
pub struct AudienceField {
    /// The name used as `field` in filters.
    pub name: String,
    /// Its type, which decides the operators and values it takes.
    #[graphql(name = "type")]
    pub ty: AudienceFieldType,
    /// Built into every company (true) or declared by this company in `users.attributes`.
    pub built_in: bool,
    /// What it holds.
    pub description: String,
    /// The operators valid on it.
    pub operators: Vec<String>,
}

impl From<&Field> for AudienceField {
    fn from(field: &Field) -> Self {
        Self {
            name: field.name.clone(),
            ty: field.ty.into(),
            built_in: !matches!(field.source, Source::Attribute(_)),
            description: field.description.clone(),
            operators: field
                .ty
                .operators()
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect(),
        }
    }
}

/// A new company field for audience filters.
#[derive(Debug, Clone, InputObject)]
pub struct AudienceFieldInput {
    /// The attribute key in `users.attributes`: 1 to 63 characters, lowercase letters, digits
    /// and `_`, starting with a letter; not a built-in field.
    pub name: String,
    /// The type of its values.
    #[graphql(name = "type")]
    pub ty: AudienceFieldType,
    /// What it holds (at most 500 characters).
    #[graphql(default)]
    pub description: String,
}

connection! {
    /// A page of an audience.
    #[graphql(complex)]
    pub struct AudienceConnection {
        /// The users of this page with their cursors, by id.
        edges,
        /// Where the page ends.
        page_info: PageInfo,
        /// The users of this page, by id (shown as their privacy settings allow).
        pub users: Vec<User>,
        #[graphql(skip)]
        filter: Filter,
    }
    /// An item of an [`AudienceConnection`].
    pub struct AudienceEdge {
        /// Pass it as `after` (or `before`) to page on from this user.
        cursor,
        /// The user.
        node: User,
    }
}

#[ComplexObject]
impl AudienceConnection {
    /// How many users the audience has, over all pages. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<u64> {
        let caller = principal(ctx)?.clone();
        let filter = self.filter.clone();
        scope(ctx)?
            .read(move |tx| {
                Box::pin(async move { service::count(tx.conn(), &caller, &filter).await })
            })
            .await
    }
}

/// What a filter argument weighs in the complexity limit: its values.
fn filter_cost(filter: &Option<Json<serde_json::Value>>) -> usize {
    filter.as_ref().map_or(0, |Json(doc)| cost::values(doc))
}

/// The request's audience budget: what presets' filters spend (filters written into the
/// document were paid for when it was parsed).
pub(super) fn budget(ctx: &Context<'_>) -> AppResult<Arc<cost::Budget>> {
    ctx.data::<Arc<cost::Budget>>()
        .cloned()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no audience budget in the context")))
}

/// Whether Casbin lets the caller's role do `action` on `object` in their company (custom
/// roles by their grants).
pub(super) async fn may(
    ctx: &Context<'_>,
    object: PermissionObject,
    action: Action,
) -> AppResult<bool> {
    let state = ctx
        .data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no state in the GraphQL context")))?;
    state
        .authz
        .authorize(scope(ctx)?, principal(ctx)?, Permission { object, action })
        .await
}

/// Audience queries.
#[derive(Default)]
pub struct AudienceQuery;

#[Object]
impl AudienceQuery {
    /// Every field audience filters may use: the built-in ones, then the company's own.
    #[graphql(directive = requires::apply(PermissionObject::Audience, Action::Read))]
    async fn audience_fields(&self, ctx: &Context<'_>) -> AppResult<Vec<AudienceField>> {
        let caller = principal(ctx)?.clone();
        let fields = scope(ctx)?
            .read(move |tx| Box::pin(async move { service::fields(tx.conn(), &caller).await }))
            .await?;
        Ok(fields.iter().map(AudienceField::from).collect())
    }

    /// The users of the caller's company a filter selects (or a saved preset's filter; with
    /// neither, everyone), by id. Mistakes in the filter are `BAD_USER_INPUT` with the path
    /// into the document, e.g. `include.all[2].value`. The filter's values count towards the
    /// query's complexity and towards the request's bound on audience values.
    #[graphql(
        directive = requires::apply(PermissionObject::Audience, Action::Read),
        complexity = "filter_cost(&filter) + page_cost(last, first, 20, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audience(
        &self,
        ctx: &Context<'_>,
        filter: Option<Json<serde_json::Value>>,
        preset_id: Option<ID>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<AudienceConnection> {
        let caller = principal(ctx)?.clone();
        let request = page_args(ctx, Defaulted::First, first, after, last, before)
            .validate(service::LIST, DefaultSize::First(20))?;
        let source = filter_source(filter, preset_id)?;
        let budget = budget(ctx)?;
        let (filter, page) = scope(ctx)?
            .read(move |tx| {
                Box::pin(async move {
                    let filter =
                        service::resolve_filter(tx.conn(), &caller, source, &budget).await?;
                    let page = service::members(tx.conn(), &caller, &filter, &request).await?;
                    Ok((filter, page))
                })
            })
            .await?;
        let page = page.map(User::from_row);
        let users = page.nodes().cloned().collect();
        Ok(AudienceConnection::from_page(page, users, filter))
    }

    /// How many users of the caller's company a filter (or a saved preset) selects. The
    /// filter's values count towards the query's complexity and towards the request's bound
    /// on audience values.
    #[graphql(
        directive = requires::apply(PermissionObject::Audience, Action::Read),
        complexity = "filter_cost(&filter) + 1"
    )]
    async fn audience_size(
        &self,
        ctx: &Context<'_>,
        filter: Option<Json<serde_json::Value>>,
        preset_id: Option<ID>,
    ) -> AppResult<u64> {
        let caller = principal(ctx)?.clone();
        let source = filter_source(filter, preset_id)?;
        let budget = budget(ctx)?;
        scope(ctx)?
            .read(move |tx| {
                Box::pin(async move {
                    let filter =
                        service::resolve_filter(tx.conn(), &caller, source, &budget).await?;
                    service::count(tx.conn(), &caller, &filter).await
                })
            })
            .await
    }
}

/// Audience mutations.
#[derive(Default)]
pub struct AudienceMutation;

#[Object]
impl AudienceMutation {
    /// Declares a company field stored in `users.attributes`, usable in filters at once.
    /// Admins only (Row Level Security refuses others); `CONFLICT` if it exists.
    #[graphql(directive = requires::apply(PermissionObject::Audience, Action::Manage))]
    async fn define_audience_field(
        &self,
        ctx: &Context<'_>,
        input: AudienceFieldInput,
    ) -> AppResult<AudienceField> {
        // Company fields are the company's settings: managing audiences is not enough, the
        // caller's role must also manage the company (admins, and custom roles granted it).
        if !may(ctx, PermissionObject::Company, Action::Manage).await? {
            return Err(AppError::Forbidden(
                "only admins define audience fields".into(),
            ));
        }
        let name = input.name.trim().to_owned();
        if !audience::valid_field_name(&name) {
            return Err(AppError::bad_input(
                "input.name",
                "a field name has 1 to 63 characters: lowercase letters, digits and `_`, \
                 starting with a letter, and is not a built-in field",
            ));
        }
        let description = input.description.trim().to_owned();
        if description.chars().count() > 500 {
            return Err(AppError::bad_input(
                "input.description",
                "the description is longer than 500 characters",
            ));
        }
        let caller = principal(ctx)?.clone();
        let new = NewField {
            name,
            ty: FieldType::from(input.ty),
            description,
        };
        let field = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::define_field(tx.conn(), &caller, new).await })
            })
            .await?;
        Ok(AudienceField {
            name: field.name,
            ty: field.ty.into(),
            built_in: false,
            description: field.description,
            operators: field
                .ty
                .operators()
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect(),
        })
    }
}

/// Where the filter of an audience query comes from: `filter`, or the visible preset
/// `preset_id`, or (neither) everyone. Both at once is `BAD_USER_INPUT`.
fn filter_source(
    filter: Option<Json<serde_json::Value>>,
    preset_id: Option<ID>,
) -> AppResult<FilterSource> {
    match (filter, preset_id) {
        (Some(_), Some(_)) => Err(AppError::bad_input(
            "presetId",
            "give `filter` or `presetId`, not both",
        )),
        (Some(Json(doc)), None) => Ok(FilterSource::Document(doc)),
        (None, Some(id)) => Ok(FilterSource::Preset(parse_id("presetId", &id)?)),
        (None, None) => Ok(FilterSource::Everyone),
    }
}
