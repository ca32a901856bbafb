//! The database layer against an attacker who holds a pooled connection: the login role reaches
//! nothing after `RESET ROLE`, definer functions cannot be shadowed by temporary tables, the
//! audience views are security barriers that honour blocks, and no predicate the API emits on
//! `user_profiles` reveals a masked value.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};
use tests::{TestApp, TestUser};

/// Runs `sql` after `RESET ROLE` inside `user`'s request transaction: as the pool's login role.
async fn as_login_role(app: &TestApp, user: &TestUser, sql: &str) -> Result<Vec<Value>, String> {
    let tx = app
        .request_tx(user, server::db::Access::ReadWrite)
        .await
        .map_err(|e| e.to_string())?;
    tx.conn()
        .execute_unprepared("RESET ROLE")
        .await
        .map_err(|e| e.to_string())?;
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT to_jsonb(t) AS row FROM ({sql}) t"),
        ))
        .await
        .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| r.try_get::<Value>("", "row").map_err(|e| e.to_string()))
        .collect()
}

#[tokio::test]
async fn after_reset_role_the_login_role_reads_no_row_and_executes_no_function()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, a_admin, _) = app.company_with_users("Acme", 1).await?;
    let (_, b_admin, _) = app.company_with_users("Globex", 1).await?;

    let who = as_login_role(&app, &a_admin, "SELECT current_user::text AS name")
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(who[0]["name"], "app_authenticator");

    // The exploits of old: another company's admin's password hash, and a session for them.
    let lookup = as_login_role(
        &app,
        &a_admin,
        &format!("SELECT * FROM app.login_lookup('{}')", b_admin.email),
    )
    .await;
    assert!(
        lookup
            .as_ref()
            .is_err_and(|e| e.contains("permission denied")),
        "{lookup:?}"
    );
    let session = as_login_role(
        &app,
        &a_admin,
        &format!(
            "SELECT app.create_session(gen_random_uuid(), '{}', '{}', 'h', now() + interval '1 day', \
             now() + interval '1 day', 'ua', 'ip', 'fp')",
            b_admin.id, b_admin.company_id
        ),
    )
    .await;
    assert!(
        session
            .as_ref()
            .is_err_and(|e| e.contains("permission denied")),
        "{session:?}"
    );

    // Nothing at all: no function, table, view, column or sequence of the application's schemas.
    let reachable = as_login_role(
        &app,
        &a_admin,
        "SELECT 'function ' || p.oid::regprocedure::text AS what
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname IN ('app', 'public') AND has_function_privilege(p.oid, 'EXECUTE')
         UNION ALL
         SELECT c.relkind::text || ' ' || c.oid::regclass::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('app', 'public') AND c.relkind IN ('r', 'v', 'm', 'p', 'S')
            AND (has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                 OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))
         UNION ALL
         SELECT 'schema ' || n.nspname FROM pg_namespace n
          WHERE n.nspname = 'app' AND has_schema_privilege(n.oid, 'USAGE')
         UNION ALL
         SELECT 'schema public (CREATE)' WHERE has_schema_privilege('public', 'CREATE')
         UNION ALL
         SELECT 'database (TEMP)' WHERE has_database_privilege(current_database(), 'TEMP')",
    )
    .await
    .map_err(anyhow::Error::msg)?;
    assert!(reachable.is_empty(), "the login role reaches {reachable:?}");

    // And for real: every tenant table refuses it.
    for table in migration::rls_tables() {
        let read = as_login_role(&app, &a_admin, &format!("SELECT 1 FROM {table}")).await;
        assert!(
            read.as_ref()
                .is_err_and(|e| e.contains("permission denied")),
            "{table}: {read:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn no_request_role_may_create_temporary_tables() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let anonymous = server::db::RequestTx::begin(
        &app.state().db,
        &server::auth::Viewer::Anonymous,
        server::db::Access::ReadWrite,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let made = anonymous
        .conn()
        .execute_unprepared("CREATE TEMP TABLE invitations (id uuid)")
        .await;
    assert!(made.is_err_and(|e| e.to_string().contains("permission denied")));
    let made = app
        .execute_as(&admin, "CREATE TEMP TABLE invitations (id uuid)")
        .await;
    assert!(made.is_err_and(|e| format!("{e:?}").contains("permission denied")));
    Ok(())
}

#[tokio::test]
async fn a_temporary_table_cannot_stand_in_for_a_table_of_a_definer_function() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let (victim, _, _) = app.company_with_users("Victim", 0).await?;
    // Even a role that may create temporary tables (here the superuser) cannot redirect
    // app.accept_invitation to one: its search_path puts pg_temp last.
    let tx = app.admin.begin().await?;
    tx.execute_unprepared(&format!(
        "CREATE TEMP TABLE invitations (LIKE public.invitations INCLUDING DEFAULTS);
         INSERT INTO pg_temp.invitations (id, company_id, email, role, token_hash, expires_at)
             VALUES (gen_random_uuid(), '{victim}', 'mallory@evil.example', 'admin', 'forged-hash',
                     now() + interval '1 day')"
    ))
    .await?;
    let accepted = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT * FROM app.accept_invitation('{victim}', 'forged-hash', gen_random_uuid(), \
                 'hash', 'Mallory')"
            ),
        ))
        .await?;
    tx.rollback().await?;
    assert!(accepted.is_empty(), "a forged invitation was accepted");

    let unpinned = app
        .admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT p.oid::regprocedure::text AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prosecdef AND n.nspname IN ('app', 'public')
               AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c
                               WHERE c LIKE 'search_path=%' AND c LIKE '%pg_temp')",
        ))
        .await?;
    assert!(
        unpinned.is_empty(),
        "{} definer functions do not pin search_path with pg_temp last",
        unpinned.len()
    );
    Ok(())
}

const AUDIENCE_SIZE: &str = "query($f: JSON) { audienceSize(filter: $f) }";

async fn audience_size(app: &TestApp, user: &TestUser, filter: Value) -> anyhow::Result<Value> {
    let response = app
        .graphql(
            Some(&app.token_for(user)),
            AUDIENCE_SIZE,
            json!({ "f": filter }),
        )
        .await?;
    Ok(response.data()?["audienceSize"].clone())
}

#[tokio::test]
async fn a_blocked_pair_cannot_probe_each_other_through_audiences() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, _, m) = app.company_with_users("Acme", 2).await?;
    let (blocker, blocked) = (&m[0], &m[1]);
    app.sql(&format!(
        "INSERT INTO audience_fields (company_id, name, type) VALUES ('{company}', 'plan', 'string');
         UPDATE users SET attributes = '{{\"plan\": \"secret\"}}', email = 'blocker@hidden.example'
          WHERE id = '{}'",
        blocker.id
    ))
    .await?;
    let by_plan = json!({ "include": { "field": "plan", "op": "eq", "value": "secret" } });
    let by_domain =
        json!({ "include": { "field": "email_domain", "op": "eq", "value": "hidden.example" } });
    // Before the block, the whole profile is shared with the company.
    assert_eq!(audience_size(&app, blocked, by_plan.clone()).await?, 1);
    assert_eq!(audience_size(&app, blocked, by_domain.clone()).await?, 1);

    let block = app
        .graphql(
            Some(&app.token_for(blocker)),
            "mutation($u: ID!) { blockUser(userId: $u) }",
            json!({ "u": blocked.id }),
        )
        .await?;
    block.data()?;
    assert_eq!(audience_size(&app, blocked, by_plan).await?, 0);
    assert_eq!(audience_size(&app, blocked, by_domain).await?, 0);
    // Nor the other way round.
    let members = json!({ "include": { "field": "role", "op": "eq", "value": "member" } });
    assert_eq!(audience_size(&app, blocker, members).await?, 1);
    Ok(())
}

#[tokio::test]
async fn the_audience_views_are_security_barriers() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let rows = app
        .admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS name FROM pg_class c
             WHERE c.relname IN ('audience_users', 'audience_users_admin')
               AND 'security_barrier=true' = ANY (c.reloptions)",
        ))
        .await?;
    assert_eq!(rows.len(), 2);
    Ok(())
}

const USERS: &str = "query($s: String, $order: UserOrder, $after: String) {
  users(first: 50, search: $s, orderBy: $order, after: $after) {
    totalCount edges { cursor node { id email attributes } }
  }
}";

#[tokio::test]
async fn no_predicate_or_ordering_of_the_api_reveals_a_masked_value() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, _, m) = app.company_with_users("Acme", 3).await?;
    let (hidden, viewer) = (&m[0], &m[1]);
    // The hidden user's real e-mail would sort last and matches a unique search string.
    app.sql(&format!(
        "INSERT INTO audience_fields (company_id, name, type) VALUES ('{company}', 'plan', 'string');
         UPDATE users SET email = 'zzzz-needle@acme.example', attributes = '{{\"plan\": \"gold\"}}',
                          profile_visibility = 'private'
          WHERE id = '{}'",
        hidden.id
    ))
    .await?;
    let token = app.token_for(viewer);
    let run = |variables: Value| {
        let token = token.clone();
        let app = &app;
        async move { app.graphql(Some(&token), USERS, variables).await }
    };

    for needle in ["needle", "zzzz", "zzzz-needle@acme.example"] {
        let found = run(json!({ "s": needle })).await?;
        let edges = found.data()?["users"]["edges"].clone();
        assert!(
            edges
                .as_array()
                .into_iter()
                .flatten()
                .all(|e| e["node"]["id"] != json!(hidden.id)),
            "search `{needle}` found the hidden user: {edges}"
        );
    }
    for direction in ["ASC", "DESC"] {
        for field in ["EMAIL", "DISPLAY_NAME", "CREATED_AT"] {
            let listed =
                run(json!({ "order": { "field": field, "direction": direction } })).await?;
            let edges = listed.data()?["users"]["edges"].clone();
            let mut found = false;
            for edge in edges.as_array().into_iter().flatten() {
                let text = edge.to_string();
                assert!(
                    !text.contains("needle") && !text.contains("gold"),
                    "{field} {direction} shows a masked value: {text}"
                );
                found |= edge["node"]["id"] == json!(hidden.id);
            }
            assert!(
                found,
                "{field} {direction}: the hidden user is listed, masked"
            );
        }
    }
    // Under EMAIL ordering a masked address sorts as empty text, first, not by the real one.
    let ascending = run(json!({ "order": { "field": "EMAIL", "direction": "ASC" } })).await?;
    assert_eq!(
        ascending.data()?["users"]["edges"][0]["node"]["id"],
        json!(hidden.id),
        "EMAIL ordering placed the hidden user by their real address"
    );
    // Audience filters of non-admins cannot probe the hidden attributes or address either.
    let by_plan = json!({ "include": { "field": "plan", "op": "eq", "value": "gold" } });
    assert_eq!(audience_size(&app, viewer, by_plan).await?, 0);
    let by_address =
        json!({ "include": { "field": "email_domain", "op": "eq", "value": "acme.example" } });
    assert_eq!(audience_size(&app, viewer, by_address).await?, 3);
    Ok(())
}
