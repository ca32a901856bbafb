//! HTTP routes and middleware: GraphiQL, GraphQL over HTTP and WebSocket, health and readiness.

pub mod access;
mod graphql;
mod health;
mod jwks;
pub mod metrics;
mod origin;
mod persisted;
mod request_id;
mod serve;
mod ws;

use poem::{EndpointExt, IntoEndpoint, Route, get, handler, middleware::CatchPanic, web::Html};

use crate::{graphql::AppSchema, state::AppState};

pub use request_id::RequestIdMiddleware;
pub use serve::{Timeouts, serve};

/// The whole HTTP application.
pub fn app(state: AppState, schema: AppSchema) -> impl IntoEndpoint {
    let route = Route::new()
        .at("/", get(graphiql))
        .at(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .at("/graphql/ws", get(ws::graphql_ws))
        .at("/health", get(health::health))
        .at("/ready", get(health::ready))
        .at("/.well-known/jwks.json", get(jwks::jwks))
        .at("/metrics", get(metrics::endpoint));
    route
        .with(origin::CrossOrigin::new(
            &state.config.cors_origins,
            &state.config.cors_allow_headers,
        ))
        .with(CatchPanic::new())
        .with(access::AccessLog)
        .with(RequestIdMiddleware)
        .data(ws::SocketRegistry::new(
            state.config.ws_max_sockets_per_user,
        ))
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
