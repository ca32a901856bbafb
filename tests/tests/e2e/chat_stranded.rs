//! Replies are never stranded. The instance generating a reply holds a lease on it; killed
//! (SIGKILL) mid-reply, another instance finalises the reply once the lease lapses — `FAILED`
//! with the text streamed so far, announced to the subscribers, the conversation free again —
//! from PostgreSQL alone while Redis is down, and at the start-up of an instance too. On
//! SIGTERM an instance drains: not ready, no new replies, the replies streaming finish within
//! the drain time or are stored with their text so far, and it exits 0.
//!
//! The instances killed or stopped are real processes (`tests::process::ServerProcess`); the
//! subscriber listens on another instance, in the test process. Every wait is on a condition
//! (an event, a row, an exit), bounded by a timeout.

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde_json::Value;
use server::config::Config;
use tests::{
    TestApp, eventually,
    fake_llm::{FakeLlm, Reply, StreamScript},
    process::ServerProcess,
};

use super::chat_support::{
    chat_app, create_conversation, deltas_until, member, next_event, pubsub_ready, send_at,
    send_ok, send_ok_at, started, stored, subscribe, until_end,
};

const LEASE_SECS: u64 = 3;

/// The server binary the processes run.
fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_e2e_server")
}

/// Short leases, looked for every second; the text so far stored five times a second.
fn short_leases(c: &mut Config) {
    c.chat_lease_secs = LEASE_SECS;
    c.chat_sweep_secs = 1;
    c.chat_persist_interval_ms = 200;
}

/// A reply of these tokens that pauses after the first `pause_after`, until released.
fn paused(tokens: &[&str], pause_after: usize) -> Reply {
    Reply::Stream(StreamScript::tokens(tokens.iter().copied()).pause_after(pause_after))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Asserts the end event and the stored row of a reply failed with `content` for `reason`.
async fn assert_failed(
    app: &TestApp,
    owner: &tests::TestUser,
    reply: &str,
    end: &Value,
    content: &str,
    reason: &str,
) -> anyhow::Result<()> {
    assert_eq!(end["__typename"], "MessageFailed", "{end}");
    assert_eq!(end["message"]["id"], reply, "{end}");
    assert_eq!(end["message"]["status"], "FAILED", "{end}");
    assert_eq!(end["message"]["content"], content, "{end}");
    assert!(text(&end["reason"]).contains(reason), "{end}");
    let row = stored(app, owner, reply).await?;
    assert_eq!(row["status"], "failed", "{row}");
    assert_eq!(row["content"], content, "{row}");
    assert!(text(&row["error"]).contains(reason), "{row}");
    Ok(())
}

/// Whether the heartbeat of `reply` is older than the lease (its generator is silent).
async fn silent_in_postgres(app: &TestApp, reply: &str) -> bool {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT heartbeat_at < now() - make_interval(secs => $2) AS silent \
             FROM messages WHERE id = $1::uuid",
            [reply.into(), (LEASE_SECS as f64).into()],
        ))
        .await;
    matches!(row, Ok(Some(row)) if row.try_get::<bool>("", "silent").unwrap_or(false))
}

/// Whether the lease on `reply` is still in Redis.
async fn leased_in_redis(app: &TestApp, reply: &str) -> anyhow::Result<bool> {
    let url = app.config.redis_url.clone().unwrap_or_default();
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let key = format!("{}chat:lease:{reply}", app.config.redis_key_prefix);
    Ok(redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(&mut conn)
        .await?
        == 1)
}

async fn ready_status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn a_killed_instance_s_reply_is_failed_with_its_text_so_far_by_another_instance()
-> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["partial ", "text ", "never sent"], 2)).await?;
    // One reply at a time in the company: the dead instance's slot must come back too.
    let app = chat_app(&fake, |c| {
        short_leases(c);
        c.chat_max_concurrent_per_company = 1;
    })
    .await?;
    let mut doomed = ServerProcess::spawn(binary(), &app.config).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    fake.hold_next();
    let reply = send_ok_at(doomed.addr, &token, &conversation, "Hello").await?;
    started(&mut ws, &reply).await?;
    fake.release();
    deltas_until(&mut ws, "partial text ").await?;

    doomed.kill().await?;
    let end = next_event(&mut ws).await?;
    assert_failed(&app, &user, &reply, &end, "partial text ", "interrupted").await?;

    // The conversation accepts messages again, and the company's one slot is free.
    let again = send_ok(&app, &token, &conversation, "Are you there?").await?;
    started(&mut ws, &again).await?;
    Ok(())
}

#[tokio::test]
async fn on_sigterm_a_reply_streaming_finishes_within_the_drain_time_and_nothing_is_lost()
-> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["before ", "and ", "after"], 1)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let mut config = app.config.clone();
    config.shutdown_drain_secs = 300;
    let mut stopping = ServerProcess::spawn(binary(), &config).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    fake.hold_next();
    let reply = send_ok_at(stopping.addr, &token, &conversation, "Hello").await?;
    started(&mut ws, &reply).await?;
    fake.release();
    deltas_until(&mut ws, "before ").await?;

    stopping.terminate()?;
    // Not ready from the signal on, and new messages are refused (a load balancer sends them
    // to another instance) while the reply goes on.
    let ready = stopping.url("/ready");
    eventually(Duration::from_secs(30), "/ready to answer 503", || async {
        ready_status(&ready).await == Some(503)
    })
    .await?;
    let body: Value = reqwest::get(&ready).await?.json().await?;
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["draining"], true, "{body}");
    let elsewhere = create_conversation(&app, &token, None).await?;
    let refused = send_at(stopping.addr, &token, &elsewhere, "Anyone?").await?;
    assert_eq!(
        refused.error_code(),
        Some("UNAVAILABLE"),
        "{:?}",
        refused.body
    );
    assert_eq!(refused.status, 503);

    fake.release();
    let (rest, _, end) = until_end(&mut ws).await?;
    assert_eq!(rest, "and after");
    assert_eq!(end["__typename"], "MessageCompleted", "{end}");
    assert_eq!(end["message"]["status"], "COMPLETE");
    assert_eq!(end["message"]["content"], "before and after");
    assert_eq!(stopping.wait(Duration::from_secs(60)).await?, Some(0));
    let row = stored(&app, &user, &reply).await?;
    assert_eq!(row["status"], "complete");
    assert_eq!(row["content"], "before and after");
    Ok(())
}

/// SIGTERM while a reply streams that does not finish: after the drain time, or at once on a
/// second SIGTERM, the reply is stored with its text so far and the process exits 0.
async fn sigterm_interrupts_a_reply(drain_secs: u64, second_signal: bool) -> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["kept ", "never sent"], 1)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let mut config = app.config.clone();
    config.shutdown_drain_secs = drain_secs;
    let mut stopping = ServerProcess::spawn(binary(), &config).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    fake.hold_next();
    let reply = send_ok_at(stopping.addr, &token, &conversation, "Hello").await?;
    started(&mut ws, &reply).await?;
    fake.release();
    deltas_until(&mut ws, "kept ").await?;

    stopping.terminate()?;
    if second_signal {
        let ready = stopping.url("/ready");
        eventually(Duration::from_secs(30), "the drain to begin", || async {
            ready_status(&ready).await == Some(503)
        })
        .await?;
        stopping.terminate()?;
    }
    let end = next_event(&mut ws).await?;
    assert_failed(&app, &user, &reply, &end, "kept ", "shut down").await?;
    assert_eq!(stopping.wait(Duration::from_secs(60)).await?, Some(0));
    send_ok(&app, &token, &conversation, "Again").await?;
    Ok(())
}

#[tokio::test]
async fn on_sigterm_a_reply_still_streaming_after_the_drain_time_keeps_its_text_so_far()
-> anyhow::Result<()> {
    sigterm_interrupts_a_reply(1, false).await
}

#[tokio::test]
async fn a_second_sigterm_ends_the_drain_at_once_and_keeps_the_text_so_far() -> anyhow::Result<()> {
    sigterm_interrupts_a_reply(3600, true).await
}

#[tokio::test]
async fn while_redis_is_down_a_killed_instance_s_reply_is_finalised_from_postgresql()
-> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["stored ", "never sent"], 1)).await?;
    let base_url = fake.base_url();
    let mut app = TestApp::spawn_with_own_redis_and(|c| {
        c.llm_base_url = Some(base_url);
        c.llm_max_retries = 0;
        short_leases(c);
    })
    .await?;
    pubsub_ready(app.state(), app.state()).await?;
    let mut doomed = ServerProcess::spawn(binary(), &app.config).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    fake.hold_next();
    let reply = send_ok_at(doomed.addr, &token, &conversation, "Hello").await?;
    started(&mut ws, &reply).await?;
    fake.release();
    deltas_until(&mut ws, "stored ").await?;
    // The generator keeps its text so far in PostgreSQL as it streams.
    eventually(
        Duration::from_secs(30),
        "the text so far in PostgreSQL",
        || async {
            stored(&app, &user, &reply)
                .await
                .is_ok_and(|row| row["content"] == "stored " && row["status"] == "streaming")
        },
    )
    .await?;

    if let Some(redis) = app.own_redis.as_mut() {
        redis.stop();
    }
    doomed.kill().await?;
    // Announced on this instance (Redis cannot carry it to others).
    let end = next_event(&mut ws).await?;
    assert_failed(&app, &user, &reply, &end, "stored ", "interrupted").await?;
    send_ok(&app, &token, &conversation, "Again").await?;
    Ok(())
}

#[tokio::test]
async fn an_instance_finalises_a_stranded_reply_at_start_up() -> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["left ", "behind"], 1)).await?;
    // These instances look for stranded replies at start-up only.
    let app = chat_app(&fake, |c| {
        short_leases(c);
        c.chat_sweep_secs = 3600;
    })
    .await?;
    let mut doomed = ServerProcess::spawn(binary(), &app.config).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    fake.hold_next();
    let reply = send_ok_at(doomed.addr, &token, &conversation, "Hello").await?;
    started(&mut ws, &reply).await?;
    fake.release();
    deltas_until(&mut ws, "left ").await?;

    doomed.kill().await?;
    eventually(Duration::from_secs(60), "the lease to lapse", || async {
        silent_in_postgres(&app, &reply).await
            && leased_in_redis(&app, &reply)
                .await
                .is_ok_and(|leased| !leased)
    })
    .await?;
    assert_eq!(stored(&app, &user, &reply).await?["status"], "streaming");
    let restarted = app.spawn_peer().await?;
    let end = next_event(&mut ws).await?;
    assert_failed(&app, &user, &reply, &end, "left ", "interrupted").await?;
    send_ok(&app, &token, &conversation, "Again").await?;
    restarted.shutdown().await
}

#[tokio::test]
async fn a_draining_instance_refuses_new_replies_and_is_not_ready() -> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["a"], 0)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let peer = app.spawn_peer().await?;
    let (_, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    peer.begin_drain();
    assert!(peer.state.draining.is_cancelled());
    assert_eq!(
        ready_status(&format!("http://{}/ready", peer.addr)).await,
        Some(503)
    );
    let refused = send_at(peer.addr, &token, &conversation, "Hi").await?;
    assert_eq!(refused.error_code(), Some("UNAVAILABLE"));
    // Other instances are not concerned.
    assert_eq!(ready_status(&app.url("/ready")).await, Some(200));
    send_ok(&app, &token, &conversation, "Hi").await?;
    peer.shutdown().await
}

#[tokio::test]
async fn requests_can_neither_choose_nor_bump_a_heartbeat_nor_finalise_a_reply()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.chat_lease_secs = 3600).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let placeholder = uuid::Uuid::now_v7();
    let (c, u) = (user.company_id, user.id);
    app.execute_as(
        &user,
        &format!(
            "INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status, heartbeat_at) \
             VALUES ('{placeholder}', '{c}', '{u}', '{conversation}', 'assistant', '', 'streaming', 'infinity')"
        ),
    )
    .await?;
    let rows = app
        .query_as(
            &user,
            &format!(
                "SELECT heartbeat_at <= now() AS stamped FROM messages WHERE id = '{placeholder}'"
            ),
        )
        .await?;
    assert_eq!(rows[0]["stamped"], true, "{rows:?}");
    for sql in [
        format!("UPDATE messages SET heartbeat_at = 'infinity' WHERE id = '{placeholder}'"),
        format!("UPDATE messages SET content = 'forged' WHERE id = '{placeholder}'"),
        format!("SELECT app.chat_progress_message('{c}', '{placeholder}', 'forged')"),
        "SELECT * FROM app.chat_silent_replies(interval '0', 10)".to_owned(),
        format!(
            "SELECT * FROM app.chat_interrupt_message('{placeholder}', 'forged', 'x', interval '0')"
        ),
    ] {
        let refused = app.execute_as(&user, &sql).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| format!("{e:?}").contains("permission denied")),
            "{sql}: {refused:?}"
        );
    }
    let row = stored(&app, &user, &placeholder.to_string()).await?;
    assert_eq!(row["status"], "streaming");
    assert_eq!(row["content"], "");
    Ok(())
}
