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

const EVERY_TYPE: &str = "query($id: ID!) { node(id: $id) { __typename id \
    ... on Message { content role } ... on Knowledge { content } \
    ... on FriendRequest { status message } ... on Session { current } \
    ... on Invitation { email role token } } }";

/// `node(id:)` for `caller` with the fields of every type; fails on errors.
async fn any_node(app: &TestApp, caller: &TestUser, id: &str) -> anyhow::Result<Value> {
    let response = app
        .graphql(
            Some(&app.token_for(caller)),
            EVERY_TYPE,
            json!({ "id": id }),
        )
        .await?;
    Ok(response.data()?["node"].clone())
}

#[tokio::test]
async fn messages_notes_requests_sessions_and_invitations_are_nodes_for_who_may_list_them()
-> anyhow::Result<()> {
    let fake = tests::fake_llm::FakeLlm::start(tests::fake_llm::Reply::Stream(
        tests::fake_llm::StreamScript::tokens(["Hi."]),
    ))
    .await?;
    let app = super::chat_support::chat_app(&fake, |_| {}).await?;
    let (acme, admin, members) = app.company_with_users("Acme", 2).await?;
    let (_, outsider, _) = app.company_with_users("Globex", 0).await?;
    let (ann, bob) = (&members[0], &members[1]);
    let manager = app
        .create_user(acme, "manager@acme.example", "manager")
        .await?;
    let ann_token = app.token_for(ann);

    let conversation = super::chat_support::create_conversation(&app, &ann_token, None).await?;
    let sent = super::chat_support::send(&app, &ann_token, &conversation, "Hello there").await?;
    let message = sent.data()?["sendMessage"]["userMessage"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let note = create(
        &app,
        ann,
        "mutation { addKnowledge(content: \"Ann likes tea.\") { id } }",
        "addKnowledge",
    )
    .await?;
    let request = app
        .graphql(
            Some(&ann_token),
            "mutation($u: ID!) { sendFriendRequest(userId: $u, message: \"Hi Bob\") { id } }",
            json!({ "u": bob.id.to_string() }),
        )
        .await?
        .data()?["sendFriendRequest"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let invitation = app
        .graphql(
            Some(&app.token_for(&admin)),
            "mutation { inviteUser(input: {email: \"new@acme.example\", role: \"member\"}) { id } }",
            json!({}),
        )
        .await?
        .data()?["inviteUser"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let session = ann.session_id.to_string();

    // Each, for whom its list shows it.
    let found = any_node(&app, ann, &message).await?;
    assert_eq!(found["__typename"], "Message", "{found}");
    assert_eq!(
        (found["content"].clone(), found["role"].clone()),
        (json!("Hello there"), json!("USER"))
    );
    let found = any_node(&app, ann, &note).await?;
    assert_eq!(found["__typename"], "Knowledge", "{found}");
    assert_eq!(found["content"], "Ann likes tea.");
    for party in [ann, bob] {
        let found = any_node(&app, party, &request).await?;
        assert_eq!(found["__typename"], "FriendRequest", "{found}");
        assert_eq!(
            (found["status"].clone(), found["message"].clone()),
            (json!("PENDING"), json!("Hi Bob"))
        );
    }
    let found = any_node(&app, ann, &session).await?;
    assert_eq!(found["__typename"], "Session", "{found}");
    assert_eq!(found["current"], true);
    for reader in [&admin, &manager] {
        let found = any_node(&app, reader, &invitation).await?;
        assert_eq!(found["__typename"], "Invitation", "{found}");
        assert_eq!(found["email"], "new@acme.example");
        assert_eq!(found["token"], Value::Null);
    }

    // Another company, someone else in the company, a role without the permission, or
    // what the list no longer shows: null, as a random id.
    let nulls = [
        (outsider.clone(), message.clone()),
        (outsider.clone(), note.clone()),
        (outsider.clone(), request.clone()),
        (outsider.clone(), session.clone()),
        (outsider.clone(), invitation.clone()),
        // Another member's message and note; a request between others; a session of
        // another user, even for an admin, who may revoke it: `sessions` lists one's own.
        (bob.clone(), message.clone()),
        (bob.clone(), note.clone()),
        (admin.clone(), message.clone()),
        (admin.clone(), request.clone()),
        (admin.clone(), session.clone()),
        (bob.clone(), session.clone()),
        // Members do not read invitations.
        (ann.clone(), invitation.clone()),
    ];
    for (caller, id) in nulls {
        let response = app
            .graphql(
                Some(&app.token_for(&caller)),
                EVERY_TYPE,
                json!({ "id": id }),
            )
            .await?;
        assert_eq!(
            response.body["data"]["node"],
            Value::Null,
            "{} reading {id}",
            caller.email
        );
        assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    }

    // Answered, the request leaves the list of pending ones, and node follows it; a revoked
    // session is no longer live, and neither is it a node.
    app.graphql(
        Some(&app.token_for(bob)),
        "mutation($r: ID!) { respondToFriendRequest(requestId: $r, accept: true) { status } }",
        json!({ "r": request }),
    )
    .await?
    .data()?;
    assert_eq!(any_node(&app, ann, &request).await?, Value::Null);
    let other_session = app.create_session(acme, ann.id).await?;
    assert_eq!(
        any_node(&app, ann, &other_session.to_string()).await?["__typename"],
        "Session"
    );
    app.sql(&format!(
        "UPDATE sessions SET revoked_at = now() WHERE id = '{other_session}'"
    ))
    .await?;
    assert_eq!(
        any_node(&app, ann, &other_session.to_string()).await?,
        Value::Null
    );
    Ok(())
}
