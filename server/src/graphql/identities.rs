//! OpenID Connect sign-in in GraphQL: the configured providers, the caller's linked identities,
//! unlinking one, exchanging the one-time code of a `mode=code` sign-in for credentials, and the
//! providers a company's admins configure for it (`companyOidcProviders`,
//! `setCompanyOidcProvider`, `removeCompanyOidcProvider`; the client secret is write-only).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
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
    oidc::company::key as company_provider_key,
    services::{
        auth as auth_service,
        company_oidc::{self as company_oidc_service, NewCompanyOidcProvider},
        identities as identity_service,
    },
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

/// An OpenID provider the company's admins configured: its people sign in with it at
/// `startPath` (new ones join the company with `role`). The client secret is never shown.
#[derive(Debug, Clone, SimpleObject)]
pub struct CompanyOidcProvider {
    pub id: ID,
    /// Its name in the company, e.g. `google`.
    pub name: String,
    /// Its public key in the sign-in URLs: `<company id>.<name>`.
    pub key: String,
    pub issuer: String,
    pub client_id: String,
    /// Whether a client secret is set (it is stored encrypted and never returned); without
    /// one the server is a public client, proven by PKCE alone.
    pub has_client_secret: bool,
    /// The role of the members a first sign-in creates.
    pub role: String,
    /// Domains whose addresses may sign in for the first time; empty: any.
    pub allowed_domains: Vec<String>,
    /// Whether a first sign-in asserting the verified address of an existing account of the
    /// company links to that account.
    pub link_verified_email: bool,
    /// Where a browser starts signing in with it (add `redirect_to`, `mode=code`, `link=1`).
    pub start_path: String,
    /// The redirect URI to register at the provider.
    pub callback_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn company_provider(
    state: &crate::state::AppState,
    p: company_oidc_service::CompanyOidcProvider,
) -> CompanyOidcProvider {
    let key = company_provider_key(p.company_id, &p.name);
    CompanyOidcProvider {
        id: ID(p.id.to_string()),
        start_path: format!("/auth/oidc/{key}/start"),
        callback_url: crate::oidc::callback_url(&state.config, &key),
        key,
        name: p.name,
        issuer: p.issuer,
        client_id: p.client_id,
        has_client_secret: p.has_client_secret,
        role: p.role,
        allowed_domains: p.allowed_domains,
        link_verified_email: p.link_verified_email,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// An OpenID provider of the company, created or replaced by `name`. `issuer` must be
/// `https://` (`http://` only where the server's `COMPANY_OIDC_HTTP` allows) and is kept as
/// written: the provider's discovery document must name exactly it.
#[derive(Clone, InputObject)]
pub struct SetCompanyOidcProviderInput {
    /// 1 to 40 lower-case letters, digits, `-` or `_`.
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Stored encrypted, never returned. Omitted: the stored one is kept (a new provider
    /// without one is a public client).
    #[graphql(secret)]
    pub client_secret: Option<String>,
    /// The role new members get: a built-in or custom role of the company.
    #[graphql(default_with = "String::from(\"member\")")]
    pub role: String,
    /// Domains whose addresses may sign in for the first time (e.g. `acme.com`); empty: any.
    #[graphql(default)]
    pub allowed_domains: Vec<String>,
    /// Whether a first sign-in asserting the verified address of an existing account of the
    /// company links to that account (off: the account's owner links it while signed in).
    #[graphql(default)]
    pub link_verified_email: bool,
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

    /// The OpenID providers the caller's company configured, by name. Admins only (who
    /// manages the company).
    #[graphql(directive = requires::apply(Obj::Company, Action::Manage))]
    async fn company_oidc_providers(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Vec<CompanyOidcProvider>> {
        let principal = principal(ctx)?.clone();
        let providers = scope(ctx)?
            .read(move |tx| {
                Box::pin(async move { company_oidc_service::list(tx.conn(), &principal).await })
            })
            .await?;
        let state = state(ctx)?;
        Ok(providers
            .into_iter()
            .map(|p| company_provider(state, p))
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

    /// Creates or replaces (by `name`) an OpenID provider of the caller's company: its people
    /// sign in with it at `startPath`, new ones join the company with `role`, addresses outside
    /// `allowedDomains` are refused. The client secret is stored encrypted (`UNAVAILABLE` when
    /// the server has no SECRETS_KEYS to encrypt it with). Admins only.
    #[graphql(directive = requires::apply(Obj::Company, Action::Manage))]
    async fn set_company_oidc_provider(
        &self,
        ctx: &Context<'_>,
        input: SetCompanyOidcProviderInput,
    ) -> AppResult<CompanyOidcProvider> {
        let state = state(ctx)?;
        let input = company_oidc_service::validate(
            NewCompanyOidcProvider {
                name: input.name,
                issuer: input.issuer,
                client_id: input.client_id,
                client_secret: input.client_secret.map(zeroize::Zeroizing::new),
                role: input.role,
                allowed_domains: input.allowed_domains,
                link_verified_email: input.link_verified_email,
            },
            state.config.company_oidc_http,
        )?;
        let secrets = state.secrets.clone();
        let principal = principal(ctx)?.clone();
        let provider = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    company_oidc_service::set(tx.conn(), &principal, &secrets, input).await
                })
            })
            .await?;
        Ok(company_provider(state, provider))
    }

    /// Removes the OpenID provider `name` of the caller's company: nobody signs in with it from
    /// then on. Whether there was one. Admins only.
    #[graphql(directive = requires::apply(Obj::Company, Action::Manage))]
    async fn remove_company_oidc_provider(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> AppResult<bool> {
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .write(move |tx| {
                Box::pin(
                    async move { company_oidc_service::remove(tx.conn(), &principal, &name).await },
                )
            })
            .await
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
