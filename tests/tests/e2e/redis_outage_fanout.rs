//! While Redis is stopped or frozen (SIGSTOP), events still reach every instance through
//! PostgreSQL `NOTIFY`: the deltas and the end of a reply streaming on another instance (the
//! end of a long one read back from PostgreSQL), the catch-up of a late subscriber from the
//! text stored in PostgreSQL, and a logout, which ends the session's subscriptions on every
//! instance. Once Redis answers again, events flow through it again. Every wait is on a
//! condition, bounded by a timeout.

use std::time::Duration;

use futures_util::StreamExt;
use nix::{sys::signal, unistd::Pid};
use serde_json::json;
use server::state::AppState;
use tests::{
    TestApp, eventually,
    fake_llm::{FakeLlm, Reply, StreamScript},
    ws::WsClient,
};

use super::chat_support::{
    create_conversation, deltas_until, member, next_event, pubsub_ready, send_ok, started, stored,
    subscribe, until_end,
};

/// Long enough for a hang to be a failure, not a slow machine.
const HANG: Duration = Duration::from_secs(15);

async fn app_with_own_redis(fake: &FakeLlm) -> anyhow::Result<TestApp> {
    let base_url = fake.base_url();
    TestApp::spawn_with_own_redis_and(|c| {
        c.llm_base_url = Some(base_url);
        c.llm_max_retries = 0;
    })
    .await
}

/// Waits until `state`'s pub/sub listener is (or is not) connected to Redis.
async fn redis_connected(state: &AppState, connected: bool) -> anyhow::Result<()> {
    let mut watch = state.pubsub.redis_connected();
    tokio::time::timeout(HANG, watch.wait_for(|c| *c == connected))
        .await
        .map_err(|_| anyhow::anyhow!("the listener never became connected = {connected}"))??;
    Ok(())
}

/// Waits until the subscription on `ws` ends with the socket closed for a revoked session.
async fn closed_as_revoked(ws: &mut WsClient) -> anyhow::Result<()> {
    let (frame, _) = tokio::time::timeout(HANG, ws.until_closed())
        .await
        .map_err(|_| anyhow::anyhow!("the socket of a revoked session stayed open"))??;
    let (code, reason) = frame.unwrap_or_default();
    anyhow::ensure!(code == 4403, "closed with {code} {reason}");
    Ok(())
}

/// Resumes a frozen redis-server when dropped, whatever the test did meanwhile.
struct Frozen(Pid);

impl Frozen {
    fn freeze(pid: u32) -> anyhow::Result<Self> {
        let pid = Pid::from_raw(i32::try_from(pid)?);
        signal::kill(pid, signal::Signal::SIGSTOP)?;
        Ok(Self(pid))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = signal::kill(self.0, signal::Signal::SIGCONT);
    }
}

#[tokio::test]
async fn with_redis_stopped_replies_reach_other_instances_and_late_subscribers_catch_up_from_postgresql()
-> anyhow::Result<()> {
    // Tokens of 2000 characters: the stored reply is too long for one notification.
    let tokens: Vec<String> = (0..6)
        .map(|i| char::from(b'a' + i).to_string().repeat(2000))
        .collect();
    let script = StreamScript::tokens(tokens.clone()).pause_after(3);
    let full = script.text();
    let head: String = tokens[..3].concat();
    let fake = FakeLlm::start(Reply::Stream(script)).await?;
    let mut app = app_with_own_redis(&fake).await?;
    let peer = app.spawn_peer().await?;
    pubsub_ready(app.state(), &peer.state).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut on_b = subscribe(peer.addr, &token, &conversation).await?;

    if let Some(redis) = app.own_redis.as_mut() {
        redis.stop();
    }
    redis_connected(&peer.state, false).await?;
    let reply = send_ok(&app, &token, &conversation, "Hello").await?;
    // (a) The reply streams on A; B's subscriber gets it through PostgreSQL.
    started(&mut on_b, &reply).await?;
    deltas_until(&mut on_b, &head).await?;

    // (b) A late subscriber on B, while the reply is paused after three deltas: `Started`,
    // the text so far from PostgreSQL as one delta, then the rest.
    let mut late = subscribe(peer.addr, &token, &conversation).await?;
    started(&mut late, &reply).await?;
    let catch_up = next_event(&mut late).await?;
    assert_eq!(catch_up["__typename"], "MessageDelta", "{catch_up}");
    assert_eq!(catch_up["index"], 2, "{catch_up}");
    assert_eq!(catch_up["text"], head.as_str());

    fake.release();
    let (rest, indexes, end) = until_end(&mut on_b).await?;
    assert_eq!(format!("{head}{rest}"), full);
    assert_eq!(indexes, vec![3, 4, 5]);
    let (late_rest, late_indexes, late_end) = until_end(&mut late).await?;
    assert_eq!(format!("{head}{late_rest}"), full, "repeats or gaps");
    assert_eq!(late_indexes, vec![3, 4, 5]);

    // The end, too long for a notification, was read back from PostgreSQL as the subscriber.
    let row = stored(&app, &user, &reply).await?;
    assert_eq!(row["status"], "complete");
    assert_eq!(row["content"], full.as_str());
    for end in [&end, &late_end] {
        assert_eq!(end["__typename"], "MessageCompleted", "{end}");
        assert_eq!(end["message"]["id"], reply.as_str());
        assert_eq!(end["message"]["status"], "COMPLETE");
        assert_eq!(end["message"]["content"], full.as_str());
    }

    // (c) A logout on A ends the session's subscriptions on B within seconds.
    let logout = app
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    closed_as_revoked(&mut on_b).await?;
    closed_as_revoked(&mut late).await?;
    peer.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn while_redis_is_frozen_a_logout_ends_subscriptions_everywhere_and_redis_takes_over_again()
-> anyhow::Result<()> {
    let fake = FakeLlm::start(Reply::Stream(StreamScript::tokens(["Hi ", "there"]))).await?;
    let app = app_with_own_redis(&fake).await?;
    let peer = app.spawn_peer().await?;
    pubsub_ready(app.state(), &peer.state).await?;
    pubsub_ready(&peer.state, app.state()).await?;
    let pid = app
        .own_redis
        .as_ref()
        .map(|r| r.pid())
        .ok_or_else(|| anyhow::anyhow!("no redis of its own"))?;
    let (user, token) = member(&app, "Acme").await?;
    let other = app.create_session(user.company_id, user.id).await?;
    let other_token = app.token_for(&tests::TestUser {
        session_id: other,
        ..user.clone()
    });
    let conversation = create_conversation(&app, &token, None).await?;
    let mut on_b = subscribe(peer.addr, &token, &conversation).await?;
    let mut still_live = subscribe(peer.addr, &other_token, &conversation).await?;

    let frozen = Frozen::freeze(pid)?;
    // The listeners notice the silence.
    redis_connected(&peer.state, false).await?;
    redis_connected(app.state(), false).await?;
    let logout = app
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    closed_as_revoked(&mut on_b).await?;

    // (d) Redis answers again: the listeners reconnect by themselves, and events go through
    // Redis again (a subscriber of the Redis channels sees what A publishes: the start and the
    // end on the conversation's channel, the deltas in A's batches).
    drop(frozen);
    redis_connected(&peer.state, true).await?;
    redis_connected(app.state(), true).await?;
    let url = app.config.redis_url.clone().unwrap_or_default();
    let mut raw = redis::Client::open(url)?.get_async_pubsub().await?;
    let channel = format!("{}ev:chat:{conversation}", app.config.redis_key_prefix);
    raw.subscribe(&channel).await?;
    raw.subscribe(format!("{}ev:~batch", app.config.redis_key_prefix))
        .await?;
    let mut through_redis = raw.into_on_message();
    let reply = send_ok(&app, &other_token, &conversation, "Again").await?;
    started(&mut still_live, &reply).await?;
    let (text, indexes, end) = until_end(&mut still_live).await?;
    assert_eq!(text, "Hi there");
    assert_eq!(indexes, vec![0, 1]);
    assert_eq!(end["message"]["content"], "Hi there");
    let mut seen = Vec::new();
    eventually(HANG, "the reply's events in Redis", || {
        let got = futures_util::FutureExt::now_or_never(through_redis.next()).flatten();
        if let Some(message) = got {
            seen.push(String::from_utf8_lossy(message.get_payload_bytes()).into_owned());
        }
        let done = seen.iter().any(|p| p.contains("\"completed\""));
        async move { done }
    })
    .await?;
    assert!(seen.iter().any(|p| p.contains("\"delta\"")), "{seen:?}");
    peer.shutdown().await?;
    Ok(())
}
