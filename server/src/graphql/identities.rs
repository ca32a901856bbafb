//! OpenID Connect sign-in in GraphQL: the configured providers, the caller's linked identities,
//! unlinking one, and exchanging the one-time code of a `mode=code` sign-in for credentials.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{
    auth::{AuthPayload, deps, meta, payload, state},
    connection::parse_id,
    principal, scope,
};
use crate::{
    authz::{Action, Object as Obj, public, requires},
    caller::RoleName,
    error::{AppError, AppResult},
    services::{auth as auth_service, identities as identity_service},
};

/// A provider people can sign in with.
#[derive(Debug, Clone, SimpleObject)]
pub struct OidcProvider {
    /// Its name, as in the sign-in URL.
    pub name: String,
    pub issuer: String,
    /// Where a browser starts signing in with it (add `redirect_to`, `mode=code`, `link=1`).
    pub start_path: String,
}

/// An identity of an OpenID provider linked to the caller.
#[derive(Debug, Clone, SimpleObject)]
pub struct Identity {
    pub id: ID,
    /// The provider's name in this server's configuration.
    pub provider: String,
    pub issuer: String,
    /// The verified address the provider asserted when it was linked.
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Queries about sign-in providers.
#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The OpenID providers configured for this server.
    #[graphql(directive = public::apply())]
    async fn oidc_providers(&self, ctx: &Context<'_>) -> AppResult<Vec<OidcProvider>> {
        Ok(state(ctx)?
            .oidc
            .all()
            .map(|p| OidcProvider {
                name: p.config.name.clone(),
                issuer: p.config.issuer.clone(),
                start_path: format!("/auth/oidc/{}/start", p.config.name),
            })
            .collect())
    }

    /// The provider identities linked to the caller, oldest first.
    #[graphql(directive = requires::apply(Obj::Session, Action::Read))]
    async fn identities(&self, ctx: &Context<'_>) -> AppResult<Vec<Identity>> {
        let principal = principal(ctx)?.clone();
        let identities = scope(ctx)?
            .read(move |tx| {
                Box::pin(async move { identity_service::own(tx.conn(), &principal).await })
            })
            .await?;
        Ok(identities
            .into_iter()
            .map(|i| Identity {
                id: ID(i.id.to_string()),
                provider: i.provider,
                issuer: i.issuer,
                email: i.email,
                created_at: i.created_at,
                last_used_at: i.last_used_at,
            })
            .collect())
    }
}

/// Unlinking identities and finishing app sign-ins.
#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    /// Unlinks one of the caller's provider identities. Refused for the last way to sign in
    /// (no password and no other identity).
    #[graphql(directive = requires::apply(Obj::Session, Action::Delete))]
    async fn unlink_identity(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let id = parse_id("id", &id)?;
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { identity_service::unlink(tx.conn(), &principal, id).await })
            })
            .await?;
        Ok(true)
    }

    /// Exchanges the one-time code a `mode=code` sign-in left at `redirect_to` (`oidc_code`)
    /// for credentials; the code works once, for two minutes. `cookie: true` sets the session
    /// cookies instead, as `login` does.
    #[graphql(directive = public::apply())]
    async fn exchange_oidc_code(
        &self,
        ctx: &Context<'_>,
        code: String,
        #[graphql(default = false)] cookie: bool,
    ) -> AppResult<AuthPayload> {
        let state = state(ctx)?;
        let signed_in = state
            .oidc_flows
            .redeem_code(code.trim())
            .await?
            .ok_or_else(|| AppError::bad_input("code", "the code is invalid, used or expired"))?;
        let role: RoleName = signed_in.role.parse().map_err(AppError::internal)?;
        let issued = auth_service::start_session(
            &deps(state),
            &meta(ctx),
            signed_in.user,
            signed_in.company,
            role,
        )
        .await?;
        payload(ctx, issued, cookie).await
    }
}
