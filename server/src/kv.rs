//! Every Redis call of the server (but the pub/sub listener's own connection) goes through
//! [`Redis`]: one multiplexed connection that every call shares (commands of concurrent calls
//! are pipelined on it, with no check before use), reopened by the next call after it broke or
//! a call on it timed out. Each call is bounded by one short timeout (`REDIS_TIMEOUT_MS`,
//! opening the connection included), and guarded by a circuit breaker ([`crate::breaker`]):
//! after `REDIS_BREAKER_FAILURES` failed calls in a row, calls fail at once for
//! `REDIS_BREAKER_COOLDOWN_MS`, then one call probes Redis; its success closes the breaker.
//! So a Redis that is down, or frozen, costs a request at most one timeout per call, and
//! nothing at all once the breaker is open. Callers decide what to do without Redis (and count
//! that as a fallback); failed calls are counted here (`redis_errors_total` by component), and
//! the breaker's state is the gauge `redis_breaker_open` (read when scraped).
//!
//! The connection is held by hand rather than by redis' `ConnectionManager`, which retries a
//! broken connection with its own backoff inside the calls that wait for it and keeps a failed
//! connection attempt's error for every later call unless it was an I/O error: here the
//! timeout and the breaker alone decide when Redis is asked again, and a call never finds
//! anything but a live connection or a fresh attempt. A multiplexed connection serves
//! commands and atomic pipelines (`MULTI`/`EXEC`, sent as one block) only: nothing here uses
//! `WATCH`, blocking commands or `SELECT`, which would need a connection of their own.

use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use redis::{AsyncConnectionConfig, FromRedisValue, aio::MultiplexedConnection};

use crate::{
    breaker::{Breaker, Phase, Transition},
    config::Config,
};

/// Timeout and breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisSettings {
    /// Longest one call may take, opening the connection included.
    pub timeout: Duration,
    /// Failed calls in a row that open the breaker (0: never).
    pub breaker_failures: u32,
    /// How long the open breaker refuses calls before one probes Redis.
    pub breaker_cool_down: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(250),
            breaker_failures: 3,
            breaker_cool_down: Duration::from_millis(2000),
        }
    }
}

impl RedisSettings {
    /// `REDIS_TIMEOUT_MS`, `REDIS_BREAKER_FAILURES`, `REDIS_BREAKER_COOLDOWN_MS`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            timeout: Duration::from_millis(config.redis_timeout_ms.max(1)),
            breaker_failures: config.redis_breaker_failures,
            breaker_cool_down: Duration::from_millis(config.redis_breaker_cooldown_ms),
        }
    }
}

/// Why a Redis call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No answer within the timeout (opening the connection included).
    Timeout(Duration),
    /// The circuit breaker is open: Redis was not asked.
    CircuitOpen,
    /// No connection could be opened.
    Pool(String),
    /// Redis, or the connection to it, failed the command.
    Redis(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(timeout) => write!(f, "no answer within {} ms", timeout.as_millis()),
            Self::CircuitOpen => f.write_str("circuit open"),
            Self::Pool(error) => write!(f, "no connection: {error}"),
            Self::Redis(error) => f.write_str(error),
        }
    }
}

/// A Redis call that gave no answer; the caller goes on without Redis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis unavailable: {reason}")]
pub struct RedisUnavailable {
    pub reason: Reason,
}

/// What one call sends.
enum Call<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    Script(&'a redis::ScriptInvocation<'a>),
    Ping,
}

/// The shared connection, its timeout and its breaker. Cheap to clone: clones share all three.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    timeout: Duration,
    breaker: Breaker,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.inner.timeout)
            .field("breaker", &self.breaker_phase())
            .finish_non_exhaustive()
    }
}

/// The one connection every call shares, opened on first use and again after it was given up.
struct Link {
    client: redis::Client,
    config: AsyncConnectionConfig,
    /// The open connection and its number; `None` until opened, and once given up.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while a connection is being opened, so that one attempt serves every waiting call.
    opening: tokio::sync::Mutex<()>,
    opened: AtomicU64,
}

impl Link {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The open connection, or a new one (one attempt at a time).
    async fn get(&self) -> Result<(u64, MultiplexedConnection), Reason> {
        if let Some(open) = self.current() {
            return Ok(open);
        }
        let _opening = self.opening.lock().await;
        if let Some(open) = self.current() {
            return Ok(open);
        }
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Reason::Pool(e.to_string()))?;
        let number = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((number, connection.clone()));
        Ok((number, connection))
    }

    /// Gives connection `number` up (if it is still the current one): the next call opens
    /// another.
    fn give_up(&self, number: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|(n, _)| *n == number) {
            *current = None;
        }
    }
}

impl Redis {
    /// Calls to `url` over one shared connection, opened on the first call, with at most
    /// `max_in_flight` commands (at least 4) waiting for their answer at once.
    pub fn connect(
        url: &str,
        max_in_flight: usize,
        settings: RedisSettings,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("parse REDIS_URL")?;
        // The timeout bounds whole calls; the connection's own bounds only back it up.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(None)
            .set_concurrency_limit(max_in_flight.max(4));
        Ok(Self {
            inner: Arc::new(Inner {
                link: Link {
                    client,
                    config,
                    current: Mutex::new(None),
                    opening: tokio::sync::Mutex::new(()),
                    opened: AtomicU64::new(0),
                },
                timeout: settings.timeout,
                // A probe that has not answered within the timeout has failed.
                breaker: Breaker::new(
                    settings.breaker_failures,
                    settings.breaker_cool_down,
                    settings.timeout,
                ),
            }),
        })
    }

    /// The bound on one call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The breaker's state now.
    pub fn breaker_phase(&self) -> Phase {
        self.inner.breaker.phase()
    }

    /// Whether the breaker is open (or half-open): 1 in `redis_breaker_open`.
    pub fn breaker_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// Runs one command for `component` (the label of `redis_errors_total`).
    pub async fn cmd<T: FromRedisValue>(
        &self,
        component: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisUnavailable> {
        self.call(Some(component), Call::Cmd(cmd)).await
    }

    /// Runs a pipeline (a transaction when it is `atomic`) in one round trip.
    pub async fn pipe<T: FromRedisValue>(
        &self,
        component: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisUnavailable> {
        self.call(Some(component), Call::Pipe(pipe)).await
    }

    /// Runs a Lua script (`EVALSHA`, loading it first when Redis does not know it).
    pub async fn script<T: FromRedisValue>(
        &self,
        component: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisUnavailable> {
        self.call(Some(component), Call::Script(invocation)).await
    }

    /// `PING`, for readiness: bounded by the timeout but never refused by the breaker, so it
    /// tells whether Redis answers now. Its outcome counts for the breaker (an answer closes
    /// it), not in `redis_errors_total`.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.call(None, Call::Ping).await
    }

    async fn call<T: FromRedisValue>(
        &self,
        component: Option<&'static str>,
        call: Call<'_>,
    ) -> Result<T, RedisUnavailable> {
        if !matches!(call, Call::Ping) && self.inner.breaker.admit().is_err() {
            return Err(RedisUnavailable {
                reason: Reason::CircuitOpen,
            });
        }
        let link = &self.inner.link;
        // The connection the call used, once it had one.
        let mut used = None;
        let attempt = async {
            let (number, mut conn) = link.get().await?;
            used = Some(number);
            let result = match call {
                Call::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Call::Pipe(pipe) => pipe.query_async(&mut conn).await,
                Call::Script(invocation) => invocation.invoke_async(&mut conn).await,
                Call::Ping => redis::cmd("PING").query_async(&mut conn).await,
            };
            result.map_err(|e| {
                if e.is_unrecoverable_error() || e.is_connection_dropped() || e.is_io_error() {
                    link.give_up(number);
                }
                Reason::Redis(e.to_string())
            })
        };
        let result = match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                // A connection that does not answer may be dead without knowing it (no reset
                // ever comes): the next call opens another.
                if let Some(number) = used {
                    link.give_up(number);
                }
                Err(Reason::Timeout(self.inner.timeout))
            }
        };
        match result {
            Ok(value) => {
                if self.inner.breaker.record_success() == Some(Transition::Closed) {
                    tracing::info!("Redis answers again: circuit breaker closed");
                }
                Ok(value)
            }
            Err(reason) => {
                if let Some(component) = component {
                    crate::metrics::redis_error(component);
                }
                tracing::debug!(component, %reason, "redis call failed");
                match self.inner.breaker.record_failure() {
                    Some(Transition::Opened) => {
                        tracing::warn!(
                            %reason,
                            cool_down_ms = self.inner.breaker.cool_down().as_millis(),
                            "Redis keeps failing: circuit breaker open, going on without Redis"
                        );
                    }
                    Some(Transition::Reopened) => {
                        tracing::debug!(%reason, "Redis still failing: circuit breaker open again");
                    }
                    Some(Transition::Closed) | None => {}
                }
                Err(RedisUnavailable { reason })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts connections and never answers, like a frozen Redis.
    async fn silent_redis() -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Ok((port, task))
    }

    #[tokio::test]
    async fn a_silent_redis_costs_one_timeout_per_call_then_nothing_once_open() -> anyhow::Result<()>
    {
        let (port, silent) = silent_redis().await?;
        let settings = RedisSettings {
            timeout: Duration::from_millis(100),
            breaker_failures: 2,
            breaker_cool_down: Duration::from_secs(60),
        };
        let redis = Redis::connect(&format!("redis://127.0.0.1:{port}"), 4, settings)?;
        let get = redis::Cmd::get("k");
        let calls = async {
            let first = redis.cmd::<Option<String>>("test", &get).await;
            let second = redis.cmd::<Option<String>>("test", &get).await;
            let third = redis.cmd::<Option<String>>("test", &get).await;
            (first, second, third)
        };
        let (first, second, third) = tokio::time::timeout(Duration::from_secs(10), calls).await?;
        silent.abort();
        assert!(
            matches!(
                first.map_err(|e| e.reason),
                Err(Reason::Timeout(_) | Reason::Pool(_))
            ),
            "the first call times out"
        );
        assert!(second.is_err());
        assert_eq!(
            third.map_err(|e| e.reason),
            Err(Reason::CircuitOpen),
            "the third is refused at once"
        );
        assert!(redis.breaker_open());
        assert_eq!(redis.breaker_phase(), Phase::Open);
        // Readiness still asks, within the timeout.
        let ping = tokio::time::timeout(Duration::from_secs(10), redis.ping()).await?;
        assert!(ping.is_err_and(|e| e.reason != Reason::CircuitOpen));
        Ok(())
    }

    #[test]
    fn reasons_read_well() {
        let error = RedisUnavailable {
            reason: Reason::Timeout(Duration::from_millis(250)),
        };
        assert_eq!(
            error.to_string(),
            "redis unavailable: no answer within 250 ms"
        );
        assert_eq!(Reason::CircuitOpen.to_string(), "circuit open");
    }
}
