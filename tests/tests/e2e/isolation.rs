//! Company isolation through GraphQL and through raw SQL in request transactions.

use futures_util::{StreamExt, stream};
use serde_json::json;
use tests::TestApp;

const USERS: &str = "query($first: Int, $after: String, $search: String) {
  users(first: $first, after: $after, search: $search) {
    totalCount
    edges { cursor node { id email } }
    pageInfo { hasNextPage endCursor }
  }
}";

#[tokio::test]
async fn users_lists_only_the_callers_company() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (a, a_admin, a_members) = app.company_with_users("Acme", 3).await?;
    let (_b, b_admin, _) = app.company_with_users("Globex", 2).await?;

    let response = app
        .graphql(
            Some(&app.token_for(&a_admin)),
            USERS,
            json!({ "first": 50 }),
        )
        .await?;
    let data = response.data()?;
    assert_eq!(data["users"]["totalCount"], 4);
    let emails: Vec<&str> = data["users"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["node"]["email"].as_str())
        .collect();
    assert_eq!(emails.len(), 4);
    assert!(
        emails.iter().all(|e| e.ends_with("@acme.example")),
        "{emails:?}"
    );
    assert!(!emails.contains(&b_admin.email.as_str()));
    assert!(a_members.iter().all(|m| m.company_id == a));
    Ok(())
}

#[tokio::test]
async fn user_of_another_company_is_null() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, a_admin, _) = app.company_with_users("Acme", 0).await?;
    let (_, b_admin, _) = app.company_with_users("Globex", 0).await?;
    let query = "query($id: ID!) { user(id: $id) { id email } }";

    let other = app
        .graphql(
            Some(&app.token_for(&a_admin)),
            query,
            json!({ "id": b_admin.id }),
        )
        .await?;
    assert_eq!(other.data()?["user"], json!(null));

    let own = app
        .graphql(
            Some(&app.token_for(&b_admin)),
            query,
            json!({ "id": b_admin.id }),
        )
        .await?;
    assert_eq!(own.data()?["user"]["email"], json!(b_admin.email));
    Ok(())
}

#[tokio::test]
async fn raw_select_in_a_request_transaction_returns_only_the_callers_rows() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (a, a_admin, _) = app.company_with_users("Acme", 2).await?;
    let (b, b_admin, _) = app.company_with_users("Globex", 1).await?;

    // Request roles read every column of `users` but e-mail, attributes and password hash.
    let rows = app
        .query_as(
            &a_admin,
            "SELECT id, company_id, display_name, role, is_active FROM users",
        )
        .await?;
    for private in ["email", "attributes", "password_hash"] {
        let denied = app
            .query_as(&a_admin, &format!("SELECT {private} FROM users"))
            .await;
        assert!(
            denied.is_err_and(|e| format!("{e:?}").contains("permission denied")),
            "{private}"
        );
    }
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["company_id"] == json!(a)));
    let companies = app.query_as(&b_admin, "SELECT * FROM companies").await?;
    assert_eq!(companies.len(), 1);
    assert_eq!(companies[0]["id"], json!(b));
    Ok(())
}

#[tokio::test]
async fn every_tenant_table_is_isolated_by_row_level_security() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, a_admin, _) = app.company_with_users("Acme", 1).await?;
    let (_, b_admin, _) = app.company_with_users("Globex", 1).await?;
    // Every tenant table needs rows of both companies for the check to mean something.
    for admin in [&a_admin, &b_admin] {
        app.sql(&format!(
            "INSERT INTO invitations (id, company_id, email, role, token_hash, expires_at) \
             VALUES (gen_random_uuid(), '{}', 'new-{}@example.com', 'member', md5(random()::text), now() + interval '1 day')",
            admin.company_id, admin.id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO roles (company_id, name) VALUES ('{}', 'coach')",
            admin.company_id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO company_domains (company_id, domain, added_by) VALUES ('{}', 'd{}.example', '{}')",
            admin.company_id,
            admin.id.simple(),
            admin.id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO invite_links (company_id, role, token_hash, max_uses, expires_at, created_by) \
             VALUES ('{c}', 'member', md5(random()::text), 5, now() + interval '1 day', '{a}')",
            c = admin.company_id,
            a = admin.id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO conversations (id, company_id, user_id, title) VALUES ('{id}', '{c}', '{u}', 'Chat'); \
             INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status) \
                 VALUES (gen_random_uuid(), '{c}', '{u}', '{id}', 'user', 'hi', 'complete'); \
             INSERT INTO knowledge (id, company_id, user_id, content) VALUES (gen_random_uuid(), '{c}', '{u}', 'note')",
            id = uuid::Uuid::new_v4(),
            c = admin.company_id,
            u = admin.id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO presets (company_id, owner_id, name, filter) VALUES ('{}', '{}', 'All', '{{}}'); \
             INSERT INTO audience_fields (company_id, name, type) VALUES ('{}', 'plan', 'string')",
            admin.company_id, admin.id, admin.company_id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO identities (id, company_id, user_id, provider, issuer, subject) \
             VALUES (gen_random_uuid(), '{}', '{}', 'idp', 'https://idp.example', 'sub-{}')",
            admin.company_id, admin.id, admin.id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO company_llm_providers (company_id, base_url, model, api_key_sealed) \
             VALUES ('{}', 'https://llm.example.com/v1', 'm', 'v1:k1:AAAA')",
            admin.company_id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO company_oidc_providers (company_id, id, name, issuer, client_id, role) \
             VALUES ('{}', gen_random_uuid(), 'google', 'https://accounts.google.com', 'c', 'member')",
            admin.company_id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO activity_kinds (company_id, name, metrics) \
                 VALUES ('{c}', 'sleep', '[{{\"name\": \"score\", \"type\": \"number\"}}]'); \
             INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics, visibility) \
                 SELECT '{c}', '{u}', k.id, now(), '{{\"score\": 80}}', 'private' \
                 FROM activity_kinds k WHERE k.company_id = '{c}'; \
             INSERT INTO activity_shares (company_id, activity_id, user_id, owner_id) \
                 SELECT '{c}', a.id, m.id, '{u}' FROM activities a, users m \
                 WHERE a.company_id = '{c}' AND m.company_id = '{c}' AND m.id <> '{u}' LIMIT 1",
            c = admin.company_id,
            u = admin.id
        ))
        .await?;
        app.sql(&format!(
            "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) \
             SELECT u.company_id, LEAST(u.id, '{a}'::uuid), GREATEST(u.id, '{a}'::uuid), 'accepted', '{a}' \
             FROM users u WHERE u.company_id = '{c}' AND u.id <> '{a}' LIMIT 1",
            a = admin.id,
            c = admin.company_id
        ))
        .await?;
    }
    for table in migration::rls_tables() {
        // Admins are the most privileged callers: if they cannot cross over, nobody can.
        app.assert_tenant_isolation(table, &a_admin, &b_admin)
            .await?;
        app.assert_tenant_isolation(table, &b_admin, &a_admin)
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_pool_role_without_set_role_gets_permission_denied() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.company_with_users("Acme", 1).await?;
    for table in migration::rls_tables() {
        let error = sea_orm::ConnectionTrait::execute_unprepared(
            &app.state().db,
            &format!("SELECT * FROM {table}"),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(error.contains("permission denied"), "{table}: {error}");
    }
    Ok(())
}

#[tokio::test]
async fn request_transactions_without_identity_see_nothing() -> anyhow::Result<()> {
    // An anonymous request transaction runs as app_anon, which has no grants on tenant tables.
    let app = TestApp::spawn().await?;
    app.company_with_users("Acme", 1).await?;
    let tx = server::db::RequestTx::begin(
        &app.state().db,
        &server::auth::Viewer::Anonymous,
        server::db::Access::ReadOnly,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let error =
        sea_orm::ConnectionTrait::execute_unprepared(tx.conn(), "SELECT * FROM users").await;
    assert!(error.is_err_and(|e| e.to_string().contains("permission denied")));
    Ok(())
}

#[tokio::test]
async fn identity_never_leaks_across_pooled_connections() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_max_connections = 2;
        c.db_acquire_timeout_ms = 60_000;
    })
    .await?;
    let (a, a_admin, _) = app.company_with_users("Acme", 2).await?;
    let (b, b_admin, _) = app.company_with_users("Globex", 2).await?;
    let tokens = [(a, app.token_for(&a_admin)), (b, app.token_for(&b_admin))];
    let query = "{ company { id } users(first: 10) { edges { node { email } } } me { id } }";

    let failures: Vec<String> = stream::iter(0..1000)
        .map(|i| {
            let (company, token) = &tokens[i % 2];
            let app = &app;
            async move {
                let response = match app.graphql(Some(token), query, json!({})).await {
                    Ok(r) => r,
                    Err(e) => return Some(format!("request {i}: {e}")),
                };
                let data = match response.data() {
                    Ok(d) => d,
                    Err(e) => return Some(format!("request {i}: {e}")),
                };
                let domain = if *company == a {
                    "@acme.example"
                } else {
                    "@globex.example"
                };
                let emails_ok = data["users"]["edges"].as_array().is_some_and(|edges| {
                    edges.len() == 3
                        && edges.iter().all(|e| {
                            e["node"]["email"]
                                .as_str()
                                .is_some_and(|m| m.ends_with(domain))
                        })
                });
                (data["company"]["id"] != json!(company) || !emails_ok)
                    .then(|| format!("request {i} saw {data}"))
            }
        })
        .buffer_unordered(50)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of 1000 requests went wrong, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    Ok(())
}

#[tokio::test]
async fn users_pages_with_cursors_and_searches() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 4).await?;
    let token = app.token_for(&admin);

    let first = app
        .graphql(Some(&token), USERS, json!({ "first": 2 }))
        .await?;
    let page = &first.data()?["users"];
    assert_eq!(page["edges"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let after = page["pageInfo"]["endCursor"].clone();

    let rest = app
        .graphql(Some(&token), USERS, json!({ "first": 10, "after": after }))
        .await?;
    let rest = &rest.data()?["users"];
    assert_eq!(rest["edges"].as_array().map(Vec::len), Some(3));
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    let first_ids: Vec<_> = page["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["node"]["id"].clone())
        .collect();
    assert!(
        rest["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| !first_ids.contains(&e["node"]["id"]))
    );

    let search = app
        .graphql(Some(&token), USERS, json!({ "search": "MEMBER2" }))
        .await?;
    let found = &search.data()?["users"];
    assert_eq!(found["totalCount"], 1);
    assert_eq!(found["edges"][0]["node"]["email"], "member2@acme.example");

    // LIKE wildcards in the search text match literally.
    let wildcard = app
        .graphql(Some(&token), USERS, json!({ "search": "%" }))
        .await?;
    assert_eq!(wildcard.data()?["users"]["totalCount"], 0);

    let bad = app
        .graphql(Some(&token), USERS, json!({ "after": "garbage!" }))
        .await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(bad.body["errors"][0]["extensions"]["path"], "after");
    let too_many = app
        .graphql(Some(&token), USERS, json!({ "first": 101 }))
        .await?;
    assert_eq!(too_many.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(too_many.body["errors"][0]["extensions"]["path"], "first");
    Ok(())
}
