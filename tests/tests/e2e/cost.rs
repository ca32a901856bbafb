//! Cost is bounded: every request session carries statement, idle-transaction and lock
//! timeouts, and a statement cancelled by one is `UNAVAILABLE`; an abandoned request has its
//! statement cancelled; audience filters are bounded per request and weigh in the complexity
//! limit; one request (however large its batch) and one company hold a bounded part of the
//! pool; password hashing is bounded and `changePassword` is rate-limited per user.
//!
//! Slow statements are made by holding a lock as the superuser: they then wait for as long as
//! the test wants, and the tests wait on what PostgreSQL reports, never on the clock.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};
use server::authz::{Action, Object, Permission};
use tests::{
    TestApp, TestUser, eventually,
    ws::{WsClient, WsOutcome},
};
use uuid::Uuid;

const RENAME: &str =
    r#"mutation($id: ID!) { updatePreset(id: $id, input: {name: "Renamed"}) { id name } }"#;

/// How long the tests wait for a condition PostgreSQL or the server reports.
const PATIENCE: Duration = Duration::from_secs(60);

/// Inserts a preset of `owner` (as the superuser) and returns its id.
async fn preset_of(app: &TestApp, owner: &TestUser, filter: Value) -> anyhow::Result<Uuid> {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO presets (company_id, owner_id, name, filter) VALUES ($1, $2, 'Original', $3) RETURNING id",
            [owner.company_id.into(), owner.id.into(), filter.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no preset inserted"))?;
    Ok(row.try_get("", "id")?)
}

/// A superuser transaction holding the row lock of preset `id` until it ends.
async fn lock_preset(app: &TestApp, id: Uuid) -> anyhow::Result<DatabaseTransaction> {
    let tx = app.admin.begin().await?;
    tx.execute_unprepared(&format!(
        "SELECT id FROM presets WHERE id = '{id}' FOR UPDATE"
    ))
    .await?;
    Ok(tx)
}

/// How many statements of this test's database wait for a lock while updating presets.
async fn waiting_updates(app: &TestApp) -> anyhow::Result<i64> {
    let row = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*)::bigint AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
               AND wait_event_type = 'Lock' AND query ILIKE '%UPDATE%presets%'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get("", "n")?)
}

async fn wait_for_waiting_updates(
    app: &TestApp,
    what: &str,
    holds: impl Fn(i64) -> bool,
) -> anyhow::Result<()> {
    eventually(PATIENCE, what, || async {
        waiting_updates(app).await.is_ok_and(&holds)
    })
    .await
}

async fn me_succeeds(app: &TestApp, user: &TestUser) -> anyhow::Result<()> {
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

/// POSTs a batch of GraphQL requests and returns the array of responses.
async fn batch(app: &TestApp, token: &str, requests: Vec<Value>) -> anyhow::Result<Vec<Value>> {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&Value::Array(requests))
        .send()
        .await?;
    let body: Value = response.json().await?;
    body.as_array()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("not a batch response: {body}"))
}

#[tokio::test]
async fn request_sessions_start_with_the_configured_timeouts() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_statement_timeout_ms = 4321;
        c.db_idle_in_transaction_timeout_ms = 8765;
        c.db_lock_timeout_ms = 1234;
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let rows = app
        .query_as(
            &admin,
            "SELECT current_setting('statement_timeout') AS statement, \
                    current_setting('idle_in_transaction_session_timeout') AS idle, \
                    current_setting('lock_timeout') AS lock",
        )
        .await?;
    assert_eq!(
        rows,
        vec![json!({"statement": "4321ms", "idle": "8765ms", "lock": "1234ms"})]
    );
    // Administrative connections (migrations, the tests' superuser) are not limited.
    let row = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('statement_timeout') AS statement",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    assert_eq!(row.try_get::<String>("", "statement")?, "0");
    Ok(())
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_unavailable_not_internal() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_statement_timeout_ms = 2000;
        c.db_lock_timeout_ms = 0;
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    // Reading presets now waits until the superuser's transaction ends: past the timeout.
    let lock = app.admin.begin().await?;
    lock.execute_unprepared("LOCK TABLE presets IN ACCESS EXCLUSIVE MODE")
        .await?;
    let response = app
        .graphql(Some(&token), "{ presets { totalCount } }", json!({}))
        .await?;
    assert_eq!(
        response.error_code(),
        Some("UNAVAILABLE"),
        "{}",
        response.body
    );
    let message = response.error_message().unwrap_or_default();
    assert!(message.contains("took too long"), "{message}");
    lock.rollback().await?;
    let response = app
        .graphql(Some(&token), "{ presets { totalCount } }", json!({}))
        .await?;
    assert_eq!(response.data()?["presets"]["totalCount"], 0);
    Ok(())
}

#[tokio::test]
async fn a_write_waiting_past_its_lock_timeout_is_unavailable() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.db_lock_timeout_ms = 500).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let preset = preset_of(&app, &admin, json!({})).await?;
    let lock = lock_preset(&app, preset).await?;
    let response = app
        .graphql(Some(&token), RENAME, json!({ "id": preset }))
        .await?;
    assert_eq!(
        response.error_code(),
        Some("UNAVAILABLE"),
        "{}",
        response.body
    );
    let message = response.error_message().unwrap_or_default();
    assert!(message.contains("locked"), "{message}");
    lock.rollback().await?;
    let response = app
        .graphql(Some(&token), RENAME, json!({ "id": preset }))
        .await?;
    assert_eq!(response.data()?["updatePreset"]["name"], "Renamed");
    Ok(())
}

#[tokio::test]
async fn an_abandoned_request_has_its_statement_cancelled() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_statement_timeout_ms = 600_000;
        c.db_lock_timeout_ms = 600_000;
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.token_for(&admin);
    let preset = preset_of(&app, &admin, json!({})).await?;
    let lock = lock_preset(&app, preset).await?;

    let request = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": RENAME, "variables": { "id": preset } }));
    let client = tokio::spawn(async move { request.send().await });
    wait_for_waiting_updates(&app, "the update to wait for the lock", |n| n == 1).await?;
    // The client goes away: its connection closes with the request unanswered.
    client.abort();
    let _ = client.await;
    wait_for_waiting_updates(&app, "the abandoned update to be cancelled", |n| n == 0).await?;

    // The lock was held all along: the update was cancelled, not let through.
    lock.rollback().await?;
    let rows = app
        .query_as(
            &admin,
            &format!("SELECT name FROM presets WHERE id = '{preset}'"),
        )
        .await?;
    assert_eq!(rows, vec![json!({"name": "Original"})]);
    // Every pooled connection is fine afterwards.
    for _ in 0..2 * app.config.db_max_connections {
        me_succeeds(&app, &admin).await?;
    }
    let response = app
        .graphql(Some(&token), RENAME, json!({ "id": preset }))
        .await?;
    assert_eq!(response.data()?["updatePreset"]["name"], "Renamed");
    Ok(())
}

#[tokio::test]
async fn a_batched_request_holds_one_connection_at_a_time() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        // No company share in the way: only the per-request bound is at work.
        c.db_company_share_percent = 100;
        c.db_statement_timeout_ms = 600_000;
        c.db_lock_timeout_ms = 600_000;
        c.db_acquire_timeout_ms = 10_000;
    })
    .await?;
    let (_, admin_a, _) = app.company_with_users("Acme", 0).await?;
    let (_, admin_b, _) = app.company_with_users("Beta", 0).await?;
    let preset = preset_of(&app, &admin_a, json!({})).await?;
    let lock = lock_preset(&app, preset).await?;

    // Ten slow mutations in one request, more than the pool has connections.
    let operations = vec![json!({ "query": RENAME, "variables": { "id": preset } }); 10];
    let token_a = app.token_for(&admin_a);
    let flood = {
        let (client, url) = (app.client.clone(), app.url("/graphql"));
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token_a)
                .json(&Value::Array(operations))
                .send()
                .await?;
            anyhow::Ok(response.json::<Value>().await?)
        })
    };
    wait_for_waiting_updates(&app, "the batch to wait for the lock", |n| n >= 1).await?;
    me_succeeds(&app, &admin_b).await?;
    assert_eq!(
        waiting_updates(&app).await?,
        1,
        "the batch holds one connection"
    );

    lock.rollback().await?;
    let responses = flood.await??;
    let responses = responses.as_array().cloned().unwrap_or_default();
    assert_eq!(responses.len(), 10);
    for response in responses {
        assert_eq!(
            response["data"]["updatePreset"]["name"], "Renamed",
            "{response}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn one_company_cannot_starve_the_pool_for_the_others() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_max_connections = 4;
        c.db_company_share_percent = 50;
        c.db_statement_timeout_ms = 600_000;
        c.db_lock_timeout_ms = 600_000;
        c.db_acquire_timeout_ms = 120_000;
    })
    .await?;
    let (company_a, admin_a, _) = app.company_with_users("Acme", 0).await?;
    let (_, admin_b, _) = app.company_with_users("Beta", 0).await?;
    let preset = preset_of(&app, &admin_a, json!({})).await?;
    let lock = lock_preset(&app, preset).await?;

    // More slow requests than the pool has connections.
    let token_a = app.token_for(&admin_a);
    let mut flood = Vec::new();
    for _ in 0..5 {
        let request = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token_a)
            .json(&json!({ "query": RENAME, "variables": { "id": preset } }));
        flood.push(tokio::spawn(async move {
            anyhow::Ok(request.send().await?.json::<Value>().await?)
        }));
    }
    let shares = app.state().shares.clone();
    assert_eq!(shares.per_tenant(), 2);
    eventually(
        PATIENCE,
        "company A to hold its share, the rest waiting",
        || async {
            waiting_updates(&app).await.is_ok_and(|n| n == 2)
                && shares.waiting(Some(company_a)) == 3
        },
    )
    .await?;
    me_succeeds(&app, &admin_b).await?;
    assert_eq!(shares.in_use(Some(company_a)), 2);

    lock.rollback().await?;
    for request in flood {
        let response = request.await??;
        assert_eq!(
            response["data"]["updatePreset"]["name"], "Renamed",
            "{response}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_subscription_holds_no_connection_once_it_is_authorized() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, _, _) = app.company_with_users("Acme", 0).await?;
    // A custom role this instance has not loaded yet: the guard reads the company's custom
    // roles in a read transaction of the subscription's own.
    app.sql(&format!(
        "INSERT INTO roles (company_id, name, grants) VALUES ('{company}', 'buddy', \
         '[{{\"object\": \"friendship\", \"action\": \"manage\"}}]')"
    ))
    .await?;
    let buddy = app
        .create_user(company, "buddy@acme.example", "buddy")
        .await?;
    let url = format!("ws://{}/graphql/ws", app.addr);
    let payload = json!({ "authorization": format!("Bearer {}", app.token_for(&buddy)) });
    let WsOutcome::Acked(mut client) = WsClient::connect(&url, None, payload).await? else {
        anyhow::bail!("the WebSocket was not acknowledged");
    };
    client
        .subscribe(
            "events",
            "subscription { friendEvents { kind } }",
            json!({}),
        )
        .await?;
    // The guard has read the company's custom roles once the enforcer knows `buddy`; no event
    // has come, and the subscription must hold no connection.
    let authz = app.state().authz.clone();
    let permission = Permission {
        object: Object::Friendship,
        action: Action::Read,
    };
    eventually(PATIENCE, "the guard to load the custom roles", || {
        let authz = authz.clone();
        async move { authz.enforce("buddy", company, permission).await }
    })
    .await?;
    let shares = app.state().shares.clone();
    eventually(
        PATIENCE,
        "the subscription to give its connection back",
        || async { shares.in_use(Some(company)) == 0 },
    )
    .await?;
    // And it is live.
    let topic = server::friends::events::topic(buddy.id);
    let event = json!({
        "kind": "REQUEST_CANCELLED", "request_id": Uuid::nil(), "user_id": Uuid::nil(),
        "occurred_at": chrono::Utc::now(),
    });
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        app.state().pubsub.publish(&topic, &event).await;
        if let Ok(message) =
            tokio::time::timeout(Duration::from_millis(250), client.next_json()).await
        {
            anyhow::ensure!(message?["type"] == "next", "the subscription failed");
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never live");
    }
    Ok(())
}

/// `{"include": {"any": [...]}}` of `lists` `in` conditions on `plan` with these many values.
fn filter_with(lists: &[usize]) -> Value {
    let conditions: Vec<Value> = lists
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let values: Vec<String> = (0..*n).map(|v| format!("plan-{i}-{v}")).collect();
            json!({"field": "plan", "op": "in", "value": values})
        })
        .collect();
    json!({"include": {"any": conditions}})
}

async fn with_plan_field(app: &TestApp, company: Uuid) -> anyhow::Result<()> {
    app.sql(&format!(
        "INSERT INTO audience_fields (company_id, name, type) VALUES ('{company}', 'plan', 'string')"
    ))
    .await?;
    Ok(())
}

#[tokio::test]
async fn audience_values_are_bounded_per_request_before_anything_runs() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Acme", 2).await?;
    with_plan_field(&app, company).await?;
    let token = app.token_for(&admin);
    let f400 = filter_with(&[400]);

    // Three aliases of 400 values: over 1000 together, refused with no data at all.
    let three = "query($f: JSON) { a: audienceSize(filter: $f) b: audienceSize(filter: $f) c: audienceSize(filter: $f) }";
    let response = app
        .graphql(Some(&token), three, json!({ "f": f400 }))
        .await?;
    assert_eq!(
        response.error_code(),
        Some("BAD_USER_INPUT"),
        "{}",
        response.body
    );
    assert_eq!(response.body["errors"][0]["extensions"]["path"], "c.filter");
    let message = response.error_message().unwrap_or_default();
    assert!(message.contains("AUDIENCE_MAX_VALUES"), "{message}");
    assert!(
        response.body.get("data").is_none_or(Value::is_null),
        "{}",
        response.body
    );

    // Two are fine.
    let two =
        "query($f: JSON) { a: audienceSize(filter: $f) b: audience(filter: $f) { totalCount } }";
    let response = app.graphql(Some(&token), two, json!({ "f": f400 })).await?;
    assert_eq!(response.data()?["a"], 0);

    // One filter whose lists are each short enough but hold 1001 values together.
    let response = app
        .graphql(
            Some(&token),
            "query($f: JSON) { audienceSize(filter: $f) }",
            json!({ "f": filter_with(&[501, 500]) }),
        )
        .await?;
    assert_eq!(
        response.error_code(),
        Some("BAD_USER_INPUT"),
        "{}",
        response.body
    );
    assert_eq!(
        response.body["errors"][0]["extensions"]["path"],
        "audienceSize.filter"
    );

    // The operations of a batch share the bound: one of three is refused.
    let op = json!({ "query": "query($f: JSON) { audienceSize(filter: $f) }", "variables": { "f": f400 } });
    let responses = batch(&app, &token, vec![op.clone(), op.clone(), op]).await?;
    let refused: Vec<&Value> = responses
        .iter()
        .filter(|r| r["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT")
        .collect();
    let answered = responses
        .iter()
        .filter(|r| r["data"]["audienceSize"].is_number())
        .count();
    assert_eq!((refused.len(), answered), (1, 2), "{responses:?}");
    assert_eq!(
        refused[0]["errors"][0]["extensions"]["path"],
        "audienceSize.filter"
    );
    Ok(())
}

#[tokio::test]
async fn audience_fields_weigh_in_the_complexity_limit_by_their_filter() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.graphql_max_complexity = 300).await?;
    let (company, admin, _) = app.company_with_users("Acme", 0).await?;
    with_plan_field(&app, company).await?;
    let token = app.token_for(&admin);
    let query = "query($f: JSON) { audienceSize(filter: $f) }";
    let response = app
        .graphql(Some(&token), query, json!({ "f": filter_with(&[400]) }))
        .await?;
    assert_eq!(
        response.error_code(),
        Some("BAD_USER_INPUT"),
        "{}",
        response.body
    );
    let message = response.error_message().unwrap_or_default();
    assert!(message.contains("complexity"), "{message}");
    let response = app
        .graphql(Some(&token), query, json!({ "f": filter_with(&[200]) }))
        .await?;
    assert_eq!(response.data()?["audienceSize"], 0);
    Ok(())
}

#[tokio::test]
async fn presets_are_bounded_and_using_one_counts_its_values() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.audience_max_values = 100).await?;
    let (company, admin, _) = app.company_with_users("Acme", 0).await?;
    with_plan_field(&app, company).await?;
    let token = app.token_for(&admin);
    let create = "mutation($f: JSON!) { createPreset(input: {name: \"Big\", filter: $f}) { id } }";
    let response = app
        .graphql(Some(&token), create, json!({ "f": filter_with(&[51, 50]) }))
        .await?;
    assert_eq!(
        response.error_code(),
        Some("BAD_USER_INPUT"),
        "{}",
        response.body
    );
    assert_eq!(
        response.body["errors"][0]["extensions"]["path"],
        "input.filter"
    );

    let response = app
        .graphql(Some(&token), create, json!({ "f": filter_with(&[60]) }))
        .await?;
    let id = response.data()?["createPreset"]["id"].clone();
    let update =
        "mutation($id: ID!, $f: JSON) { updatePreset(id: $id, input: {filter: $f}) { id } }";
    let response = app
        .graphql(
            Some(&token),
            update,
            json!({ "id": id, "f": filter_with(&[101]) }),
        )
        .await?;
    assert_eq!(
        response.error_code(),
        Some("BAD_USER_INPUT"),
        "{}",
        response.body
    );
    assert_eq!(
        response.body["errors"][0]["extensions"]["path"],
        "input.filter"
    );

    // Using the preset twice in one request spends its 60 values twice: one use is refused.
    let twice = "query($id: ID) { a: audienceSize(presetId: $id) b: audienceSize(presetId: $id) }";
    let response = app
        .graphql(Some(&token), twice, json!({ "id": id }))
        .await?;
    let errors = response.body["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{}", response.body);
    assert_eq!(errors[0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(errors[0]["extensions"]["path"], "presetId");
    let answered = ["a", "b"]
        .iter()
        .filter(|k| response.body["data"][**k].is_number())
        .count();
    assert_eq!(answered, 1, "{}", response.body);
    Ok(())
}

#[tokio::test]
async fn password_hashing_is_bounded_and_says_when_to_retry() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.password_hash_concurrency = Some(1);
        c.password_hash_max_wait_ms = 200;
    })
    .await?;
    app.sign_up("Acme", "ann@acme.example", "correct horse battery")
        .await?;
    // Every hashing slot is busy (the test holds the only one).
    let slot = app
        .state()
        .passwords
        .slot()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let response = app
        .login("ann@acme.example", "correct horse battery")
        .await?;
    assert_eq!(
        response.error_code(),
        Some("UNAVAILABLE"),
        "{}",
        response.body
    );
    let retry_after = response.body["errors"][0]["extensions"]["retryAfter"].as_u64();
    assert!(retry_after.is_some_and(|s| s >= 1), "{}", response.body);
    drop(slot);
    let response = app
        .login("ann@acme.example", "correct horse battery")
        .await?;
    assert!(response.data()?["login"]["accessToken"].is_string());
    Ok(())
}

#[tokio::test]
async fn change_password_is_rate_limited_per_user() -> anyhow::Result<()> {
    // A long period, so that nothing refills while the test runs.
    let app = TestApp::spawn_with(|c| c.rate_limit_period_secs = 3600).await?;
    let ann = app
        .sign_up("Acme", "ann@acme.example", "correct horse battery")
        .await?;
    let token = ann["accessToken"].as_str().unwrap_or_default().to_owned();
    let guesses: String = (0..6)
        .map(|i| {
            format!(
                "g{i}: changePassword(currentPassword: \"guess number {i}\", newPassword: \"a brand new password\") "
            )
        })
        .collect();
    let response = app
        .graphql(
            Some(&token),
            &format!("mutation {{ {guesses} }}"),
            json!({}),
        )
        .await?;
    let errors = response.body["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let code_of = |alias: &str| {
        errors
            .iter()
            .find(|e| e["path"][0] == alias)
            .map(|e| e["extensions"]["code"].clone())
    };
    for i in 0..5 {
        assert_eq!(
            code_of(&format!("g{i}")),
            Some(json!("BAD_USER_INPUT")),
            "{}",
            response.body
        );
    }
    assert_eq!(
        code_of("g5"),
        Some(json!("RATE_LIMITED")),
        "{}",
        response.body
    );
    let limited = errors.iter().find(|e| e["path"][0] == "g5");
    assert!(
        limited.is_some_and(|e| e["extensions"]["retryAfter"]
            .as_u64()
            .is_some_and(|s| s >= 1)),
        "{}",
        response.body
    );
    // Even the right password waits now.
    let response = app
        .graphql(
            Some(&token),
            "mutation { changePassword(currentPassword: \"correct horse battery\", newPassword: \"a brand new password\") }",
            json!({}),
        )
        .await?;
    assert_eq!(
        response.error_code(),
        Some("RATE_LIMITED"),
        "{}",
        response.body
    );
    // Another user is not affected.
    let bob = app
        .sign_up("Beta", "bob@beta.example", "correct horse battery")
        .await?;
    let response = app
        .graphql(
            bob["accessToken"].as_str(),
            "mutation { changePassword(currentPassword: \"correct horse battery\", newPassword: \"a brand new password\") }",
            json!({}),
        )
        .await?;
    assert_eq!(response.data()?["changePassword"], true);
    Ok(())
}
