//! HTTP routes and middleware: GraphiQL, GraphQL over HTTP and WebSocket, health and readiness.

mod graphql;
mod health;
mod request_id;
mod ws;

use poem::{
    EndpointExt, IntoEndpoint, Route, get, handler,
    middleware::{CatchPanic, Cors},
    web::Html,
};

use crate::{graphql::AppSchema, state::AppState};

pub use request_id::RequestIdMiddleware;

/// The whole HTTP application.
pub fn app(state: AppState, schema: AppSchema) -> impl IntoEndpoint {
    let origins = state.config.cors_origins.clone();
    let route = Route::new()
        .at("/", get(graphiql))
        .at(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .at("/graphql/ws", get(ws::graphql_ws))
        .at("/health", get(health::health))
        .at("/ready", get(health::ready));
    let cors = (!origins.is_empty()).then(|| {
        Cors::new()
            .allow_origins(origins)
            .allow_credentials(true)
            .allow_methods(["GET", "POST", "OPTIONS"])
            .allow_headers([
                "authorization",
                "content-type",
                "x-csrf-token",
                "x-request-id",
            ])
            .expose_headers(["x-request-id"])
            .max_age(600)
    });
    route
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .with(CatchPanic::new())
        .with(RequestIdMiddleware)
        .data(schema)
        .data(state)
}

#[handler]
fn graphiql() -> Html<String> {
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("GraphiQL")
            .finish(),
    )
}
