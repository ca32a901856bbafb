//! The GraphQL schema: one module per domain, merged at the root.

mod activities;
mod audience;
mod auth;
mod chat;
pub(crate) mod connection;
mod domains;
mod friends;
mod guardrails;
mod identities;
mod invite_links;
pub mod live;
mod llm_provider;
mod node;
mod observe;
mod presets;
mod roles;
mod scope_end;
mod storable;
pub(crate) mod training;
pub(crate) mod users;

use std::sync::Arc;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder};

pub use guardrails::{Guardrails, Limits, give_codes};
pub use observe::{FinishedOperation, collecting_operations};

use crate::{
    auth::Principal,
    db::RequestScope,
    error::{AppError, AppResult},
    state::AppState,
};

/// Root of all queries.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    users::UserQuery,
    roles::RoleQuery,
    auth::AuthQuery,
    identities::IdentityQuery,
    domains::DomainQuery,
    invite_links::InviteLinkQuery,
    friends::FriendQuery,
    presets::PresetQuery,
    audience::AudienceQuery,
    chat::ChatQuery,
    training::TrainingQuery,
    activities::ActivityQuery,
    node::NodeQuery,
);

/// Root of all mutations.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    users::UserMutation,
    roles::RoleMutation,
    auth::AuthMutation,
    identities::IdentityMutation,
    domains::DomainMutation,
    invite_links::InviteLinkMutation,
    friends::FriendMutation,
    presets::PresetMutation,
    audience::AudienceMutation,
    chat::ChatMutation,
    training::TrainingMutation,
    llm_provider::LlmProviderMutation,
    activities::ActivityMutation,
);

/// Root of all subscriptions.
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(
    friends::FriendSubscription,
    chat::ChatSubscription,
    activities::ActivitySubscription,
);

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema's types without any runtime data: enough for `print-schema`.
pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

/// The schema wired to a running server's state.
pub fn build_schema(state: AppState) -> AppSchema {
    let limits = Limits::from_config(&state.config);
    schema_builder()
        // Nesting deeper than this cannot even be parsed; the configurable depth limit applies
        // on top, with a clear message.
        .limit_recursive_depth(64)
        // First, so it sees every operation's final codes: metrics, access log, spans.
        .extension(observe::Observe)
        // Limits, unstorable strings, and the end of each operation's database scope: one
        // extension, since every field of an answer passes through each extension's hook.
        .extension(Guardrails::new(limits))
        // Every root field declares @requires or @public; this enforces them.
        .extension(crate::authz::Guard::new(state.authz.clone()))
        .data(state)
        .finish()
}

/// The request's database scope.
pub(crate) fn scope<'a>(ctx: &Context<'a>) -> AppResult<&'a Arc<RequestScope>> {
    ctx.data::<Arc<RequestScope>>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no request scope in the GraphQL context")))
}

/// The signed-in caller, or `UNAUTHENTICATED`.
pub(crate) fn principal<'a>(ctx: &Context<'a>) -> AppResult<&'a Principal> {
    Ok(scope(ctx)?.viewer().principal()?)
}
