//! Pages of people (by display name) and of friend requests (newest first), with keyset
//! cursors, read through `user_profiles` and the caller's own `friendships` rows.

use async_graphql::Context;
use chrono::{DateTime, Utc};
use entity::{friendships, user_profiles};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use uuid::Uuid;

use super::types::{FriendRequest, FriendRequestConnection, FriendRequestDirection};
use crate::{
    error::{AppError, AppResult},
    friends::PENDING,
    graphql::{
        connection::like_pattern,
        principal, scope,
        users::{User, UserConnection},
    },
    paging::{self, DefaultSize, PageArgs, Sort},
};

/// Which list of people a page is of; their cursors are not interchangeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum People {
    Friends,
    Blocked,
    MutualFriends,
}

impl People {
    fn list(self) -> &'static str {
        match self {
            Self::Friends => "friends",
            Self::Blocked => "blocked_users",
            Self::MutualFriends => "mutual_friends",
        }
    }
}

/// Friend requests, newest first.
const REQUESTS: &str = "friend_requests";

/// One person as the caller may see them.
pub async fn profile(
    conn: &impl ConnectionTrait,
    company: Uuid,
    id: Uuid,
) -> AppResult<Option<user_profiles::Model>> {
    Ok(user_profiles::Entity::find_by_id(id)
        .filter(user_profiles::Column::CompanyId.eq(company))
        .one(conn)
        .await?)
}

/// A page of people matching `condition` (SQL over `user_profiles`), by display name.
pub async fn users_page(
    ctx: &Context<'_>,
    people: People,
    condition: SimpleExpr,
    search: Option<String>,
    args: PageArgs,
) -> AppResult<UserConnection> {
    let company = principal(ctx)?.company_id;
    let request = args.validate::<(String, Uuid)>(people.list(), DefaultSize::First(20))?;
    let mut condition = condition;
    if let Some(search) = search
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
    {
        if search.chars().count() > 200 {
            return Err(AppError::bad_input(
                "search",
                "`search` is longer than 200 characters",
            ));
        }
        condition = condition.and(Expr::cust_with_values(
            "(display_name || ' ' || COALESCE(email, '')) ILIKE $1",
            [like_pattern(&search)],
        ));
    }
    let select = user_profiles::Entity::find()
        .filter(user_profiles::Column::CompanyId.eq(company))
        .filter(condition.clone());
    let sort = Sort::asc([
        Expr::col(user_profiles::Column::DisplayName),
        Expr::col(user_profiles::Column::Id),
    ]);
    let tx = scope(ctx)?.read_guard().await?;
    let page = paging::fetch(tx.conn(), select, &sort, people.list(), &request, |u| {
        (u.display_name.clone(), u.id)
    })
    .await?;
    Ok(UserConnection::of(page.map(User::from), company, condition))
}

/// A page of the caller's pending requests in `direction`, newest first.
pub async fn requests_page(
    ctx: &Context<'_>,
    direction: FriendRequestDirection,
    args: PageArgs,
) -> AppResult<FriendRequestConnection> {
    let principal = principal(ctx)?;
    let me = principal.user_id;
    let request = args.validate::<(DateTime<Utc>, Uuid)>(REQUESTS, DefaultSize::First(20))?;
    let mut select = friendships::Entity::find()
        .filter(friendships::Column::CompanyId.eq(principal.company_id))
        .filter(friendships::Column::Status.eq(PENDING))
        .filter(Expr::cust_with_values("$1 IN (user_a, user_b)", [me]));
    select = match direction {
        FriendRequestDirection::Outgoing => select.filter(friendships::Column::RequestedBy.eq(me)),
        FriendRequestDirection::Incoming => select.filter(friendships::Column::RequestedBy.ne(me)),
    };
    let sort = Sort::desc([
        Expr::col(friendships::Column::CreatedAt),
        Expr::col(friendships::Column::Id),
    ]);
    let tx = scope(ctx)?.read_guard().await?;
    let page = paging::fetch(tx.conn(), select, &sort, REQUESTS, &request, |row| {
        (row.created_at.to_utc(), row.id)
    })
    .await?;
    Ok(FriendRequestConnection::from_page(
        page.map(|row| FriendRequest::from_row(&row, false)),
    ))
}
