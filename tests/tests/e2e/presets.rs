//! Presets: saving, listing, editing and sharing filters; names unique per company (also
//! under concurrent creation); members edit only their own, managers and admins any.

use serde_json::{Value, json};
use tests::{TestApp, TestUser};

const CREATE: &str = "mutation($input: CreatePresetInput!) {
  createPreset(input: $input) { id name description filter visibility ownerId size canEdit }
}";
const UPDATE: &str = "mutation($id: ID!, $input: UpdatePresetInput!) {
  updatePreset(id: $id, input: $input) { id name visibility filter size }
}";

fn pro_filter() -> Value {
    json!({"include": {"all": [{"field": "plan", "op": "eq", "value": "pro"}]}})
}

async fn arrange(app: &TestApp) -> anyhow::Result<(TestUser, Vec<TestUser>, TestUser)> {
    let (company, admin, members) = app.company_with_users("Acme", 3).await?;
    let manager = app
        .create_user(company, "manager@acme.example", "manager")
        .await?;
    app.sql(&format!(
        "INSERT INTO audience_fields (company_id, name, type) VALUES ('{company}', 'plan', 'string'); \
         UPDATE users SET attributes = '{{\"plan\": \"pro\"}}' WHERE company_id = '{company}' AND role = 'member'"
    ))
    .await?;
    Ok((admin, members, manager))
}

async fn create(
    app: &TestApp,
    user: &TestUser,
    name: &str,
    visibility: &str,
) -> anyhow::Result<Value> {
    let response = app
        .graphql(
            Some(&app.token_for(user)),
            CREATE,
            json!({"input": {"name": name, "filter": pro_filter(), "visibility": visibility}}),
        )
        .await?;
    Ok(response.data()?["createPreset"].clone())
}

#[tokio::test]
async fn presets_are_saved_sized_listed_duplicated_and_deleted() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, members, _) = arrange(&app).await?;
    let ann = &members[0];
    let token = app.token_for(ann);
    let preset = create(&app, ann, "Pro users", "PRIVATE").await?;
    assert_eq!(preset["size"], 3);
    assert_eq!(preset["canEdit"], true);
    assert_eq!(preset["ownerId"], json!(ann.id));
    let id = preset["id"].clone();

    let size = app
        .graphql(
            Some(&token),
            "query($id: ID) { audienceSize(presetId: $id) }",
            json!({"id": id}),
        )
        .await?;
    assert_eq!(size.data()?["audienceSize"], 3);

    let copy = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { duplicatePreset(id: $id, name: \"Pro copy\") { id name filter visibility } }",
            json!({"id": id}),
        )
        .await?;
    assert_eq!(copy.data()?["duplicatePreset"]["filter"], pro_filter());

    let updated = app
        .graphql(
            Some(&token),
            UPDATE,
            json!({"id": id, "input": {"name": "Everyone", "filter": {}, "visibility": "COMPANY"}}),
        )
        .await?;
    let updated = &updated.data()?["updatePreset"];
    assert_eq!(updated["size"], 5);
    assert_eq!(updated["visibility"], "COMPANY");

    let listed = app
        .graphql(
            Some(&token),
            "{ presets(first: 1, search: \"o\") { totalCount edges { node { name } } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await?;
    let listed = &listed.data()?["presets"];
    assert_eq!(listed["totalCount"], 2);
    assert_eq!(listed["edges"][0]["node"]["name"], "Everyone");
    assert_eq!(listed["pageInfo"]["hasNextPage"], true);
    let next = app
        .graphql(
            Some(&token),
            "query($after: String) { presets(first: 5, after: $after) { edges { node { name } } pageInfo { hasNextPage } } }",
            json!({"after": listed["pageInfo"]["endCursor"]}),
        )
        .await?;
    assert_eq!(
        next.data()?["presets"]["edges"][0]["node"]["name"],
        "Pro copy"
    );

    let deleted = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { deletePreset(id: $id) }",
            json!({"id": id}),
        )
        .await?;
    assert_eq!(deleted.data()?["deletePreset"], true);
    let gone = app
        .graphql(
            Some(&token),
            "query($id: ID!) { preset(id: $id) { id } }",
            json!({"id": id}),
        )
        .await?;
    assert_eq!(gone.data()?["preset"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn invalid_filters_and_taken_names_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, members, _) = arrange(&app).await?;
    let token = app.token_for(&members[0]);
    let bad = app
        .graphql(
            Some(&token),
            CREATE,
            json!({"input": {"name": "Bad", "filter": {"include": {"all": [{"field": "plan", "op": "gt", "value": 1}]}}}}),
        )
        .await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        bad.body["errors"][0]["extensions"]["path"],
        "include.all[0].op"
    );

    create(&app, &members[0], "Pro users", "PRIVATE").await?;
    // Another member cannot see it, and still cannot take its name (case-insensitive).
    let taken = app
        .graphql(
            Some(&app.token_for(&members[1])),
            CREATE,
            json!({"input": {"name": "PRO USERS", "filter": {}}}),
        )
        .await?;
    assert_eq!(taken.error_code(), Some("CONFLICT"));

    // Concurrent creations of one name: exactly one wins.
    let tokens: Vec<String> = members.iter().map(|m| app.token_for(m)).collect();
    let attempts = tokens.iter().map(|token| {
        app.graphql(
            Some(token),
            CREATE,
            json!({"input": {"name": "Race", "filter": {}}}),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut won = 0;
    for result in results {
        let response = result?;
        match response.error_code() {
            None => won += 1,
            Some(code) => assert_eq!(code, "CONFLICT"),
        }
    }
    assert_eq!(won, 1);
    Ok(())
}

#[tokio::test]
async fn members_edit_their_own_presets_and_managers_edit_all() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (admin, members, manager) = arrange(&app).await?;
    let (ann, bob) = (&members[0], &members[1]);
    let private = create(&app, ann, "Ann private", "PRIVATE").await?;
    let shared = create(&app, ann, "Ann shared", "COMPANY").await?;

    let bob_token = app.token_for(bob);
    let seen = app
        .graphql(
            Some(&bob_token),
            "{ presets { edges { node { name canEdit } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        seen.data()?["presets"]["edges"],
        json!([{"node": {"name": "Ann shared", "canEdit": false}}])
    );
    let hidden = app
        .graphql(
            Some(&bob_token),
            "query($id: ID!) { preset(id: $id) { id } }",
            json!({"id": private["id"]}),
        )
        .await?;
    assert_eq!(hidden.data()?["preset"], Value::Null);

    let refused = app
        .graphql(
            Some(&bob_token),
            UPDATE,
            json!({"id": shared["id"], "input": {"name": "Mine"}}),
        )
        .await?;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    let refused = app
        .graphql(
            Some(&bob_token),
            "mutation($id: ID!) { deletePreset(id: $id) }",
            json!({"id": shared["id"]}),
        )
        .await?;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    let missing = app
        .graphql(
            Some(&bob_token),
            UPDATE,
            json!({"id": private["id"], "input": {"name": "Mine"}}),
        )
        .await?;
    assert_eq!(missing.error_code(), Some("NOT_FOUND"));

    for (user, name) in [(&manager, "By manager"), (&admin, "By admin")] {
        let changed = app
            .graphql(
                Some(&app.token_for(user)),
                UPDATE,
                json!({"id": private["id"], "input": {"name": name}}),
            )
            .await?;
        assert_eq!(changed.data()?["updatePreset"]["name"], name);
    }

    // Another company sees none of it.
    let (_, outsider, _) = app.company_with_users("Globex", 0).await?;
    let other = app
        .graphql(
            Some(&app.token_for(&outsider)),
            "{ presets { totalCount } }",
            json!({}),
        )
        .await?;
    assert_eq!(other.data()?["presets"]["totalCount"], 0);
    Ok(())
}

#[tokio::test]
async fn a_page_reads_the_filters_only_when_it_shows_them() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, members, _) = arrange(&app).await?;
    let ann = &members[0];
    create(&app, ann, "Pro users", "COMPANY").await?;
    // A page without filters (its documents left unread) beside pages that show one, or a
    // size computed from one, in the same request: each answers as if it read everything.
    let answer = app
        .graphql(
            Some(&app.token_for(ann)),
            "{ lean: presets { edges { node { name visibility canEdit } } }
               shown: presets { edges { node { name filter } } }
               sized: presets { edges { node { name size } } }
               spread: presets { edges { node { ...Doc } } } }
             fragment Doc on Preset { filter }",
            json!({}),
        )
        .await?;
    let data = answer.data()?;
    let node = |page: &str| data[page]["edges"][0]["node"].clone();
    assert_eq!(
        node("lean"),
        json!({"name": "Pro users", "visibility": "COMPANY", "canEdit": true})
    );
    assert_eq!(node("shown")["filter"], pro_filter());
    assert_eq!(node("sized")["size"], 3);
    assert_eq!(node("spread")["filter"], pro_filter());
    Ok(())
}
