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
async fn ready_turns_unavailable_when_redis_stops() -> anyhow::Result<()> {
    let mut app = TestApp::spawn_with_own_redis().await?;
    let ready = app.client.get(app.url("/ready")).send().await?;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await?;
    assert_eq!(body["postgres"]["status"], "ok");
    assert_eq!(body["redis"]["status"], "ok");

    if let Some(redis) = app.own_redis.as_mut() {
        redis.stop();
    }
    let client = app.client.clone();
    let url = app.url("/ready");
    eventually(
        std::time::Duration::from_secs(20),
        "/ready to answer 503",
        || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 503)
            }
        },
    )
    .await?;
    let body: serde_json::Value = app
        .client
        .get(app.url("/ready"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(body["redis"]["status"], "unavailable");
    assert_eq!(body["postgres"]["status"], "ok");
    // Liveness does not depend on Redis.
    assert_eq!(
        app.client.get(app.url("/health")).send().await?.status(),
        200
    );
    Ok(())
}
