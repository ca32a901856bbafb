//! The access log and HTTP metrics: one info line per GraphQL operation (an HTTP request that
//! ran none, such as one refused before execution, gets one line of its own), on the `access`
//! target, with the request id, the caller, the operation's name, type and outcome, the
//! status and the duration. Health checks and scrapes log at debug.
//!
//! Operations over HTTP are handed to the middleware (through a task-local of the request, see
//! `crate::graphql::collecting_operations`) so that their line carries the HTTP status;
//! operations over a WebSocket log on their own.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::{error::RequestId, graphql::collecting_operations};

/// The `route` label: the server's own paths, else `other`.
fn route(path: &str) -> &'static str {
    match path {
        "/graphql" => "/graphql",
        "/graphql/ws" => "/graphql/ws",
        "/" => "/",
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        "/.well-known/jwks.json" => "/.well-known/jwks.json",
        _ if path.starts_with("/graphiql/assets/") => "/graphiql/assets",
        _ => "other",
    }
}

/// The `extensions.code` an HTTP status of `/graphql` stands for.
fn outcome_of_status(status: u16) -> &'static str {
    use crate::error::code;
    match status {
        200..=299 => "ok",
        401 => code::UNAUTHENTICATED,
        403 => code::FORBIDDEN,
        429 => code::RATE_LIMITED,
        408 | 503 => code::UNAVAILABLE,
        400..=499 => code::BAD_USER_INPUT,
        _ => code::INTERNAL,
    }
}

fn millis(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog;

impl<E: Endpoint> Middleware<E> for AccessLog {
    type Output = AccessLogEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AccessLogEndpoint(ep)
    }
}

/// The endpoint wrapped by [`AccessLog`].
pub struct AccessLogEndpoint<E>(E);

/// Logs a request whose answer never came (it timed out, or the client went away).
struct Unanswered {
    started: Instant,
    route: &'static str,
    method: String,
    path: String,
    request_id: String,
    answered: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        crate::metrics::http_request(self.route, "cancelled", self.started.elapsed());
        tracing::info!(
            target: "access",
            transport = %"http",
            request_id = %self.request_id,
            method = %self.method,
            path = %self.path,
            duration_ms = millis(self.started),
            "http request abandoned (timed out, or the client went away)"
        );
    }
}

impl<E: Endpoint> Endpoint for AccessLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let path = req.uri().path().to_owned();
        let mut pending = Unanswered {
            started,
            route: route(&path),
            method: req.method().to_string(),
            path,
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|id| id.0.clone())
                .unwrap_or_else(|| "-".into()),
            answered: false,
        };
        let (result, operations) = collecting_operations(self.0.call(req)).await;
        let response = match result {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        pending.answered = true;
        let status = response.status().as_u16();
        let duration_ms = millis(started);
        crate::metrics::http_request(pending.route, &status.to_string(), started.elapsed());
        let (request_id, method, path) = (&pending.request_id, &pending.method, &pending.path);
        for op in &operations {
            tracing::info!(
                target: "access",
                transport = %"http",
                request_id = %request_id,
                caller = %op.caller,
                operation = %op.name.as_deref().unwrap_or("-"),
                operation_type = %op.kind,
                outcome = %op.outcome,
                status,
                duration_ms,
                "graphql request"
            );
        }
        if operations.is_empty() && pending.route == "/graphql" {
            // Refused before it ran (credentials, CSRF, body, batch size): the code its status
            // stands for.
            let outcome = outcome_of_status(status);
            crate::metrics::graphql_request("unknown", "unknown", outcome, started.elapsed());
            tracing::info!(
                target: "access",
                transport = %"http",
                request_id = %request_id,
                caller = %"-",
                operation = %"-",
                operation_type = %"unknown",
                outcome = %outcome,
                status,
                duration_ms,
                "graphql request"
            );
        } else if operations.is_empty() {
            if matches!(pending.route, "/health" | "/ready" | "/metrics") {
                tracing::debug!(target: "access", transport = %"http", request_id = %request_id, method = %method, path = %path, status, duration_ms, "http request");
            } else {
                tracing::info!(target: "access", transport = %"http", request_id = %request_id, method = %method, path = %path, status, duration_ms, "http request");
            }
        }
        Ok(response)
    }
}
