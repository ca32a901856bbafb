//! The friendships service: the reads and writes of the state machine of `crate::friends` (which
//! decides each transition), the pages of people and of requests, and the caller's privacy
//! settings. People are read through the `user_profiles` view, which masks e-mail and
//! attributes in PostgreSQL.

use chrono::{DateTime, Utc};
use entity::{
    friendships::{self, FriendshipStatus},
    user_profiles,
};
use sea_orm::{
    ActiveEnum as _, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use uuid::Uuid;

/// A person as the caller may see them (read through the `user_profiles` view), the caller's
/// relation to them, and who may see their e-mail and attributes.
pub use super::users::{Profile, ProfileVisibility, Relationship, profile};
use super::{
    keyset::{self, Sort},
    users::name_or_email_matches,
};
/// A pair's friendship, as transitions and pages of requests answer it.
pub use crate::friends::Friendship;
/// Where a pair stands (the GraphQL `FriendshipStatus` is the caller's [`Relationship`]).
pub use crate::friends::FriendshipStatus as PairStatus;
use crate::{
    error::{AppError, AppResult},
    friends::{
        self, Actor, Answer, Block, FriendEventKind, FriendNotice, Transition, no_such_request,
        no_such_user, pair,
    },
    paging::{DefaultSize, Page, PageArgs, search_text},
};

impl From<friendships::Model> for Friendship {
    fn from(m: friendships::Model) -> Self {
        Self {
            id: m.id,
            company_id: m.company_id,
            user_a: m.user_a,
            user_b: m.user_b,
            status: m.status,
            requested_by: m.requested_by,
            blocked_by: m.blocked_by,
            message: m.message,
            responded_at: m.responded_at.map(|t| t.with_timezone(&Utc)),
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// `NOT_FOUND` unless `user` is an active user of the caller's company other than the caller
/// (`BAD_USER_INPUT` for the caller themselves).
async fn ensure_other_user(conn: &impl ConnectionTrait, actor: Actor, user: Uuid) -> AppResult<()> {
    friends::not_oneself(
        actor,
        user,
        "you cannot be your own friend, nor block yourself",
    )?;
    let found = user_profiles::Entity::find_by_id((actor.company_id, user))
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
) -> AppResult<Option<Friendship>> {
    let (a, b) = pair(actor.user_id, other);
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT * FROM friendships WHERE company_id = $1 AND user_a = $2 AND user_b = $3 FOR UPDATE",
        [actor.company_id.into(), a.into(), b.into()],
    );
    Ok(friendships::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?
        .map(Friendship::from))
}

/// A row by id, locked, if the caller is part of it (RLS hides the others).
async fn locked_by_id(
    conn: &impl ConnectionTrait,
    actor: Actor,
    id: Uuid,
) -> AppResult<Option<Friendship>> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT * FROM friendships WHERE company_id = $1 AND id = $2 \
         AND $3 IN (user_a, user_b) FOR UPDATE",
        [actor.company_id.into(), id.into(), actor.user_id.into()],
    );
    Ok(friendships::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?
        .map(Friendship::from))
}

/// Inserts the pair with `status` unless it exists (a concurrent insert of the same pair makes
/// this wait for it, then do nothing).
async fn insert_pair(
    conn: &impl ConnectionTrait,
    actor: Actor,
    other: Uuid,
    status: FriendshipStatus,
    message: Option<String>,
) -> AppResult<Option<Friendship>> {
    let (a, b) = pair(actor.user_id, other);
    let blocked_by = (status == FriendshipStatus::Blocked).then_some(actor.user_id);
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO friendships \
         (company_id, user_a, user_b, status, requested_by, blocked_by, message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (company_id, user_a, user_b) DO NOTHING RETURNING *",
        [
            actor.company_id.into(),
            a.into(),
            b.into(),
            status.into(),
            actor.user_id.into(),
            blocked_by.into(),
            message.into(),
        ],
    );
    Ok(friendships::Entity::find()
        .from_raw_sql(stmt)
        .one(conn)
        .await?
        .map(Friendship::from))
}

fn changed_concurrently() -> AppError {
    AppError::Conflict("the friendship changed concurrently; try again".into())
}

async fn update_status(
    conn: &impl ConnectionTrait,
    row: &Friendship,
    status: FriendshipStatus,
    blocked_by: Option<Uuid>,
    requested_by: Uuid,
) -> AppResult<Friendship> {
    friendships::Entity::update_many()
        .filter(friendships::Column::CompanyId.eq(row.company_id))
        .filter(friendships::Column::Id.eq(row.id))
        .col_expr(friendships::Column::Status, Expr::value(status))
        .col_expr(friendships::Column::BlockedBy, Expr::value(blocked_by))
        .col_expr(friendships::Column::RequestedBy, Expr::value(requested_by))
        .col_expr(
            friendships::Column::RespondedAt,
            Expr::cust(if status == FriendshipStatus::Accepted {
                "now()"
            } else {
                "NULL"
            }),
        )
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .next()
        .map(Friendship::from)
        .ok_or_else(no_such_request)
}

async fn delete_row(conn: &impl ConnectionTrait, row: &Friendship) -> AppResult<()> {
    friendships::Entity::delete_many()
        .filter(friendships::Column::CompanyId.eq(row.company_id))
        .filter(friendships::Column::Id.eq(row.id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes `row`, announcing `notice` (kind, recipient) if any.
async fn deleted(
    conn: &impl ConnectionTrait,
    actor: Actor,
    row: Friendship,
    notice: Option<(FriendEventKind, Uuid)>,
) -> AppResult<Transition> {
    delete_row(conn, &row).await?;
    let notices = notice
        .map(|(kind, to)| FriendNotice::new(to, kind, &row, actor.user_id))
        .into_iter()
        .collect();
    Ok(Transition {
        row,
        deleted: true,
        notices,
    })
}

/// Sends a friend request to `to`, or accepts theirs when they already asked the caller.
/// `message` is checked here (see [`friends::request_message`]).
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn send_request(
    conn: &impl ConnectionTrait,
    actor: Actor,
    to: Uuid,
    message: Option<String>,
) -> AppResult<Transition> {
    let message = friends::request_message(message)?;
    ensure_other_user(conn, actor, to).await?;
    if let Some(row) = insert_pair(conn, actor, to, FriendshipStatus::Pending, message).await? {
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
    let row = locked_pair(conn, actor, to)
        .await?
        .ok_or_else(changed_concurrently)?;
    friends::on_request(&row, actor)?;
    accept(conn, actor, row).await
}

async fn accept(
    conn: &impl ConnectionTrait,
    actor: Actor,
    row: Friendship,
) -> AppResult<Transition> {
    let requester = row.requested_by;
    let row = update_status(conn, &row, FriendshipStatus::Accepted, None, requester).await?;
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
    match friends::on_respond(&row, actor, accept_it)? {
        Answer::Accept => accept(conn, actor, row).await,
        Answer::Decline => deleted(conn, actor, row, None).await,
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
    friends::on_cancel(&row, actor)?;
    let other = row.other(actor.user_id);
    deleted(
        conn,
        actor,
        row,
        Some((FriendEventKind::RequestCancelled, other)),
    )
    .await
}

/// Ends a friendship.
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn remove(
    conn: &impl ConnectionTrait,
    actor: Actor,
    friend: Uuid,
) -> AppResult<Transition> {
    ensure_other_user(conn, actor, friend).await?;
    let row = locked_pair(conn, actor, friend).await?;
    friends::on_remove(row.as_ref())?;
    let row = row.ok_or_else(no_such_user)?;
    deleted(
        conn,
        actor,
        row,
        Some((FriendEventKind::FriendRemoved, friend)),
    )
    .await
}

/// Blocks `user`: any friendship or request between the two ends, and neither can reach the
/// other until the caller unblocks. Blocking twice is a no-op; a user who blocked the caller
/// cannot be blocked back (`NOT_FOUND`, like everything else about them).
#[tracing::instrument(skip_all, fields(user = %actor.user_id))]
pub async fn block(conn: &impl ConnectionTrait, actor: Actor, user: Uuid) -> AppResult<Transition> {
    ensure_other_user(conn, actor, user).await?;
    if let Some(row) = insert_pair(conn, actor, user, FriendshipStatus::Blocked, None).await? {
        return Ok(Transition {
            row,
            deleted: false,
            notices: Vec::new(),
        });
    }
    let row = locked_pair(conn, actor, user)
        .await?
        .ok_or_else(changed_concurrently)?;
    let ended = match friends::on_block(&row, actor)? {
        Block::Already => {
            return Ok(Transition {
                row,
                deleted: false,
                notices: Vec::new(),
            });
        }
        Block::Block(ended) => ended,
    };
    let updated = update_status(
        conn,
        &row,
        FriendshipStatus::Blocked,
        Some(actor.user_id),
        actor.user_id,
    )
    .await?;
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
    friends::not_oneself(actor, user, "you cannot block or unblock yourself")?;
    let row = locked_pair(conn, actor, user).await?;
    friends::on_unblock(row.as_ref(), actor)?;
    let row = row.ok_or_else(no_such_user)?;
    deleted(conn, actor, row, None).await
}

/// Which list of people a page is of; their cursors are not interchangeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum People {
    /// The caller's friends.
    Friends,
    /// The users the caller blocked.
    Blocked,
    /// The friends the caller has in common with this user.
    MutualFriends(Uuid),
}

impl People {
    fn list(self) -> &'static str {
        match self {
            Self::Friends => "friends",
            Self::Blocked => "blocked_users",
            Self::MutualFriends(_) => "mutual_friends",
        }
    }

    /// The people of the list, as SQL over `user_profiles`.
    fn condition(self) -> SimpleExpr {
        match self {
            Self::Friends => Expr::col(user_profiles::Column::Relation).eq(Relationship::Friends),
            Self::Blocked => Expr::col(user_profiles::Column::Relation).eq(Relationship::Blocked),
            Self::MutualFriends(other) => crate::db::functions::in_mutual_friend_ids("id", other),
        }
    }
}

/// Friend requests, newest first.
const REQUESTS: &str = "friend_requests";

/// Which pending requests of the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent to the caller.
    Incoming,
    /// Sent by the caller.
    Outgoing,
}

/// A page of `people`, by display name, optionally those matching `search` in their name or
/// visible e-mail; with the condition they were chosen by (it also counts them).
pub async fn people_page(
    conn: &impl ConnectionTrait,
    company: Uuid,
    people: People,
    search: Option<String>,
    args: PageArgs,
) -> AppResult<(Page<Profile>, SimpleExpr)> {
    let request = args.validate::<(String, Uuid)>(people.list(), DefaultSize::First(20))?;
    let mut condition = people.condition();
    if let Some(search) = search_text(search)? {
        condition = condition.and(name_or_email_matches(&search));
    }
    let select = user_profiles::Entity::find()
        .filter(user_profiles::Column::CompanyId.eq(company))
        .filter(condition.clone());
    let sort = Sort::asc([
        Expr::col(user_profiles::Column::DisplayName),
        Expr::col(user_profiles::Column::Id),
    ]);
    let page = keyset::fetch(conn, select, &sort, people.list(), &request, |u| {
        (u.display_name.clone(), u.id)
    })
    .await?;
    Ok((page.try_map(Profile::try_from)?, condition))
}

/// A page of the caller's pending requests in `direction`, newest first.
pub async fn requests_page(
    conn: &impl ConnectionTrait,
    actor: Actor,
    direction: Direction,
    args: PageArgs,
) -> AppResult<Page<Friendship>> {
    let me = actor.user_id;
    let request = args.validate::<(DateTime<Utc>, Uuid)>(REQUESTS, DefaultSize::First(20))?;
    let mut select = friendships::Entity::find()
        .filter(friendships::Column::CompanyId.eq(actor.company_id))
        .filter(friendships::Column::Status.eq(FriendshipStatus::Pending))
        .filter(Expr::cust_with_values("$1 IN (user_a, user_b)", [me]));
    select = match direction {
        Direction::Outgoing => select.filter(friendships::Column::RequestedBy.eq(me)),
        Direction::Incoming => select.filter(friendships::Column::RequestedBy.ne(me)),
    };
    let sort = Sort::desc([
        Expr::col(friendships::Column::CreatedAt),
        Expr::col(friendships::Column::Id),
    ]);
    Ok(
        keyset::fetch(conn, select, &sort, REQUESTS, &request, |row| {
            (row.created_at.to_utc(), row.id)
        })
        .await?
        .map(Friendship::from),
    )
}

/// The caller's pending request `id`, sent or received: one that `requests_page` lists.
pub async fn pending_request(
    conn: &impl ConnectionTrait,
    actor: Actor,
    id: Uuid,
) -> AppResult<Option<Friendship>> {
    Ok(friendships::Entity::find_by_id((actor.company_id, id))
        .filter(friendships::Column::Status.eq(FriendshipStatus::Pending))
        .filter(Expr::cust_with_values(
            "$1 IN (user_a, user_b)",
            [actor.user_id],
        ))
        .one(conn)
        .await?
        .map(Friendship::from))
}

/// Privacy changes: `visible_attributes` is `Some(None)` to show all keys, `None` to keep them.
#[derive(Debug, Clone, Default)]
pub struct PrivacyChanges {
    pub visibility: Option<ProfileVisibility>,
    pub visible_attributes: Option<Option<Vec<String>>>,
}

/// Changes who may see the caller's e-mail and attributes; the caller's profile after.
pub async fn update_privacy(
    conn: &impl ConnectionTrait,
    actor: Actor,
    changes: PrivacyChanges,
) -> AppResult<Profile> {
    // Raw SQL: the privacy columns are not part of the `users` entity other modules share.
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET profile_visibility = COALESCE($3, profile_visibility), \
         visible_attributes = CASE WHEN $4 THEN $5 ELSE visible_attributes END \
         WHERE company_id = $1 AND id = $2",
        [
            actor.company_id.into(),
            actor.user_id.into(),
            changes.visibility.map(|v| v.to_value()).into(),
            changes.visible_attributes.is_some().into(),
            changes.visible_attributes.flatten().into(),
        ],
    );
    conn.execute_raw(stmt).await?;
    profile(conn, actor.company_id, actor.user_id)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the signed-in user no longer exists".into()))
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum as _;

    use super::{ProfileVisibility, Relationship};

    #[test]
    fn relations_and_visibilities_are_stored_as_the_view_writes_them_and_unknown_ones_are_errors() {
        for (relation, text) in [
            (Relationship::Oneself, "self"),
            (Relationship::None, "none"),
            (Relationship::PendingOutgoing, "pending_outgoing"),
            (Relationship::PendingIncoming, "pending_incoming"),
            (Relationship::Friends, "friends"),
            (Relationship::Blocked, "blocked"),
            (Relationship::BlockedBy, "blocked_by"),
        ] {
            assert_eq!(relation.as_str(), text);
            assert_eq!(Relationship::from_stored(text).ok(), Some(relation));
        }
        assert!(Relationship::from_stored("stranger").is_err());
        assert!(Relationship::from_stored("").is_err());
        for (visibility, text) in [
            (ProfileVisibility::Company, "company"),
            (ProfileVisibility::Friends, "friends"),
            (ProfileVisibility::Private, "private"),
        ] {
            assert_eq!(visibility.to_value(), text);
            assert_eq!(
                ProfileVisibility::try_from_value(&text.to_owned()).ok(),
                Some(visibility)
            );
        }
        assert!(ProfileVisibility::try_from_value(&"public".to_owned()).is_err());
    }
}
