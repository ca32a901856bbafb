//! Conversations and knowledge: create, list, search, page, rename, clear, delete; and the
//! offline demo provider when no LLM is configured.

use std::time::Duration;

use serde_json::{Value, json};
use tests::{
    TestApp,
    fake_llm::{FakeLlm, Reply, StreamScript},
};

use super::chat_support::{
    chat_app, create_conversation, member, pubsub_ready, send_ok, started, stored, subscribe,
    until_end,
};

const LIST: &str = "query($first: Int, $after: String, $search: String) {
  conversations(first: $first, after: $after, search: $search) {
    edges { cursor node { id title } } pageInfo { hasNextPage endCursor } } }";

fn titles(response: &Value) -> Vec<String> {
    response["conversations"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["title"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn conversations_are_listed_newest_first_paged_searched_renamed_and_deleted()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, token) = member(&app, "Acme").await?;
    for title in ["Alpha", "Beta", "Gamma 100%"] {
        app.graphql(
            Some(&token),
            "mutation($t: String) { createConversation(input: { title: $t }) { id } }",
            json!({ "t": title }),
        )
        .await?
        .data()?;
    }
    let page = app
        .graphql(Some(&token), LIST, json!({ "first": 2 }))
        .await?;
    let page = page.data()?;
    assert_eq!(titles(page), ["Gamma 100%", "Beta"]);
    assert_eq!(page["conversations"]["pageInfo"]["hasNextPage"], true);
    let after = page["conversations"]["pageInfo"]["endCursor"].clone();
    let rest = app
        .graphql(Some(&token), LIST, json!({ "first": 2, "after": after }))
        .await?;
    let rest = rest.data()?;
    assert_eq!(titles(rest), ["Alpha"]);
    assert_eq!(rest["conversations"]["pageInfo"]["hasNextPage"], false);
    let found = app
        .graphql(Some(&token), LIST, json!({ "search": "100%" }))
        .await?;
    assert_eq!(titles(found.data()?), ["Gamma 100%"]);
    let bad = app
        .graphql(Some(&token), LIST, json!({ "after": "nonsense" }))
        .await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));

    let alpha = rest["conversations"]["edges"][0]["node"]["id"].clone();
    let renamed = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { renameConversation(id: $id, title: \" Omega \") { title } }",
            json!({ "id": alpha }),
        )
        .await?;
    assert_eq!(renamed.data()?["renameConversation"]["title"], "Omega");
    let empty = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { renameConversation(id: $id, title: \"  \") { title } }",
            json!({ "id": alpha }),
        )
        .await?;
    assert_eq!(empty.error_code(), Some("BAD_USER_INPUT"));
    let deleted = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { deleteConversation(id: $id) }",
            json!({ "id": alpha }),
        )
        .await?;
    assert_eq!(deleted.data()?["deleteConversation"], true);
    let gone = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { deleteConversation(id: $id) }",
            json!({ "id": alpha }),
        )
        .await?;
    assert_eq!(gone.error_code(), Some("NOT_FOUND"));
    let left = app.graphql(Some(&token), LIST, json!({})).await?;
    assert_eq!(titles(left.data()?), ["Gamma 100%", "Beta"]);
    Ok(())
}

#[tokio::test]
async fn clear_conversation_deletes_the_messages_and_keeps_the_conversation() -> anyhow::Result<()>
{
    let fake = FakeLlm::start(Reply::Stream(StreamScript::tokens(["ok"]).pause_after(0))).await?;
    let app = chat_app(&fake, |_| {}).await?;
    let (_, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let mut ws = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "hello").await?;
    started(&mut ws, &reply).await?;
    fake.release();
    until_end(&mut ws).await?;
    let messages = "query($id: ID!) { conversation(id: $id) { title messages(last: 1) {
        edges { cursor node { role } } pageInfo { hasPreviousPage startCursor } } } }";
    let before = app
        .graphql(Some(&token), messages, json!({ "id": conversation }))
        .await?;
    let before = before.data()?;
    let page = &before["conversation"]["messages"];
    assert_eq!(page["edges"][0]["node"]["role"], "ASSISTANT");
    assert_eq!(page["pageInfo"]["hasPreviousPage"], true);
    let older = app
        .graphql(
            Some(&token),
            "query($id: ID!, $b: String) { conversation(id: $id) { messages(before: $b) {
                edges { node { role content } } pageInfo { hasPreviousPage } } } }",
            json!({ "id": conversation, "b": page["pageInfo"]["startCursor"] }),
        )
        .await?;
    let older = older.data()?;
    assert_eq!(
        older["conversation"]["messages"]["edges"],
        json!([{ "node": { "role": "USER", "content": "hello" } }])
    );
    let cleared = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { clearConversation(id: $id) { title messages { edges { node { id } } } } }",
            json!({ "id": conversation }),
        )
        .await?;
    let cleared = cleared.data()?;
    assert_eq!(cleared["clearConversation"]["title"], "Test chat");
    assert_eq!(cleared["clearConversation"]["messages"]["edges"], json!([]));
    Ok(())
}

#[tokio::test]
async fn knowledge_is_added_listed_and_deleted_by_its_owner_only() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, token) = member(&app, "Acme").await?;
    let (_, other) = member(&app, "Globex").await?;
    let mut ids = Vec::new();
    for note in ["I prefer metric units.", "My name is Ada."] {
        let added = app
            .graphql(
                Some(&token),
                "mutation($c: String!) { addKnowledge(content: $c) { id content } }",
                json!({ "c": note }),
            )
            .await?;
        ids.push(added.data()?["addKnowledge"]["id"].clone());
    }
    let empty = app
        .graphql(
            Some(&token),
            "mutation { addKnowledge(content: \" \") { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(empty.error_code(), Some("BAD_USER_INPUT"));
    let list =
        "query { knowledge(first: 10) { edges { node { id content } } pageInfo { hasNextPage } } }";
    let listed = app.graphql(Some(&token), list, json!({})).await?;
    let listed = listed.data()?;
    assert_eq!(
        listed["knowledge"]["edges"][0]["node"]["content"],
        "My name is Ada."
    );
    assert_eq!(
        listed["knowledge"]["edges"].as_array().map(Vec::len),
        Some(2)
    );
    let theirs = app.graphql(Some(&other), list, json!({})).await?;
    assert_eq!(theirs.data()?["knowledge"]["edges"], json!([]));
    let delete = "mutation($id: ID!) { deleteKnowledge(id: $id) }";
    let refused = app
        .graphql(Some(&other), delete, json!({ "id": ids[0] }))
        .await?;
    assert_eq!(refused.error_code(), Some("NOT_FOUND"));
    let deleted = app
        .graphql(Some(&token), delete, json!({ "id": ids[0] }))
        .await?;
    assert_eq!(deleted.data()?["deleteKnowledge"], true);
    let listed = app.graphql(Some(&token), list, json!({})).await?;
    assert_eq!(
        listed.data()?["knowledge"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn without_a_provider_the_demo_model_streams_a_labelled_reply() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.llm_demo_token_ms = 1).await?;
    pubsub_ready(app.state(), app.state()).await?;
    let (user, token) = member(&app, "Acme").await?;
    let conversation = create_conversation(&app, &token, None).await?;
    let reply = send_ok(&app, &token, &conversation, "hello demo").await?;
    tests::eventually(Duration::from_secs(30), "the demo reply", || async {
        stored(&app, &user, &reply)
            .await
            .is_ok_and(|row| row["status"] == "complete")
    })
    .await?;
    let row = stored(&app, &user, &reply).await?;
    assert!(
        row["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("[demo model]"),
        "{row}"
    );
    assert!(
        row["model"]
            .as_str()
            .unwrap_or_default()
            .starts_with("demo"),
        "{row}"
    );
    Ok(())
}
