//! A company's own LLM provider: `Company.llmProvider` (admins), `setCompanyLlmProvider`,
//! `clearCompanyLlmProvider`. The API key is write-only: it is sealed before it is stored and
//! only `hasApiKey` ever comes back.

use async_graphql::{ComplexObject, Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{audience::may, principal, scope, users::Company};
use crate::{
    authz::{Action, Object as PermissionObject, requires},
    error::{AppError, AppResult},
    services::llm_provider::{self as service, NewProvider},
    state::AppState,
};

/// The company's own OpenAI-compatible provider, which its chat replies stream from instead
/// of the server's default. The API key is never shown.
#[derive(Debug, Clone, SimpleObject)]
pub struct LlmProvider {
    /// E.g. `https://api.openai.com/v1` (requests go to `{baseUrl}/chat/completions`).
    pub base_url: String,
    pub model: String,
    /// Whether an API key is set (it is stored encrypted and never returned).
    pub has_api_key: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<service::LlmProvider> for LlmProvider {
    fn from(p: service::LlmProvider) -> Self {
        Self {
            base_url: p.base_url,
            model: p.model,
            has_api_key: p.has_api_key,
            updated_at: p.updated_at,
        }
    }
}

/// A company's own provider. `baseUrl` must be `https://` (`http://` only where the server's
/// `COMPANY_LLM_HTTP` allows), without user name, password, query or fragment.
#[derive(Clone, InputObject)]
pub struct SetCompanyLlmProviderInput {
    pub base_url: String,
    pub model: String,
    /// Stored encrypted, never returned. Omitted or empty: the provider gets no key (a local
    /// model server). Every call replaces the whole setting, key included.
    #[graphql(secret)]
    pub api_key: Option<String>,
}

fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no state in the GraphQL context")))
}

#[ComplexObject]
impl Company {
    /// The company's own AI provider, if it set one (null: replies come from the server's
    /// default). Only for who manages the company (admins); `FORBIDDEN` otherwise.
    async fn llm_provider(&self, ctx: &Context<'_>) -> AppResult<Option<LlmProvider>> {
        if !may(ctx, PermissionObject::Company, Action::Manage).await? {
            return Err(AppError::Forbidden(
                "only admins see the company's AI provider".into(),
            ));
        }
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .read(move |tx| Box::pin(async move { service::get(tx.conn(), &principal).await }))
            .await
            .map(|p| p.map(LlmProvider::from))
    }
}

/// Setting and clearing the company's own provider.
#[derive(Default)]
pub struct LlmProviderMutation;

#[Object]
impl LlmProviderMutation {
    /// Makes the company's chat replies stream from its own OpenAI-compatible provider, with
    /// its own API key (stored encrypted; `UNAVAILABLE` when the server has no SECRETS_KEYS to
    /// encrypt it with). Admins only.
    #[graphql(directive = requires::apply(PermissionObject::Company, Action::Manage))]
    async fn set_company_llm_provider(
        &self,
        ctx: &Context<'_>,
        input: SetCompanyLlmProviderInput,
    ) -> AppResult<LlmProvider> {
        let state = state(ctx)?;
        let input = service::validate(
            NewProvider {
                base_url: input.base_url,
                model: input.model,
                api_key: input.api_key.map(zeroize::Zeroizing::new),
            },
            state.config.company_llm_http,
        )?;
        let secrets = state.secrets.clone();
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::set(tx.conn(), &principal, &secrets, input).await })
            })
            .await
            .map(LlmProvider::from)
    }

    /// Removes the company's own provider: its replies stream from the server's default again.
    /// Whether there was one. Admins only.
    #[graphql(directive = requires::apply(PermissionObject::Company, Action::Manage))]
    async fn clear_company_llm_provider(&self, ctx: &Context<'_>) -> AppResult<bool> {
        let principal = principal(ctx)?.clone();
        scope(ctx)?
            .write(move |tx| Box::pin(async move { service::clear(tx.conn(), &principal).await }))
            .await
    }
}
