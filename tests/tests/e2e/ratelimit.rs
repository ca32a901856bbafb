//! Rate limits against the real Redis: GCRA per bucket and key, shared between server
//! processes, recovering with time, and still limiting (in process) when Redis is down.

use std::time::Duration;

use server::{
    error::AppError,
    ratelimit::{Bucket, Quota, RateLimiter},
};
use tests::{TestApp, eventually};

/// Retry-after seconds when `result` is RATE_LIMITED.
fn retry_after(result: &Result<(), AppError>) -> Option<u64> {
    match result {
        Err(AppError::RateLimited { retry_after_secs }) => Some(*retry_after_secs),
        _ => None,
    }
}

/// `n` checks in a row, bounded so that a hanging Redis fails the test instead of stalling it.
async fn hits(
    limiter: &RateLimiter,
    bucket: &str,
    key: &str,
    quota: Quota,
    n: usize,
) -> anyhow::Result<Vec<Result<(), AppError>>> {
    let run = async {
        let mut results = Vec::with_capacity(n);
        for _ in 0..n {
            results.push(limiter.check(bucket, key, quota).await);
        }
        results
    };
    Ok(tokio::time::timeout(Duration::from_secs(30), run).await?)
}

async fn redis_connection(app: &TestApp) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let url = app.config.redis_url.clone().unwrap_or_default();
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

#[tokio::test]
async fn requests_over_the_quota_are_rate_limited_with_retry_after() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let limiter = &app.state().ratelimit;
    let quota = Quota::new(3, Duration::from_secs(60));
    let results = hits(limiter, "login_email", "ann@example.com", quota, 5).await?;
    assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
    for over in &results[3..] {
        // One request refills every 20 s.
        assert!(
            retry_after(over).is_some_and(|s| (1..=20).contains(&s)),
            "{over:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_rate_limited_key_recovers_after_the_period() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let limiter = &app.state().ratelimit;
    let quota = Quota::new(2, Duration::from_secs(1));
    let results = hits(limiter, "refresh_ip", "10.1.2.3", quota, 3).await?;
    assert!(
        retry_after(&results[2]).is_some_and(|s| s >= 1),
        "{results:?}"
    );
    eventually(Duration::from_secs(20), "the bucket to refill", || async {
        limiter.check("refresh_ip", "10.1.2.3", quota).await.is_ok()
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn distinct_keys_and_buckets_are_limited_independently() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let limiter = &app.state().ratelimit;
    let quota = Quota::new(1, Duration::from_secs(60));
    let first = hits(limiter, "login_email", "ann@example.com", quota, 2).await?;
    assert!(first[0].is_ok() && retry_after(&first[1]).is_some());
    // The same address, normalised, is the same key.
    let same = hits(limiter, "login_email", "  ANN@example.COM", quota, 1).await?;
    assert!(retry_after(&same[0]).is_some());
    let other_key = hits(limiter, "login_email", "bob@example.com", quota, 1).await?;
    assert!(other_key[0].is_ok());
    let other_bucket = hits(limiter, "reset_email", "ann@example.com", quota, 1).await?;
    assert!(other_bucket[0].is_ok());
    Ok(())
}

#[tokio::test]
async fn limits_are_shared_through_redis_between_server_processes() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    // A second limiter, as another server process of the same deployment would have.
    let other = RateLimiter::from_config(app.state().redis.clone(), &app.config);
    let quota = Quota::new(2, Duration::from_secs(60));
    let mine = hits(&app.state().ratelimit, "signup_ip", "10.9.9.9", quota, 2).await?;
    assert!(mine.iter().all(Result::is_ok));
    let theirs = hits(&other, "signup_ip", "10.9.9.9", quota, 1).await?;
    assert!(retry_after(&theirs[0]).is_some(), "{theirs:?}");
    Ok(())
}

#[tokio::test]
async fn redis_keys_hold_no_personal_data_and_expire() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let limiter = &app.state().ratelimit;
    let quota = Quota::new(5, Duration::from_secs(60));
    hits(limiter, "login_email", "Ann@Example.com", quota, 1).await?;
    let mut conn = redis_connection(&app).await?;
    let pattern = format!("{}rl:*", app.config.redis_key_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await?;
    assert_eq!(
        keys,
        vec![limiter.redis_key("login_email", "ann@example.com")]
    );
    assert!(!keys[0].to_lowercase().contains("ann"), "{keys:?}");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await?;
    // One request's worth of the period (12 s), never longer than the period.
    assert!((1..=60_000).contains(&ttl_ms), "ttl {ttl_ms} ms");
    Ok(())
}

#[tokio::test]
async fn configured_buckets_apply_their_configured_quota() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.rate_limit_login_per_email = 2).await?;
    let limiter = &app.state().ratelimit;
    let run = async {
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(
                limiter
                    .check_bucket(Bucket::LoginEmail, "ann@example.com")
                    .await,
            );
        }
        results
    };
    let results = tokio::time::timeout(Duration::from_secs(30), run).await?;
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(retry_after(&results[2]).is_some(), "{results:?}");
    Ok(())
}

#[tokio::test]
async fn with_redis_stopped_the_limiter_still_limits_and_does_not_hang() -> anyhow::Result<()> {
    let mut app = TestApp::spawn_with_own_redis().await?;
    let quota = Quota::new(2, Duration::from_secs(60));
    let before = hits(&app.state().ratelimit, "login_ip", "10.0.0.1", quota, 1).await?;
    assert!(before[0].is_ok());
    match app.own_redis.as_mut() {
        Some(redis) => redis.stop(),
        None => anyhow::bail!("the app has no Redis of its own"),
    }
    let limiter = &app.state().ratelimit;
    // The in-process limiter starts afresh: the burst passes, then it limits.
    let during = hits(limiter, "login_ip", "10.0.0.2", quota, 3).await?;
    assert!(during[0].is_ok() && during[1].is_ok(), "{during:?}");
    assert!(
        retry_after(&during[2]).is_some_and(|s| s >= 1),
        "{during:?}"
    );
    // Other keys are still independent.
    let other = hits(limiter, "login_ip", "10.0.0.3", quota, 1).await?;
    assert!(other[0].is_ok(), "{other:?}");
    Ok(())
}
