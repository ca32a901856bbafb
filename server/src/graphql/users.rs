//! Users and their company: `me`, `company`, `users`, `user`.

use async_graphql::{ComplexObject, Context, ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{companies, users};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, SimpleExpr},
};
use uuid::Uuid;

use super::{
    connection::{PageInfo, decode_cursor, encode_cursor, like_pattern, page_size, parse_id},
    principal, scope,
};
use crate::error::{AppError, AppResult};

/// A person in the caller's company.
#[derive(Debug, Clone, SimpleObject)]
pub struct User {
    pub id: ID,
    pub email: String,
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
}

impl From<users::Model> for User {
    fn from(m: users::Model) -> Self {
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

/// An item of a [`UserConnection`].
#[derive(Debug, Clone, SimpleObject)]
pub struct UserEdge {
    pub cursor: String,
    pub node: User,
}

/// A page of users.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct UserConnection {
    pub edges: Vec<UserEdge>,
    pub page_info: PageInfo,
    #[graphql(skip)]
    filter: UserFilter,
}

#[ComplexObject]
impl UserConnection {
    /// How many users match, over all pages. Counted only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<u64> {
        let tx = scope(ctx)?.read().await?;
        Ok(self.filter.select().count(tx.conn()).await?)
    }
}

/// Which users a `users` query asks for.
#[derive(Debug, Clone)]
struct UserFilter {
    company_id: Uuid,
    search: Option<String>,
}

impl UserFilter {
    fn select(&self) -> sea_orm::Select<users::Entity> {
        // The explicit company filter duplicates RLS on purpose: it lets the planner use the
        // (company_id, id) index and routes the query in a sharded deployment.
        let mut select = users::Entity::find().filter(users::Column::CompanyId.eq(self.company_id));
        if let Some(search) = &self.search {
            let matches: SimpleExpr = Expr::cust_with_values(
                "(display_name || ' ' || email) ILIKE $1",
                [like_pattern(search)],
            );
            select = select.filter(matches);
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
    async fn me(&self, ctx: &Context<'_>) -> AppResult<User> {
        let principal = principal(ctx)?;
        let tx = scope(ctx)?.read().await?;
        users::Entity::find_by_id(principal.user_id)
            .filter(users::Column::CompanyId.eq(principal.company_id))
            .one(tx.conn())
            .await?
            .map(User::from)
            .ok_or_else(|| AppError::Unauthenticated("the signed-in user no longer exists".into()))
    }

    /// The signed-in user's company.
    async fn company(&self, ctx: &Context<'_>) -> AppResult<Company> {
        let principal = principal(ctx)?;
        let tx = scope(ctx)?.read().await?;
        companies::Entity::find_by_id(principal.company_id)
            .one(tx.conn())
            .await?
            .map(Company::from)
            .ok_or_else(|| AppError::NotFound("company not found".into()))
    }

    /// Users of the caller's company, oldest first, optionally matching `search` in their
    /// name or email.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity + 1")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
    ) -> AppResult<UserConnection> {
        let principal = principal(ctx)?;
        let limit = page_size(first.unwrap_or(20))?;
        let after = after.as_deref().map(decode_cursor).transpose()?;
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
        };
        let mut select = filter.select();
        if let Some(after) = after {
            select = select.filter(users::Column::Id.gt(after));
        }
        let tx = scope(ctx)?.read().await?;
        let mut rows = select
            .order_by_asc(users::Column::Id)
            .limit(limit + 1)
            .all(tx.conn())
            .await?;
        let has_next_page = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let end_cursor = rows.last().map(|u| encode_cursor(u.id));
        let edges = rows
            .into_iter()
            .map(|u| UserEdge {
                cursor: encode_cursor(u.id),
                node: u.into(),
            })
            .collect();
        Ok(UserConnection {
            edges,
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
            filter,
        })
    }

    /// A user of the caller's company by id; null when there is none (users of other
    /// companies do not exist, as far as the caller can tell).
    async fn user(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<User>> {
        let principal = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let tx = scope(ctx)?.read().await?;
        Ok(users::Entity::find_by_id(id)
            .filter(users::Column::CompanyId.eq(principal.company_id))
            .one(tx.conn())
            .await?
            .map(User::from))
    }
}
