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
pub mod run;
mod scope_end;
mod storable;
pub(crate) mod training;
pub(crate) mod users;

use std::sync::Arc;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder};

pub use guardrails::{Limits, give_codes};
pub use observe::{FinishedOperation, collecting_operations};

use crate::{
    auth::Principal,
    authz::{Guard, Guarded},
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

/// The executable schema: its root types' fields pass the guard (see [`Guarded`]).
pub type AppSchema = Schema<Guarded<QueryRoot>, Guarded<MutationRoot>, Guarded<SubscriptionRoot>>;

/// The schema's types without any runtime data: enough for `print-schema`.
pub fn schema_builder()
-> SchemaBuilder<Guarded<QueryRoot>, Guarded<MutationRoot>, Guarded<SubscriptionRoot>> {
    Schema::build(
        Guarded(QueryRoot::default()),
        Guarded(MutationRoot::default()),
        Guarded(SubscriptionRoot::default()),
    )
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}

/// The schema wired to a running server's state. No extension is registered (with one,
/// async-graphql sends every field of every answer through its hooks): observing, limits and
/// the subscription guard run around the execution (see [`run`]), the root fields' guard in
/// their wrapper.
pub fn build_schema(state: AppState) -> AppSchema {
    let limits = Limits::from_config(&state.config);
    let builder = schema_builder()
        // Nesting deeper than this cannot even be parsed; the configurable depth limit applies
        // on top, with a clear message.
        .limit_recursive_depth(run::MAX_RECURSIVE_DEPTH)
        // Every root field declares @requires or @public; this enforces them.
        .data(Guard::new::<QueryRoot, MutationRoot, SubscriptionRoot>(
            state.authz.clone(),
        ));
    limits.apply(builder).data(state).finish()
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
