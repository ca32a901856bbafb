//! `/.well-known/jwks.json`: the public keys access tokens are signed with (none for HS256).

use poem::{
    IntoResponse, Response, handler,
    web::{Data, Json},
};

use crate::state::AppState;

/// The JWK set; clients and other services verify access tokens with it. Cacheable for a
/// while: a key change is a deployment, and verifiers refetch on an unknown `kid`.
#[handler]
pub fn jwks(Data(state): Data<&AppState>) -> Response {
    Json(state.jwt.jwks())
        .with_header("cache-control", "public, max-age=300")
        .into_response()
}
