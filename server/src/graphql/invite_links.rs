//! Invite links: `createInviteLink`, `revokeInviteLink`, `inviteLinks` (with their use counts)
//! and `acceptInviteLink`, signing up into the link's company with its role.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    auth::{AuthPayload, auth_deps, auth_payload, request_meta},
    connection::parse_id,
    principal, scope,
};
use crate::{
    auth::tokens,
    authz::{Action, Object as Obj, public, requires},
    error::{AppError, AppResult},
    services::{
        auth::{self as auth_service, limits},
        invite_links::{self as link_service, InviteLink as Link, NewInviteLink},
        roles as role_service,
    },
    state::AppState,
};

/// Most uses one link may allow.
const MAX_USES: i32 = 10_000;

/// A link anyone may sign up with into the caller's company, with its role, until it expires,
/// is revoked or is used up.
#[derive(Debug, Clone, SimpleObject)]
pub struct InviteLink {
    pub id: ID,
    pub role: String,
    pub max_uses: i32,
    /// Sign-ups it made so far.
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Whether it still signs people up (not revoked, expired or used up).
    pub usable: bool,
}

impl From<Link> for InviteLink {
    fn from(l: Link) -> Self {
        Self {
            id: ID(l.id.to_string()),
            usable: l.revoked_at.is_none() && l.expires_at > Utc::now() && l.uses < l.max_uses,
            role: l.role,
            max_uses: l.max_uses,
            uses: l.uses,
            expires_at: l.expires_at,
            revoked_at: l.revoked_at,
            created_at: l.created_at,
        }
    }
}

/// A new invite link, with the one copy of its URL there will ever be.
#[derive(Debug, Clone, SimpleObject)]
pub struct CreatedInviteLink {
    pub invite_link: InviteLink,
    /// The token to sign up with (`acceptInviteLink`); only its hash is stored.
    pub token: String,
    /// `PUBLIC_URL/join?token=...`.
    pub url: String,
}

/// Signing up with an invite link.
#[derive(Debug, InputObject)]
pub struct AcceptInviteLinkInput {
    pub token: String,
    pub email: String,
    pub password: String,
    pub display_name: String,
}

fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in context")))
}

/// The company's invite links.
#[derive(Default)]
pub struct InviteLinkQuery;

#[Object]
impl InviteLinkQuery {
    /// The caller's company's invite links with their use counts, newest first.
    #[graphql(directive = requires::apply(Obj::Invitation, Action::Read))]
    async fn invite_links(&self, ctx: &Context<'_>) -> AppResult<Vec<InviteLink>> {
        let company = principal(ctx)?.company_id;
        let links = scope(ctx)?
            .read(move |tx| Box::pin(async move { link_service::list(tx.conn(), company).await }))
            .await?;
        Ok(links.into_iter().map(InviteLink::from).collect())
    }
}

/// Making, revoking and using invite links.
#[derive(Default)]
pub struct InviteLinkMutation;

#[Object]
impl InviteLinkMutation {
    /// Makes a link anyone may sign up with into the caller's company with `role`, at most
    /// `maxUses` times (1 to 10000), until `expiresAt`. Rate-limited per company, as
    /// `inviteUser`.
    #[graphql(directive = requires::apply(Obj::Invitation, Action::Create))]
    async fn create_invite_link(
        &self,
        ctx: &Context<'_>,
        role: String,
        max_uses: i32,
        expires_at: DateTime<Utc>,
    ) -> AppResult<CreatedInviteLink> {
        let principal = principal(ctx)?.clone();
        let state = state(ctx)?;
        if !(1..=MAX_USES).contains(&max_uses) {
            return Err(AppError::bad_input("maxUses", "must be 1 to 10000"));
        }
        if expires_at <= Utc::now() {
            return Err(AppError::bad_input("expiresAt", "must be in the future"));
        }
        let role = role.trim().to_owned();
        limits::invite(&state.ratelimit, principal.company_id).await?;
        let token = tokens::generate(tokens::Kind::InviteLink, principal.company_id);
        let url = auth_service::invite_link_url(&auth_deps(state), &token);
        let new = NewInviteLink {
            role: role.clone(),
            token_hash: tokens::hash(&token),
            max_uses,
            expires_at,
        };
        let link = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    role_service::check_exists(tx.conn(), principal.company_id, &role).await?;
                    link_service::create(tx.conn(), &principal, new).await
                })
            })
            .await?;
        Ok(CreatedInviteLink {
            invite_link: link.into(),
            token,
            url,
        })
    }

    /// Revokes an invite link of the caller's company: it signs nobody up from then on.
    #[graphql(directive = requires::apply(Obj::Invitation, Action::Delete))]
    async fn revoke_invite_link(&self, ctx: &Context<'_>, id: ID) -> AppResult<InviteLink> {
        let id: Uuid = parse_id("id", &id)?;
        let company = principal(ctx)?.company_id;
        scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { link_service::revoke(tx.conn(), company, id).await })
            })
            .await
            .map(InviteLink::from)
    }

    /// Signs up with an invite link into its company, with its role, and signs in; a
    /// verification link is sent to the address. `BAD_USER_INPUT` on `input.token` when the
    /// link is unknown, revoked, expired or used up. Rate-limited per client, as `signUp`.
    #[graphql(directive = public::apply())]
    async fn accept_invite_link(
        &self,
        ctx: &Context<'_>,
        input: AcceptInviteLinkInput,
    ) -> AppResult<AuthPayload> {
        let state = state(ctx)?;
        let issued = auth_service::accept_invite_link(
            &auth_deps(state),
            &request_meta(ctx),
            auth_service::LinkSignUp {
                token: input.token,
                email: input.email,
                password: input.password,
                display_name: input.display_name,
            },
        )
        .await?;
        auth_payload(ctx, issued).await
    }
}
