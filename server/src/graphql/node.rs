//! Relay's object identification: `interface Node { id: ID! }`, `node(id:)` and `nodes(ids:)`.
//!
//! Ids are UUIDs, unique across tables, so they carry no type. An id is resolved by trying the
//! types in a fixed order, each through its direct read's service function or a by-id read
//! beside it with the same conditions (users, conversations, presets, the company, messages,
//! knowledge notes, pending friend requests, the caller's live sessions, pending invitations)
//! and only when the caller's role may read that type, all in one read transaction of the
//! request (so Row Level Security sees every attempt as the caller). One query over every table would save round trips, but would be a second
//! implementation of each read's visibility rules, the thing this must not get wrong. What the
//! caller may not see answers `null`, as a random or malformed id does: nothing tells them
//! apart.

use async_graphql::{Context, ID, Interface, Object};
use uuid::Uuid;

use super::{
    auth::{Invitation, Session},
    chat::{Conversation, Knowledge, Message},
    friends::FriendRequest,
    presets::Preset,
    principal, scope,
    users::{Company, User},
};
use crate::{
    auth::Principal,
    authz::{Action, Object as Guarded, Permission, public},
    chat::MessageData,
    db::{RequestScope, TxConn},
    error::{AppError, AppResult},
    friends::{Actor, Friendship},
    services::{
        auth as auth_service, chat as chat_service, friends as friend_service,
        presets as preset_service, users as user_service,
    },
    state::AppState,
};

/// Most ids one `nodes` may ask for.
pub const MAX_NODES: usize = 100;

/// An object with a globally unique id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "&ID"))]
pub enum Node {
    User(User),
    Company(Company),
    Conversation(Conversation),
    Preset(Preset),
    Message(Message),
    Knowledge(Knowledge),
    FriendRequest(FriendRequest),
    Session(Session),
    Invitation(Invitation),
}

/// What one id turned out to be.
enum Found {
    User(user_service::Profile),
    Company(user_service::Company),
    Conversation(chat_service::Conversation),
    Preset(preset_service::Preset),
    Message(MessageData),
    Knowledge(chat_service::Note),
    FriendRequest(Friendship),
    /// The caller's own session, and whether it is the one of this request.
    Session(auth_service::LiveSession, bool),
    Invitation(auth_service::PendingInvitation),
}

impl From<Found> for Node {
    fn from(found: Found) -> Self {
        match found {
            Found::User(row) => Self::User(row.into()),
            Found::Company(row) => Self::Company(row.into()),
            Found::Conversation(row) => Self::Conversation(row.into()),
            Found::Preset(row) => Self::Preset(row.into()),
            Found::Message(row) => Self::Message(row.into()),
            Found::Knowledge(row) => Self::Knowledge(row.into()),
            Found::FriendRequest(row) => Self::FriendRequest(FriendRequest::from_row(&row, false)),
            // As `sessions` shows it.
            Found::Session(row, current) => Self::Session(Session {
                id: ID(row.id.to_string()),
                created_at: row.created_at,
                last_used_at: row.last_used_at,
                expires_at: row.expires_at,
                user_agent: row.user_agent,
                ip: row.ip,
                current,
            }),
            // As `inviteUser` answers it: never the token nor the link.
            Found::Invitation(row) => Self::Invitation(Invitation {
                id: ID(row.id.to_string()),
                email: row.email,
                role: row.role,
                expires_at: row.expires_at,
                token: None,
                link: None,
            }),
        }
    }
}

/// The types the caller's role may read, in the order ids are tried.
#[derive(Debug, Clone, Copy, Default)]
struct Readable {
    user: bool,
    conversation: bool,
    preset: bool,
    company: bool,
    message: bool,
    friendship: bool,
    session: bool,
    invitation: bool,
}

async fn readable(
    ctx: &Context<'_>,
    scope: &RequestScope,
    caller: &Principal,
) -> AppResult<Readable> {
    let authz = &ctx
        .data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in the GraphQL schema")))?
        .authz;
    let may = |object| async move {
        authz
            .authorize(
                scope,
                caller,
                Permission {
                    object,
                    action: Action::Read,
                },
            )
            .await
    };
    Ok(Readable {
        user: may(Guarded::User).await?,
        conversation: may(Guarded::Conversation).await?,
        preset: may(Guarded::Preset).await?,
        company: may(Guarded::Company).await?,
        message: may(Guarded::Message).await?,
        friendship: may(Guarded::Friendship).await?,
        session: may(Guarded::Session).await?,
        invitation: may(Guarded::Invitation).await?,
    })
}

/// Resolves `ids` (malformed ones are `None`) in one read transaction.
async fn resolve(ctx: &Context<'_>, ids: Vec<Option<Uuid>>) -> AppResult<Vec<Option<Node>>> {
    let caller = principal(ctx)?.clone();
    let scope = scope(ctx)?;
    let readable = readable(ctx, scope, &caller).await?;
    if ids.iter().all(Option::is_none) {
        return Ok(ids.into_iter().map(|_| None).collect());
    }
    let found = scope
        .read(move |tx| {
            Box::pin(async move {
                let mut found = Vec::with_capacity(ids.len());
                for id in ids {
                    let Some(id) = id else {
                        found.push(None);
                        continue;
                    };
                    found.push(find(tx.conn(), &caller, readable, id).await?);
                }
                Ok(found)
            })
        })
        .await?;
    Ok(found.into_iter().map(|f| f.map(Node::from)).collect())
}

/// What `id` is among what the caller may read, trying each type in turn (each through the
/// reads of its own service, with the conditions of its direct read or list).
async fn find(
    conn: &TxConn,
    caller: &Principal,
    readable: Readable,
    id: Uuid,
) -> AppResult<Option<Found>> {
    let actor = Actor {
        company_id: caller.company_id,
        user_id: caller.user_id,
    };
    if readable.user
        && let Some(row) = user_service::profile(conn, caller.company_id, id).await?
    {
        return Ok(Some(Found::User(row)));
    }
    if readable.conversation
        && let Some(row) = chat_service::conversation(conn, caller, id).await?
    {
        return Ok(Some(Found::Conversation(row)));
    }
    if readable.preset
        && let Some(row) = preset_service::find(conn, caller, id).await?
    {
        return Ok(Some(Found::Preset(row)));
    }
    if readable.company && id == caller.company_id {
        return Ok(Some(Found::Company(
            user_service::company(conn, caller).await?,
        )));
    }
    if readable.message
        && let Some(row) = chat_service::message(conn, caller, id).await?
    {
        return Ok(Some(Found::Message(row.message)));
    }
    // Knowledge is read with the permission to read conversations, as `knowledge` is.
    if readable.conversation
        && let Some(row) = chat_service::note(conn, caller, id).await?
    {
        return Ok(Some(Found::Knowledge(row)));
    }
    if readable.friendship
        && let Some(row) = friend_service::pending_request(conn, actor, id).await?
    {
        return Ok(Some(Found::FriendRequest(row)));
    }
    // The caller's own live sessions, as `sessions` lists them (a handful).
    if readable.session
        && let Some(row) = auth_service::live_sessions(conn, caller)
            .await?
            .into_iter()
            .find(|s| s.id == id)
    {
        let current = row.id == caller.session_id;
        return Ok(Some(Found::Session(row, current)));
    }
    if readable.invitation
        && let Some(row) = auth_service::pending_invitation(conn, caller, id).await?
    {
        return Ok(Some(Found::Invitation(row)));
    }
    Ok(None)
}

/// `node` and `nodes`.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this id, whatever its type, when the caller may read it (as its
    /// direct read, e.g. `user(id:)`, decides); null otherwise, as for an id that does not
    /// exist or is not a valid id. Each type is checked against the caller's permission to
    /// read it, so the field itself needs only a signed-in caller.
    #[graphql(directive = public::apply())]
    async fn node(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Node>> {
        let mut found = resolve(ctx, vec![Uuid::parse_str(id.as_str()).ok()]).await?;
        Ok(found.pop().flatten())
    }

    /// The objects with these ids, in their order, each as `node(id:)` answers it; at most
    /// 100 ids.
    #[graphql(directive = public::apply())]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> AppResult<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(AppError::bad_input(
                "ids",
                format!(
                    "`ids` holds {} ids, over the limit of {MAX_NODES}",
                    ids.len()
                ),
            ));
        }
        resolve(
            ctx,
            ids.iter()
                .map(|id| Uuid::parse_str(id.as_str()).ok())
                .collect(),
        )
        .await
    }
}
