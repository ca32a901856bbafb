//! Prometheus metrics: one process-wide recorder (the `metrics` facade, rendered by
//! `metrics-exporter-prometheus`), the one-line helpers the rest of the server records with,
//! and `/metrics`.
//!
//! `/metrics` is closed unless configured: on a listener of its own (`METRICS_ADDR`), or on the
//! main listener behind a bearer token (`METRICS_TOKEN`, then required on both). Without a
//! recorder (neither configured) every helper is a no-op.
//!
//! Label values are bounded: operation names are client-chosen, so only the first
//! [`MAX_OPERATION_NAMES`] distinct valid names get series of their own, the rest `other`;
//! every other label takes values from a fixed set in the code.

use std::{
    collections::HashSet,
    sync::{LazyLock, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use anyhow::bail;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::Config;

/// Distinct operation names with series of their own; later ones count as `other`.
pub const MAX_OPERATION_NAMES: usize = 100;

/// Shortest `METRICS_TOKEN` accepted.
const MIN_TOKEN_LEN: usize = 16;

/// Buckets of every `*_seconds` histogram.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets of the time to a chat reply's first token.
const FIRST_TOKEN_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Whether `/metrics` is served anywhere by this configuration.
pub fn enabled(config: &Config) -> bool {
    config.metrics_addr.is_some() || token(config).is_some()
}

/// The bearer token `/metrics` asks for, when one is set.
pub(crate) fn token(config: &Config) -> Option<&str> {
    config.metrics_token.as_deref().filter(|t| !t.is_empty())
}

/// Checks the metrics options and installs the recorder when `/metrics` is served (once per
/// process; later calls reuse it).
pub fn install(config: &Config) -> anyhow::Result<()> {
    if let Some(token) = token(config)
        && token.len() < MIN_TOKEN_LEN
    {
        bail!("METRICS_TOKEN must be at least {MIN_TOKEN_LEN} characters");
    }
    if enabled(config) {
        handle();
    }
    Ok(())
}

/// The process's recorder, installed on first use.
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("chat_first_token_seconds".into()),
                    FIRST_TOKEN_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                })
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    // Histograms are kept in per-thread buffers until drained: drain them
                    // regularly, whether or not anybody scrapes.
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(Duration::from_secs(5));
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(error) = spawned {
                        tracing::warn!(%error, "metrics: no upkeep thread");
                    }
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics unavailable: no recorder installed");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        "graphql_requests_total",
        "GraphQL operations by operation name, type and outcome (extensions.code, or ok)"
    );
    describe_histogram!(
        "graphql_request_duration_seconds",
        metrics::Unit::Seconds,
        "GraphQL operation latency (parse to response; a subscription's whole life)"
    );
    describe_counter!("http_requests_total", "HTTP requests by route and status");
    describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route"
    );
    describe_gauge!(
        "db_pool_max_connections",
        "Configured size of the request pool"
    );
    describe_gauge!(
        "db_pool_connections",
        "Open connections of the request pool, idle or in use"
    );
    describe_gauge!(
        "db_pool_acquire_pending",
        "Transactions waiting for a connection (and its BEGIN)"
    );
    describe_histogram!(
        "db_pool_acquire_seconds",
        metrics::Unit::Seconds,
        "Time to get a pooled connection and begin a transaction"
    );
    describe_counter!(
        "db_pool_acquire_errors_total",
        "Transactions that could not begin (pool timeout, connection lost)"
    );
    describe_counter!(
        "redis_errors_total",
        "Failed or timed-out Redis calls by component"
    );
    describe_counter!(
        "redis_fallbacks_total",
        "Decisions taken without Redis by component (PostgreSQL, in-process limits, local delivery)"
    );
    describe_gauge!(
        "redis_breaker_open",
        "1 while the Redis circuit breaker is open (calls fail at once) or half-open"
    );
    describe_gauge!(
        "websocket_connections",
        "Open GraphQL WebSocket connections"
    );
    describe_counter!(
        "websocket_connections_total",
        "GraphQL WebSocket connections opened"
    );
    describe_gauge!(
        "graphql_subscriptions",
        "Active subscriptions by root field"
    );
    describe_counter!(
        "graphql_subscriptions_total",
        "Subscriptions started by root field"
    );
    describe_counter!("chat_replies_started_total", "Chat replies started");
    describe_counter!(
        "chat_replies_total",
        "Chat replies finished by outcome (complete, failed, cancelled, interrupted, lost)"
    );
    describe_gauge!("chat_replies_streaming", "Chat replies streaming now");
    describe_histogram!(
        "chat_first_token_seconds",
        metrics::Unit::Seconds,
        "Time from asking the provider to the first token of a reply"
    );
    describe_counter!(
        "chat_tokens_total",
        "Tokens reported by the provider (kind: prompt, completion)"
    );
    describe_gauge!(
        "llm_circuit_breaker_open",
        "1 while the LLM circuit breaker refuses new replies"
    );
    describe_counter!(
        "llm_circuit_breaker_opened_total",
        "Times the LLM circuit breaker opened"
    );
    describe_counter!("mail_sent_total", "E-mails the SMTP server accepted");
    describe_counter!(
        "mail_failed_total",
        "E-mails given up on (`failed`): refused for good or out of attempts"
    );
    describe_counter!(
        "mail_attempt_errors_total",
        "Attempts at sending an e-mail that failed (kind: transient, permanent)"
    );
    describe_counter!(
        "rate_limit_rejections_total",
        "Requests refused by a rate limit, by limit"
    );
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

static OPERATION_NAMES: LazyLock<Mutex<HashSet<String>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The `operation` label of an operation name: the name itself while it is a valid GraphQL
/// name of at most 64 characters among the first [`MAX_OPERATION_NAMES`] seen, `anonymous`
/// without one, `other` otherwise.
pub fn operation_label(name: Option<&str>) -> String {
    let Some(name) = name else {
        return "anonymous".into();
    };
    if !valid_name(name) {
        return "other".into();
    }
    let mut names = lock(&OPERATION_NAMES);
    if names.contains(name) {
        return name.to_owned();
    }
    if names.len() < MAX_OPERATION_NAMES {
        names.insert(name.to_owned());
        return name.to_owned();
    }
    "other".into()
}

/// One GraphQL operation finished.
pub fn graphql_request(operation: &str, kind: &'static str, outcome: &str, elapsed: Duration) {
    counter!("graphql_requests_total", "operation" => operation.to_owned(), "type" => kind, "outcome" => outcome.to_owned())
        .increment(1);
    histogram!("graphql_request_duration_seconds", "operation" => operation.to_owned(), "type" => kind)
        .record(elapsed.as_secs_f64());
}

/// One HTTP request answered (`status`: the code, or `cancelled`).
pub fn http_request(route: &'static str, status: &str, elapsed: Duration) {
    counter!("http_requests_total", "route" => route, "status" => status.to_owned()).increment(1);
    histogram!("http_request_duration_seconds", "route" => route).record(elapsed.as_secs_f64());
}

/// Times getting a pooled connection and beginning a transaction (`db.begin()`), and counts
/// those waiting for it meanwhile.
pub async fn db_acquire<T, E>(begin: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    struct Pending;
    impl Drop for Pending {
        fn drop(&mut self) {
            gauge!("db_pool_acquire_pending").decrement(1.0);
        }
    }
    gauge!("db_pool_acquire_pending").increment(1.0);
    let pending = Pending;
    let started = Instant::now();
    let result = tracing::Instrument::instrument(begin, tracing::info_span!("db_begin")).await;
    drop(pending);
    histogram!("db_pool_acquire_seconds").record(started.elapsed().as_secs_f64());
    if result.is_err() {
        counter!("db_pool_acquire_errors_total").increment(1);
    }
    result
}

/// A Redis call of `component` failed or timed out.
pub fn redis_error(component: &'static str) {
    counter!("redis_errors_total", "component" => component).increment(1);
}

/// `component` decided without Redis (after a failed call, or skipping Redis for a moment).
pub fn redis_fallback(component: &'static str) {
    counter!("redis_fallbacks_total", "component" => component).increment(1);
}

/// A request was refused by rate limit `limit`.
pub fn rate_limited(limit: &str) {
    counter!("rate_limit_rejections_total", "limit" => limit.to_owned()).increment(1);
}

/// Wraps a WebSocket's `on_upgrade` handler so that the connection counts as open for as
/// long as the handler's future runs.
pub fn websocket<S, F, Fut>(
    serve: F,
) -> impl FnOnce(S) -> OpenWebSocket<Fut> + Send + Sync + 'static
where
    F: FnOnce(S) -> Fut + Send + Sync + 'static,
    Fut: Future,
{
    move |stream| {
        counter!("websocket_connections_total").increment(1);
        gauge!("websocket_connections").increment(1.0);
        OpenWebSocket(Box::pin(serve(stream)))
    }
}

/// A WebSocket connection being served; see [`websocket`].
pub struct OpenWebSocket<Fut>(std::pin::Pin<Box<Fut>>);

impl<Fut: Future> Future for OpenWebSocket<Fut> {
    type Output = Fut::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl<Fut> Drop for OpenWebSocket<Fut> {
    fn drop(&mut self) {
        gauge!("websocket_connections").decrement(1.0);
    }
}

/// A subscription on root field `field` started (`+1`) or ended (`-1`).
pub fn subscription(field: &str, delta: i8) {
    if delta > 0 {
        counter!("graphql_subscriptions_total", "field" => field.to_owned()).increment(1);
        gauge!("graphql_subscriptions", "field" => field.to_owned()).increment(1.0);
    } else {
        gauge!("graphql_subscriptions", "field" => field.to_owned()).decrement(1.0);
    }
}

/// A chat reply began generating.
pub fn chat_reply_started() {
    counter!("chat_replies_started_total").increment(1);
    gauge!("chat_replies_streaming").increment(1.0);
}

/// A chat reply ended: `complete`, `failed`, `cancelled`, `interrupted` or `lost`.
pub fn chat_reply_finished(outcome: &'static str) {
    counter!("chat_replies_total", "outcome" => outcome).increment(1);
    gauge!("chat_replies_streaming").decrement(1.0);
}

/// The first token of a chat reply arrived `elapsed` after the provider was asked.
pub fn chat_first_token(elapsed: Duration) {
    histogram!("chat_first_token_seconds").record(elapsed.as_secs_f64());
}

/// The provider reported the tokens of a reply.
pub fn chat_tokens(prompt: u32, completion: u32) {
    counter!("chat_tokens_total", "kind" => "prompt").increment(u64::from(prompt));
    counter!("chat_tokens_total", "kind" => "completion").increment(u64::from(completion));
}

/// The SMTP server accepted an e-mail.
pub fn mail_sent() {
    counter!("mail_sent_total").increment(1);
}

/// An e-mail was given up on.
pub fn mail_failed() {
    counter!("mail_failed_total").increment(1);
}

/// An attempt at sending an e-mail failed: `transient` or `permanent`.
pub fn mail_attempt_failed(kind: &'static str) {
    counter!("mail_attempt_errors_total", "kind" => kind).increment(1);
}

/// The LLM circuit breaker opened.
pub fn breaker_opened() {
    counter!("llm_circuit_breaker_opened_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("1abc")), "other");
        assert_eq!(operation_label(Some("a-b")), "other");
        assert_eq!(operation_label(Some(&"a".repeat(65))), "other");
        assert_eq!(operation_label(Some("Me_2")), "Me_2");
        for i in 0..MAX_OPERATION_NAMES {
            operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(operation_label(Some("OneTooMany")), "other");
        // Names already seen keep their series.
        assert_eq!(operation_label(Some("Me_2")), "Me_2");
    }
}
