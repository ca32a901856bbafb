//! The request path does only what the request needs, and leaves nothing behind: answers keep
//! the query's field order; a page's statement carries its limit as a literal, so PostgreSQL
//! keeps one generic plan for it; a connection's `totalCount` is counted only when asked for;
//! a request transaction that failed to start, or whose request went away while it started,
//! leaves its pooled connection as it found it; and nothing of a request (role, variables,
//! transaction) outlives it on its connection.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tests::{TestApp, TestUser, eventually};

/// How long the tests wait for a condition PostgreSQL or the server reports.
const PATIENCE: Duration = Duration::from_secs(60);

/// The raw text of the answer to `query`.
async fn raw_answer(app: &TestApp, token: &str, query: &str) -> anyhow::Result<String> {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "status {}", response.status());
    Ok(response.text().await?)
}

/// Where `needle` first occurs in `text`, or an error naming it.
fn position(text: &str, needle: &str) -> anyhow::Result<usize> {
    text.find(needle)
        .ok_or_else(|| anyhow::anyhow!("{needle} is not in {text}"))
}

#[tokio::test]
async fn answers_keep_the_field_order_of_the_query() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 1).await?;
    let token = app.token_for(&admin);
    // Neither order is alphabetical: a sorted answer would put `company` first, and `id`
    // before `role` and `email`.
    let text = raw_answer(&app, &token, "{ me { role id email } company { name id } }").await?;
    let me = position(&text, r#""me":"#)?;
    let company = position(&text, r#""company":"#)?;
    assert!(me < company, "{text}");
    let role = position(&text, r#""role":"#)?;
    let id = position(&text, r#""id":"#)?;
    let email = position(&text, r#""email":"#)?;
    assert!(role < id && id < email && email < company, "{text}");
    let name = position(&text, r#""name":"#)?;
    assert!(company < name, "{text}");
    // Aliases keep their place too, and the page's fields theirs.
    let text = raw_answer(
        &app,
        &token,
        "{ users(first: 1) { pageInfo { hasNextPage } edges { node { displayName id } } } }",
    )
    .await?;
    assert!(
        position(&text, r#""pageInfo":"#)? < position(&text, r#""edges":"#)?,
        "{text}"
    );
    assert!(
        position(&text, r#""displayName":"#)? < position(&text, r#""id":"#)?,
        "{text}"
    );
    // The parsed answer is the same as ever.
    let body: Value = serde_json::from_str(&text)?;
    assert_eq!(body["data"]["users"]["pageInfo"]["hasNextPage"], true);
    Ok(())
}

#[tokio::test]
async fn a_page_is_one_prepared_statement_with_a_literal_limit_planned_once() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 30).await?;
    let principal = server::auth::Principal {
        user_id: admin.id,
        company_id: admin.company_id,
        role: admin.role.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        session_id: admin.session_id,
    };
    let tx = app.request_tx(&admin, server::db::Access::ReadOnly).await?;
    let filter =
        server::services::users::UserFilter::search(principal.company_id, None, None, None, false)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let order = server::services::users::Order {
        field: server::services::users::SortField::CreatedAt,
        descending: false,
    };
    // More runs than PostgreSQL plans for itself before it considers a generic plan.
    for _ in 0..8 {
        let page = server::services::users::page(
            tx.conn(),
            &filter,
            order,
            server::paging::PageArgs {
                first: Some(20),
                ..Default::default()
            },
            &server::services::users::ProfileColumns::all(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert_eq!(page.edges.len(), 20);
    }
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements \
             WHERE statement LIKE '%FROM \"user_profiles\"%' \
               AND statement NOT LIKE '%pg_prepared_statements%'",
        ))
        .await?;
    assert_eq!(rows.len(), 1, "one prepared statement for every page");
    let statement: String = rows[0].try_get("", "statement")?;
    assert!(statement.ends_with(" LIMIT 21"), "{statement}");
    assert!(!statement.contains("LIMIT $"), "{statement}");
    let generic: i64 = rows[0].try_get("", "generic_plans")?;
    let custom: i64 = rows[0].try_get("", "custom_plans")?;
    assert!(
        generic >= 1 && custom <= 5,
        "PostgreSQL kept a generic plan ({generic} generic, {custom} custom plans)"
    );
    tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// Scans of the `presets` table so far (sequential and index), as PostgreSQL's statistics
/// report them once the backends have flushed them.
async fn preset_scans(app: &TestApp) -> anyhow::Result<i64> {
    let row = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::bigint AS n \
             FROM pg_stat_user_tables WHERE relname = 'presets'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no statistics for presets"))?;
    Ok(row.try_get("", "n")?)
}

#[tokio::test]
async fn total_count_is_counted_only_when_asked_for() -> anyhow::Result<()> {
    // One pooled connection: its statistics reach PostgreSQL's views a transaction at a time.
    let app = TestApp::spawn_with(|c| c.db_max_connections = 1).await?;
    let (company, admin, _) = app.company_with_users("Acme", 0).await?;
    app.sql(&format!(
        "INSERT INTO presets (company_id, owner_id, name, filter) VALUES \
         ('{company}', '{}', 'One', '{{}}'), ('{company}', '{}', 'Two', '{{}}')",
        admin.id, admin.id
    ))
    .await?;
    let token = app.token_for(&admin);
    // Let the caller's session be cached first (the only statements left are the request's).
    app.graphql(Some(&token), "{ me { id } }", json!({}))
        .await?
        .data()?;
    let before = preset_scans(&app).await?;
    // An odd number of pages without the count: one scan each. Were each counted too, the
    // total would only ever move in steps of two.
    const PAGES: i64 = 5;
    for _ in 0..PAGES {
        let page = app
            .graphql(
                Some(&token),
                "{ presets(first: 1) { edges { node { name } } pageInfo { hasNextPage } } }",
                json!({}),
            )
            .await?;
        assert_eq!(page.data()?["presets"]["pageInfo"]["hasNextPage"], true);
    }
    // Then one with it: the page and the count.
    let counted = app
        .graphql(
            Some(&token),
            "{ presets(first: 1) { totalCount edges { node { name } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(counted.data()?["presets"]["totalCount"], 2);
    let expected = before + PAGES + 2;
    eventually(
        PATIENCE,
        "the scans to reach PostgreSQL's statistics",
        || async { preset_scans(&app).await.is_ok_and(|n| n >= expected) },
    )
    .await?;
    assert_eq!(preset_scans(&app).await?, expected);
    Ok(())
}

/// Backends of the pool's role that are inside a transaction now.
async fn pool_backends_in_transaction(app: &TestApp) -> anyhow::Result<i64> {
    let row = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*)::bigint AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND usename = 'app_authenticator' \
               AND xact_start IS NOT NULL",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get("", "n")?)
}

/// What a pooled connection holds between requests: its role, the caller's variables, whether
/// its transaction is read-only, its application name. (`app.db` runs it on the pool, outside
/// any request transaction.)
async fn pooled_connection_state(app: &TestApp) -> anyhow::Result<Value> {
    let row = app
        .state()
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT jsonb_build_object( \
                 'user', current_user::text, \
                 'app_user_id', coalesce(current_setting('app.user_id', true), ''), \
                 'app_company_id', coalesce(current_setting('app.company_id', true), ''), \
                 'read_only', current_setting('transaction_read_only'), \
                 'application_name', current_setting('application_name')) AS state",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get("", "state")?)
}

/// Once no pooled connection is inside a transaction any more (connections are given back
/// to the pool after the answer), what one holds is what a fresh one holds.
async fn assert_clean(app: &TestApp) -> anyhow::Result<()> {
    eventually(
        PATIENCE,
        "no pooled connection to be in a transaction",
        || async {
            pool_backends_in_transaction(app)
                .await
                .is_ok_and(|n| n == 0)
        },
    )
    .await?;
    assert_eq!(pooled_connection_state(app).await?, clean_state());
    Ok(())
}

fn clean_state() -> Value {
    json!({
        "user": "app_authenticator",
        "app_user_id": "",
        "app_company_id": "",
        "read_only": "off",
        "application_name": "",
    })
}

async fn me_is(app: &TestApp, user: &TestUser) -> anyhow::Result<()> {
    let response = app
        .graphql(Some(&app.token_for(user)), "{ me { id } }", json!({}))
        .await?;
    anyhow::ensure!(
        response.data()?["me"]["id"] == json!(user.id),
        "`me` failed: {}",
        response.body
    );
    Ok(())
}

#[tokio::test]
async fn nothing_of_a_request_outlives_it_on_its_connection() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.db_max_connections = 1).await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    // A read (ended without a COMMIT round trip of its own), a write, then reads again.
    me_is(&app, &admin).await?;
    assert_clean(&app).await?;
    let renamed = app
        .graphql(
            Some(&app.token_for(&members[0])),
            r#"mutation { updateProfile(input: {displayName: "Ann"}) { displayName } }"#,
            json!({}),
        )
        .await?;
    assert_eq!(renamed.data()?["updateProfile"]["displayName"], "Ann");
    assert_clean(&app).await?;
    // The write was committed: another caller on the same connection reads it.
    let users = app
        .graphql(
            Some(&app.token_for(&admin)),
            "{ users(search: \"Ann\") { edges { node { id } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        users.data()?["users"]["edges"][0]["node"]["id"],
        json!(members[0].id)
    );
    assert_clean(&app).await?;
    Ok(())
}

#[tokio::test]
async fn a_caller_refused_as_its_transaction_starts_leaves_the_connection_clean()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.db_max_connections = 1).await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let member = &members[0];
    // The session is cached as live, so the refusal comes from `app.begin_request`, in the
    // round trip that begins the transaction.
    me_is(&app, member).await?;
    app.sql(&format!(
        "UPDATE users SET is_active = false WHERE id = '{}'",
        member.id
    ))
    .await?;
    for _ in 0..3 {
        let refused = app
            .graphql(Some(&app.token_for(member)), "{ me { id } }", json!({}))
            .await?;
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert_eq!(refused.error_code(), Some("UNAUTHENTICATED"));
        // The only pooled connection is not left inside the failed transaction.
        assert_clean(&app).await?;
        me_is(&app, &admin).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_request_abandoned_while_its_transaction_starts_leaves_no_transaction_behind()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_max_connections = 1;
        c.db_lock_timeout_ms = 0;
        c.db_statement_timeout_ms = 0;
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    me_is(&app, &admin).await?;
    // `app.begin_request` reads `users`: the round trip that begins the transaction waits.
    let lock = sea_orm::TransactionTrait::begin(&app.admin).await?;
    lock.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await?;
    let request = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { id } }" }));
    let client = tokio::spawn(async move { request.send().await });
    eventually(PATIENCE, "the request's transaction to start", || async {
        pool_backends_in_transaction(&app)
            .await
            .is_ok_and(|n| n == 1)
    })
    .await?;
    // The client goes away while its transaction is starting.
    client.abort();
    let _ = client.await;
    lock.rollback().await?;
    assert_clean(&app).await?;
    me_is(&app, &admin).await?;
    Ok(())
}
