//! Friendships: the state machine of a pair (request, accept, decline, cancel, remove, block,
//! unblock) on `&impl ConnectionTrait`, inside the caller's request transaction, and the events
//! each transition announces to the other member of the pair once committed.
//!
//! A pair is one row (`user_a < user_b`). Sending a request inserts it with
//! `ON CONFLICT DO NOTHING` and otherwise locks the existing row, so two people asking each
//! other at the same moment meet on one row and the second request accepts the first.
//! A blocked pair answers `NOT_FOUND` to whatever either side tries, so the blocked user
//! learns nothing.

pub mod events;

use entity::{friendships, user_profiles};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, sea_query::Expr,
};
use uuid::Uuid;

pub use events::{FriendEventKind, FriendNotice};

use crate::error::{AppError, AppResult};

pub const PENDING: &str = "pending";
pub const ACCEPTED: &str = "accepted";
pub const BLOCKED: &str = "blocked";

/// The longest message a request may carry, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// The caller of a friendship operation.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub company_id: Uuid,
    pub user_id: Uuid,
}

/// What a transition produced: the row (`None` when it was deleted, with the last state seen)
/// and the events to publish after commit.
#[derive(Debug)]
pub struct Transition {
    pub row: friendships::Model,
    pub deleted: bool,
    pub notices: Vec<FriendNotice>,
}

fn pair(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a < b { (a, b) } else { (b, a) }
}

fn no_such_user() -> AppError {
    AppError::NotFound("no such user".into())
}

fn no_such_request() -> AppError {
    AppError::NotFound("no such friend request".into())
}

/// `NOT_FOUND` unless `user` is an active user of the caller's company other than the caller
/// (`BAD_USER_INPUT` for the caller themselves).
async fn ensure_other_user(conn: &impl ConnectionTrait, actor: Actor, user: Uuid) -> AppResult<()> {
    if user == actor.user_id {
        return Err(AppError::bad_input(
            "userId",
            "you cannot be your own friend, nor block yourself",
        ));
    }
    let found = user_profiles::Entity::find_by_id(user)
        .filter(user_profiles::Column::CompanyId.eq(actor.company_id))
        .filter(user_profiles::Column::IsActive.eq(true))
        .one(conn)
        .await?;
    found.map(|_| ()).ok_or_else(no_such_user)
}

/// The pair's row, locked until the transaction ends.
async fn locked_pair(
    conn: &impl ConnectionTrait,
    actor: Actor,
    other: Uuid,
) -> AppResult<Option<friendships::Model>> {
    let (a, b) = pair(actor.user_id, other);
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT * FROM friendships WHERE company_id = $1 AND user_a = $2 AND user_b = $3 FOR UPDATE",
        [actor.company_id.into(), a.into(), b.into()],
    );
    Ok(friendships::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?)
}

/// A row by id, locked, if the caller is part of it (RLS hides the others).
async fn locked_by_id(
    conn: &impl ConnectionTrait,
    actor: Actor,
    id: Uuid,
) -> AppResult<Option<friendships::Model>> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT * FROM friendships WHERE company_id = $1 AND id = $2 \
         AND $3 IN (user_a, user_b) FOR UPDATE",
        [actor.company_id.into(), id.into(), actor.user_id.into()],
    );
    Ok(friendships::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?)
}

async fn update_status(
    conn: &impl ConnectionTrait,
    row: &friendships::Model,
    status: &str,
    blocked_by: Option<Uuid>,
    requested_by: Uuid,
) -> AppResult<friendships::Model> {
    friendships::Entity::update_many()
        .filter(friendships::Column::CompanyId.eq(row.company_id))
        .filter(friendships::Column::Id.eq(row.id))
        .col_expr(friendships::Column::Status, Expr::value(status))
        .col_expr(friendships::Column::BlockedBy, Expr::value(blocked_by))
        .col_expr(friendships::Column::RequestedBy, Expr::value(requested_by))
        .col_expr(
            friendships::Column::RespondedAt,
            Expr::cust(if status == ACCEPTED { "now()" } else { "NULL" }),
        )
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(no_such_request)
}

async fn delete_row(conn: &impl ConnectionTrait, row: &friendships::Model) -> AppResult<()> {
    friendships::Entity::delete_many()
        .filter(friendships::Column::CompanyId.eq(row.company_id))
        .filter(friendships::Column::Id.eq(row.id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Sends a friend request to `to`, or accepts theirs when they already asked the caller.
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn send_request(
    conn: &impl ConnectionTrait,
    actor: Actor,
    to: Uuid,
    message: Option<String>,
) -> AppResult<Transition> {
    ensure_other_user(conn, actor, to).await?;
    let (a, b) = pair(actor.user_id, to);
    // A concurrent insert of the same pair makes this wait for it, then do nothing.
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, message) \
         VALUES ($1, $2, $3, 'pending', $4, $5) \
         ON CONFLICT (company_id, user_a, user_b) DO NOTHING RETURNING *",
        [
            actor.company_id.into(),
            a.into(),
            b.into(),
            actor.user_id.into(),
            message.into(),
        ],
    );
    if let Some(row) = friendships::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?
    {
        let notices = vec![FriendNotice::new(
            to,
            FriendEventKind::RequestReceived,
            &row,
            actor.user_id,
        )];
        return Ok(Transition {
            row,
            deleted: false,
            notices,
        });
    }
    // The pair exists (committed by someone else if it was concurrent): decide on its state.
    let row = locked_pair(conn, actor, to).await?.ok_or_else(|| {
        AppError::Conflict("the friendship changed concurrently; try again".into())
    })?;
    match row.status.as_str() {
        BLOCKED => Err(no_such_user()),
        ACCEPTED => Err(AppError::Conflict("you are already friends".into())),
        _ if row.requested_by == actor.user_id => Err(AppError::Conflict(
            "you already sent this user a friend request".into(),
        )),
        // They asked first: asking back accepts.
        _ => accept(conn, actor, row).await,
    }
}

async fn accept(
    conn: &impl ConnectionTrait,
    actor: Actor,
    row: friendships::Model,
) -> AppResult<Transition> {
    let requester = row.requested_by;
    let row = update_status(conn, &row, ACCEPTED, None, requester).await?;
    let notices = vec![FriendNotice::new(
        requester,
        FriendEventKind::RequestAccepted,
        &row,
        actor.user_id,
    )];
    Ok(Transition {
        row,
        deleted: false,
        notices,
    })
}

/// Accepts or declines a pending request made to the caller. Declining deletes it silently.
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn respond(
    conn: &impl ConnectionTrait,
    actor: Actor,
    request: Uuid,
    accept_it: bool,
) -> AppResult<Transition> {
    let row = locked_by_id(conn, actor, request)
        .await?
        .ok_or_else(no_such_request)?;
    match row.status.as_str() {
        PENDING if row.requested_by == actor.user_id => Err(AppError::Forbidden(
            "only the recipient may respond to a friend request; cancel your own instead".into(),
        )),
        PENDING if accept_it => accept(conn, actor, row).await,
        PENDING => {
            delete_row(conn, &row).await?;
            Ok(Transition {
                row,
                deleted: true,
                notices: Vec::new(),
            })
        }
        ACCEPTED => Err(AppError::Conflict(
            "this friend request was already accepted".into(),
        )),
        _ => Err(no_such_request()),
    }
}

/// Withdraws a pending request the caller made.
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn cancel(
    conn: &impl ConnectionTrait,
    actor: Actor,
    request: Uuid,
) -> AppResult<Transition> {
    let row = locked_by_id(conn, actor, request)
        .await?
        .ok_or_else(no_such_request)?;
    match row.status.as_str() {
        PENDING if row.requested_by == actor.user_id => {
            delete_row(conn, &row).await?;
            let other = row.other(actor.user_id);
            let notices = vec![FriendNotice::new(
                other,
                FriendEventKind::RequestCancelled,
                &row,
                actor.user_id,
            )];
            Ok(Transition {
                row,
                deleted: true,
                notices,
            })
        }
        PENDING => Err(AppError::Forbidden(
            "only the sender may cancel a friend request; decline it instead".into(),
        )),
        ACCEPTED => Err(AppError::Conflict(
            "this friend request was already accepted".into(),
        )),
        _ => Err(no_such_request()),
    }
}

/// Ends a friendship.
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn remove(
    conn: &impl ConnectionTrait,
    actor: Actor,
    friend: Uuid,
) -> AppResult<Transition> {
    ensure_other_user(conn, actor, friend).await?;
    match locked_pair(conn, actor, friend).await? {
        Some(row) if row.status == ACCEPTED => {
            delete_row(conn, &row).await?;
            let notices = vec![FriendNotice::new(
                friend,
                FriendEventKind::FriendRemoved,
                &row,
                actor.user_id,
            )];
            Ok(Transition {
                row,
                deleted: true,
                notices,
            })
        }
        Some(row) if row.status == BLOCKED => Err(no_such_user()),
        _ => Err(AppError::NotFound(
            "you are not friends with this user".into(),
        )),
    }
}

/// Blocks `user`: any friendship or request between the two ends, and neither can reach the
/// other until the caller unblocks. Blocking twice is a no-op; a user who blocked the caller
/// cannot be blocked back (`NOT_FOUND`, like everything else about them).
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn block(conn: &impl ConnectionTrait, actor: Actor, user: Uuid) -> AppResult<Transition> {
    ensure_other_user(conn, actor, user).await?;
    let (a, b) = pair(actor.user_id, user);
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, blocked_by) \
         VALUES ($1, $2, $3, 'blocked', $4, $4) \
         ON CONFLICT (company_id, user_a, user_b) DO NOTHING RETURNING *",
        [
            actor.company_id.into(),
            a.into(),
            b.into(),
            actor.user_id.into(),
        ],
    );
    if let Some(row) = friendships::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?
    {
        return Ok(Transition {
            row,
            deleted: false,
            notices: Vec::new(),
        });
    }
    let row = locked_pair(conn, actor, user).await?.ok_or_else(|| {
        AppError::Conflict("the friendship changed concurrently; try again".into())
    })?;
    let ended = match row.status.as_str() {
        BLOCKED if row.blocked_by == Some(actor.user_id) => {
            return Ok(Transition {
                row,
                deleted: false,
                notices: Vec::new(),
            });
        }
        BLOCKED => return Err(no_such_user()),
        // To the blocked user this looks like an ordinary removal or cancellation.
        ACCEPTED => Some(FriendEventKind::FriendRemoved),
        _ if row.requested_by == actor.user_id => Some(FriendEventKind::RequestCancelled),
        _ => None,
    };
    let updated = update_status(conn, &row, BLOCKED, Some(actor.user_id), actor.user_id).await?;
    let notices = ended
        .map(|kind| FriendNotice::new(user, kind, &row, actor.user_id))
        .into_iter()
        .collect();
    Ok(Transition {
        row: updated,
        deleted: false,
        notices,
    })
}

/// Lifts the caller's block of `user`; `NOT_FOUND` when the caller has not blocked them.
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn unblock(
    conn: &impl ConnectionTrait,
    actor: Actor,
    user: Uuid,
) -> AppResult<Transition> {
    if user == actor.user_id {
        return Err(AppError::bad_input(
            "userId",
            "you cannot block or unblock yourself",
        ));
    }
    match locked_pair(conn, actor, user).await? {
        Some(row) if row.status == BLOCKED && row.blocked_by == Some(actor.user_id) => {
            delete_row(conn, &row).await?;
            Ok(Transition {
                row,
                deleted: true,
                notices: Vec::new(),
            })
        }
        _ => Err(AppError::NotFound("you have not blocked this user".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_ordered_whatever_the_argument_order() {
        let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(pair(x, y), pair(y, x));
        let (a, b) = pair(x, y);
        assert!(a < b);
    }
}
