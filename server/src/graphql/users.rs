//! Users and their company: `me`, `company`, `users`, `user`, and their administration
//! (`updateProfile`, `updateUser`, `deactivateUser`, `updateCompany`).

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{companies, user_profiles, users};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::{Expr, SimpleExpr},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    connection::{Defaulted, PageInfo, connection, like_pattern, page_args, page_cost, parse_id},
    principal,
    roles::authz,
    scope,
};
use crate::{
    authz::{
        Action, Object, requires,
        roles::{self as role_service, ADMIN},
    },
    error::{AppError, AppResult},
    paging::{self, DefaultSize, Page, PageArgs, Sort, SortKey},
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
    /// The caller's relation to this user, as `user_profiles` computes it.
    #[graphql(skip)]
    pub(crate) relation: String,
    /// `company`, `friends` or `private`; only for the user themselves and admins.
    #[graphql(skip)]
    pub(crate) profile_visibility: Option<String>,
    /// Attribute keys others may see (`None`: all); only for the user themselves and admins.
    #[graphql(skip)]
    pub(crate) visible_attributes: Option<Vec<String>>,
}

impl From<user_profiles::Model> for User {
    fn from(m: user_profiles::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            email: m.email,
            display_name: m.display_name,
            role: m.role,
            attributes: Json(m.attributes),
            is_active: m.is_active,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
            last_active_at: m.last_active_at.map(|t| t.with_timezone(&Utc)),
            relation: m.relation,
            profile_visibility: m.profile_visibility,
            visible_attributes: m.visible_attributes,
        }
    }
}

/// A tenant: the caller's organisation.
#[derive(Debug, Clone, SimpleObject)]
pub struct Company {
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<companies::Model> for Company {
    fn from(m: companies::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            name: m.name,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
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
    pub(crate) fn of(page: Page<User>, company_id: Uuid, condition: SimpleExpr) -> Self {
        Self::from_page(
            page,
            UserFilter {
                company_id,
                search: None,
                role: None,
                is_active: None,
                hide_blocked: false,
                extra: Some(condition),
            },
        )
    }
}

#[ComplexObject]
impl UserConnection {
    /// How many users match, over all pages. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<u64> {
        let tx = scope(ctx)?.read_guard().await?;
        Ok(self.filter.select().count(tx.conn()).await?)
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

impl UserOrder {
    /// The list name its cursors carry: a cursor is valid only in the ordering it came from.
    fn list(self) -> &'static str {
        use {OrderDirection::*, UserOrderField::*};
        match (self.field, self.direction) {
            (CreatedAt, Asc) => "users/created_at/asc",
            (CreatedAt, Desc) => "users/created_at/desc",
            (DisplayName, Asc) => "users/display_name/asc",
            (DisplayName, Desc) => "users/display_name/desc",
            (Email, Asc) => "users/email/asc",
            (Email, Desc) => "users/email/desc",
        }
    }

    /// The sort columns, ending with the id. Masked e-mails sort as empty text.
    fn sort(self) -> Sort {
        let column: SimpleExpr = match self.field {
            UserOrderField::CreatedAt => Expr::col(user_profiles::Column::CreatedAt),
            UserOrderField::DisplayName => Expr::col(user_profiles::Column::DisplayName),
            UserOrderField::Email => Expr::cust("COALESCE(email, '')"),
        };
        let columns = [column, Expr::col(user_profiles::Column::Id)];
        match self.direction {
            OrderDirection::Asc => Sort::asc(columns),
            OrderDirection::Desc => Sort::desc(columns),
        }
    }
}

/// A page of `select` in `order`; its cursors carry the ordering's sort key.
async fn page_in_order(
    conn: &impl ConnectionTrait,
    select: sea_orm::Select<user_profiles::Entity>,
    order: UserOrder,
    args: PageArgs,
) -> AppResult<Page<user_profiles::Model>> {
    async fn run<K: SortKey>(
        conn: &impl ConnectionTrait,
        select: sea_orm::Select<user_profiles::Entity>,
        order: UserOrder,
        args: PageArgs,
        key: impl Fn(&user_profiles::Model) -> K,
    ) -> AppResult<Page<user_profiles::Model>> {
        let request = args.validate::<K>(order.list(), DefaultSize::First(20))?;
        paging::fetch(conn, select, &order.sort(), order.list(), &request, key).await
    }
    match order.field {
        UserOrderField::CreatedAt => {
            run(conn, select, order, args, |u| (u.created_at.to_utc(), u.id)).await
        }
        UserOrderField::DisplayName => {
            run(conn, select, order, args, |u| {
                (u.display_name.clone(), u.id)
            })
            .await
        }
        UserOrderField::Email => {
            run(conn, select, order, args, |u| {
                (u.email.clone().unwrap_or_default(), u.id)
            })
            .await
        }
    }
}

/// Which users a `users` query asks for.
#[derive(Debug, Clone)]
pub(crate) struct UserFilter {
    company_id: Uuid,
    search: Option<String>,
    role: Option<String>,
    is_active: Option<bool>,
    /// Leave out users in a blocked pair with the caller (for everyone but admins).
    hide_blocked: bool,
    /// Any further condition (friends, mutual friends, blocked users).
    extra: Option<SimpleExpr>,
}

impl UserFilter {
    /// People are read through `user_profiles`, which masks what privacy settings hide, so
    /// neither results nor search matches nor orderings reveal a hidden e-mail.
    fn select(&self) -> sea_orm::Select<user_profiles::Entity> {
        // The explicit company filter duplicates RLS on purpose: it lets the planner use the
        // (company_id, ...) indexes and routes the query in a sharded deployment.
        let mut select = user_profiles::Entity::find()
            .filter(user_profiles::Column::CompanyId.eq(self.company_id));
        if let Some(search) = &self.search {
            let matches: SimpleExpr = Expr::cust_with_values(
                "(display_name || ' ' || COALESCE(email, '')) ILIKE $1",
                [like_pattern(search)],
            );
            select = select.filter(matches);
        }
        if let Some(role) = &self.role {
            select = select.filter(user_profiles::Column::Role.eq(role.as_str()));
        }
        if let Some(active) = self.is_active {
            select = select.filter(user_profiles::Column::IsActive.eq(active));
        }
        if self.hide_blocked {
            select =
                select.filter(user_profiles::Column::Relation.is_not_in(["blocked", "blocked_by"]));
        }
        if let Some(extra) = &self.extra {
            select = select.filter(extra.clone());
        }
        select
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
        let principal = principal(ctx)?;
        let tx = scope(ctx)?.read_guard().await?;
        user_profiles::Entity::find_by_id(principal.user_id)
            .filter(user_profiles::Column::CompanyId.eq(principal.company_id))
            .one(tx.conn())
            .await?
            .map(User::from)
            .ok_or_else(|| AppError::Unauthenticated("the signed-in user no longer exists".into()))
    }

    /// The signed-in user's company.
    #[graphql(directive = requires::apply(Object::Company, Action::Read))]
    async fn company(&self, ctx: &Context<'_>) -> AppResult<Company> {
        let principal = principal(ctx)?;
        let tx = scope(ctx)?.read_guard().await?;
        companies::Entity::find_by_id(principal.company_id)
            .one(tx.conn())
            .await?
            .map(Company::from)
            .ok_or_else(|| AppError::NotFound("company not found".into()))
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
        let search = search
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
            return Err(AppError::bad_input(
                "search",
                "`search` is longer than 200 characters",
            ));
        }
        let filter = UserFilter {
            company_id: principal.company_id,
            search,
            role: role.map(|r| r.trim().to_owned()),
            is_active,
            // Admins see the whole company; anyone else does not see a blocked pair's other half.
            hide_blocked: principal.role != ADMIN,
            extra: None,
        };
        let tx = scope(ctx)?.read_guard().await?;
        let page = page_in_order(tx.conn(), filter.select(), order_by, args).await?;
        Ok(UserConnection::from_page(page.map(User::from), filter))
    }

    /// A user of the caller's company by id; null when there is none (users of other
    /// companies do not exist, as far as the caller can tell).
    #[graphql(directive = requires::apply(Object::User, Action::Read))]
    async fn user(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<User>> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let tx = scope(ctx)?.read_guard().await?;
        Ok(user_profiles::Entity::find_by_id(id)
            .filter(user_profiles::Column::CompanyId.eq(principal.company_id))
            .one(tx.conn())
            .await?
            .map(User::from))
    }
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
        let principal = principal(ctx)?;
        let changes = UserChanges {
            display_name: valid_display_name(input.display_name)?,
            attributes: valid_attributes(input.attributes)?,
            ..UserChanges::default()
        };
        let tx = scope(ctx)?.begin_write().await?;
        let user = changes
            .apply(tx.conn(), principal.company_id, principal.user_id)
            .await?;
        tx.commit().await?;
        Ok(user.into())
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
            role: input.role.map(|r| r.trim().to_owned()),
            is_active: input.is_active,
            display_name: valid_display_name(input.display_name)?,
            attributes: valid_attributes(input.attributes)?,
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
        let principal = principal(ctx)?;
        let name = input
            .name
            .map(|name| name.trim().to_owned())
            .map(|name| {
                if (1..=200).contains(&name.chars().count()) {
                    Ok(name)
                } else {
                    Err(AppError::bad_input(
                        "input.name",
                        "the company name must have 1 to 200 characters",
                    ))
                }
            })
            .transpose()?;
        let tx = scope(ctx)?.begin_write().await?;
        let company = match name {
            Some(name) => companies::Entity::update_many()
                .filter(companies::Column::Id.eq(principal.company_id))
                .col_expr(companies::Column::Name, Expr::value(name))
                .exec_with_returning(tx.conn())
                .await?
                .into_iter()
                .next(),
            None => {
                companies::Entity::find_by_id(principal.company_id)
                    .one(tx.conn())
                    .await?
            }
        }
        .ok_or_else(|| AppError::NotFound("company not found".into()))?;
        tx.commit().await?;
        Ok(company.into())
    }
}

/// Validated changes to a user row.
#[derive(Debug, Clone, Default)]
struct UserChanges {
    role: Option<String>,
    is_active: Option<bool>,
    display_name: Option<String>,
    attributes: Option<serde_json::Value>,
}

impl UserChanges {
    /// Updates user `id` of `company` (RLS decides whether the caller may) and returns it.
    async fn apply(
        self,
        conn: &impl sea_orm::ConnectionTrait,
        company: Uuid,
        id: Uuid,
    ) -> AppResult<user_profiles::Model> {
        let mut update = users::Entity::update_many()
            .filter(users::Column::CompanyId.eq(company))
            .filter(users::Column::Id.eq(id));
        let mut changed = false;
        if let Some(role) = self.role {
            update = update.col_expr(users::Column::Role, Expr::value(role));
            changed = true;
        }
        if let Some(active) = self.is_active {
            update = update.col_expr(users::Column::IsActive, Expr::value(active));
            changed = true;
        }
        if let Some(name) = self.display_name {
            update = update.col_expr(users::Column::DisplayName, Expr::value(name));
            changed = true;
        }
        if let Some(attributes) = self.attributes {
            update = update.col_expr(users::Column::Attributes, Expr::value(attributes));
            changed = true;
        }
        if changed && update.exec(conn).await?.rows_affected == 0 {
            return Err(AppError::NotFound("no such user".into()));
        }
        // Read back through the view, which masks what the caller may not see.
        user_profiles::Entity::find_by_id(id)
            .filter(user_profiles::Column::CompanyId.eq(company))
            .one(conn)
            .await?
            .ok_or_else(|| AppError::NotFound("no such user".into()))
    }
}

/// An admin's change to user `id`, with the rules on roles and the last admin, in one
/// transaction. Role and activity changes lock the company row first (see
/// `authz::roles::lock_company_for_admin`), so concurrent changes are checked one after another.
async fn administer(
    ctx: &Context<'_>,
    id: Uuid,
    changes: UserChanges,
) -> AppResult<user_profiles::Model> {
    let principal = principal(ctx)?;
    let authz = authz(ctx)?;
    let company = principal.company_id;
    let tx = scope(ctx)?.begin_write().await?;
    let conn = tx.conn();
    let membership_change = changes.role.is_some() || changes.is_active.is_some();
    if membership_change {
        role_service::lock_company_for_admin(conn, principal).await?;
    }
    let target = user_profiles::Entity::find_by_id(id)
        .filter(user_profiles::Column::CompanyId.eq(company))
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".into()))?;
    let new_role = changes.role.as_deref().filter(|role| *role != target.role);
    let deactivating = changes.is_active == Some(false) && target.is_active;
    if id == principal.user_id && new_role.is_some() {
        return Err(AppError::Forbidden(
            "nobody can change their own role".into(),
        ));
    }
    if let Some(role) = new_role
        && !authz.is_built_in(role).await
        && role_service::find(conn, company, role).await?.is_none()
    {
        return Err(AppError::bad_input(
            "input.role",
            format!("unknown role `{role}`: use a built-in role or create it first"),
        ));
    }
    if target.role == ADMIN && target.is_active && (new_role.is_some() || deactivating) {
        role_service::ensure_another_admin(conn, company, id).await?;
    }
    let role_changed = new_role.is_some();
    let user = changes.apply(conn, company, id).await?;
    // A deactivated user's sessions end at once, not when their tokens expire.
    let revoked = if deactivating {
        crate::auth::service::revoke_user_sessions(&tx, company, id, "deactivated").await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    if let Ok(state) = ctx.data::<crate::state::AppState>() {
        if !revoked.is_empty() {
            state.sessions.revoked(&revoked).await;
        }
        // The user's tokens carry the old role: their open connections end now.
        if role_changed {
            state.sessions.access_changed(id).await;
        }
    }
    Ok(user)
}

fn valid_display_name(name: Option<String>) -> AppResult<Option<String>> {
    let Some(name) = name else {
        return Ok(None);
    };
    let name = name.trim().to_owned();
    if (1..=200).contains(&name.chars().count()) {
        Ok(Some(name))
    } else {
        Err(AppError::bad_input(
            "input.displayName",
            "the display name must have 1 to 200 characters",
        ))
    }
}

fn valid_attributes(
    attributes: Option<Json<serde_json::Value>>,
) -> AppResult<Option<serde_json::Value>> {
    let Some(Json(attributes)) = attributes else {
        return Ok(None);
    };
    if !attributes.is_object() {
        return Err(AppError::bad_input(
            "input.attributes",
            "attributes must be a JSON object",
        ));
    }
    if attributes.to_string().len() > 16 * 1024 {
        return Err(AppError::bad_input(
            "input.attributes",
            "attributes must be at most 16 KiB of JSON",
        ));
    }
    Ok(Some(attributes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ordering_has_a_list_of_its_own() {
        use {OrderDirection::*, UserOrderField::*};
        let mut lists: Vec<&str> = [CreatedAt, DisplayName, Email]
            .into_iter()
            .flat_map(|field| [Asc, Desc].map(|direction| UserOrder { field, direction }.list()))
            .collect();
        lists.sort();
        lists.dedup();
        assert_eq!(lists.len(), 6);
    }

    #[test]
    fn attributes_must_be_a_small_object() {
        assert!(valid_attributes(Some(Json(serde_json::json!([1])))).is_err());
        assert!(valid_attributes(Some(Json(serde_json::json!({"plan": "pro"})))).is_ok());
        let big = serde_json::json!({ "x": "y".repeat(17 * 1024) });
        assert!(valid_attributes(Some(Json(big))).is_err());
        assert_eq!(valid_attributes(None).ok(), Some(None));
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(
            valid_display_name(Some("  Ann ".into())).ok(),
            Some(Some("Ann".to_owned()))
        );
        assert!(valid_display_name(Some("   ".into())).is_err());
        assert!(valid_display_name(Some("x".repeat(201))).is_err());
    }
}
