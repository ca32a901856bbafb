//! The bitmaps audience counts read (`audience_members`, `audience_bits`): kept exactly in step
//! with `users` by every path that writes people (requests, definer functions, concurrent
//! statements, deletions of whole companies), and shown to a caller only as far as the caller
//! may segment.

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use serde_json::{Value, json};
use tests::TestApp;

use super::{declare_fields, property::assert_bitmaps_match_users};

const SIZE: &str = "query($f: JSON) { audienceSize(filter: $f) }";

async fn size(app: &TestApp, token: &str, filter: Value) -> anyhow::Result<Value> {
    let response = app
        .graphql(Some(token), SIZE, json!({ "f": filter }))
        .await?;
    Ok(response.data()?["audienceSize"].clone())
}

#[tokio::test]
async fn writes_through_the_api_keep_the_bitmaps_in_step() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    // Sign-up inserts the company and its admin through a definer function.
    let signed = app
        .sign_up("Bits Inc", "founder@bits.example", "a long enough password")
        .await?;
    let token = signed["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let company = app
        .graphql(Some(&token), "{ company { id } }", json!({}))
        .await?
        .data()?["company"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse::<uuid::Uuid>()?;
    declare_fields(&app, company).await?;
    let member = app
        .create_user(company, "member@bits.example", "member")
        .await?;
    let member_token = app.token_for(&member);
    let pro = json!({ "include": { "field": "plan", "op": "eq", "value": "pro" } });
    assert_eq!(size(&app, &token, pro.clone()).await?, 0);

    // The member's own attributes, a text too long for any filter to equal among them.
    let long = "x".repeat(2000);
    let updated = app
        .graphql(
            Some(&member_token),
            "mutation($a: JSON) { updateProfile(input: {attributes: $a}) { id } }",
            json!({ "a": { "plan": "pro", "tags": ["vip", long], "score": 1e300 } }),
        )
        .await?;
    updated.data()?;
    assert_eq!(size(&app, &token, pro.clone()).await?, 1);
    let vip = json!({ "include": { "field": "tags", "op": "contains", "value": "vip" } });
    assert_eq!(size(&app, &token, vip.clone()).await?, 1);
    assert_bitmaps_match_users(&app).await?;

    // The admin's changes to the member: role, then active state.
    let managers = json!({ "include": { "field": "role", "op": "eq", "value": "manager" } });
    app.graphql(
        Some(&token),
        "mutation($id: ID!) { updateUser(id: $id, input: {role: \"manager\"}) { id } }",
        json!({ "id": member.id }),
    )
    .await?
    .data()?;
    assert_eq!(size(&app, &token, managers).await?, 1);
    let manager = member.with_role("manager");
    let manager_token = app.token_for(&manager);
    // The manager's privacy: private, so only admins segment them.
    app.graphql(
        Some(&manager_token),
        "mutation { updatePrivacy(input: {profileVisibility: PRIVATE}) { id } }",
        json!({}),
    )
    .await?
    .data()?;
    let other = app
        .create_user(company, "other@bits.example", "member")
        .await?;
    let other_token = app.token_for(&other);
    assert_eq!(size(&app, &token, pro.clone()).await?, 1);
    assert_eq!(size(&app, &other_token, pro.clone()).await?, 0);
    // The manager always counts themselves.
    assert_eq!(size(&app, &manager_token, pro.clone()).await?, 1);
    app.graphql(
        Some(&token),
        "mutation($id: ID!) { deactivateUser(id: $id) { id } }",
        json!({ "id": member.id }),
    )
    .await?
    .data()?;
    let inactive = json!({ "include": { "field": "is_active", "op": "eq", "value": false } });
    assert_eq!(size(&app, &token, inactive).await?, 1);
    assert_bitmaps_match_users(&app).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_segment_keep_the_bitmaps_exact() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.db_max_connections = 20).await?;
    let (company, admin, _) = app.company_with_users("Acme", 0).await?;
    declare_fields(&app, company).await?;
    app.sql(&format!(
        "INSERT INTO users (company_id, email, display_name, attributes)
         SELECT '{company}', 'u' || g || '@acme.example', 'U' || g,
                jsonb_build_object('plan', (ARRAY['free', 'pro'])[1 + g % 2], 'tags', '[\"a\"]'::jsonb)
         FROM generate_series(1, 200) g"
    ))
    .await?;
    // Every statement its own transaction, 16 at once: users of the same segments change plans
    // back and forth, get tags, and new users join the company while that happens.
    let statements: Vec<String> = (0..240)
        .map(|i| match i % 4 {
            0 => format!(
                "UPDATE users SET attributes = attributes || '{{\"plan\": \"enterprise\"}}' \
                 WHERE company_id = '{company}' AND email = 'u{}@acme.example'",
                1 + i % 200
            ),
            1 => format!(
                "UPDATE users SET attributes = jsonb_set(attributes, '{{tags}}', '[\"a\", \"b\"]') \
                 WHERE company_id = '{company}' AND email LIKE 'u{}%@acme.example'",
                i % 10
            ),
            2 => format!(
                "UPDATE users SET attributes = attributes - 'plan' \
                 WHERE company_id = '{company}' AND email = 'u{}@acme.example'",
                200 - i % 200
            ),
            _ => format!(
                "INSERT INTO users (company_id, email, display_name, attributes) \
                 VALUES ('{company}', 'new{i}@acme.example', 'New', '{{\"plan\": \"pro\"}}')"
            ),
        })
        .collect();
    stream::iter(statements)
        .map(|sql| {
            let app = &app;
            async move { app.sql(&sql).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<u64>>()
        .await?;
    assert_bitmaps_match_users(&app).await?;
    let numbers = app
        .query_as(
            &admin,
            "SELECT count(*) AS n FROM users WHERE company_id = current_setting('app.company_id')::uuid",
        )
        .await?;
    let everyone = size(&app, &app.token_for(&admin), json!({})).await?;
    assert_eq!(everyone, numbers[0]["n"]);
    Ok(())
}

#[tokio::test]
async fn a_deleted_company_takes_its_bitmaps_and_leaves_the_others() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (a, _, _) = app.company_with_users("Acme", 3).await?;
    let (b, b_admin, _) = app.company_with_users("Globex", 2).await?;
    app.sql(&format!("DELETE FROM companies WHERE id = '{a}'"))
        .await?;
    let left = sea_orm::ConnectionTrait::query_one_raw(
        &app.admin,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT (SELECT count(*) FROM audience_bits WHERE company_id = '{a}') AS a_bits, \
                        (SELECT count(*) FROM audience_members WHERE company_id = '{a}') AS a_members, \
                        (SELECT count(*) FROM audience_members WHERE company_id = '{b}') AS b_members"
            ),
        ),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no row"))?;
    assert_eq!(left.try_get::<i64>("", "a_bits")?, 0);
    assert_eq!(left.try_get::<i64>("", "a_members")?, 0);
    assert_eq!(left.try_get::<i64>("", "b_members")?, 3);
    assert_bitmaps_match_users(&app).await?;
    assert_eq!(size(&app, &app.token_for(&b_admin), json!({})).await?, 3);
    Ok(())
}

#[tokio::test]
async fn the_bitmaps_view_shows_only_terms_the_caller_may_segment() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (a, a_admin, members) = app.company_with_users("Acme", 3).await?;
    let (_, b_admin, _) = app.company_with_users("Globex", 1).await?;
    let (viewer, hidden, blocker) = (&members[0], &members[1], &members[2]);
    app.sql(&format!(
        "UPDATE users SET attributes = '{{\"plan\": \"secret-hidden\"}}', profile_visibility = 'private'
          WHERE id = '{}';
         UPDATE users SET attributes = '{{\"plan\": \"secret-blocker\"}}' WHERE id = '{}';
         UPDATE users SET attributes = '{{\"plan\": \"shared\"}}' WHERE id = '{}';
         INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, blocked_by)
         VALUES ('{a}', LEAST('{}'::uuid, '{}'::uuid), GREATEST('{}'::uuid, '{}'::uuid), 'blocked', '{}', '{}')",
        hidden.id, blocker.id, a_admin.id, viewer.id, blocker.id, viewer.id, blocker.id, blocker.id,
        blocker.id
    ))
    .await?;
    let terms = |rows: Vec<Value>| -> Vec<String> {
        rows.iter()
            .filter_map(|r| r["term"].as_str().map(str::to_owned))
            .collect()
    };
    let everything = "SELECT DISTINCT term FROM audience_bitmaps ORDER BY term";
    let seen = terms(app.query_as(viewer, everything).await?);
    assert!(seen.contains(&"plan:s=shared".to_owned()), "{seen:?}");
    assert!(
        !seen.iter().any(|t| t.contains("secret")),
        "a member sees a private or blocked person's term: {seen:?}"
    );
    let admin_seen = terms(app.query_as(&a_admin, everything).await?);
    assert!(admin_seen.contains(&"plan:s=secret-hidden".to_owned()));
    assert!(admin_seen.contains(&"plan:s=secret-blocker".to_owned()));
    // Another company's admin sees nothing of Acme's, nor do request roles read the tables.
    let foreign = app
        .query_as(
            &b_admin,
            &format!("SELECT term FROM audience_bitmaps WHERE company_id = '{a}'"),
        )
        .await?;
    assert!(foreign.is_empty());
    for table in ["audience_bits", "audience_members"] {
        let denied = app
            .query_as(&a_admin, &format!("SELECT * FROM {table}"))
            .await;
        assert!(
            denied.is_err_and(|e| format!("{e:?}").contains("permission denied")),
            "{table}"
        );
    }
    Ok(())
}
