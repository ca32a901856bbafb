//! Helpers of the chat tests: a server on the fake provider, conversations, messages, and
//! subscribers that read the conversation's events.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use server::config::Config;
use tests::{
    GqlResponse, TestApp, TestUser,
    fake_llm::FakeLlm,
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

/// Sends a message to the server at `addr` (another instance).
pub async fn send_at(
    addr: std::net::SocketAddr,
    token: &str,
    conversation: &str,
    content: &str,
) -> anyhow::Result<GqlResponse> {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": SEND, "variables": { "c": conversation, "t": content } }))
        .send()
        .await?;
    GqlResponse::from_reqwest(response).await
}

/// Sends a message to the server at `addr` and returns the reply's id.
pub async fn send_ok_at(
    addr: std::net::SocketAddr,
    token: &str,
    conversation: &str,
    content: &str,
) -> anyhow::Result<String> {
    let response = send_at(addr, token, conversation, content).await?;
    let reply = &response.data()?["sendMessage"]["assistantMessage"];
    anyhow::ensure!(reply["status"] == "STREAMING", "{reply}");
    Ok(reply["id"].as_str().unwrap_or_default().to_owned())
}

/// Reads the deltas of a reply until their text is `text` (live deltas, or a catch-up delta
/// holding several when the subscription became active late).
pub async fn deltas_until(ws: &mut WsClient, text: &str) -> anyhow::Result<()> {
    let mut seen = String::new();
    while seen != text {
        let event = next_event(ws).await?;
        anyhow::ensure!(event["__typename"] == "MessageDelta", "{event}");
        seen.push_str(event["text"].as_str().unwrap_or_default());
        anyhow::ensure!(text.starts_with(&seen), "got {seen:?}, expected {text:?}");
    }
    Ok(())
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
