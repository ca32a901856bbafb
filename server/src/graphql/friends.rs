//! Friendships and privacy: `friends`, `friendRequests`, `blockedUsers`, the request and block
//! mutations, `updatePrivacy`, the `friendEvents` subscription, and the per-viewer fields of
//! `User` (`friendshipStatus`, `mutualFriends`, `privacy`, and `activities`, whose resolver is in
//! `graphql::activities`). The state machine lives in
//! `crate::friends`, its reads and writes in `crate::services::friends`.

mod types;

use async_graphql::{ComplexObject, Context, ID, Object, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt, future::BoxFuture};

pub(super) use types::FriendRequest;
use types::{
    FriendEvent, FriendRequestConnection, FriendRequestDirection, FriendshipStatus, Privacy,
    PrivacyInput,
};

use super::{
    activities::{ActivityConnection, user_activities},
    connection::{Defaulted, page_args, page_cost, parse_id},
    principal, scope,
    users::{User, UserConnection},
};
use crate::{
    authz::{Action, Object as Obj, requires},
    db::RequestTx,
    error::{AppError, AppResult},
    friends::{Actor, Transition, events},
    paging::PageArgs,
    services::friends::{self as service, People},
    state::AppState,
};

fn actor(ctx: &Context<'_>) -> AppResult<Actor> {
    let principal = principal(ctx)?;
    Ok(Actor {
        company_id: principal.company_id,
        user_id: principal.user_id,
    })
}

fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in context")))
}

#[ComplexObject]
impl User {
    /// The caller's relation to this user. A user who blocked the caller shows as `NONE`.
    async fn friendship_status(&self) -> FriendshipStatus {
        self.relation.into()
    }

    /// Friends the caller and this user have in common, by display name. Empty for a blocked
    /// pair.
    #[graphql(complexity = "page_cost(last, first, 20, child_complexity)")]
    async fn mutual_friends(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<UserConnection> {
        let other = parse_id("id", &self.id)?;
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        people_page(ctx, People::MutualFriends(other), None, args).await
    }

    /// This user's activities the caller may read, newest first, optionally of one kind and in
    /// the window `[from, to)` (see `activities`).
    #[graphql(complexity = "page_cost(last, first, 20, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn activities(
        &self,
        ctx: &Context<'_>,
        kind: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<ActivityConnection> {
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        user_activities(ctx, self, kind, from, to, args).await
    }

    /// Who may see this user's e-mail and attributes; only for the user themselves and admins.
    async fn privacy(&self) -> Option<Privacy> {
        Privacy::from_parts(self.profile_visibility, self.visible_attributes.clone())
    }
}

/// Queries about the caller's friends, requests and blocks.
#[derive(Default)]
pub struct FriendQuery;

#[Object]
impl FriendQuery {
    /// The caller's friends by display name, optionally those matching `search` in their name
    /// or visible e-mail.
    #[graphql(
        directive = requires::apply(Obj::Friendship, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    async fn friends(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        search: Option<String>,
    ) -> AppResult<UserConnection> {
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        people_page(ctx, People::Friends, search, args).await
    }

    /// Pending friend requests the caller received (`INCOMING`) or sent (`OUTGOING`), newest
    /// first.
    #[graphql(
        directive = requires::apply(Obj::Friendship, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    async fn friend_requests(
        &self,
        ctx: &Context<'_>,
        direction: FriendRequestDirection,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<FriendRequestConnection> {
        let actor = actor(ctx)?;
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        let page = scope(ctx)?
            .read(|tx| {
                Box::pin(service::requests_page(
                    tx.conn(),
                    actor,
                    direction.into(),
                    args,
                ))
            })
            .await?;
        Ok(FriendRequestConnection::from_page(
            page.map(|row| FriendRequest::from_row(&row, false)),
        ))
    }

    /// Users the caller has blocked, by display name.
    #[graphql(
        directive = requires::apply(Obj::Friendship, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    async fn blocked_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<UserConnection> {
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        people_page(ctx, People::Blocked, None, args).await
    }
}

/// A page of `people` (see [`service::people_page`]).
async fn people_page(
    ctx: &Context<'_>,
    people: People,
    search: Option<String>,
    args: PageArgs,
) -> AppResult<UserConnection> {
    let company = principal(ctx)?.company_id;
    let (page, condition) = scope(ctx)?
        .read(|tx| {
            Box::pin(service::people_page(
                tx.conn(),
                company,
                people,
                search,
                args,
            ))
        })
        .await?;
    Ok(UserConnection::of(
        page.map(User::from_row),
        company,
        condition,
    ))
}

/// Runs one friendship transition in its own transaction and announces it once committed.
async fn transition<F>(ctx: &Context<'_>, run: F) -> AppResult<Transition>
where
    F: for<'t> FnOnce(&'t RequestTx, Actor) -> BoxFuture<'t, AppResult<Transition>>,
{
    let actor = actor(ctx)?;
    let done = scope(ctx)?.write(|tx| run(tx, actor)).await?;
    events::publish(&state(ctx)?.pubsub, &done.notices).await;
    Ok(done)
}

/// Friend requests, friendships, blocks and privacy settings.
#[derive(Default)]
pub struct FriendMutation;

#[Object]
impl FriendMutation {
    /// Asks `userId` to be friends, with an optional message (at most 500 characters). When
    /// they already asked the caller, this accepts their request instead. `CONFLICT` when a
    /// request is already pending from the caller or the two are friends; `NOT_FOUND` for
    /// unknown users, users of other companies and blocked pairs; `BAD_USER_INPUT` for the
    /// caller themselves.
    #[graphql(directive = requires::apply(Obj::Friendship, Action::Create))]
    async fn send_friend_request(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        message: Option<String>,
    ) -> AppResult<FriendRequest> {
        let to = parse_id("userId", &user_id)?;
        let done = transition(ctx, |tx, actor| {
            Box::pin(service::send_request(tx.conn(), actor, to, message))
        })
        .await?;
        Ok(FriendRequest::from_transition(done, false))
    }

    /// Accepts (`accept: true`) or declines a pending request sent to the caller. Declining
    /// removes it without telling the sender. `FORBIDDEN` for the caller's own request,
    /// `CONFLICT` when already accepted, `NOT_FOUND` otherwise.
    #[graphql(directive = requires::apply(Obj::Friendship, Action::Update))]
    async fn respond_to_friend_request(
        &self,
        ctx: &Context<'_>,
        request_id: ID,
        accept: bool,
    ) -> AppResult<FriendRequest> {
        let id = parse_id("requestId", &request_id)?;
        let done = transition(ctx, |tx, actor| {
            Box::pin(service::respond(tx.conn(), actor, id, accept))
        })
        .await?;
        Ok(FriendRequest::from_transition(done, !accept))
    }

    /// Withdraws a pending request the caller sent. `FORBIDDEN` for a request sent to the
    /// caller (decline it instead), `NOT_FOUND` when there is no such pending request.
    #[graphql(directive = requires::apply(Obj::Friendship, Action::Delete))]
    async fn cancel_friend_request(&self, ctx: &Context<'_>, request_id: ID) -> AppResult<bool> {
        let id = parse_id("requestId", &request_id)?;
        transition(ctx, |tx, actor| {
            Box::pin(service::cancel(tx.conn(), actor, id))
        })
        .await?;
        Ok(true)
    }

    /// Ends the caller's friendship with `userId`; `NOT_FOUND` when they are not friends.
    #[graphql(directive = requires::apply(Obj::Friendship, Action::Delete))]
    async fn remove_friend(&self, ctx: &Context<'_>, user_id: ID) -> AppResult<bool> {
        let user = parse_id("userId", &user_id)?;
        transition(ctx, |tx, actor| {
            Box::pin(service::remove(tx.conn(), actor, user))
        })
        .await?;
        Ok(true)
    }

    /// Blocks `userId`: ends any friendship or request between the two, and neither can send
    /// the other requests, find the other in `users` or see the other among mutual friends
    /// until the caller unblocks. Blocking again is a no-op.
    #[graphql(directive = requires::apply(Obj::Friendship, Action::Update))]
    async fn block_user(&self, ctx: &Context<'_>, user_id: ID) -> AppResult<bool> {
        let user = parse_id("userId", &user_id)?;
        transition(ctx, |tx, actor| {
            Box::pin(service::block(tx.conn(), actor, user))
        })
        .await?;
        Ok(true)
    }

    /// Lifts the caller's block of `userId`; `NOT_FOUND` when the caller has not blocked them.
    #[graphql(directive = requires::apply(Obj::Friendship, Action::Update))]
    async fn unblock_user(&self, ctx: &Context<'_>, user_id: ID) -> AppResult<bool> {
        let user = parse_id("userId", &user_id)?;
        transition(ctx, |tx, actor| {
            Box::pin(service::unblock(tx.conn(), actor, user))
        })
        .await?;
        Ok(true)
    }

    /// Changes who may see the caller's e-mail and attributes; omitted fields stay as they are.
    #[graphql(directive = requires::apply(Obj::User, Action::Update))]
    async fn update_privacy(&self, ctx: &Context<'_>, input: PrivacyInput) -> AppResult<User> {
        let actor = actor(ctx)?;
        let changes = input.validate()?;
        let user = scope(ctx)?
            .write(|tx| Box::pin(service::update_privacy(tx.conn(), actor, changes)))
            .await?;
        Ok(User::from_row(user))
    }
}

/// Live friend events.
#[derive(Default)]
pub struct FriendSubscription;

#[Subscription]
impl FriendSubscription {
    /// Friend events for the caller only: requests received or withdrawn, requests accepted,
    /// friendships ended. Delivered across server instances.
    #[graphql(directive = requires::apply(Obj::Friendship, Action::Read))]
    async fn friend_events(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = FriendEvent> + use<>, AppError> {
        let principal = principal(ctx)?;
        let stream = state(ctx)?
            .pubsub
            .subscribe(&events::topic(principal.user_id))
            .filter_map(|payload| async move {
                match serde_json::from_str::<events::FriendEventPayload>(&payload) {
                    Ok(event) => Some(FriendEvent::from(event)),
                    Err(error) => {
                        tracing::warn!(%error, "malformed friend event dropped");
                        None
                    }
                }
            });
        crate::graphql::live::bounded(ctx, stream)
    }
}
