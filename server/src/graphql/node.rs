//! Relay's object identification: `interface Node { id: ID! }`, `node(id:)` and `nodes(ids:)`.
//!
//! Ids are UUIDs, unique across tables, so they carry no type. An id is resolved by trying the
//! types in a fixed order, each through the very service function its direct read uses
//! (`user`, `conversation`, `preset`, `company`) and only when the caller's role may read that
//! type, all in one read transaction of the request (so Row Level Security sees every attempt
//! as the caller). One query over every table would save round trips, but would be a second
//! implementation of each read's visibility rules, the thing this must not get wrong. What the
//! caller may not see answers `null`, as a random or malformed id does: nothing tells them
//! apart.

use async_graphql::{Context, ID, Interface, Object};
use uuid::Uuid;

use super::{
    chat::Conversation,
    presets::Preset,
    principal, scope,
    users::{Company, User},
};
use crate::{
    auth::Principal,
    authz::{Action, Object as Guarded, Permission, public},
    db::RequestScope,
    error::{AppError, AppResult},
    services::{chat as chat_service, presets as preset_service, users as user_service},
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
}

/// What one id turned out to be.
enum Found {
    User(user_service::Profile),
    Company(user_service::Company),
    Conversation(chat_service::Conversation),
    Preset(preset_service::Preset),
}

impl From<Found> for Node {
    fn from(found: Found) -> Self {
        match found {
            Found::User(row) => Self::User(row.into()),
            Found::Company(row) => Self::Company(row.into()),
            Found::Conversation(row) => Self::Conversation(row.into()),
            Found::Preset(row) => Self::Preset(row.into()),
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
                    let conn = tx.conn();
                    let row = if readable.user
                        && let Some(row) =
                            user_service::profile(conn, caller.company_id, id).await?
                    {
                        Some(Found::User(row))
                    } else if readable.conversation
                        && let Some(row) = chat_service::conversation(conn, &caller, id).await?
                    {
                        Some(Found::Conversation(row))
                    } else if readable.preset
                        && let Some(row) = preset_service::find(conn, &caller, id).await?
                    {
                        Some(Found::Preset(row))
                    } else if readable.company && id == caller.company_id {
                        Some(Found::Company(user_service::company(conn, &caller).await?))
                    } else {
                        None
                    };
                    found.push(row);
                }
                Ok(found)
            })
        })
        .await?;
    Ok(found.into_iter().map(|f| f.map(Node::from)).collect())
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
