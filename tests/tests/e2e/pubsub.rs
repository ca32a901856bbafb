//! Events published on one server instance reach subscribers on another through Redis.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tests::TestApp;

#[tokio::test]
async fn an_event_published_on_one_instance_reaches_subscribers_on_both() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let peer = app.spawn_peer().await?;
    let mut here = Box::pin(app.state().pubsub.subscribe("topic:a"));
    let mut there = Box::pin(peer.state.pubsub.subscribe("topic:a"));
    let mut other_topic = Box::pin(peer.state.pubsub.subscribe("topic:b"));

    // The listeners subscribe asynchronously at start-up: publish until the first one arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let received = loop {
        peer.state
            .pubsub
            .publish("topic:a", &json!({ "n": 1 }))
            .await;
        if let Ok(Some(payload)) =
            tokio::time::timeout(Duration::from_millis(200), there.next()).await
        {
            break payload;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no event across instances within 20 s"
        );
    };
    assert_eq!(&*received, r#"{"n":1}"#);
    app.state()
        .pubsub
        .publish("topic:a", &json!({ "n": 2 }))
        .await;
    let mut last_here = None;
    while let Ok(Some(payload)) = tokio::time::timeout(Duration::from_secs(5), here.next()).await {
        let done = payload.contains("\"n\":2");
        last_here = Some(payload);
        if done {
            break;
        }
    }
    assert_eq!(last_here.as_deref(), Some(r#"{"n":2}"#));
    let mut last_there = None;
    while let Ok(Some(payload)) = tokio::time::timeout(Duration::from_secs(5), there.next()).await {
        let done = payload.contains("\"n\":2");
        last_there = Some(payload);
        if done {
            break;
        }
    }
    assert_eq!(last_there.as_deref(), Some(r#"{"n":2}"#));
    // Nothing leaks into other topics.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), other_topic.next())
            .await
            .is_err()
    );
    peer.shutdown().await
}
