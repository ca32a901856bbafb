//! A frozen Redis (SIGSTOP: connections stay open, nothing answers) costs requests at most one
//! short timeout per Redis call, then nothing once the circuit breaker is open: authenticated
//! requests and logins go on, `/ready` says degraded with the breaker open, and once Redis
//! answers again (SIGCONT) the breaker closes, `/ready` says ready and Redis is used again.

use std::time::Duration;

use anyhow::Context as _;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};
use tests::{TestApp, eventually};

const TOKEN: &str = "metrics-token-redis-breaker";
/// A hang detector, not a speed requirement.
const HANG: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(30);

/// A redis-server stopped with SIGSTOP, continued (SIGCONT) when dropped, so a failing test
/// never leaves a frozen process behind.
struct Frozen(Pid);

impl Frozen {
    fn new(pid: u32) -> anyhow::Result<Self> {
        let pid = Pid::from_raw(i32::try_from(pid)?);
        kill(pid, Signal::SIGSTOP)?;
        Ok(Self(pid))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

async fn ready(app: &TestApp) -> anyhow::Result<(u16, Value)> {
    let response = app.client.get(app.url("/ready")).send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

/// The value of the gauge `redis_breaker_open` in this server's `/metrics`.
async fn breaker_gauge(app: &TestApp) -> anyhow::Result<f64> {
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 200,
        "GET /metrics: {}",
        response.status()
    );
    let text = response.text().await?;
    text.lines()
        .find_map(|line| line.strip_prefix("redis_breaker_open "))
        .context("no redis_breaker_open in /metrics")?
        .trim()
        .parse()
        .context("redis_breaker_open is not a number")
}

async fn me_works(app: &TestApp, access: &str) -> anyhow::Result<()> {
    let response =
        tokio::time::timeout(HANG, app.graphql(Some(access), "{ me { id } }", json!({})))
            .await
            .context("an authenticated request hung on a frozen Redis")??;
    response.data()?;
    Ok(())
}

async fn login_works(app: &TestApp) -> anyhow::Result<String> {
    let login = tokio::time::timeout(HANG, app.login("ann@acme.example", "correct horse battery"))
        .await
        .context("a login hung on a frozen Redis")??;
    Ok(login.data()?["login"]["accessToken"]
        .as_str()
        .context("no access token")?
        .to_owned())
}

#[tokio::test]
async fn a_frozen_redis_opens_the_breaker_and_requests_go_on_until_it_answers_again()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with_own_redis_and(|c| c.metrics_token = Some(TOKEN.into())).await?;
    let payload = app
        .sign_up("Acme", "ann@acme.example", "correct horse battery")
        .await?;
    let access = payload["accessToken"]
        .as_str()
        .context("no access token")?
        .to_owned();
    me_works(&app, &access).await?;
    assert_eq!(ready(&app).await?.1["redis"]["breaker"], "closed");
    let own_redis = app.own_redis.as_ref().context("no redis of its own")?;
    let redis_url = own_redis.url();

    let frozen = Frozen::new(own_redis.pid())?;
    // The session check, the rate limits of a login and the session cache all meet a Redis
    // that never answers; each request still succeeds.
    for _ in 0..5 {
        me_works(&app, &access).await?;
    }
    let fresh = login_works(&app).await?;
    me_works(&app, &fresh).await?;

    let (status, body) = ready(&app).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["postgres"]["status"], "ok", "{body}");
    assert_eq!(body["redis"]["status"], "unavailable", "{body}");
    assert_ne!(body["redis"]["breaker"], "closed", "{body}");
    assert!(
        body["redis"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("circuit open")),
        "{body}"
    );
    assert_eq!(breaker_gauge(&app).await?, 1.0);

    drop(frozen);
    let client = app.client.clone();
    let url = app.url("/ready");
    eventually(WAIT, "/ready to say ready again", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|b| b["status"] == "ready" && b["redis"]["breaker"] == "closed"),
                _ => false,
            }
        }
    })
    .await?;
    assert_eq!(breaker_gauge(&app).await?, 0.0);

    // Redis is used again: the rate limits of a login are counted there (with an address
    // no login tried while Redis was frozen, whose calls Redis may still run late).
    let key = app
        .state()
        .ratelimit
        .redis_key("login_email", "nobody@acme.example");
    let attempt = tokio::time::timeout(
        HANG,
        app.login("nobody@acme.example", "correct horse battery"),
    )
    .await
    .context("a login hung")??;
    assert!(
        attempt.error_code().is_some(),
        "an unknown address logged in"
    );
    let mut conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await?;
    assert!(exists, "the login's rate limit is not in Redis");
    me_works(&app, &fresh).await?;
    Ok(())
}
