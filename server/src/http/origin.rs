//! Cross-origin policy. Requests without `Origin` (non-browser clients) and same-origin
//! requests (GraphiQL served by this server) pass untouched; cross-origin requests go through
//! CORS, which admits only the configured origins.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::header,
    middleware::{Cors, CorsEndpoint},
};

/// Whether `req` comes from no browser origin, from its own origin, or from one of `allowed`.
pub fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    match req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(origin) => {
            same_origin(req, origin)
                || allowed
                    .iter()
                    .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        }
    }
}

fn same_origin(req: &Request, origin: &str) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// CORS for cross-origin requests only.
pub struct CrossOrigin {
    cors: Cors,
}

impl CrossOrigin {
    pub fn new(origins: &[String]) -> Self {
        let cors = Cors::new()
            .allow_origins(origins.iter().map(|o| o.trim_end_matches('/').to_owned()))
            .allow_credentials(true)
            .allow_methods(["GET", "POST", "OPTIONS"])
            .allow_headers([
                "authorization",
                "content-type",
                "x-csrf-token",
                "x-request-id",
                "x-device-id",
            ])
            .expose_headers(["x-request-id"])
            .max_age(600);
        Self { cors }
    }
}

impl<E: Endpoint> Middleware<E> for CrossOrigin {
    type Output = CrossOriginEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        let ep = Arc::new(ep);
        CrossOriginEndpoint {
            plain: ep.clone(),
            cors: self.cors.transform(ep),
        }
    }
}

/// The endpoint wrapped by [`CrossOrigin`].
pub struct CrossOriginEndpoint<E> {
    plain: Arc<E>,
    cors: CorsEndpoint<Arc<E>>,
}

impl<E: Endpoint> Endpoint for CrossOriginEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let cross_origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|origin| !same_origin(&req, origin));
        if cross_origin {
            self.cors.call(req).await.map(IntoResponse::into_response)
        } else {
            self.plain.call(req).await.map(IntoResponse::into_response)
        }
    }
}
