//! One pagination for every list: forward with `first`/`after` and backward with
//! `last`/`before` give the same items, in the same order, page by page; `pageInfo` is right at
//! both ends; argument mistakes are `BAD_USER_INPUT` naming the argument.

use serde_json::{Value, json};
use tests::{TestApp, TestUser};

/// Items per page in the walks (7 items: pages of 3, 3 and 1).
const SIZE: usize = 3;

/// A list to walk: an operation taking `$first`, `$after`, `$last`, `$before` (and `vars`),
/// where its connection is in the data, and the node field compared.
struct List<'a> {
    query: &'a str,
    vars: Value,
    path: &'a [&'a str],
    key: &'a str,
}

impl List<'_> {
    async fn page(&self, app: &TestApp, token: &str, args: Value) -> anyhow::Result<Value> {
        let mut vars = self.vars.clone();
        for (name, value) in args.as_object().into_iter().flatten() {
            vars[name] = value.clone();
        }
        let response = app.graphql(Some(token), self.query, vars).await?;
        let mut connection = response.data()?;
        for step in self.path {
            connection = &connection[*step];
        }
        Ok(connection.clone())
    }
}

fn keys(connection: &Value, key: &str) -> Vec<Value> {
    connection["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|edge| edge["node"][key].clone())
        .collect()
}

/// The page's cursors are its edges': `startCursor` the first, `endCursor` the last.
fn check_cursors(page: &Value) {
    let edges = page["edges"].as_array().cloned().unwrap_or_default();
    let info = &page["pageInfo"];
    let first = edges.first().map_or(Value::Null, |e| e["cursor"].clone());
    let last = edges.last().map_or(Value::Null, |e| e["cursor"].clone());
    assert_eq!(info["startCursor"], first, "{page}");
    assert_eq!(info["endCursor"], last, "{page}");
}

/// Walks `list` forwards and backwards and checks both give exactly `expected`, in order.
async fn walk_both_ways(
    app: &TestApp,
    token: &str,
    list: &List<'_>,
    expected: &[Value],
) -> anyhow::Result<()> {
    assert!(expected.len() > 2 * SIZE, "a walk needs three pages");
    // Forwards.
    let mut seen: Vec<Value> = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = list
            .page(app, token, json!({ "first": SIZE, "after": after }))
            .await?;
        let got = keys(&page, list.key);
        let remaining = expected.len() - seen.len();
        assert_eq!(got.len(), remaining.min(SIZE), "{page}");
        seen.extend(got);
        let info = &page["pageInfo"];
        assert_eq!(info["hasPreviousPage"], !after.is_null(), "{page}");
        assert_eq!(info["hasNextPage"], seen.len() < expected.len(), "{page}");
        check_cursors(&page);
        after = info["endCursor"].clone();
        if info["hasNextPage"] != true {
            break;
        }
    }
    assert_eq!(
        seen, expected,
        "forward pages in order, disjoint and complete"
    );
    // Past the end: an empty page without cursors.
    let past = list
        .page(app, token, json!({ "first": SIZE, "after": after }))
        .await?;
    assert_eq!(keys(&past, list.key), Vec::<Value>::new());
    assert_eq!(past["pageInfo"]["hasNextPage"], false);
    check_cursors(&past);

    // Backwards, from the end.
    let mut seen: Vec<Value> = Vec::new();
    let mut before = Value::Null;
    loop {
        let page = list
            .page(app, token, json!({ "last": SIZE, "before": before }))
            .await?;
        let got = keys(&page, list.key);
        let remaining = expected.len() - seen.len();
        assert_eq!(got.len(), remaining.min(SIZE), "{page}");
        seen.splice(0..0, got);
        let info = &page["pageInfo"];
        assert_eq!(info["hasNextPage"], !before.is_null(), "{page}");
        assert_eq!(
            info["hasPreviousPage"],
            seen.len() < expected.len(),
            "{page}"
        );
        check_cursors(&page);
        before = info["startCursor"].clone();
        if info["hasPreviousPage"] != true {
            break;
        }
    }
    assert_eq!(
        seen, expected,
        "backward pages in order, disjoint and complete"
    );

    // A window between two cursors, from either end.
    let first = list.page(app, token, json!({ "first": 1 })).await?;
    let last = list.page(app, token, json!({ "last": 1 })).await?;
    let (start, end) = (
        &first["pageInfo"]["endCursor"],
        &last["pageInfo"]["startCursor"],
    );
    let inner = &expected[1..expected.len() - 1];
    let forward = list
        .page(
            app,
            token,
            json!({ "first": SIZE, "after": start, "before": end }),
        )
        .await?;
    assert_eq!(keys(&forward, list.key), inner[..SIZE]);
    let backward = list
        .page(
            app,
            token,
            json!({ "last": SIZE, "after": start, "before": end }),
        )
        .await?;
    assert_eq!(keys(&backward, list.key), inner[inner.len() - SIZE..]);
    Ok(())
}

const USERS: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
  users(first: $first, after: $after, last: $last, before: $before) {
    totalCount edges { cursor node { email } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

/// A company of an admin and six members, oldest first.
async fn company(app: &TestApp) -> anyhow::Result<(TestUser, Vec<TestUser>)> {
    let (_, admin, members) = app.company_with_users("Acme", 6).await?;
    Ok((admin, members))
}

#[tokio::test]
async fn users_page_both_ways_in_every_order() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (admin, members) = company(&app).await?;
    let token = app.token_for(&admin);
    let oldest_first: Vec<Value> = std::iter::once(&admin)
        .chain(&members)
        .map(|u| json!(u.email))
        .collect();
    let list = List {
        query: USERS,
        vars: json!({}),
        path: &["users"],
        key: "email",
    };
    walk_both_ways(&app, &token, &list, &oldest_first).await?;

    // Another ordering walks its own way, with cursors of its own.
    let by_email_desc = "query($first: Int, $after: String, $last: Int, $before: String) {
      users(first: $first, after: $after, last: $last, before: $before,
            orderBy: {field: EMAIL, direction: DESC}) {
        edges { cursor node { email } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    let mut emails = oldest_first.clone();
    emails.sort_by(|a, b| b.as_str().cmp(&a.as_str()));
    let list = List {
        query: by_email_desc,
        vars: json!({}),
        path: &["users"],
        key: "email",
    };
    walk_both_ways(&app, &token, &list, &emails).await?;

    // `last` alone, the schema's default of `first` notwithstanding; `totalCount` unchanged.
    let newest = app
        .graphql(
            Some(&token),
            "{ users(last: 2) { totalCount edges { node { email } } pageInfo { hasPreviousPage } } }",
            json!({}),
        )
        .await?;
    let newest = &newest.data()?["users"];
    assert_eq!(keys(newest, "email"), oldest_first[5..]);
    assert_eq!(newest["totalCount"], 7);
    assert_eq!(newest["pageInfo"]["hasPreviousPage"], true);
    Ok(())
}

#[tokio::test]
async fn presets_page_both_ways_by_name() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (admin, _) = company(&app).await?;
    for name in ["Gamma", "alpha", "Delta", "Beta", "Zeta", "Eta", "Epsilon"] {
        app.sql(&format!(
            "INSERT INTO presets (company_id, owner_id, name, filter) VALUES ('{}', '{}', '{name}', '{{}}')",
            admin.company_id, admin.id
        ))
        .await?;
    }
    let names = app
        .graphql(
            Some(&app.token_for(&admin)),
            "{ presets(first: 100) { totalCount edges { node { name } } } }",
            json!({}),
        )
        .await?;
    let names = names.data()?["presets"].clone();
    assert_eq!(names["totalCount"], 7);
    let by_name = keys(&names, "name");
    assert_eq!(by_name.len(), 7);
    let list = List {
        query: "query($first: Int, $after: String, $last: Int, $before: String) {
          presets(first: $first, after: $after, last: $last, before: $before) {
            totalCount edges { cursor node { name } }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
        vars: json!({}),
        path: &["presets"],
        key: "name",
    };
    walk_both_ways(&app, &app.token_for(&admin), &list, &by_name).await
}

#[tokio::test]
async fn friends_page_both_ways_by_display_name() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (admin, members) = company(&app).await?;
    // Not a friend: left out.
    let _stranger = app
        .create_user(admin.company_id, "stranger@acme.example", "member")
        .await?;
    for member in &members {
        app.sql(&format!(
            "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) \
             VALUES ('{c}', LEAST('{a}'::uuid, '{b}'::uuid), GREATEST('{a}'::uuid, '{b}'::uuid), 'accepted', '{a}')",
            c = admin.company_id,
            a = admin.id,
            b = member.id
        ))
        .await?;
    }
    // A seventh friend, so the walk has three pages.
    let seventh = app
        .create_user(admin.company_id, "aaron@acme.example", "member")
        .await?;
    app.sql(&format!(
        "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) \
         VALUES ('{c}', LEAST('{a}'::uuid, '{b}'::uuid), GREATEST('{a}'::uuid, '{b}'::uuid), 'accepted', '{b}')",
        c = admin.company_id,
        a = admin.id,
        b = seventh.id
    ))
    .await?;
    let mut names: Vec<Value> = std::iter::once(&seventh)
        .chain(&members)
        .map(|u| json!(u.email.split('@').next().unwrap_or_default()))
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    let list = List {
        query: "query($first: Int, $after: String, $last: Int, $before: String) {
          friends(first: $first, after: $after, last: $last, before: $before) {
            edges { cursor node { displayName } }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
        vars: json!({}),
        path: &["friends"],
        key: "displayName",
    };
    walk_both_ways(&app, &app.token_for(&admin), &list, &names).await
}

#[tokio::test]
async fn audience_pages_both_ways_with_edges_and_users() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (admin, members) = company(&app).await?;
    let mut ids: Vec<Value> = std::iter::once(&admin)
        .chain(&members)
        .map(|u| json!(u.id.to_string()))
        .collect();
    ids.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    let list = List {
        query: "query($first: Int, $after: String, $last: Int, $before: String) {
          audience(first: $first, after: $after, last: $last, before: $before) {
            totalCount users { id } edges { cursor node { id } }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
        vars: json!({}),
        path: &["audience"],
        key: "id",
    };
    let token = app.token_for(&admin);
    walk_both_ways(&app, &token, &list, &ids).await?;
    // `users` holds the page's nodes, in the same order.
    let page = list.page(&app, &token, json!({ "last": SIZE })).await?;
    let users: Vec<Value> = page["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| u["id"].clone())
        .collect();
    assert_eq!(users, keys(&page, "id"));
    assert_eq!(page["totalCount"], 7);
    Ok(())
}

#[tokio::test]
async fn messages_page_both_ways_and_keep_their_default() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (admin, _) = company(&app).await?;
    let conversation = uuid::Uuid::new_v4();
    app.sql(&format!(
        "INSERT INTO conversations (id, company_id, user_id, title) VALUES ('{conversation}', '{c}', '{u}', 'Chat')",
        c = admin.company_id,
        u = admin.id
    ))
    .await?;
    let contents: Vec<Value> = (0..7).map(|i| json!(format!("m{i}"))).collect();
    for content in &contents {
        app.sql(&format!(
            "INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status) \
             VALUES (gen_random_uuid(), '{c}', '{u}', '{conversation}', 'user', {content}, 'complete')",
            c = admin.company_id,
            u = admin.id,
            content = content.to_string().replace('"', "'")
        ))
        .await?;
    }
    let token = app.token_for(&admin);
    let list = List {
        query: "query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
          conversation(id: $id) { messages(first: $first, after: $after, last: $last, before: $before) {
            edges { cursor node { content } }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }",
        vars: json!({ "id": conversation }),
        path: &["conversation", "messages"],
        key: "content",
    };
    walk_both_ways(&app, &token, &list, &contents).await?;

    // Without arguments: the newest 50, oldest first, as before; `first` alone: the oldest.
    let defaults = app
        .graphql(
            Some(&token),
            "query($id: ID!) { conversation(id: $id) {
               all: messages { edges { node { content } } pageInfo { hasPreviousPage hasNextPage } }
               oldest: messages(first: 2) { edges { node { content } } pageInfo { hasNextPage } } } }",
            json!({ "id": conversation }),
        )
        .await?;
    let defaults = &defaults.data()?["conversation"];
    assert_eq!(keys(&defaults["all"], "content"), contents);
    assert_eq!(defaults["all"]["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(defaults["all"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(keys(&defaults["oldest"], "content"), contents[..2]);
    assert_eq!(defaults["oldest"]["pageInfo"]["hasNextPage"], true);
    Ok(())
}

/// The error code and `path` of a response.
fn refusal(response: &tests::GqlResponse) -> (Option<&str>, &Value) {
    (
        response.error_code(),
        &response.body["errors"][0]["extensions"]["path"],
    )
}

#[tokio::test]
async fn page_argument_mistakes_name_the_argument() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (admin, _) = company(&app).await?;
    app.sql(&format!(
        "INSERT INTO presets (company_id, owner_id, name, filter) VALUES ('{}', '{}', 'All', '{{}}')",
        admin.company_id, admin.id
    ))
    .await?;
    let token = app.token_for(&admin);
    let users = |vars: Value| app.graphql(Some(&token), USERS, vars);
    let bad = Some("BAD_USER_INPUT");

    let both = users(json!({ "first": 2, "last": 2 })).await?;
    assert_eq!(refusal(&both), (bad, &json!("last")));
    let zero = users(json!({ "first": 0 })).await?;
    assert_eq!(refusal(&zero), (bad, &json!("first")));
    let many = users(json!({ "last": 101 })).await?;
    assert_eq!(refusal(&many), (bad, &json!("last")));
    let garbage = users(json!({ "after": "not-a-cursor" })).await?;
    assert_eq!(refusal(&garbage), (bad, &json!("after")));

    // A cursor of another list, and of another ordering of the same list.
    let presets = app
        .graphql(
            Some(&token),
            "{ presets { pageInfo { endCursor } } }",
            json!({}),
        )
        .await?;
    let preset_cursor = presets.data()?["presets"]["pageInfo"]["endCursor"].clone();
    assert!(preset_cursor.is_string());
    let foreign = users(json!({ "before": preset_cursor, "last": 1 })).await?;
    assert_eq!(refusal(&foreign), (bad, &json!("before")));
    let page = users(json!({ "first": 1 })).await?;
    let user_cursor = page.data()?["users"]["pageInfo"]["endCursor"].clone();
    let other_order = app
        .graphql(
            Some(&token),
            "query($a: String) { users(after: $a, orderBy: {field: EMAIL}) { totalCount } }",
            json!({ "a": user_cursor }),
        )
        .await?;
    assert_eq!(refusal(&other_order), (bad, &json!("after")));
    // Same key shape (name, id), another list: friends refuse a presets cursor.
    let friends = app
        .graphql(
            Some(&token),
            "query($a: String) { friends(after: $a) { edges { cursor } } }",
            json!({ "a": preset_cursor }),
        )
        .await?;
    assert_eq!(refusal(&friends), (bad, &json!("after")));
    // The messages of a conversation check theirs alike.
    let conversation = uuid::Uuid::new_v4();
    app.sql(&format!(
        "INSERT INTO conversations (id, company_id, user_id, title) VALUES ('{conversation}', '{}', '{}', 'Chat')",
        admin.company_id, admin.id
    ))
    .await?;
    let messages = app
        .graphql(
            Some(&token),
            "query($id: ID!, $b: String) { conversation(id: $id) { messages(before: $b) { edges { cursor } } } }",
            json!({ "id": conversation, "b": user_cursor }),
        )
        .await?;
    assert_eq!(refusal(&messages), (bad, &json!("before")));
    let both = app
        .graphql(
            Some(&token),
            "query($id: ID!) { conversation(id: $id) { messages(first: 1, last: 1) { edges { cursor } } } }",
            json!({ "id": conversation }),
        )
        .await?;
    assert_eq!(refusal(&both), (bad, &json!("last")));
    Ok(())
}

#[tokio::test]
async fn a_backward_page_costs_like_a_forward_one() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|config| config.graphql_max_complexity = 60).await?;
    let (admin, _) = company(&app).await?;
    let token = app.token_for(&admin);
    // A user costs 2 (the node and its field) in its edge: 30 users are over the limit.
    for page in ["users(first: 30)", "users(last: 30)"] {
        let response = app
            .graphql(
                Some(&token),
                &format!("{{ {page} {{ edges {{ node {{ email }} }} }} }}"),
                json!({}),
            )
            .await?;
        assert!(
            response
                .error_message()
                .is_some_and(|m| m.contains("complexity")),
            "{page}: {}",
            response.body
        );
    }
    let small = app
        .graphql(
            Some(&token),
            "{ users(last: 5) { edges { node { email } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(keys(&small.data()?["users"], "email").len(), 5);
    Ok(())
}
