//! Chat with streamed replies, end to end: the real server, a fake provider on loopback, and
//! `graphql-transport-ws` clients. Replies that a test must observe mid-stream are paused by
//! the fake until the test releases them, so nothing depends on timing.

use std::time::Duration;

use serde_json::{Value, json};
use tests::fake_llm::{FakeLlm, Reply, StreamScript};

use super::chat_support::{
    chat_app, create_conversation, member, next_event, pubsub_ready, send, send_ok, started,
    stored, subscribe, until_end,
};

fn paused(tokens: &[&str]) -> Reply {
    Reply::Stream(StreamScript::tokens(tokens.iter().copied()).pause_after(0))
}

#[tokio::test]
async fn deltas_arrive_in_order_to_every_subscriber_and_equal_the_stored_reply()
-> anyhow::Result<()> {
    let tokens = ["Hello", ", ", "world", "! ", "How ", "are ", "you?"];
    let fake = FakeLlm::start(paused(&tokens)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, Some("Answer in English.")).await?;
    app.graphql(
        Some(&token),
        "mutation { addKnowledge(content: \"My cat is called Miso.\") { id } }",
        json!({}),
    )
    .await?
    .data()?;
    let mut first = subscribe(app.addr, &token, &conversation).await?;
    let mut second = subscribe(app.addr, &token, &conversation).await?;

    let reply = send_ok(&app, &token, &conversation, "Say hello").await?;
    started(&mut first, &reply).await?;
    started(&mut second, &reply).await?;
    fake.release();
    let (text_1, indexes_1, end_1) = until_end(&mut first).await?;
    let (text_2, indexes_2, end_2) = until_end(&mut second).await?;

    assert_eq!(text_1, tokens.concat());
    assert_eq!(text_2, text_1);
    assert_eq!(indexes_1, (0..tokens.len() as i64).collect::<Vec<_>>());
    assert_eq!(indexes_2, indexes_1);
    assert_eq!(end_1["__typename"], "MessageCompleted");
    assert_eq!(end_1["message"]["status"], "COMPLETE");
    assert_eq!(end_1["message"]["content"], json!(text_1));
    assert_eq!(end_1["message"]["model"], "fake-model");
    assert_eq!(end_1["message"]["promptTokens"], 11);
    assert_eq!(end_1["message"]["completionTokens"], 7);
    assert_eq!(end_2, end_1);
    let row = stored(&app, &user, &reply).await?;
    assert_eq!(row["content"], json!(text_1));
    assert_eq!(row["status"], "complete");

    // The provider got the system prompt, the user's knowledge and the message.
    let request = fake.requests().pop().unwrap_or_default();
    assert_eq!(request["stream"], true);
    assert_eq!(request["messages"][0]["role"], "system");
    let system = request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(system.starts_with("Answer in English."), "{system}");
    assert!(system.contains("My cat is called Miso."), "{system}");
    assert_eq!(request["messages"][1]["content"], "Say hello");

    // The history holds both messages, oldest first.
    let history = app
        .graphql(
            Some(&token),
            "query($id: ID!) { conversation(id: $id) { messages { edges { node { role status content } } } } }",
            json!({ "id": conversation }),
        )
        .await?;
    let edges = history.data()?["conversation"]["messages"]["edges"].clone();
    assert_eq!(edges[0]["node"]["role"], "USER");
    assert_eq!(edges[0]["node"]["content"], "Say hello");
    assert_eq!(edges[1]["node"]["role"], "ASSISTANT");
    assert_eq!(edges[1]["node"]["content"], json!(text_1));
    Ok(())
}

#[tokio::test]
async fn a_late_subscriber_catches_up_then_follows_live() -> anyhow::Result<()> {
    let script = StreamScript::tokens(["one ", "two ", "three ", "four ", "five"]).pause_after(3);
    let fake = FakeLlm::start(Reply::Stream(script.clone())).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (_, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut early = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "Count").await?;
    started(&mut early, &reply).await?;
    // The subscription may become active on the server after the first tokens went out (the
    // protocol has no acknowledgement for `subscribe`): then they arrive as one catch-up delta.
    // Either way the indexes rise and end at 2, and the text is the first three tokens.
    let mut seen = String::new();
    let mut last_index = -1;
    while seen != "one two three " {
        let delta = next_event(&mut early).await?;
        let index = delta["index"].as_i64().unwrap_or(-1);
        assert!(index > last_index, "{delta}");
        last_index = index;
        seen.push_str(delta["text"].as_str().unwrap_or_default());
        assert!("one two three ".starts_with(&seen), "{seen:?}");
    }
    assert_eq!(last_index, 2);

    // Joins while the reply is paused after three tokens.
    let mut late = subscribe(app.addr, &token, &conversation).await?;
    started(&mut late, &reply).await?;
    let catch_up = next_event(&mut late).await?;
    assert_eq!(catch_up["__typename"], "MessageDelta");
    assert_eq!(catch_up["index"], 2);
    assert_eq!(catch_up["text"], json!(seen));

    fake.release();
    let (rest_late, indexes, end_late) = until_end(&mut late).await?;
    let (rest_early, _, end_early) = until_end(&mut early).await?;
    assert_eq!(indexes, vec![3, 4]);
    assert_eq!(format!("{seen}{rest_late}"), script.text());
    assert_eq!(format!("{seen}{rest_early}"), script.text());
    assert_eq!(end_late["message"]["content"], json!(script.text()));
    assert_eq!(end_early, end_late);
    Ok(())
}

#[tokio::test]
async fn a_dropped_connection_does_not_lose_the_reply_and_a_reconnect_catches_up()
-> anyhow::Result<()> {
    let script =
        StreamScript::tokens(["Still ", "here ", "after ", "you ", "left."]).pause_after(2);
    let fake = FakeLlm::start(Reply::Stream(script.clone())).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "Talk").await?;
    started(&mut ws, &reply).await?;
    next_event(&mut ws).await?;
    drop(ws);

    let mut again = subscribe(app.addr, &token, &conversation).await?;
    started(&mut again, &reply).await?;
    let catch_up = next_event(&mut again).await?;
    assert_eq!(catch_up["text"], "Still here ");
    drop(again);
    fake.release();

    tests::eventually(
        Duration::from_secs(30),
        "the reply to be stored",
        || async {
            stored(&app, &user, &reply)
                .await
                .is_ok_and(|row| row["status"] == "complete")
        },
    )
    .await?;
    assert_eq!(
        stored(&app, &user, &reply).await?["content"],
        json!(script.text())
    );
    Ok(())
}

#[tokio::test]
async fn cancel_reply_aborts_the_upstream_request_and_stores_the_partial_text() -> anyhow::Result<()>
{
    let script = StreamScript::tokens(["Part ", "one ", "never ", "sent"]).pause_after(2);
    let fake = FakeLlm::start(Reply::Stream(script)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "Go").await?;
    started(&mut ws, &reply).await?;
    next_event(&mut ws).await?;
    next_event(&mut ws).await?;

    let cancelled = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { cancelReply(messageId: $id) { id status content } }",
            json!({ "id": reply }),
        )
        .await?;
    let message = cancelled.data()?["cancelReply"].clone();
    assert_eq!(message["status"], "CANCELLED");
    assert_eq!(message["content"], "Part one ");
    let end = next_event(&mut ws).await?;
    assert_eq!(end["__typename"], "MessageCompleted");
    assert_eq!(end["message"]["status"], "CANCELLED");
    assert_eq!(end["message"]["content"], "Part one ");
    fake.wait_for(
        Duration::from_secs(30),
        "the upstream request to be aborted",
        |f| f.aborted() == 1,
    )
    .await?;
    let row = stored(&app, &user, &reply).await?;
    assert_eq!(row["status"], "cancelled");
    assert_eq!(row["content"], "Part one ");

    // The conversation takes a new message at once.
    fake.push(Reply::Stream(StreamScript::tokens(["ok"])));
    send_ok(&app, &token, &conversation, "Again").await?;
    Ok(())
}

#[tokio::test]
async fn another_user_can_neither_subscribe_to_nor_read_a_conversation() -> anyhow::Result<()> {
    let fake = FakeLlm::start(Reply::Stream(StreamScript::tokens(["hi"]))).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let owner = &members[0];
    let owner_token = app.token_for(owner);
    let conversation = create_conversation(&app, &owner_token, None).await?;
    // The owner's own admin is another user: chats are private even within a company.
    for intruder in [app.token_for(&admin), member(&app, "Globex").await?.1] {
        let mut ws = subscribe(app.addr, &intruder, &conversation).await?;
        let refused = ws.next_json().await?;
        // `next` with errors, or `error` (whose payload is the list of errors).
        let errors = match refused["type"].as_str() {
            Some("error") => refused["payload"].clone(),
            _ => refused["payload"]["errors"].clone(),
        };
        assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{refused}");
        let read = app
            .graphql(
                Some(&intruder),
                "query($id: ID!) { conversation(id: $id) { id } }",
                json!({ "id": conversation }),
            )
            .await?;
        assert_eq!(read.data()?["conversation"], Value::Null);
        let sent = send(&app, &intruder, &conversation, "hello?").await?;
        assert_eq!(sent.error_code(), Some("NOT_FOUND"));
        let listed = app
            .graphql(
                Some(&intruder),
                "{ conversations { edges { node { id } } } }",
                json!({}),
            )
            .await?;
        assert_eq!(listed.data()?["conversations"]["edges"], json!([]));
    }
    Ok(())
}

#[tokio::test]
async fn a_subscriber_on_one_instance_sees_a_reply_started_on_another() -> anyhow::Result<()> {
    let tokens = ["across ", "two ", "instances"];
    let fake = FakeLlm::start(paused(&tokens)).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let peer = app.spawn_peer().await?;
    pubsub_ready(app.state(), &peer.state).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut there = subscribe(peer.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "Hello").await?;
    started(&mut there, &reply).await?;
    fake.release();
    let (text, indexes, end) = until_end(&mut there).await?;
    assert_eq!(text, tokens.concat());
    assert_eq!(indexes, vec![0, 1, 2]);
    assert_eq!(end["message"]["status"], "COMPLETE");
    assert_eq!(stored(&app, &user, &reply).await?["content"], json!(text));
    peer.shutdown().await
}

#[tokio::test]
async fn a_reply_started_on_one_instance_is_cancelled_from_another() -> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["never"])).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let peer = app.spawn_peer().await?;
    pubsub_ready(app.state(), &peer.state).await?;
    pubsub_ready(&peer.state, app.state()).await?;
    let (_, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let reply = send_ok(&app, &token, &conversation, "Hello").await?;
    fake.wait_for(Duration::from_secs(30), "the request", |f| {
        f.requests().len() == 1
    })
    .await?;
    let response = reqwest::Client::new()
        .post(format!("http://{}/graphql", peer.addr))
        .bearer_auth(&token)
        .json(&json!({
            "query": "mutation($id: ID!) { cancelReply(messageId: $id) { status content } }",
            "variables": { "id": reply },
        }))
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert_eq!(
        response["data"]["cancelReply"]["status"], "CANCELLED",
        "{response}"
    );
    assert_eq!(response["data"]["cancelReply"]["content"], "");
    peer.shutdown().await
}

#[tokio::test]
async fn a_revoked_session_ends_the_subscription_and_the_reply_is_still_stored()
-> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["kept ", "anyway"])).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "Hello").await?;
    started(&mut ws, &reply).await?;

    let logout = app
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    // The socket of the revoked session is closed (its subscription may complete first).
    let (frame, before) = ws.until_closed().await?;
    assert_eq!(frame.map(|(code, _)| code), Some(4403), "{before:?}");
    assert!(before.iter().all(|m| m["type"] == "complete"), "{before:?}");

    fake.release();
    // Read through another session of the same user: the first one is revoked.
    let mut reader = user.clone();
    reader.session_id = app.create_session(user.company_id, user.id).await?;
    tests::eventually(
        Duration::from_secs(30),
        "the reply to be stored",
        || async {
            stored(&app, &reader, &reply)
                .await
                .is_ok_and(|row| row["status"] == "complete" && row["content"] == "kept anyway")
        },
    )
    .await
}

/// What this instance's pub/sub holds for local subscribers: (subscriptions, topics).
fn held(app: &tests::TestApp) -> (usize, usize) {
    app.state().pubsub.held()
}

#[tokio::test]
async fn a_subscription_lets_go_of_what_it_held_when_it_ends() -> anyhow::Result<()> {
    let fake = FakeLlm::start(paused(&["Hi"])).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (_, token) = member(&app, "Acme").await?;
    let first = create_conversation(&app, &token, None).await?;
    let second = create_conversation(&app, &token, None).await?;
    let idle = held(&app);
    let wait = Duration::from_secs(30);

    // One socket (watching its session and its user's access) with one subscription.
    let mut ws = subscribe(app.addr, &token, &first).await?;
    tests::eventually(wait, "the subscription to start", || async {
        held(&app) == (idle.0 + 3, idle.1 + 3)
    })
    .await?;
    // A second subscription on the socket shares its watch of the credentials: it holds its
    // conversation's topic only.
    ws.subscribe("2", super::chat_support::EVENTS, json!({ "id": second }))
        .await?;
    tests::eventually(wait, "the second subscription to start", || async {
        held(&app) == (idle.0 + 4, idle.1 + 4)
    })
    .await?;
    ws.complete("2").await?;
    tests::eventually(wait, "the completed subscription to let go", || async {
        held(&app) == (idle.0 + 3, idle.1 + 3)
    })
    .await?;
    // A socket dropped without a close frame lets go of everything too.
    drop(ws);
    tests::eventually(wait, "the closed socket to let go", || async {
        held(&app) == idle
    })
    .await?;
    Ok(())
}

/// Reads deltas until their text is `text`: the first ones may arrive as one catch-up delta
/// (the subscription may become active after they went out). Indexes rise; the last one's.
async fn deltas_making(ws: &mut tests::ws::WsClient, text: &str) -> anyhow::Result<i64> {
    let mut seen = String::new();
    let mut last_index = -1;
    while seen != text {
        let delta = next_event(ws).await?;
        let index = delta["index"].as_i64().unwrap_or(-1);
        anyhow::ensure!(index > last_index, "{delta}");
        last_index = index;
        seen.push_str(delta["text"].as_str().unwrap_or_default());
        anyhow::ensure!(text.starts_with(&seen), "{seen:?}");
    }
    Ok(last_index)
}

#[tokio::test]
async fn subscribers_on_the_generating_instance_and_on_another_get_the_same_reply_and_catch_up()
-> anyhow::Result<()> {
    // The generating instance hands deltas to its own subscribers at once and sends them to
    // the others through Redis in batches: both must see the same deltas in the same order,
    // and a late subscriber on either catches up (from the reply itself here, from Redis there).
    let script = StreamScript::tokens(["one ", "two ", "three ", "four ", "five"]).pause_after(3);
    let fake = FakeLlm::start(Reply::Stream(script.clone())).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let peer = app.spawn_peer().await?;
    pubsub_ready(app.state(), &peer.state).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut here = subscribe(app.addr, &token, &conversation).await?;
    let mut there = subscribe(peer.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "Count").await?;
    started(&mut here, &reply).await?;
    started(&mut there, &reply).await?;
    assert_eq!(deltas_making(&mut here, "one two three ").await?, 2);
    assert_eq!(deltas_making(&mut there, "one two three ").await?, 2);

    // Joining while the reply is paused after three deltas.
    let mut late_here = subscribe(app.addr, &token, &conversation).await?;
    let mut late_there = subscribe(peer.addr, &token, &conversation).await?;
    for late in [&mut late_here, &mut late_there] {
        started(late, &reply).await?;
        let catch_up = next_event(late).await?;
        assert_eq!(catch_up["__typename"], "MessageDelta");
        assert_eq!(catch_up["index"], 2);
        assert_eq!(catch_up["text"], "one two three ");
    }

    fake.release();
    let mut ends = Vec::new();
    for ws in [&mut here, &mut there, &mut late_here, &mut late_there] {
        let (rest, indexes, end) = until_end(ws).await?;
        assert_eq!(rest, "four five");
        assert_eq!(indexes, vec![3, 4]);
        assert_eq!(end["message"]["status"], "COMPLETE");
        assert_eq!(end["message"]["content"], json!(script.text()));
        ends.push(end);
    }
    assert!(ends.windows(2).all(|pair| pair[0] == pair[1]), "{ends:?}");
    assert_eq!(
        stored(&app, &user, &reply).await?["content"],
        json!(script.text())
    );
    peer.shutdown().await
}
