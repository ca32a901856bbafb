//! Gives every request an id (the caller's `X-Request-Id` when it is sane), echoes it in the
//! response, and wraps the request in a tracing span carrying it.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tracing::Instrument as _;

use crate::error::RequestId;

const HEADER: &str = "x-request-id";

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct RequestIdMiddleware;

impl<E: Endpoint> Middleware<E> for RequestIdMiddleware {
    type Output = RequestIdEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestIdEndpoint(ep)
    }
}

/// The endpoint wrapped by [`RequestIdMiddleware`].
pub struct RequestIdEndpoint<E>(E);

fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl<E: Endpoint> Endpoint for RequestIdEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let id = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| sane(v))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        req.extensions_mut().insert(RequestId(id.clone()));
        let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
        crate::telemetry::set_remote_parent(&span, req.headers());
        async move {
            let started = std::time::Instant::now();
            let result = self.0.call(req).await;
            let mut response = match result {
                Ok(output) => output.into_response(),
                Err(error) => error.into_response(),
            };
            tracing::debug!(
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "done"
            );
            if let Ok(value) = id.parse() {
                response.headers_mut().insert(HEADER, value);
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }
}
