//! Activity events: a new activity (or one newly shared) announced to the owner's friends on
//! each friend's own topic, through Redis pub/sub, after the transaction commits. The payload
//! carries ids only: each subscriber reads the activity as themselves, so PostgreSQL decides
//! again, for that subscriber and at that moment, whether they may see it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::pubsub::PubSub;

/// The payload on the wire (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEventPayload {
    pub company_id: Uuid,
    pub activity_id: Uuid,
    /// The owner.
    pub user_id: Uuid,
}

impl crate::pubsub::Event for ActivityEventPayload {}

/// An announcement for some recipients (friends of the owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityNotice {
    pub recipients: Vec<Uuid>,
    pub payload: ActivityEventPayload,
}

/// The pub/sub topic of the activities of `user`'s friends.
pub fn topic(user: Uuid) -> String {
    format!("user:{user}:friend-activity")
}

/// Publishes committed notices; call it after the transaction commits, never inside it.
pub async fn publish(pubsub: &PubSub, notices: &[ActivityNotice]) {
    for notice in notices {
        for recipient in &notice.recipients {
            pubsub.publish(&topic(*recipient), &notice.payload).await;
        }
    }
}
