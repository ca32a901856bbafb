//! Every Redis call of the server (but the pub/sub listener's own connection) goes through
//! [`Redis`]: bounded by one short timeout (`REDIS_TIMEOUT_MS`, taking a pooled connection
//! included), and guarded by a circuit breaker ([`crate::breaker`]): after
//! `REDIS_BREAKER_FAILURES` failed calls in a row, calls fail at once for
//! `REDIS_BREAKER_COOLDOWN_MS`, then one call probes Redis; its success closes the breaker.
//! So a Redis that is down, or frozen, costs a request at most one timeout per call, and
//! nothing at all once the breaker is open. Callers decide what to do without Redis (and count
//! that as a fallback); failed calls are counted here (`redis_errors_total` by component), and
//! the breaker's state is the gauge `redis_breaker_open` (read when scraped).

use std::{fmt, sync::Arc, time::Duration};

use anyhow::Context as _;
use redis::FromRedisValue;

use crate::{
    breaker::{Breaker, Phase, Transition},
    config::Config,
};

/// Bound on each step of taking a pooled connection (waiting, connecting, checking).
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

/// Timeout and breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisSettings {
    /// Longest one call may take, taking a pooled connection included.
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
    /// No answer within the timeout (taking a connection included).
    Timeout(Duration),
    /// The circuit breaker is open: Redis was not asked.
    CircuitOpen,
    /// No connection could be had.
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

/// The pool, its timeout and its breaker. Cheap to clone: clones share the breaker.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    pool: deadpool_redis::Pool,
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

impl Redis {
    /// A pool of up to `max_size` connections (at least 4) to `url`; connects lazily.
    pub fn connect(url: &str, max_size: usize, settings: RedisSettings) -> anyhow::Result<Self> {
        let mut config = deadpool_redis::Config::from_url(url);
        let mut pool = deadpool_redis::PoolConfig::new(max_size.max(4));
        // The pool is bounded on its own too, for what uses it directly (publishing): calls
        // through `Redis` are cut short by their timeout before these.
        let bound = POOL_TIMEOUT.max(settings.timeout);
        pool.timeouts.wait = Some(bound);
        pool.timeouts.create = Some(bound);
        pool.timeouts.recycle = Some(bound);
        config.pool = Some(pool);
        let pool = config
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .context("create the Redis pool")?;
        Ok(Self::new(pool, settings))
    }

    /// Calls over `pool`, bounded and guarded as `settings` say.
    pub fn new(pool: deadpool_redis::Pool, settings: RedisSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                timeout: settings.timeout,
                // A probe that has not answered within the timeout has failed.
                breaker: Breaker::new(
                    settings.breaker_failures,
                    settings.breaker_cool_down,
                    settings.timeout,
                ),
            }),
        }
    }

    /// The pool itself, for what holds a connection of its own (pub/sub).
    pub fn pool(&self) -> &deadpool_redis::Pool {
        &self.inner.pool
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
        let attempt = async {
            let mut conn = self
                .inner
                .pool
                .get()
                .await
                .map_err(|e| Reason::Pool(e.to_string()))?;
            let result = match call {
                Call::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Call::Pipe(pipe) => pipe.query_async(&mut conn).await,
                Call::Script(invocation) => invocation.invoke_async(&mut conn).await,
                Call::Ping => redis::cmd("PING").query_async(&mut conn).await,
            };
            result.map_err(|e| Reason::Redis(e.to_string()))
        };
        let result = match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Reason::Timeout(self.inner.timeout)),
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
