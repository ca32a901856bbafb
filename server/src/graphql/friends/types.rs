//! The GraphQL types of friendships and privacy.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, MaybeUndefined, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    friends::{FriendEventKind, Transition, events::FriendEventPayload},
    graphql::{
        connection::{PageInfo, connection},
        principal, scope,
        users::User,
    },
    services::{
        friends::{self as service, Direction, Friendship, PairStatus, PrivacyChanges},
        users::{self as stored, Relationship},
    },
};

/// The caller's relation to another user.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendshipStatus {
    /// No relation (also shown for users who blocked the caller, and for the caller).
    None,
    /// The caller asked them; they have not answered.
    PendingOutgoing,
    /// They asked the caller; the caller has not answered.
    PendingIncoming,
    /// Friends.
    Friends,
    /// The caller blocked them.
    Blocked,
}

impl From<Relationship> for FriendshipStatus {
    /// The caller's relation as shown: who blocked the caller stays hidden (`None`).
    fn from(relation: Relationship) -> Self {
        match relation {
            Relationship::PendingOutgoing => Self::PendingOutgoing,
            Relationship::PendingIncoming => Self::PendingIncoming,
            Relationship::Friends => Self::Friends,
            Relationship::Blocked => Self::Blocked,
            Relationship::Oneself | Relationship::None | Relationship::BlockedBy => Self::None,
        }
    }
}

/// Who may see a user's e-mail and attributes (admins of the company always may).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileVisibility {
    /// Everyone in the company (the default).
    Company,
    /// Friends only.
    Friends,
    /// Nobody but the user and the company's admins.
    Private,
}

impl From<stored::ProfileVisibility> for ProfileVisibility {
    fn from(visibility: stored::ProfileVisibility) -> Self {
        match visibility {
            stored::ProfileVisibility::Company => Self::Company,
            stored::ProfileVisibility::Friends => Self::Friends,
            stored::ProfileVisibility::Private => Self::Private,
        }
    }
}

impl From<ProfileVisibility> for stored::ProfileVisibility {
    fn from(visibility: ProfileVisibility) -> Self {
        match visibility {
            ProfileVisibility::Company => Self::Company,
            ProfileVisibility::Friends => Self::Friends,
            ProfileVisibility::Private => Self::Private,
        }
    }
}

/// Which pending requests to list.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendRequestDirection {
    /// Sent to the caller.
    Incoming,
    /// Sent by the caller.
    Outgoing,
}

impl From<FriendRequestDirection> for Direction {
    fn from(direction: FriendRequestDirection) -> Self {
        match direction {
            FriendRequestDirection::Incoming => Self::Incoming,
            FriendRequestDirection::Outgoing => Self::Outgoing,
        }
    }
}

/// Where a friend request stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendRequestStatus {
    /// Waiting for an answer.
    Pending,
    /// Accepted: the two are friends.
    Accepted,
    /// Declined (and removed).
    Declined,
}

/// A user's privacy settings.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Privacy {
    /// Who may see the e-mail and attributes.
    pub profile_visibility: ProfileVisibility,
    /// The attribute keys others who may see the profile see; null means all of them.
    pub visible_attributes: Option<Vec<String>>,
}

impl Privacy {
    /// The settings, when the view reveals them to the caller (to the person and admins).
    pub fn from_parts(
        visibility: Option<stored::ProfileVisibility>,
        keys: Option<Vec<String>>,
    ) -> Option<Self> {
        Some(Self {
            profile_visibility: visibility?.into(),
            visible_attributes: keys,
        })
    }
}

/// Changes to the caller's privacy settings; omitted fields stay as they are.
#[derive(InputObject, Debug, Clone, Default)]
pub struct PrivacyInput {
    /// Who may see the caller's e-mail and attributes.
    pub profile_visibility: Option<ProfileVisibility>,
    /// The attribute keys others may see (at most 100 keys of 1 to 100 characters); null
    /// shows all of them.
    pub visible_attributes: MaybeUndefined<Vec<String>>,
}

impl PrivacyInput {
    pub fn validate(self) -> AppResult<PrivacyChanges> {
        let visible_attributes = match self.visible_attributes {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(keys) => {
                let mut keys: Vec<String> = keys.into_iter().map(|k| k.trim().to_owned()).collect();
                keys.sort();
                keys.dedup();
                if keys.len() > 100 || keys.iter().any(|k| !(1..=100).contains(&k.chars().count()))
                {
                    return Err(AppError::bad_input(
                        "input.visibleAttributes",
                        "at most 100 attribute keys of 1 to 100 characters",
                    ));
                }
                Some(Some(keys))
            }
        };
        Ok(PrivacyChanges {
            visibility: self.profile_visibility.map(Into::into),
            visible_attributes,
        })
    }
}

/// A friend request between two users of the company.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct FriendRequest {
    /// The request's id (the friendship's, once accepted).
    pub id: ID,
    /// The optional message sent with the request.
    pub message: Option<String>,
    /// Where it stands.
    pub status: FriendRequestStatus,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it was accepted, if it was.
    pub responded_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub from_id: Uuid,
    #[graphql(skip)]
    pub to_id: Uuid,
}

impl FriendRequest {
    pub fn from_row(row: &Friendship, declined: bool) -> Self {
        let status = if declined {
            FriendRequestStatus::Declined
        } else if row.status == PairStatus::Accepted {
            FriendRequestStatus::Accepted
        } else {
            FriendRequestStatus::Pending
        };
        Self {
            id: ID(row.id.to_string()),
            message: row.message.clone(),
            status,
            created_at: row.created_at.with_timezone(&Utc),
            responded_at: row.responded_at.map(|t| t.with_timezone(&Utc)),
            from_id: row.requested_by,
            to_id: row.other(row.requested_by),
        }
    }

    pub fn from_transition(done: Transition, declined: bool) -> Self {
        Self::from_row(&done.row, declined && done.deleted)
    }
}

#[ComplexObject]
impl FriendRequest {
    /// Who sent it (null if they are no longer visible to the caller).
    async fn from(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        user(ctx, self.from_id).await
    }

    /// Who it was sent to (null if they are no longer visible to the caller).
    async fn to(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        user(ctx, self.to_id).await
    }
}

async fn user(ctx: &Context<'_>, id: Uuid) -> AppResult<Option<User>> {
    let company = principal(ctx)?.company_id;
    let profile = scope(ctx)?
        .read(|tx| Box::pin(service::profile(tx.conn(), company, id)))
        .await?;
    Ok(profile.map(User::from_row))
}

connection! {
    /// A page of friend requests.
    pub struct FriendRequestConnection {
        /// The requests of this page.
        edges,
        /// Where the page ends.
        page_info: PageInfo,
    }
    /// An item of a [`FriendRequestConnection`].
    pub struct FriendRequestEdge {
        /// Pass as `after` to continue after this item.
        cursor,
        /// The request.
        node: FriendRequest,
    }
}

/// Something that happened to one of the caller's friendships.
#[derive(SimpleObject, Debug, Clone)]
pub struct FriendEvent {
    /// What happened.
    pub kind: FriendEventKind,
    /// The friend request (friendship) concerned.
    pub request_id: ID,
    /// The other user, who caused the event.
    pub user_id: ID,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

impl From<FriendEventPayload> for FriendEvent {
    fn from(p: FriendEventPayload) -> Self {
        Self {
            kind: p.kind,
            request_id: ID(p.request_id.to_string()),
            user_id: ID(p.user_id.to_string()),
            occurred_at: p.occurred_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_map_to_statuses_and_hide_who_blocked_whom() {
        let status = |relation: Relationship| FriendshipStatus::from(relation);
        assert_eq!(status(Relationship::Friends), FriendshipStatus::Friends);
        assert_eq!(status(Relationship::Blocked), FriendshipStatus::Blocked);
        assert_eq!(status(Relationship::BlockedBy), FriendshipStatus::None);
        assert_eq!(status(Relationship::Oneself), FriendshipStatus::None);
        assert_eq!(status(Relationship::None), FriendshipStatus::None);
        assert_eq!(
            status(Relationship::PendingIncoming),
            FriendshipStatus::PendingIncoming
        );
        assert_eq!(
            status(Relationship::PendingOutgoing),
            FriendshipStatus::PendingOutgoing
        );
    }

    #[test]
    fn visible_attribute_keys_are_trimmed_deduplicated_and_bounded() {
        let input = |keys: MaybeUndefined<Vec<String>>| PrivacyInput {
            profile_visibility: None,
            visible_attributes: keys,
        };
        let keys = vec![" plan".to_owned(), "plan".to_owned(), "city".to_owned()];
        let changes = input(MaybeUndefined::Value(keys)).validate().ok();
        assert_eq!(
            changes.and_then(|c| c.visible_attributes),
            Some(Some(vec!["city".to_owned(), "plan".to_owned()]))
        );
        let null = input(MaybeUndefined::Null).validate().ok();
        assert_eq!(null.and_then(|c| c.visible_attributes), Some(None));
        let kept = input(MaybeUndefined::Undefined).validate().ok();
        assert!(kept.is_some_and(|c| c.visible_attributes.is_none()));
        assert!(
            input(MaybeUndefined::Value(vec![" ".to_owned()]))
                .validate()
                .is_err()
        );
        assert!(
            input(MaybeUndefined::Value(
                (0..101).map(|i| i.to_string()).collect()
            ))
            .validate()
            .is_err()
        );
    }

    #[test]
    fn privacy_is_shown_only_when_the_view_reveals_it() {
        assert_eq!(Privacy::from_parts(None, None), None);
        assert_eq!(
            Privacy::from_parts(Some(stored::ProfileVisibility::Friends), None)
                .map(|p| p.profile_visibility),
            Some(ProfileVisibility::Friends)
        );
    }
}
