//! The GraphQL schema: one module per domain, merged at the root.

mod auth;
mod connection;
mod guardrails;
pub mod live;
mod roles;
mod users;

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, MergedObject, Schema, SchemaBuilder};

pub use guardrails::{Guardrails, Limits};

use crate::{
    auth::Principal,
    db::RequestScope,
    error::{AppError, AppResult},
    state::AppState,
};

/// Root of all queries.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(users::UserQuery, roles::RoleQuery, auth::AuthQuery);

/// Root of all mutations.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(users::UserMutation, roles::RoleMutation, auth::AuthMutation);

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// The schema's types without any runtime data: enough for `print-schema`.
pub fn schema_builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
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
    scope(ctx)?.viewer().principal()
}
