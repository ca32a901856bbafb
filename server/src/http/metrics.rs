//! `/metrics`: closed unless configured, on a listener of its own (`METRICS_ADDR`), or on the
//! main listener behind a bearer token (`METRICS_TOKEN`, then required on both). The recorder
//! and its helpers are `crate::metrics`.

use std::{net::SocketAddr, time::Duration};
use subtle::ConstantTimeEq as _;

use anyhow::Context as _;
use metrics::gauge;
use poem::{
    EndpointExt as _, IntoEndpoint as _, Request, Response, Route, get, handler,
    http::{StatusCode, header},
    web::Data,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    metrics::{handle, token},
    state::AppState,
};

/// Gauges read when scraped: the pool's connections, the circuit breakers and the pub/sub
/// subscriptions held.
fn observe_state(state: &AppState) {
    let pool = state.db.get_postgres_connection_pool();
    let size = f64::from(pool.size());
    let idle = pool.num_idle() as f64;
    gauge!("db_pool_max_connections").set(f64::from(pool.options().get_max_connections()));
    gauge!("db_pool_connections", "state" => "idle").set(idle);
    gauge!("db_pool_connections", "state" => "in_use").set((size - idle).max(0.0));
    gauge!("llm_circuit_breaker_open").set(if state.chat.breaker_open() { 1.0 } else { 0.0 });
    gauge!("redis_breaker_open").set(if state.redis.breaker_open() { 1.0 } else { 0.0 });
    let (subscriptions, topics) = state.pubsub.held();
    gauge!("pubsub_subscriptions").set(subscriptions as f64);
    gauge!("pubsub_topics").set(topics as f64);
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    bool::from(given.ct_eq(expected))
}

/// `None` when the request may read the metrics: no token is set, or it brings it as a bearer
/// token; else the 401 to answer.
fn refused(req: &Request, config: &Config) -> Option<Response> {
    let expected = token(config)?;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if same_secret(given.trim().as_bytes(), expected.as_bytes()) {
        return None;
    }
    Some(
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Bearer")
            .body("the metrics need METRICS_TOKEN as a bearer token"),
    )
}

/// `GET /metrics` on the main listener: 404 unless `METRICS_TOKEN` is set, 401 without it.
#[handler]
pub async fn endpoint(req: &Request, Data(state): Data<&AppState>) -> Response {
    if token(&state.config).is_none() {
        return StatusCode::NOT_FOUND.into();
    }
    refused(req, &state.config).unwrap_or_else(|| render(state))
}

/// `GET /metrics` on the metrics listener: the token is required only when one is set.
#[handler]
async fn listener_endpoint(req: &Request, Data(state): Data<&AppState>) -> Response {
    refused(req, &state.config).unwrap_or_else(|| render(state))
}

fn render(state: &AppState) -> Response {
    let Some(handle) = handle() else {
        return StatusCode::SERVICE_UNAVAILABLE.into();
    };
    observe_state(state);
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// The metrics listener (`METRICS_ADDR`); it stops when dropped.
#[derive(Debug)]
pub struct Listener {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Listener {
    /// Binds `METRICS_ADDR` and serves `/metrics` there, if configured.
    pub fn start(state: &AppState) -> anyhow::Result<Option<Self>> {
        let Some(addr) = state.config.metrics_addr else {
            return Ok(None);
        };
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("listen on METRICS_ADDR {addr}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = Route::new()
            .at("/metrics", get(listener_endpoint))
            .data(state.clone());
        let timeouts = super::Timeouts {
            header: Duration::from_secs(10),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        };
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let served = super::serve(
                listener,
                app.into_endpoint(),
                timeouts,
                stopped.cancelled_owned(),
                Duration::from_secs(1),
            )
            .await;
            if let Err(error) = served {
                tracing::warn!(%error, "the metrics listener stopped");
            }
        });
        Ok(Some(Self { addr, stop }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abcdef", b"abcdef"));
        assert!(!same_secret(b"abcdeg", b"abcdef"));
        assert!(!same_secret(b"abc", b"abcdef"));
        assert!(!same_secret(b"", b"abcdef"));
    }
}
