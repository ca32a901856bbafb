//! The GraphQL schema: one module per domain, merged at the root.

mod connection;
mod guardrails;
mod users;

use std::sync::Arc;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, MergedObject, Schema, SchemaBuilder,
};

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
pub struct QueryRoot(users::UserQuery);

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// The schema's types without any runtime data: enough for `print-schema`.
pub fn schema_builder() -> SchemaBuilder<QueryRoot, EmptyMutation, EmptySubscription> {
    Schema::build(QueryRoot::default(), EmptyMutation, EmptySubscription)
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
