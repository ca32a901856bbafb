//! Friendships: the state machine of a pair (request, accept, decline, cancel, remove, block,
//! unblock) as pure decisions on the pair's row, and the events each transition announces to
//! the other member of the pair once committed. The reads and writes are
//! `crate::services::friends`, which asks these functions what to do.
//!
//! A pair is one row (`user_a < user_b`). Sending a request inserts it with
//! `ON CONFLICT DO NOTHING` and otherwise locks the existing row, so two people asking each
//! other at the same moment meet on one row and the second request accepts the first.
//! A blocked pair answers `NOT_FOUND` to whatever either side tries, so the blocked user
//! learns nothing.

pub mod events;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use entity::friendships::FriendshipStatus;
pub use events::{FriendEventKind, FriendNotice};

use crate::error::{AppError, AppResult};

/// The longest message a request may carry, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// The caller of a friendship operation.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub company_id: Uuid,
    pub user_id: Uuid,
}

/// A pair's friendship: one per unordered pair (`user_a < user_b`), pending, accepted or
/// blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Friendship {
    pub id: Uuid,
    pub company_id: Uuid,
    pub user_a: Uuid,
    pub user_b: Uuid,
    pub status: FriendshipStatus,
    /// Who asked (who blocked, for a block).
    pub requested_by: Uuid,
    pub blocked_by: Option<Uuid>,
    /// The message sent with the request.
    pub message: Option<String>,
    /// When it was accepted.
    pub responded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Friendship {
    /// The member of the pair who is not `user`.
    pub fn other(&self, user: Uuid) -> Uuid {
        if self.user_a == user {
            self.user_b
        } else {
            self.user_a
        }
    }
}

/// What a transition produced: the row (`deleted` when it was deleted, with the last state
/// seen) and the events to publish after commit.
#[derive(Debug)]
pub struct Transition {
    pub row: Friendship,
    pub deleted: bool,
    pub notices: Vec<FriendNotice>,
}

/// The pair's two members in the row's order.
pub fn pair(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a < b { (a, b) } else { (b, a) }
}

pub fn no_such_user() -> AppError {
    AppError::NotFound("no such user".into())
}

pub fn no_such_request() -> AppError {
    AppError::NotFound("no such friend request".into())
}

/// A request's message, trimmed (`None` when empty); `BAD_USER_INPUT` past
/// [`MAX_MESSAGE_CHARS`].
pub fn request_message(message: Option<String>) -> AppResult<Option<String>> {
    let message = message
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty());
    if message
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_MESSAGE_CHARS)
    {
        return Err(AppError::bad_input(
            "message",
            format!("the message must have at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    Ok(message)
}

/// `BAD_USER_INPUT` when the caller names themselves.
pub fn not_oneself(actor: Actor, user: Uuid, why: &str) -> AppResult<()> {
    if user == actor.user_id {
        return Err(AppError::bad_input("userId", why.to_owned()));
    }
    Ok(())
}

/// A request to a user whose pair exists already: `Ok` when it accepts theirs.
pub fn on_request(row: &Friendship, actor: Actor) -> AppResult<()> {
    match row.status {
        FriendshipStatus::Blocked => Err(no_such_user()),
        FriendshipStatus::Accepted => Err(AppError::Conflict("you are already friends".into())),
        FriendshipStatus::Pending if row.requested_by == actor.user_id => Err(AppError::Conflict(
            "you already sent this user a friend request".into(),
        )),
        // They asked first: asking back accepts.
        FriendshipStatus::Pending => Ok(()),
    }
}

/// What answering a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    /// Deletes it, silently.
    Decline,
}

/// Answering request `row` (`accept` or decline).
pub fn on_respond(row: &Friendship, actor: Actor, accept: bool) -> AppResult<Answer> {
    match row.status {
        FriendshipStatus::Pending if row.requested_by == actor.user_id => Err(AppError::Forbidden(
            "only the recipient may respond to a friend request; cancel your own instead".into(),
        )),
        FriendshipStatus::Pending if accept => Ok(Answer::Accept),
        FriendshipStatus::Pending => Ok(Answer::Decline),
        FriendshipStatus::Accepted => Err(AppError::Conflict(
            "this friend request was already accepted".into(),
        )),
        FriendshipStatus::Blocked => Err(no_such_request()),
    }
}

/// Withdrawing request `row`: `Ok` when the caller may (it is then deleted).
pub fn on_cancel(row: &Friendship, actor: Actor) -> AppResult<()> {
    match row.status {
        FriendshipStatus::Pending if row.requested_by == actor.user_id => Ok(()),
        FriendshipStatus::Pending => Err(AppError::Forbidden(
            "only the sender may cancel a friend request; decline it instead".into(),
        )),
        FriendshipStatus::Accepted => Err(AppError::Conflict(
            "this friend request was already accepted".into(),
        )),
        FriendshipStatus::Blocked => Err(no_such_request()),
    }
}

/// Ending the friendship of the pair `row` (if any): `Ok` when it exists (it is then deleted).
pub fn on_remove(row: Option<&Friendship>) -> AppResult<()> {
    match row.map(|r| r.status) {
        Some(FriendshipStatus::Accepted) => Ok(()),
        Some(FriendshipStatus::Blocked) => Err(no_such_user()),
        _ => Err(AppError::NotFound(
            "you are not friends with this user".into(),
        )),
    }
}

/// What blocking a user whose pair exists already does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// The caller blocked them already: nothing changes.
    Already,
    /// The row becomes the caller's block; what ended is announced to the blocked user (as an
    /// ordinary removal or cancellation), if anything.
    Block(Option<FriendEventKind>),
}

/// Blocking the other member of the existing pair `row`.
pub fn on_block(row: &Friendship, actor: Actor) -> AppResult<Block> {
    match row.status {
        FriendshipStatus::Blocked if row.blocked_by == Some(actor.user_id) => Ok(Block::Already),
        FriendshipStatus::Blocked => Err(no_such_user()),
        FriendshipStatus::Accepted => Ok(Block::Block(Some(FriendEventKind::FriendRemoved))),
        FriendshipStatus::Pending if row.requested_by == actor.user_id => {
            Ok(Block::Block(Some(FriendEventKind::RequestCancelled)))
        }
        FriendshipStatus::Pending => Ok(Block::Block(None)),
    }
}

/// Lifting a block of the pair `row` (if any): `Ok` when the caller blocked (it is then
/// deleted).
pub fn on_unblock(row: Option<&Friendship>, actor: Actor) -> AppResult<()> {
    match row {
        Some(row)
            if row.status == FriendshipStatus::Blocked && row.blocked_by == Some(actor.user_id) =>
        {
            Ok(())
        }
        _ => Err(AppError::NotFound("you have not blocked this user".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: FriendshipStatus, requested_by: Uuid, blocked_by: Option<Uuid>) -> Friendship {
        let now = chrono::Utc::now();
        Friendship {
            id: Uuid::new_v4(),
            company_id: Uuid::new_v4(),
            user_a: requested_by,
            user_b: Uuid::new_v4(),
            status,
            requested_by,
            blocked_by,
            message: None,
            responded_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn actor(user_id: Uuid) -> Actor {
        Actor {
            company_id: Uuid::new_v4(),
            user_id,
        }
    }

    #[test]
    fn pairs_are_ordered_whatever_the_argument_order() {
        let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(pair(x, y), pair(y, x));
        let (a, b) = pair(x, y);
        assert!(a < b);
    }

    #[test]
    fn asking_back_accepts_and_nothing_else_does() {
        let (me, them) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(on_request(&row(FriendshipStatus::Pending, them, None), actor(me)).is_ok());
        assert!(on_request(&row(FriendshipStatus::Pending, me, None), actor(me)).is_err());
        assert!(on_request(&row(FriendshipStatus::Accepted, them, None), actor(me)).is_err());
        assert!(on_request(&row(FriendshipStatus::Blocked, them, Some(them)), actor(me)).is_err());
    }

    #[test]
    fn only_the_recipient_answers_and_only_the_sender_cancels() {
        let (me, them) = (Uuid::new_v4(), Uuid::new_v4());
        let theirs = row(FriendshipStatus::Pending, them, None);
        let mine = row(FriendshipStatus::Pending, me, None);
        assert_eq!(
            on_respond(&theirs, actor(me), true).ok(),
            Some(Answer::Accept)
        );
        assert_eq!(
            on_respond(&theirs, actor(me), false).ok(),
            Some(Answer::Decline)
        );
        assert!(on_respond(&mine, actor(me), true).is_err());
        assert!(on_cancel(&mine, actor(me)).is_ok());
        assert!(on_cancel(&theirs, actor(me)).is_err());
    }

    #[test]
    fn a_block_ends_what_there_was_and_hides_who_blocked_whom() {
        let (me, them) = (Uuid::new_v4(), Uuid::new_v4());
        let friends = row(FriendshipStatus::Accepted, them, None);
        assert_eq!(
            on_block(&friends, actor(me)).ok(),
            Some(Block::Block(Some(FriendEventKind::FriendRemoved)))
        );
        let mine = row(FriendshipStatus::Pending, me, None);
        assert_eq!(
            on_block(&mine, actor(me)).ok(),
            Some(Block::Block(Some(FriendEventKind::RequestCancelled)))
        );
        let theirs = row(FriendshipStatus::Pending, them, None);
        assert_eq!(on_block(&theirs, actor(me)).ok(), Some(Block::Block(None)));
        let my_block = row(FriendshipStatus::Blocked, me, Some(me));
        assert_eq!(on_block(&my_block, actor(me)).ok(), Some(Block::Already));
        assert!(on_unblock(Some(&my_block), actor(me)).is_ok());
        let their_block = row(FriendshipStatus::Blocked, them, Some(them));
        assert!(on_block(&their_block, actor(me)).is_err());
        assert!(on_unblock(Some(&their_block), actor(me)).is_err());
        assert!(on_remove(Some(&their_block)).is_err());
        assert!(on_remove(Some(&friends)).is_ok());
        assert!(on_remove(None).is_err());
    }
}
