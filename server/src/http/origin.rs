//! Cross-origin policy, closed by default. Requests without `Origin` (non-browser clients) and
//! same-origin requests (GraphiQL served by this server) pass untouched; a cross-origin request
//! from a configured origin goes through CORS; any other cross-origin request — with no origin
//! configured, every one — is refused with `403` before it runs, preflight or not.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{StatusCode, header},
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

/// CORS for cross-origin requests from the configured origins; `403` for all others.
pub struct CrossOrigin {
    cors: Option<Cors>,
    origins: Arc<Vec<String>>,
}

impl CrossOrigin {
    pub fn new(origins: &[String], allow_headers: &[String]) -> Self {
        let origins: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        // poem's Cors reads an empty origin list as "any origin": never build it empty.
        let cors = (!origins.is_empty()).then(|| {
            Cors::new()
                .allow_origins(origins.iter().cloned())
                .allow_credentials(true)
                .allow_methods(["GET", "POST", "OPTIONS"])
                .allow_headers(
                    allow_headers
                        .iter()
                        .map(|h| h.trim().to_ascii_lowercase())
                        .filter(|h| !h.is_empty()),
                )
                .expose_headers(["x-request-id"])
                .max_age(600)
        });
        Self {
            cors,
            origins: Arc::new(origins),
        }
    }
}

impl<E: Endpoint> Middleware<E> for CrossOrigin {
    type Output = CrossOriginEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        let ep = Arc::new(ep);
        CrossOriginEndpoint {
            plain: ep.clone(),
            cors: self.cors.as_ref().map(|cors| cors.transform(ep)),
            origins: self.origins.clone(),
        }
    }
}

/// The endpoint wrapped by [`CrossOrigin`].
pub struct CrossOriginEndpoint<E> {
    plain: Arc<E>,
    cors: Option<CorsEndpoint<Arc<E>>>,
    origins: Arc<Vec<String>>,
}

impl<E: Endpoint> Endpoint for CrossOriginEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match origin {
            Some(origin) if !same_origin(&req, &origin) => {
                let allowed = self.origins.iter().any(|a| a.eq_ignore_ascii_case(&origin));
                match &self.cors {
                    Some(cors) if allowed => cors.call(req).await.map(IntoResponse::into_response),
                    _ => {
                        tracing::info!(%origin, "cross-origin request refused");
                        let body = serde_json::json!({ "errors": [{
                            "message": "this origin may not call the API (see CORS_ORIGINS)",
                            "extensions": { "code": "FORBIDDEN" },
                        }] });
                        Ok(Response::builder()
                            .status(StatusCode::FORBIDDEN)
                            .content_type("application/json")
                            .body(body.to_string()))
                    }
                }
            }
            _ => self.plain.call(req).await.map(IntoResponse::into_response),
        }
    }
}
