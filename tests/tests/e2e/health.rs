//! Liveness and readiness.

use tests::{TestApp, eventually};

#[tokio::test]
async fn health_is_ok_while_the_process_runs() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let response = app.client.get(app.url("/health")).send().await?;
    assert_eq!(response.status(), 200);
    Ok(())
}

#[tokio::test]
async fn ready_says_degraded_but_stays_200_when_redis_stops() -> anyhow::Result<()> {
    let mut app = TestApp::spawn_with_own_redis().await?;
    let ready = app.client.get(app.url("/ready")).send().await?;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await?;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["postgres"]["status"], "ok");
    assert_eq!(body["redis"]["status"], "ok");

    if let Some(redis) = app.own_redis.as_mut() {
        redis.stop();
    }
    let client = app.client.clone();
    let url = app.url("/ready");
    eventually(
        std::time::Duration::from_secs(20),
        "/ready to say degraded",
        || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => r
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|b| b["status"] == "degraded"),
                    _ => false,
                }
            }
        },
    )
    .await?;
    let response = app.client.get(app.url("/ready")).send().await?;
    // A broken cache must not take every instance out of the load balancer.
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["redis"]["status"], "unavailable");
    assert_eq!(body["postgres"]["status"], "ok");
    // Liveness does not depend on Redis.
    assert_eq!(
        app.client.get(app.url("/health")).send().await?.status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn ready_is_503_not_ready_while_migrations_are_pending() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    assert_eq!(
        app.client.get(app.url("/ready")).send().await?.status(),
        200
    );
    // As if the database were migrated by an older release only.
    app.sql("COMMENT ON SCHEMA app IS 'migrated to m20261123_000702_restrict_user_columns'")
        .await?;
    let response = app.client.get(app.url("/ready")).send().await?;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["postgres"]["status"], "migrations_pending");
    Ok(())
}

#[tokio::test]
async fn ready_says_degraded_while_every_pooled_connection_is_busy() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.db_max_connections = 1).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let held = app.request_tx(&admin, server::db::Access::ReadOnly).await?;
    let response = app.client.get(app.url("/ready")).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    drop(held);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["postgres"]["status"], "busy");
    Ok(())
}
