//! `friendActivity`: a friend's new activity reaches subscribers on another instance, read as
//! each subscriber, so one who may not read it (a friends-only activity after a block, a
//! private one) never gets it.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    TestApp, TestUser,
    ws::{WsClient, WsOutcome},
};

use crate::{
    activities::{SHARE, define_sleep, record},
    friends::{BLOCK, befriend, run},
};

const LIVE: &str = "subscription { friendActivity { id note userId user { id } } }";

async fn subscribe(addr: std::net::SocketAddr, token: &str) -> anyhow::Result<Box<WsClient>> {
    let url = format!("ws://{addr}/graphql/ws");
    let payload = json!({ "authorization": format!("Bearer {token}") });
    let WsOutcome::Acked(mut client) = WsClient::connect(&url, None, payload).await? else {
        anyhow::bail!("connection was not acknowledged");
    };
    client.subscribe("live", LIVE, json!({})).await?;
    Ok(client)
}

/// Announces `warm_up` (an activity `subscriber` may read) to the subscriber until the
/// subscription delivers it: the socket's subscription starts asynchronously, and nothing
/// acknowledges it. Then drains the repeats.
async fn until_live(
    app: &TestApp,
    client: &mut WsClient,
    subscriber: &TestUser,
    owner: &TestUser,
    warm_up: &str,
) -> anyhow::Result<()> {
    let payload =
        json!({ "company_id": owner.company_id, "activity_id": warm_up, "user_id": owner.id });
    let topic = server::activities::events::topic(subscriber.id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        app.state().pubsub.publish(&topic, &payload).await;
        if let Ok(message) =
            tokio::time::timeout(Duration::from_millis(250), client.next_json()).await
        {
            let message = message?;
            anyhow::ensure!(message["type"] == "next", "{message}");
            while let Ok(extra) =
                tokio::time::timeout(Duration::from_millis(300), client.next_json()).await
            {
                let extra = extra?;
                anyhow::ensure!(
                    extra["payload"]["data"]["friendActivity"]["id"] == json!(warm_up),
                    "{extra}"
                );
            }
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "subscription never became live"
        );
    }
}

async fn next(client: &mut WsClient, within: Duration) -> anyhow::Result<Option<Value>> {
    match tokio::time::timeout(within, client.next_json()).await {
        Ok(message) => {
            let message = message?;
            anyhow::ensure!(message["type"] == "next", "{message}");
            Ok(Some(message["payload"]["data"]["friendActivity"].clone()))
        }
        Err(_) => Ok(None),
    }
}

#[tokio::test]
async fn friends_get_new_activities_live_on_another_instance_as_they_may_read_them()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let peer = app.spawn_peer().await?;
    let (_, admin, m) = app.company_with_users("Acme", 4).await?;
    define_sleep(&app, &admin).await?;
    let (ann, bob, cat, dan) = (&m[0], &m[1], &m[2], &m[3]);
    // Bob and Cat are Ann's friends; Dan is not (he is Bob's, for his warm-up).
    befriend(&app, ann, bob).await?;
    befriend(&app, ann, cat).await?;
    befriend(&app, bob, dan).await?;
    let warm_up = record(&app, ann, 1.0, "2026-11-01T07:00:00Z", "COMPANY", "warm-up").await?;
    let bobs = record(&app, bob, 1.0, "2026-11-01T07:00:00Z", "COMPANY", "warm-up").await?;
    let mut bob_live = subscribe(peer.addr, &app.token_for(bob)).await?;
    let mut cat_live = subscribe(peer.addr, &app.token_for(cat)).await?;
    let mut dan_live = subscribe(peer.addr, &app.token_for(dan)).await?;
    until_live(&app, &mut bob_live, bob, ann, &warm_up).await?;
    until_live(&app, &mut cat_live, cat, ann, &warm_up).await?;
    until_live(&app, &mut dan_live, dan, bob, &bobs).await?;

    // Cat blocks Ann: the friendship ends, and so does what Cat may read of Ann's.
    run(&app, cat, BLOCK, json!({ "user": ann.id }))
        .await?
        .data()?;

    let visible = record(
        &app,
        ann,
        80.0,
        "2026-11-02T07:00:00Z",
        "FRIENDS",
        "for friends",
    )
    .await?;
    let got = next(&mut bob_live, Duration::from_secs(10)).await?;
    let got = got.ok_or_else(|| anyhow::anyhow!("Bob got nothing"))?;
    assert_eq!(got["id"], json!(visible));
    assert_eq!(got["note"], "for friends");
    assert_eq!(got["user"]["id"], json!(ann.id));

    // A private activity is announced to nobody; one shared with Bob reaches him.
    record(
        &app,
        ann,
        70.0,
        "2026-11-03T07:00:00Z",
        "PRIVATE",
        "private",
    )
    .await?;
    let shared = record(&app, ann, 60.0, "2026-11-04T07:00:00Z", "PRIVATE", "shared").await?;
    run(&app, ann, SHARE, json!({ "id": shared, "users": [bob.id] }))
        .await?
        .data()?;
    let got = next(&mut bob_live, Duration::from_secs(10)).await?;
    assert_eq!(got.map(|g| g["id"].clone()), Some(json!(shared)));

    // Cat (blocked pair, no longer a friend) and Dan (no friend) got none of it.
    for client in [&mut cat_live, &mut dan_live] {
        assert_eq!(next(client, Duration::from_millis(500)).await?, None);
    }
    // And an announcement Bob may not read (forged onto his topic) shows him nothing.
    let private = record(
        &app,
        ann,
        50.0,
        "2026-11-05T07:00:00Z",
        "PRIVATE",
        "private 2",
    )
    .await?;
    app.state()
        .pubsub
        .publish(
            &server::activities::events::topic(bob.id),
            &json!({ "company_id": ann.company_id, "activity_id": private, "user_id": ann.id }),
        )
        .await;
    assert_eq!(next(&mut bob_live, Duration::from_millis(800)).await?, None);
    // Nor does Dan see the warm-up of Ann's (visible to the whole company) as a friend's.
    app.state()
        .pubsub
        .publish(
            &server::activities::events::topic(dan.id),
            &json!({ "company_id": ann.company_id, "activity_id": warm_up, "user_id": ann.id }),
        )
        .await;
    assert_eq!(next(&mut dan_live, Duration::from_millis(800)).await?, None);
    Ok(())
}
