//! Pages of people (by display name) and of friend requests (newest first), with keyset
//! cursors, read through `user_profiles` and the caller's own `friendships` rows.

use async_graphql::Context;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::{friendships, user_profiles};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::types::{
    FriendRequest, FriendRequestConnection, FriendRequestDirection, FriendRequestEdge,
};
use crate::{
    error::{AppError, AppResult},
    friends::PENDING,
    graphql::{
        connection::{PageInfo, like_pattern, page_size},
        principal, scope,
        users::{UserConnection, UserEdge},
    },
};

fn encode(key: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode<T: DeserializeOwned>(text: &str) -> AppResult<T> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| AppError::bad_input("after", "`after` is not a cursor returned by this API"))
}

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
    condition: SimpleExpr,
    search: Option<String>,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<UserConnection> {
    let company = principal(ctx)?.company_id;
    let limit = page_size(first.unwrap_or(20))?;
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
    let mut select = user_profiles::Entity::find()
        .filter(user_profiles::Column::CompanyId.eq(company))
        .filter(condition.clone());
    if let Some(after) = after {
        let (name, id): (String, Uuid) = decode(&after)?;
        select = select.filter(Expr::cust_with_values(
            "(display_name, id) > ($1, $2)",
            [sea_orm::Value::from(name), id.into()],
        ));
    }
    let tx = scope(ctx)?.read().await?;
    let mut rows = select
        .order_by(user_profiles::Column::DisplayName, Order::Asc)
        .order_by(user_profiles::Column::Id, Order::Asc)
        .limit(limit + 1)
        .all(tx.conn())
        .await?;
    let has_next_page = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let edges: Vec<UserEdge> = rows
        .into_iter()
        .map(|u| UserEdge {
            cursor: encode(&(&u.display_name, u.id)),
            node: u.into(),
        })
        .collect();
    let end_cursor = edges.last().map(|e| e.cursor.clone());
    Ok(UserConnection::of(
        edges,
        PageInfo {
            has_next_page,
            end_cursor,
        },
        company,
        condition,
    ))
}

/// A page of the caller's pending requests in `direction`, newest first.
pub async fn requests_page(
    ctx: &Context<'_>,
    direction: FriendRequestDirection,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<FriendRequestConnection> {
    let principal = principal(ctx)?;
    let me = principal.user_id;
    let limit = page_size(first.unwrap_or(20))?;
    let mut select = friendships::Entity::find()
        .filter(friendships::Column::CompanyId.eq(principal.company_id))
        .filter(friendships::Column::Status.eq(PENDING))
        .filter(Expr::cust_with_values("$1 IN (user_a, user_b)", [me]));
    select = match direction {
        FriendRequestDirection::Outgoing => select.filter(friendships::Column::RequestedBy.eq(me)),
        FriendRequestDirection::Incoming => select.filter(friendships::Column::RequestedBy.ne(me)),
    };
    if let Some(after) = after {
        let (micros, id): (i64, Uuid) = decode(&after)?;
        let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
            AppError::bad_input("after", "`after` is not a cursor returned by this API")
        })?;
        select = select.filter(Expr::cust_with_values(
            "(created_at, id) < ($1, $2)",
            [sea_orm::Value::from(at.fixed_offset()), id.into()],
        ));
    }
    let tx = scope(ctx)?.read().await?;
    let mut rows = select
        .order_by(friendships::Column::CreatedAt, Order::Desc)
        .order_by(friendships::Column::Id, Order::Desc)
        .limit(limit + 1)
        .all(tx.conn())
        .await?;
    let has_next_page = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let edges: Vec<FriendRequestEdge> = rows
        .iter()
        .map(|row| FriendRequestEdge {
            cursor: encode(&(row.created_at.timestamp_micros(), row.id)),
            node: FriendRequest::from_row(row, false),
        })
        .collect();
    let end_cursor = edges.last().map(|e| e.cursor.clone());
    Ok(FriendRequestConnection {
        edges,
        page_info: PageInfo {
            has_next_page,
            end_cursor,
        },
    })
}
