//! HTTP routes and middleware: GraphiQL, GraphQL over HTTP, Server-Sent Events and WebSocket,
//! the training-data export, health and readiness.

pub mod access;
mod client_addr;
mod exports;
mod graphiql;
mod graphql;
mod health;
mod jwks;
pub mod metrics;
pub mod oidc;
mod origin;
mod persisted;
mod request_id;
mod serve;
mod sse;
mod ws;

use poem::{EndpointExt, IntoEndpoint, Route, get, middleware::CatchPanic};

use crate::{graphql::AppSchema, state::AppState};

pub use request_id::RequestIdMiddleware;
pub use serve::{Timeouts, serve};

/// The whole HTTP application.
pub fn app(state: AppState, schema: AppSchema) -> impl IntoEndpoint {
    let route = Route::new()
        .at("/", get(graphiql::page))
        .at(
            format!("{}/:name", graphiql::ASSETS_PATH),
            get(graphiql::asset_file),
        )
        .at(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .at(
            "/graphql/stream",
            get(graphql::stream_get).post(graphql::stream_post),
        )
        .at("/graphql/ws", get(ws::graphql_ws))
        .at("/health", get(health::health))
        .at("/ready", get(health::ready))
        .at("/.well-known/jwks.json", get(jwks::jwks))
        .at("/metrics", get(metrics::endpoint))
        .at(
            crate::services::training::EXPORT_PATH,
            get(exports::training_data),
        )
        .at("/auth/oidc/:provider/start", get(oidc::start))
        .at("/auth/oidc/:provider/callback", get(oidc::callback));
    route
        .with(origin::CrossOrigin::new(
            &state.config.cors_origins,
            &state.config.cors_allow_headers,
        ))
        .with(client_addr::TrustedProxies::new(
            &state.config.trusted_proxies,
            state.config.trusted_proxy_header,
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
