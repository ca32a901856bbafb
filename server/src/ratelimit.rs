//! Rate limits: GCRA in Redis (one atomic script), with an in-process fallback when Redis is
//! down or slow, so limits never silently stop applying. A Redis call is bounded by
//! `REDIS_TIMEOUT_MS`, and none is made while the Redis circuit breaker is open (see
//! [`crate::kv`]), so an outage does not cost every request a timeout.
//!
//! Keys are `{prefix}rl:{bucket}:{sha256(normalised key)}`: no e-mail address or IP lands in
//! Redis in the clear, and every key expires by itself once its bucket has refilled.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, clock::Clock as _};
use sha2::{Digest as _, Sha256};

use crate::{config::Config, error::AppError};

/// At most one warning about the fallback per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Every this many local checks, forget keys whose buckets are full again.
const LOCAL_SWEEP_EVERY: u64 = 4096;

/// GCRA: KEYS[1] holds the theoretical arrival time (TAT, µs, Redis clock). ARGV[1] is the
/// emission interval (µs), ARGV[2] the burst. Returns {allowed, retry_after_µs}.
const GCRA_LUA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return {0, allow_at - now}
end
local ttl_ms = math.max(1, math.ceil((new_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {1, 0}
";

/// `burst` requests per `period`, refilled smoothly (one every `period / burst`). A burst of
/// 0 or a zero period means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    pub burst: u32,
    pub period: Duration,
}

impl Quota {
    pub fn new(burst: u32, period: Duration) -> Self {
        Self { burst, period }
    }

    pub fn is_unlimited(&self) -> bool {
        self.burst == 0 || self.period.is_zero()
    }

    /// Time between two refilled requests, at least 1 µs.
    fn emission_interval(&self) -> Duration {
        (self.period / self.burst.max(1)).max(Duration::from_micros(1))
    }
}

/// The limits the server applies, each configured by a `RATE_LIMIT_*` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bucket {
    LoginIp,
    LoginEmail,
    LoginEmailIp,
    InviteCompany,
    SignupIp,
    ResetIp,
    ResetEmail,
    RefreshIp,
    ChangePasswordUser,
    VerificationUser,
    VerificationEmail,
    VerificationIp,
}

impl Bucket {
    pub const ALL: [Bucket; 12] = [
        Self::LoginIp,
        Self::LoginEmail,
        Self::LoginEmailIp,
        Self::InviteCompany,
        Self::SignupIp,
        Self::ResetIp,
        Self::ResetEmail,
        Self::RefreshIp,
        Self::ChangePasswordUser,
        Self::VerificationUser,
        Self::VerificationEmail,
        Self::VerificationIp,
    ];

    /// The bucket's part of the Redis key.
    pub fn name(self) -> &'static str {
        match self {
            Self::LoginIp => "login_ip",
            Self::LoginEmail => "login_email",
            Self::LoginEmailIp => "login_email_ip",
            Self::InviteCompany => "invite_company",
            Self::SignupIp => "signup_ip",
            Self::ResetIp => "reset_ip",
            Self::ResetEmail => "reset_email",
            Self::RefreshIp => "refresh_ip",
            Self::ChangePasswordUser => "change_password_user",
            Self::VerificationUser => "verification_user",
            Self::VerificationEmail => "verification_email",
            Self::VerificationIp => "verification_ip",
        }
    }

    /// The bucket's quota as configured.
    pub fn quota(self, config: &Config) -> Quota {
        let burst = match self {
            Self::LoginIp => config.rate_limit_login_per_ip,
            Self::LoginEmail => config.rate_limit_login_per_email,
            Self::LoginEmailIp => config.rate_limit_login_per_email_and_ip,
            Self::InviteCompany => config.rate_limit_invite_per_company,
            Self::SignupIp => config.rate_limit_signup_per_ip,
            Self::ResetIp => config.rate_limit_reset_per_ip,
            Self::ResetEmail => config.rate_limit_reset_per_email,
            Self::RefreshIp => config.rate_limit_refresh_per_ip,
            Self::ChangePasswordUser => config.rate_limit_change_password_per_user,
            Self::VerificationUser => config.rate_limit_verification_per_user,
            Self::VerificationEmail => config.rate_limit_verification_per_email,
            Self::VerificationIp => config.rate_limit_verification_per_ip,
        };
        Quota::new(burst, Duration::from_secs(config.rate_limit_period_secs))
    }
}

/// Checks and counts requests against quotas. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: crate::kv::Redis,
    prefix: String,
    script: redis::Script,
    quotas: HashMap<Bucket, Quota>,
    local: LocalLimiter,
    last_warning: Mutex<Option<Instant>>,
    degraded: AtomicBool,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// What the limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allowed,
    Limited(Duration),
}

impl RateLimiter {
    /// A limiter over `redis` whose keys start with `prefix`, with the default bucket quotas.
    pub fn new(redis: crate::kv::Redis, prefix: String) -> Self {
        Self::with_quotas(redis, prefix, &Config::defaults())
    }

    /// A limiter with the key prefix and bucket quotas of `config`.
    pub fn from_config(redis: crate::kv::Redis, config: &Config) -> Self {
        Self::with_quotas(redis, config.redis_key_prefix.clone(), config)
    }

    fn with_quotas(redis: crate::kv::Redis, prefix: String, config: &Config) -> Self {
        let quotas = Bucket::ALL
            .iter()
            .map(|bucket| (*bucket, bucket.quota(config)))
            .collect();
        Self {
            inner: Arc::new(Inner {
                redis,
                prefix,
                script: redis::Script::new(GCRA_LUA),
                quotas,
                local: LocalLimiter::default(),
                last_warning: Mutex::new(None),
                degraded: AtomicBool::new(false),
            }),
        }
    }

    /// Counts a request of `key` (an e-mail address, an IP) against a configured bucket.
    pub async fn check_bucket(&self, bucket: Bucket, key: &str) -> Result<(), AppError> {
        let quota = self
            .inner
            .quotas
            .get(&bucket)
            .copied()
            .unwrap_or(Quota::new(0, Duration::ZERO));
        self.check(bucket.name(), key, quota).await
    }

    /// Counts a request of `key` against `quota` in `bucket`: `RateLimited` (with the seconds
    /// until the next request would pass, at least 1) when over it. Never waits on Redis for
    /// more than a moment: without Redis, an in-process limiter decides.
    pub async fn check(&self, bucket: &str, key: &str, quota: Quota) -> Result<(), AppError> {
        if quota.is_unlimited() {
            return Ok(());
        }
        let hashed = hash_key(key);
        let decision = match self.check_redis(bucket, &hashed, quota).await {
            Ok(decision) => {
                if self.inner.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again; rate limits are shared again");
                }
                decision
            }
            Err(reason) => {
                self.note_fallback(&reason);
                self.inner.local.check(bucket, &hashed, quota)
            }
        };
        match decision {
            Decision::Allowed => Ok(()),
            Decision::Limited(wait) => {
                crate::metrics::rate_limited(bucket);
                tracing::debug!(bucket, "rate limited");
                Err(AppError::RateLimited {
                    retry_after_secs: retry_after_secs(wait),
                })
            }
        }
    }

    /// The Redis key of `key` in `bucket`.
    pub fn redis_key(&self, bucket: &str, key: &str) -> String {
        format!("{}rl:{bucket}:{}", self.inner.prefix, hash_key(key))
    }

    async fn check_redis(
        &self,
        bucket: &str,
        hashed: &str,
        quota: Quota,
    ) -> Result<Decision, String> {
        let key = format!("{}rl:{bucket}:{hashed}", self.inner.prefix);
        let interval_us = u64::try_from(quota.emission_interval().as_micros()).unwrap_or(u64::MAX);
        let mut invocation = self.inner.script.key(&key);
        invocation.arg(interval_us).arg(quota.burst);
        match self
            .inner
            .redis
            .script::<(i64, i64)>("rate_limit", &invocation)
            .await
        {
            Ok((1, _)) => Ok(Decision::Allowed),
            Ok((_, wait_us)) => Ok(Decision::Limited(Duration::from_micros(
                wait_us.max(0).unsigned_abs(),
            ))),
            Err(error) => Err(error.reason.to_string()),
        }
    }

    /// Logs that the in-process limiter decides, at most once per `WARN_INTERVAL`.
    fn note_fallback(&self, reason: &str) {
        crate::metrics::redis_fallback("rate_limit");
        self.inner.degraded.store(true, Ordering::Relaxed);
        let mut last = lock(&self.inner.last_warning);
        if last.is_none_or(|at| at.elapsed() >= WARN_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                reason,
                "Redis unavailable for rate limiting; limits now apply per server process"
            );
        } else {
            tracing::debug!(reason, "rate limit decided in process");
        }
    }
}

/// Normalises a key (trimmed, lowercase), so `Ann@Example.com ` and `ann@example.com` share a
/// bucket, and hashes it (SHA-256, hex), so no personal data lands in Redis.
pub fn hash_key(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.trim().to_lowercase().as_bytes()))
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_micros()
        .div_ceil(1_000_000)
        .clamp(1, u128::from(u64::MAX)) as u64
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type Keyed = DefaultKeyedRateLimiter<String>;

/// The in-process fallback: one keyed GCRA limiter (governor) per bucket and quota.
#[derive(Default)]
struct LocalLimiter {
    limiters: Mutex<HashMap<(String, Quota), Arc<Keyed>>>,
    checks: AtomicU64,
}

impl LocalLimiter {
    fn check(&self, bucket: &str, hashed: &str, quota: Quota) -> Decision {
        let Some(burst) = NonZeroU32::new(quota.burst) else {
            return Decision::Allowed;
        };
        let Some(governor_quota) = governor::Quota::with_period(quota.emission_interval()) else {
            return Decision::Allowed;
        };
        let limiter = lock(&self.limiters)
            .entry((bucket.to_owned(), quota))
            .or_insert_with(|| Arc::new(Keyed::keyed(governor_quota.allow_burst(burst))))
            .clone();
        if self.checks.fetch_add(1, Ordering::Relaxed) % LOCAL_SWEEP_EVERY == LOCAL_SWEEP_EVERY - 1
        {
            self.sweep();
        }
        match limiter.check_key(&hashed.to_owned()) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::Limited(not_until.wait_time_from(limiter.clock().now())),
        }
    }

    /// Forgets keys whose buckets are full again, so memory stays bounded by recent keys.
    fn sweep(&self) {
        let limiters: Vec<Arc<Keyed>> = lock(&self.limiters).values().cloned().collect();
        for limiter in limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests;
