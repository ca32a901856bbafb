//! Users and their company: `me`, `company`, `users`, `user`, and their administration
//! (`updateProfile`, `updateUser`, `deactivateUser`, `updateCompany`).

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    connection::{Defaulted, PageInfo, connection, page_args, page_cost, parse_id},
    principal,
    roles::authz,
    scope,
};
use crate::{
    authz::{Action, Object, Permission, requires},
    error::AppResult,
    paging::Page,
    services::users::{
        self as user_service, Administered, Condition, Profile, ProfileColumns, ProfileVisibility,
        Relationship, SortField, UserChanges, UserFilter,
    },
    state::AppState,
};

/// A person in the caller's company. `email` and `attributes` are shown as the person's privacy
/// settings allow (PostgreSQL masks them; admins and the person themselves see everything).
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct User {
    pub id: ID,
    /// Null when the person's privacy settings hide it from the caller.
    pub email: Option<String>,
    pub display_name: String,
    /// The user's role in their company (`admin`, `manager`, `member` or a custom role).
    pub role: String,
    /// Free-form attributes (plan, country, tags, ...), a JSON object.
    pub attributes: Json<serde_json::Value>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the user last made an authenticated request, if ever.
    pub last_active_at: Option<DateTime<Utc>>,
    /// Whether the user proved the address is theirs: they followed a verification link sent
    /// to it, or used a password reset or an invitation that came to it.
    pub email_verified: bool,
    /// The caller's relation to this user, as `user_profiles` computes it.
    #[graphql(skip)]
    pub(crate) relation: Relationship,
    /// Only for the user themselves and admins.
    #[graphql(skip)]
    pub(crate) profile_visibility: Option<ProfileVisibility>,
    /// Attribute keys others may see (`None`: all); only for the user themselves and admins.
    #[graphql(skip)]
    pub(crate) visible_attributes: Option<Vec<String>>,
}

impl User {
    /// A person from any row a service reads them as (a profile row of friends or audiences).
    pub(crate) fn from_row<R>(row: R) -> Self
    where
        Profile: From<R>,
    {
        Profile::from(row).into()
    }
}

impl From<Profile> for User {
    fn from(m: Profile) -> Self {
        Self {
            id: ID(m.id.to_string()),
            email: m.email,
            display_name: m.display_name,
            role: m.role.to_string(),
            attributes: Json(m.attributes),
            is_active: m.is_active,
            created_at: m.created_at,
            updated_at: m.updated_at,
            last_active_at: m.last_active_at,
            email_verified: m.email_verified,
            relation: m.relation,
            profile_visibility: m.profile_visibility,
            visible_attributes: m.visible_attributes,
        }
    }
}

/// A tenant: the caller's organisation.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Company {
    pub id: ID,
    pub name: String,
    /// Whether its conversations may be used as training data (`setCompanyTrainingPolicy`).
    pub training_policy: crate::graphql::training::TrainingPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<user_service::Company> for Company {
    fn from(m: user_service::Company) -> Self {
        Self {
            id: ID(m.id.to_string()),
            training_policy: m.training.into(),
            name: m.name,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

connection! {
    /// A page of users.
    #[graphql(complex)]
    pub struct UserConnection {
        edges,
        page_info: PageInfo,
        #[graphql(skip)]
        filter: UserFilter,
    }
    /// An item of a [`UserConnection`].
    pub struct UserEdge {
        cursor,
        node: User,
    }
}

impl UserConnection {
    /// A page of users of `company` that match `condition` (over `user_profiles`); the
    /// condition also counts `totalCount`.
    pub(crate) fn of(page: Page<User>, company_id: Uuid, condition: Condition) -> Self {
        Self::from_page(page, UserFilter::matching(company_id, condition))
    }
}

#[ComplexObject]
impl UserConnection {
    /// How many users match, over all pages. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<u64> {
        let filter = self.filter.clone();
        scope(ctx)?
            .read(move |tx| Box::pin(async move { user_service::count(tx.conn(), &filter).await }))
            .await
    }
}

/// What `users` sorts by; ties are broken by id, so every order is total.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserOrderField {
    /// When the user joined.
    CreatedAt,
    /// The display name.
    DisplayName,
    /// The e-mail address.
    Email,
}

/// Ascending or descending.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// How `users` orders its results.
#[derive(InputObject, Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserOrder {
    /// The sort key.
    #[graphql(default_with = "UserOrderField::CreatedAt")]
    pub field: UserOrderField,
    /// The direction.
    #[graphql(default_with = "OrderDirection::Asc")]
    pub direction: OrderDirection,
}

impl Default for UserOrder {
    fn default() -> Self {
        Self {
            field: UserOrderField::CreatedAt,
            direction: OrderDirection::Asc,
        }
    }
}

impl From<UserOrder> for user_service::Order {
    fn from(order: UserOrder) -> Self {
        Self {
            field: match order.field {
                UserOrderField::CreatedAt => SortField::CreatedAt,
                UserOrderField::DisplayName => SortField::DisplayName,
                UserOrderField::Email => SortField::Email,
            },
            descending: order.direction == OrderDirection::Desc,
        }
    }
}

/// Queries about users and the company.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user.
    #[graphql(directive = requires::apply(Object::User, Action::Read))]
    async fn me(&self, ctx: &Context<'_>) -> AppResult<User> {
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .read(move |tx| Box::pin(async move { user_service::me(tx.conn(), &principal).await }))
            .await
            .map(User::from)
    }

    /// The signed-in user's company.
    #[graphql(directive = requires::apply(Object::Company, Action::Read))]
    async fn company(&self, ctx: &Context<'_>) -> AppResult<Company> {
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .read(move |tx| {
                Box::pin(async move { user_service::company(tx.conn(), &principal).await })
            })
            .await
            .map(Company::from)
    }

    /// Users of the caller's company: optionally only those with `role`, only active (or
    /// inactive) ones, or those matching `search` in their name or email; ordered by `orderBy`
    /// (oldest first by default). A cursor is valid only with the `orderBy` it came from.
    /// E-mails hidden by privacy settings neither match `search` nor order `EMAIL`; users in a
    /// blocked pair with the caller are left out (except for admins).
    #[graphql(
        directive = requires::apply(Object::User, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        search: Option<String>,
        role: Option<String>,
        is_active: Option<bool>,
        #[graphql(default_with = "Some(UserOrder::default())")] order_by: Option<UserOrder>,
    ) -> AppResult<UserConnection> {
        let order_by = order_by.unwrap_or_default();
        let principal = principal(ctx)?;
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        // Admins (who manage people) see the whole company; anyone else does not see a blocked
        // pair's other half.
        let manages_people = authz(ctx)?
            .authorize(
                scope(ctx)?,
                principal,
                Permission {
                    object: Object::User,
                    action: Action::Manage,
                },
            )
            .await?;
        let filter = UserFilter::search(
            principal.company_id,
            search,
            role,
            is_active,
            !manages_people,
        )?;
        let columns = selected_columns(ctx);
        let page = scope(ctx)?
            .read({
                let filter = filter.clone();
                move |tx| {
                    Box::pin(async move {
                        user_service::page(tx.conn(), &filter, order_by.into(), args, &columns)
                            .await
                    })
                }
            })
            .await?;
        Ok(UserConnection::from_page(page.map(User::from), filter))
    }

    /// A user of the caller's company by id; null when there is none (users of other
    /// companies do not exist, as far as the caller can tell).
    #[graphql(directive = requires::apply(Object::User, Action::Read))]
    async fn user(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<User>> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let company = principal.company_id;
        Ok(scope(ctx)?
            .read(move |tx| Box::pin(user_service::profile(tx.conn(), company, id)))
            .await?
            .map(User::from))
    }
}

/// The `user_profiles` columns the current field's selection of a [`UserConnection`] needs:
/// those of the [`User`] fields under `edges { node }` (the id is always read). Every column
/// when the selection holds a field not named here, so that a field added to these types is
/// never answered from a column that was not read.
fn selected_columns(ctx: &Context<'_>) -> ProfileColumns {
    let mut columns = ProfileColumns::default();
    for field in ctx.field().selection_set() {
        match field.name() {
            "pageInfo" | "totalCount" | "__typename" => {}
            "edges" => {
                for edge in field.selection_set() {
                    match edge.name() {
                        "cursor" | "__typename" => {}
                        "node" => {
                            for user in edge.selection_set() {
                                if !needs(&mut columns, user.name()) {
                                    return ProfileColumns::all();
                                }
                            }
                        }
                        _ => return ProfileColumns::all(),
                    }
                }
            }
            _ => return ProfileColumns::all(),
        }
    }
    columns
}

/// Adds the columns the [`User`] field `field` is answered from; `false` for a field this
/// does not know.
fn needs(columns: &mut ProfileColumns, field: &str) -> bool {
    match field {
        "id" | "mutualFriends" | "activities" | "__typename" => {}
        "email" => columns.email = true,
        "displayName" => columns.display_name = true,
        "role" => columns.role = true,
        "attributes" => columns.attributes = true,
        "isActive" => columns.is_active = true,
        "createdAt" => columns.created_at = true,
        "updatedAt" => columns.updated_at = true,
        "lastActiveAt" => columns.last_active_at = true,
        "friendshipStatus" => columns.relation = true,
        "privacy" => columns.privacy = true,
        "emailVerified" => columns.email_verified = true,
        _ => return false,
    }
    true
}

/// Changes the caller makes to their own profile; omitted fields stay as they are.
#[derive(InputObject, Debug, Clone, Default)]
pub struct UpdateProfileInput {
    /// 1 to 200 characters.
    pub display_name: Option<String>,
    /// A JSON object (at most 16 KiB), replacing the current attributes.
    pub attributes: Option<Json<serde_json::Value>>,
}

/// Changes an admin makes to a user of their company; omitted fields stay as they are.
#[derive(InputObject, Debug, Clone, Default)]
pub struct UpdateUserInput {
    /// A built-in role or a custom role of the company. Nobody can change their own role.
    pub role: Option<String>,
    /// `false` deactivates the user (their next request is refused), `true` reactivates them.
    pub is_active: Option<bool>,
    /// 1 to 200 characters.
    pub display_name: Option<String>,
    /// A JSON object (at most 16 KiB), replacing the current attributes.
    pub attributes: Option<Json<serde_json::Value>>,
}

/// Changes to the caller's company; omitted fields stay as they are.
#[derive(InputObject, Debug, Clone, Default)]
pub struct UpdateCompanyInput {
    /// 1 to 200 characters.
    pub name: Option<String>,
}

/// Mutations of users and the company.
#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Changes the caller's own display name and attributes.
    #[graphql(directive = requires::apply(Object::User, Action::Update))]
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> AppResult<User> {
        let principal = principal(ctx)?.clone();
        let changes = UserChanges::profile(input.display_name, input.attributes.map(|Json(a)| a))?;
        scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    user_service::update_own_profile(tx.conn(), &principal, changes).await
                })
            })
            .await
            .map(User::from)
    }

    /// Changes a user of the caller's company: role, active state, display name, attributes.
    /// Nobody can change their own role, and the company's last active admin cannot be demoted
    /// or deactivated (`CONFLICT`).
    #[graphql(directive = requires::apply(Object::User, Action::Manage))]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateUserInput,
    ) -> AppResult<User> {
        let id = parse_id("id", &id)?;
        let changes = UserChanges {
            role: input
                .role
                .as_deref()
                .map(user_service::requested_role)
                .transpose()?,
            is_active: input.is_active,
            ..UserChanges::profile(input.display_name, input.attributes.map(|Json(a)| a))?
        };
        administer(ctx, id, changes).await.map(User::from)
    }

    /// Deactivates a user of the caller's company (admins may deactivate themselves): their
    /// next request is refused. Reactivate with `updateUser(input: {isActive: true})`. The last
    /// active admin cannot be deactivated (`CONFLICT`).
    #[graphql(directive = requires::apply(Object::User, Action::Manage))]
    async fn deactivate_user(&self, ctx: &Context<'_>, id: ID) -> AppResult<User> {
        let id = parse_id("id", &id)?;
        let changes = UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        };
        administer(ctx, id, changes).await.map(User::from)
    }

    /// Changes the caller's company.
    #[graphql(directive = requires::apply(Object::Company, Action::Update))]
    async fn update_company(
        &self,
        ctx: &Context<'_>,
        input: UpdateCompanyInput,
    ) -> AppResult<Company> {
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    user_service::update_company(tx.conn(), &principal, input.name).await
                })
            })
            .await
            .map(Company::from)
    }
}

/// An admin's change to user `id`, in one transaction; what must follow the commit (ending
/// sessions and connections) after it.
async fn administer(ctx: &Context<'_>, id: Uuid, changes: UserChanges) -> AppResult<Profile> {
    let principal = principal(ctx)?.clone();
    let role_is_built_in = match &changes.role {
        Some(role) => authz(ctx)?.is_built_in(role).await,
        None => false,
    };
    let Administered {
        user,
        revoked_sessions,
        role_changed,
    } = scope(ctx)?
        .write(move |tx| {
            Box::pin(async move {
                user_service::administer(tx.conn(), &principal, id, changes, role_is_built_in).await
            })
        })
        .await?;
    if let Ok(state) = ctx.data::<AppState>() {
        if !revoked_sessions.is_empty() {
            state.sessions.revoked(&revoked_sessions).await;
        }
        // The user's tokens carry the old role: their open connections end now.
        if role_changed {
            state.sessions.access_changed(id).await;
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    use super::*;

    #[test]
    fn every_field_of_a_user_is_answered_from_columns_that_are_read() -> anyhow::Result<()> {
        // A field added to `User` must be named in `needs`, or lists would answer it from a
        // placeholder.
        let document = async_graphql::parser::parse_schema(crate::graphql::sdl())?;
        let fields: Vec<String> = document
            .definitions
            .iter()
            .filter_map(|definition| match definition {
                TypeSystemDefinition::Type(ty) if ty.node.name.node == "User" => {
                    match &ty.node.kind {
                        TypeKind::Object(object) => Some(
                            object
                                .fields
                                .iter()
                                .map(|f| f.node.name.node.to_string())
                                .collect::<Vec<_>>(),
                        ),
                        _ => None,
                    }
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert!(fields.len() >= 10, "{fields:?}");
        for name in &fields {
            let mut columns = ProfileColumns::default();
            assert!(
                needs(&mut columns, name),
                "User.{name} is not mapped to its columns"
            );
        }
        let mut columns = ProfileColumns::default();
        assert!(!needs(&mut columns, "somethingNew"));
        Ok(())
    }

    #[test]
    fn every_ordering_has_a_list_of_its_own() {
        use {OrderDirection::*, UserOrderField::*};
        let mut lists: Vec<&str> = [CreatedAt, DisplayName, Email]
            .into_iter()
            .flat_map(|field| {
                [Asc, Desc].map(|direction| {
                    user_service::Order::from(UserOrder { field, direction }).list()
                })
            })
            .collect();
        lists.sort();
        lists.dedup();
        assert_eq!(lists.len(), 6);
    }
}
