//! Relay's `node(id:)` / `nodes(ids:)`: every id answers what its direct read answers the
//! caller, and whatever the caller may not see is `null` exactly as a random id is.

use serde_json::{Value, json};
use tests::{TestApp, TestUser};
use uuid::Uuid;

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id \
    ... on User { email } ... on Company { name } ... on Conversation { title } \
    ... on Preset { name } } }";

async fn node(app: &TestApp, as_user: &TestUser, id: &str) -> anyhow::Result<Value> {
    let response = app
        .graphql(Some(&app.token_for(as_user)), NODE, json!({ "id": id }))
        .await?;
    Ok(response.data()?["node"].clone())
}

async fn create(
    app: &TestApp,
    owner: &TestUser,
    query: &str,
    field: &str,
) -> anyhow::Result<String> {
    let response = app
        .graphql(Some(&app.token_for(owner)), query, json!({}))
        .await?;
    Ok(response.data()?[field]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn node_answers_what_the_direct_reads_answer() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (acme, admin, members) = app.company_with_users("Acme", 2).await?;
    let (globex, outsider, _) = app.company_with_users("Globex", 0).await?;
    let member = &members[0];
    let conversation = create(
        &app,
        member,
        "mutation { createConversation(input: {title: \"Plans\"}) { id } }",
        "createConversation",
    )
    .await?;
    let private_preset = create(
        &app,
        member,
        "mutation { createPreset(input: {name: \"Mine\", filter: {include: {all: [{field: \"role\", op: \"eq\", value: \"member\"}]}}}) { id } }",
        "createPreset",
    )
    .await?;

    // Each type, through node, as its direct read answers the member.
    let user = node(&app, member, &admin.id.to_string()).await?;
    assert_eq!(user["__typename"], "User", "{user}");
    assert_eq!(user["email"], json!(admin.email));
    let company = node(&app, member, &acme.to_string()).await?;
    assert_eq!(company["__typename"], "Company");
    assert_eq!(company["name"], "Acme");
    let chat = node(&app, member, &conversation).await?;
    assert_eq!(chat["__typename"], "Conversation");
    assert_eq!(chat["title"], "Plans");
    let preset = node(&app, member, &private_preset).await?;
    assert_eq!(preset["__typename"], "Preset");
    assert_eq!(preset["name"], "Mine");

    // Another company's objects, another member's conversation and private preset, a
    // random id and a malformed one: null, and no error that could tell them apart.
    let other = &members[1];
    for (caller, id) in [
        (outsider.clone(), admin.id.to_string()),
        (outsider.clone(), acme.to_string()),
        (outsider.clone(), conversation.clone()),
        (outsider.clone(), private_preset.clone()),
        (member.clone(), outsider.id.to_string()),
        (member.clone(), globex.to_string()),
        (other.clone(), conversation.clone()),
        (other.clone(), private_preset.clone()),
        (member.clone(), Uuid::new_v4().to_string()),
        (member.clone(), "not-an-id".to_owned()),
    ] {
        let response = app
            .graphql(Some(&app.token_for(&caller)), NODE, json!({ "id": id }))
            .await?;
        assert_eq!(response.body["data"]["node"], Value::Null, "{id}");
        assert!(
            response.body.get("errors").is_none(),
            "{id}: {:?}",
            response.body
        );
    }
    // The direct reads agree.
    let direct = app
        .graphql(
            Some(&app.token_for(other)),
            "query($id: ID!) { conversation(id: $id) { id } }",
            json!({ "id": conversation }),
        )
        .await?;
    assert_eq!(direct.data()?["conversation"], Value::Null);

    // A user blocked by the caller is null through node exactly when `user(id:)` says so.
    app.graphql(
        Some(&app.token_for(member)),
        "mutation($u: ID!) { blockUser(userId: $u) }",
        json!({ "u": other.id.to_string() }),
    )
    .await?
    .data()?;
    for caller in [member, other] {
        let target = if caller.id == member.id {
            other
        } else {
            member
        };
        let direct = app
            .graphql(
                Some(&app.token_for(caller)),
                "query($id: ID!) { user(id: $id) { id } }",
                json!({ "id": target.id.to_string() }),
            )
            .await?;
        let through_node = node(&app, caller, &target.id.to_string()).await?;
        assert_eq!(
            direct.data()?["user"].is_null(),
            through_node.is_null(),
            "{direct:?} / {through_node}"
        );
    }

    // Anonymous callers are told to sign in, as by the direct reads.
    let anonymous = app
        .graphql(None, NODE, json!({ "id": acme.to_string() }))
        .await?;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    Ok(())
}

#[tokio::test]
async fn nodes_keeps_the_order_and_is_bounded() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (acme, admin, members) = app.company_with_users("Acme", 1).await?;
    let token = app.token_for(&admin);
    let ids = json!([
        members[0].id.to_string(),
        Uuid::new_v4().to_string(),
        acme.to_string(),
        "nope",
    ]);
    let response = app
        .graphql(
            Some(&token),
            "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
            json!({ "ids": ids }),
        )
        .await?;
    let nodes = &response.data()?["nodes"];
    assert_eq!(nodes[0]["id"], json!(members[0].id.to_string()));
    assert_eq!(nodes[0]["__typename"], "User");
    assert_eq!(nodes[1], Value::Null);
    assert_eq!(nodes[2]["__typename"], "Company");
    assert_eq!(nodes[3], Value::Null);

    let too_many: Vec<String> = (0..101).map(|_| Uuid::new_v4().to_string()).collect();
    let refused = app
        .graphql(
            Some(&token),
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({ "ids": too_many }),
        )
        .await?;
    assert_eq!(
        refused.error_code(),
        Some("BAD_USER_INPUT"),
        "{:?}",
        refused.body
    );
    assert!(refused.error_message().is_some_and(|m| m.contains("100")));
    Ok(())
}
