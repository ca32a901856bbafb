//! Chat with streamed replies, end to end: the real server, a fake provider on loopback, and
//! `graphql-transport-ws` clients. Replies that a test must observe mid-stream are paused by
//! the fake until the test releases them, so nothing depends on timing.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use server::config::Config;
use tests::{
    GqlResponse, TestApp, TestUser,
    fake_llm::{FakeLlm, Reply, StreamScript},
    ws::{WsClient, WsOutcome},
};

pub const EVENTS: &str = "subscription($id: ID!) { conversationEvents(conversationId: $id) {
  __typename
  ... on MessageStarted { message { id status role } }
  ... on MessageDelta { messageId index text }
  ... on MessageCompleted { message { id status content model promptTokens completionTokens } }
  ... on MessageFailed { message { id status content } reason }
} }";

const SEND: &str = "mutation($c: ID!, $t: String!) { sendMessage(conversationId: $c, content: $t) {
  userMessage { id role status content } assistantMessage { id role status content } } }";

/// A server whose provider is `fake` (no retries unless `customize` says so).
pub async fn chat_app(
    fake: &FakeLlm,
    customize: impl FnOnce(&mut Config),
) -> anyhow::Result<TestApp> {
    let base_url = fake.base_url();
    let app = TestApp::spawn_with(|c| {
        c.llm_base_url = Some(base_url);
        c.llm_max_retries = 0;
        customize(c);
    })
    .await?;
    pubsub_ready(app.state(), app.state()).await?;
    Ok(app)
}

/// Waits until an event published on `from` reaches subscribers on `to` (listeners connect
/// to Redis in the background at start-up).
pub async fn pubsub_ready(
    from: &server::state::AppState,
    to: &server::state::AppState,
) -> anyhow::Result<()> {
    let mut probe = Box::pin(to.pubsub.subscribe("probe"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        from.pubsub.publish("probe", &json!({})).await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), probe.next()).await {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "pub/sub not ready");
    }
}

/// A member of a fresh company and their token.
pub async fn member(app: &TestApp, company: &str) -> anyhow::Result<(TestUser, String)> {
    let (_, _, members) = app.company_with_users(company, 1).await?;
    let user = members
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no member"))?;
    let token = app.token_for(&user);
    Ok((user, token))
}

pub async fn create_conversation(
    app: &TestApp,
    token: &str,
    system_prompt: Option<&str>,
) -> anyhow::Result<String> {
    let response = app
        .graphql(
            Some(token),
            "mutation($i: CreateConversationInput!) { createConversation(input: $i) { id title } }",
            json!({ "i": { "title": "Test chat", "systemPrompt": system_prompt } }),
        )
        .await?;
    Ok(response.data()?["createConversation"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

pub async fn send(
    app: &TestApp,
    token: &str,
    conversation: &str,
    content: &str,
) -> anyhow::Result<GqlResponse> {
    app.graphql(
        Some(token),
        SEND,
        json!({ "c": conversation, "t": content }),
    )
    .await
}

/// Sends a message and returns the reply's id.
pub async fn send_ok(
    app: &TestApp,
    token: &str,
    conversation: &str,
    content: &str,
) -> anyhow::Result<String> {
    let response = send(app, token, conversation, content).await?;
    let data = response.data()?;
    let reply = &data["sendMessage"]["assistantMessage"];
    anyhow::ensure!(reply["status"] == "STREAMING", "{reply}");
    Ok(reply["id"].as_str().unwrap_or_default().to_owned())
}

/// A socket subscribed to the conversation's events.
pub async fn subscribe(
    addr: std::net::SocketAddr,
    token: &str,
    conversation: &str,
) -> anyhow::Result<WsClient> {
    let url = format!("ws://{addr}/graphql/ws");
    let payload = json!({ "authorization": format!("Bearer {token}") });
    let WsOutcome::Acked(mut client) = WsClient::connect(&url, None, payload).await? else {
        anyhow::bail!("connection was not acknowledged");
    };
    client
        .subscribe("1", EVENTS, json!({ "id": conversation }))
        .await?;
    Ok(*client)
}

/// The next event of the subscription.
pub async fn next_event(ws: &mut WsClient) -> anyhow::Result<Value> {
    let message = ws.next_json().await?;
    anyhow::ensure!(message["type"] == "next", "{message}");
    anyhow::ensure!(message["payload"]["errors"].is_null(), "{message}");
    Ok(message["payload"]["data"]["conversationEvents"].clone())
}

/// Waits for `MessageStarted` of `reply`, skipping nothing else.
pub async fn started(ws: &mut WsClient, reply: &str) -> anyhow::Result<()> {
    let event = next_event(ws).await?;
    anyhow::ensure!(
        event["__typename"] == "MessageStarted" && event["message"]["id"] == reply,
        "{event}"
    );
    Ok(())
}

/// The deltas of a reply up to its end: their concatenated text, their indexes, and the
/// final event.
pub async fn until_end(ws: &mut WsClient) -> anyhow::Result<(String, Vec<i64>, Value)> {
    let mut text = String::new();
    let mut indexes = Vec::new();
    loop {
        let event = next_event(ws).await?;
        match event["__typename"].as_str() {
            Some("MessageDelta") => {
                text.push_str(event["text"].as_str().unwrap_or_default());
                indexes.push(event["index"].as_i64().unwrap_or(-1));
            }
            Some("MessageCompleted" | "MessageFailed") => return Ok((text, indexes, event)),
            _ => anyhow::bail!("unexpected event {event}"),
        }
    }
}

/// The stored row of a message, read as its owner.
pub async fn stored(app: &TestApp, owner: &TestUser, id: &str) -> anyhow::Result<Value> {
    let rows = app
        .query_as(
            owner,
            &format!(
                "SELECT content, status, model, prompt_tokens, completion_tokens, error \
                 FROM messages WHERE id = '{id}'"
            ),
        )
        .await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("message {id} not stored"))
}

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
    let mut seen = String::new();
    for expected in 0..3 {
        let delta = next_event(&mut early).await?;
        assert_eq!(delta["index"], expected, "{delta}");
        seen.push_str(delta["text"].as_str().unwrap_or_default());
    }

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
    let ended = ws.next_json().await?;
    assert_eq!(ended["type"], "complete", "{ended}");

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
