//! The end of each operation's database scope: the shared read-only transaction is ended
//! (and the operation's turn of the request's budget given back) once every field has run.

use std::sync::Arc;

use async_graphql::{
    Pos, Response,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute},
};

use crate::db::RequestScope;

/// See the module documentation. Registered inside [`super::guardrails::Guardrails`], so an
/// error ending the scope is tagged and counted like any other.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopeEnd;

impl ExtensionFactory for ScopeEnd {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Self)
    }
}

#[async_trait::async_trait]
impl Extension for ScopeEnd {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        if let Some(scope) = ctx.data_opt::<Arc<RequestScope>>()
            && let Err(error) = scope.finish().await
        {
            response
                .errors
                .push(async_graphql::Error::from(error).into_server_error(Pos::default()));
        }
        response
    }
}
