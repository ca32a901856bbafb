//! Friend events: what a transition tells the other member of the pair, published on that
//! user's own topic through Redis pub/sub after the transaction commits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Friendship;
use crate::pubsub::PubSub;

/// What happened.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FriendEventKind {
    /// Someone sent you a friend request.
    RequestReceived,
    /// Someone accepted your friend request (or asked you back): you are now friends.
    RequestAccepted,
    /// A friend request sent to you was withdrawn.
    RequestCancelled,
    /// A friend ended your friendship.
    FriendRemoved,
}

/// The payload on the wire (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FriendEventPayload {
    pub kind: FriendEventKind,
    /// The friendship row (the request's id).
    pub request_id: Uuid,
    /// Who caused the event.
    pub user_id: Uuid,
    pub occurred_at: DateTime<Utc>,
}

impl crate::pubsub::Event for FriendEventPayload {}

/// An event for one recipient.
#[derive(Debug, Clone)]
pub struct FriendNotice {
    pub recipient: Uuid,
    pub payload: FriendEventPayload,
}

impl FriendNotice {
    pub fn new(recipient: Uuid, kind: FriendEventKind, row: &Friendship, actor: Uuid) -> Self {
        Self {
            recipient,
            payload: FriendEventPayload {
                kind,
                request_id: row.id,
                user_id: actor,
                occurred_at: Utc::now(),
            },
        }
    }
}

/// The pub/sub topic of `user`'s friend events.
pub fn topic(user: Uuid) -> String {
    format!("user:{user}:friends")
}

/// Publishes committed notices; call it after the transaction commits, never inside it.
pub async fn publish(pubsub: &PubSub, notices: &[FriendNotice]) {
    for notice in notices {
        pubsub
            .publish(&topic(notice.recipient), &notice.payload)
            .await;
    }
}
