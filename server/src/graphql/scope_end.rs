//! The end of each operation's database scope: the shared read-only transaction is ended
//! (and the operation's turn of the request's budget given back) once every field has run.
//! `super::run` does it once the operation answered, before the response's errors are tagged,
//! so an error ending the scope is tagged and counted like any other.

use std::sync::Arc;

use async_graphql::{Pos, Response};

use crate::db::RequestScope;

/// Ends the operation's scope, if it has one; an error doing so joins the response's errors.
pub(super) async fn end(scope: Option<&Arc<RequestScope>>, response: &mut Response) {
    if let Some(scope) = scope
        && let Err(error) = scope.finish().await
    {
        response
            .errors
            .push(async_graphql::Error::from(error).into_server_error(Pos::default()));
    }
}
