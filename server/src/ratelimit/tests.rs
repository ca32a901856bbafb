//! Unit tests of the rate limiter that need no Redis: keys, quotas, and the fallback.

use std::time::Duration;

use super::*;

fn unreachable_redis() -> anyhow::Result<crate::kv::Redis> {
    // Port 1 on loopback: nothing listens, connections are refused at once.
    crate::kv::Redis::connect(
        "redis://127.0.0.1:1",
        4,
        crate::kv::RedisSettings::default(),
    )
}

fn retry_after(result: Result<(), AppError>) -> Option<u64> {
    match result {
        Err(AppError::RateLimited { retry_after_secs }) => Some(retry_after_secs),
        _ => None,
    }
}

#[test]
fn keys_are_normalised_then_hashed() {
    let hash = hash_key("ann@example.com");
    assert_eq!(hash_key("  Ann@Example.COM \n"), hash);
    assert_ne!(hash_key("bob@example.com"), hash);
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    // SHA-256 of the empty string, to pin the algorithm and the encoding.
    assert_eq!(
        hash_key(" "),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn redis_keys_carry_the_prefix_and_bucket_but_no_personal_data() -> anyhow::Result<()> {
    let limiter = RateLimiter::new(unreachable_redis()?, "app:".into());
    let key = limiter.redis_key("login_email", "Ann@Example.com");
    assert_eq!(
        key,
        format!("app:rl:login_email:{}", hash_key("ann@example.com"))
    );
    assert!(!key.to_lowercase().contains("ann"));
    Ok(())
}

#[test]
fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
    assert_eq!(retry_after_secs(Duration::from_micros(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    assert_eq!(retry_after_secs(Duration::from_secs(12)), 12);
}

#[test]
fn quotas_come_from_the_configuration_and_zero_means_unlimited() {
    let mut config = Config::defaults();
    config.rate_limit_period_secs = 60;
    config.rate_limit_login_per_email = 5;
    config.rate_limit_refresh_per_ip = 0;
    let quota = Bucket::LoginEmail.quota(&config);
    assert_eq!(quota, Quota::new(5, Duration::from_secs(60)));
    assert_eq!(quota.emission_interval(), Duration::from_secs(12));
    assert!(!quota.is_unlimited());
    assert!(Bucket::RefreshIp.quota(&config).is_unlimited());
    assert!(Quota::new(3, Duration::ZERO).is_unlimited());
    let names: std::collections::HashSet<_> = Bucket::ALL.iter().map(|b| b.name()).collect();
    assert_eq!(names.len(), Bucket::ALL.len());
}

#[test]
fn the_local_limiter_allows_the_burst_then_limits() {
    let local = LocalLimiter::default();
    let quota = Quota::new(3, Duration::from_secs(30));
    for _ in 0..3 {
        assert_eq!(local.check("b", "k", quota), Decision::Allowed);
    }
    match local.check("b", "k", quota) {
        Decision::Limited(wait) => {
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(10),
                "{wait:?}"
            );
        }
        Decision::Allowed => panic!("the fourth request passed"),
    }
}

#[test]
fn the_local_limiter_keeps_keys_buckets_and_quotas_apart() {
    let local = LocalLimiter::default();
    let quota = Quota::new(1, Duration::from_secs(60));
    assert_eq!(local.check("b", "k", quota), Decision::Allowed);
    assert_ne!(local.check("b", "k", quota), Decision::Allowed);
    assert_eq!(local.check("b", "other", quota), Decision::Allowed);
    assert_eq!(local.check("other", "k", quota), Decision::Allowed);
    let larger = Quota::new(2, Duration::from_secs(60));
    assert_eq!(local.check("b", "k", larger), Decision::Allowed);
}

#[tokio::test]
async fn the_local_limiter_refills() -> anyhow::Result<()> {
    let local = LocalLimiter::default();
    let quota = Quota::new(1, Duration::from_millis(100));
    assert_eq!(local.check("b", "k", quota), Decision::Allowed);
    assert_ne!(local.check("b", "k", quota), Decision::Allowed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while local.check("b", "k", quota) != Decision::Allowed {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never refilled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn without_redis_the_limiter_still_limits() -> anyhow::Result<()> {
    let limiter = RateLimiter::new(unreachable_redis()?, "t:".into());
    let quota = Quota::new(2, Duration::from_secs(60));
    let attempts = async {
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(limiter.check("login_email", "Ann@example.com", quota).await);
        }
        // Normalisation applies in the fallback too.
        results.push(
            limiter
                .check("login_email", " ann@EXAMPLE.com", quota)
                .await,
        );
        results
    };
    let results = tokio::time::timeout(Duration::from_secs(10), attempts).await?;
    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(retry_after(results[2].clone()).is_some_and(|s| s >= 1));
    assert!(retry_after(results[3].clone()).is_some());
    assert!(
        limiter
            .check("login_email", "bob@example.com", quota)
            .await
            .is_ok()
    );
    Ok(())
}

#[tokio::test]
async fn a_redis_that_never_answers_does_not_hang_the_limiter() -> anyhow::Result<()> {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let redis = crate::kv::Redis::connect(
        &format!("redis://127.0.0.1:{port}"),
        4,
        crate::kv::RedisSettings::default(),
    )?;
    let limiter = RateLimiter::new(redis, "t:".into());
    let quota = Quota::new(1, Duration::from_secs(60));
    let (first, second) = tokio::time::timeout(Duration::from_secs(10), async {
        (
            limiter.check("b", "k", quota).await,
            limiter.check("b", "k", quota).await,
        )
    })
    .await?;
    silent.abort();
    assert!(first.is_ok());
    assert!(retry_after(second).is_some());
    Ok(())
}

#[tokio::test]
async fn unlimited_quotas_always_pass() -> anyhow::Result<()> {
    let mut config = Config::defaults();
    config.rate_limit_signup_per_ip = 0;
    let limiter = RateLimiter::from_config(unreachable_redis()?, &config);
    for _ in 0..50 {
        let result = limiter.check_bucket(Bucket::SignupIp, "10.0.0.1").await;
        assert!(result.is_ok(), "{result:?}");
    }
    Ok(())
}
