//! GraphQL over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`). The `Origin`
//! is checked against the configured origins at the upgrade; the caller authenticates in
//! `connection_init` with `payload.authorization = "Bearer <token>"`.

use async_graphql::{Data as GqlData, http::ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
use poem::{
    IntoResponse, Request, Response, handler,
    http::StatusCode,
    web::{Data, websocket::WebSocket},
};

use crate::{
    auth::{self, RequestMeta},
    error::RequestId,
    graphql::AppSchema,
    state::AppState,
};

/// `GET /graphql/ws`.
#[handler]
pub async fn graphql_ws(
    req: &Request,
    websocket: WebSocket,
    protocol: GraphQLProtocol,
    Data(state): Data<&AppState>,
    Data(schema): Data<&AppSchema>,
) -> Response {
    if !super::origin::origin_allowed(req, &state.config.cors_origins) {
        return (
            StatusCode::FORBIDDEN,
            "this Origin may not open a GraphQL WebSocket",
        )
            .into_response();
    }
    let schema = schema.clone();
    let state = state.clone();
    let request_id = req.extensions().get::<RequestId>().cloned();
    let meta = RequestMeta::from_request(req, state.config.cookies_secure());
    websocket
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(crate::metrics::websocket(move |stream| {
            GraphQLWebSocket::new(stream, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let authorization = payload
                        .get("authorization")
                        .or_else(|| payload.get("Authorization"))
                        .and_then(|v| v.as_str());
                    let (viewer, expiry) = auth::viewer::resolve_with_expiry(
                        &state,
                        authorization,
                        meta.access_cookie.as_deref(),
                    )
                    .await
                    .map_err(async_graphql::Error::from)?;
                    let mut data = GqlData::default();
                    data.insert(viewer);
                    if let Some(exp) = expiry {
                        data.insert(auth::viewer::AccessExpiry(exp));
                    }
                    data.insert(meta);
                    if let Some(id) = request_id {
                        data.insert(id);
                    }
                    Ok(data)
                })
                .serve()
        }))
        .into_response()
}
