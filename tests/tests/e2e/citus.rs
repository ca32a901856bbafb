//! The request pattern on a private Citus cluster (a coordinator and two workers): the caller's
//! identity reaches the workers, where the same policies decide the same rows; the request
//! roles reach a worker only with the coordinator's credential, the pool role reaches none; a
//! statement of one company is a single-shard router query.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::Value;
use tests::{TestApp, TestUser, citus_cluster};
use uuid::Uuid;

/// A distributed table of the test's own, keyed and policed as tenant tables are.
const PROBE: &str = "
    CREATE TABLE citus_probe (
        company_id uuid NOT NULL,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        note text NOT NULL DEFAULT '',
        PRIMARY KEY (company_id, id)
    );
    ALTER TABLE citus_probe ENABLE ROW LEVEL SECURITY;
    ALTER TABLE citus_probe FORCE ROW LEVEL SECURITY;
    CREATE POLICY citus_probe_company ON citus_probe TO app_user
        USING (company_id = app.current_company_id() AND app.current_user_id() IS NOT NULL)
        WITH CHECK (company_id = app.current_company_id());
    GRANT SELECT, INSERT, UPDATE, DELETE ON citus_probe TO app_user;
    SELECT create_distributed_table('citus_probe', 'company_id');
";

/// Two companies with `rows` probe rows each: (an admin of the first, an admin of the second).
async fn two_companies(app: &TestApp, rows: usize) -> anyhow::Result<(TestUser, TestUser)> {
    app.sql(PROBE).await?;
    let (a, a_admin, _) = app.company_with_users("Acme", 0).await?;
    let (b, b_admin, _) = app.company_with_users("Globex", 0).await?;
    for company in [a, b] {
        app.sql(&format!(
            "INSERT INTO citus_probe (company_id, note) \
             SELECT '{company}', 'row ' || n FROM generate_series(1, {rows}) n"
        ))
        .await?;
    }
    Ok((a_admin, b_admin))
}

/// The worker that holds `company`'s shard of `table` (its port).
async fn shard_port(app: &TestApp, table: &str, company: Uuid) -> anyhow::Result<i32> {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT p.nodeport FROM pg_dist_shard s JOIN pg_dist_placement pl USING (shardid) \
             JOIN pg_dist_node p USING (groupid) \
             WHERE s.logicalrelid = $1::regclass \
               AND s.shardid = get_shard_id_for_distribution_column($1::regclass, $2)",
            [table.into(), company.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no shard for {company}"))?;
    Ok(row.try_get("", "nodeport")?)
}

/// The error of `result`, which must have failed (`what` says what must not have happened).
fn failure<T: std::fmt::Debug, E: std::fmt::Debug>(
    result: Result<T, E>,
    what: &str,
) -> anyhow::Result<String> {
    match result {
        Ok(value) => anyhow::bail!("{what}: it did, {value:?}"),
        Err(error) => Ok(format!("{error:?}")),
    }
}

/// The `company_id` of every probe row `user` sees, read in a request transaction (not through
/// `query_as`: a whole-row `to_jsonb` over a statement Citus sends to every shard comes back
/// with its columns named f1, f2, ...).
async fn companies_seen(app: &TestApp, user: &TestUser) -> anyhow::Result<Vec<String>> {
    let tx = app.request_tx(user, server::db::Access::ReadOnly).await?;
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT company_id::text AS company_id FROM citus_probe",
        ))
        .await?;
    tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    rows.iter()
        .map(|r| r.try_get::<String>("", "company_id").map_err(Into::into))
        .collect()
}

#[tokio::test]
async fn the_callers_identity_decides_the_rows_on_the_workers() -> anyhow::Result<()> {
    let app = TestApp::spawn_on_citus().await?;
    let (a_admin, b_admin) = two_companies(&app, 5).await?;
    // The rows are on the workers, not on the coordinator.
    let coordinator_port = i32::from(
        citus_cluster()
            .await?
            .citus()
            .ok_or_else(|| anyhow::anyhow!("not a Citus cluster"))?
            .coordinator()
            .port(),
    );
    for user in [&a_admin, &b_admin] {
        assert_ne!(
            shard_port(&app, "citus_probe", user.company_id).await?,
            coordinator_port
        );
    }

    // What the worker that holds the caller's rows sees: the request role and the caller's
    // identity, in a read-only transaction.
    let seen = app
        .query_as(
            &a_admin,
            &format!(
                "SELECT current_user AS role, current_setting('app.company_id') AS company, \
                        current_setting('app.user_id') AS user_id, \
                        current_setting('transaction_read_only') AS read_only, \
                        inet_server_port() AS port \
                 FROM citus_probe WHERE company_id = '{}' LIMIT 1",
                a_admin.company_id
            ),
        )
        .await?;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["role"], "app_user");
    assert_eq!(seen[0]["company"], a_admin.company_id.to_string());
    assert_eq!(seen[0]["user_id"], a_admin.id.to_string());
    assert_eq!(seen[0]["read_only"], "on");
    assert_eq!(
        seen[0]["port"],
        shard_port(&app, "citus_probe", a_admin.company_id).await?
    );

    // Without a company filter the statement goes to every shard: each worker's policy keeps
    // the caller's company's rows only.
    for user in [&a_admin, &b_admin] {
        let seen = companies_seen(&app, user).await?;
        assert_eq!(seen, vec![user.company_id.to_string(); 5]);
    }

    // Asking for the other company's rows by name reaches its shard, and finds nothing there.
    let other = app
        .query_as(
            &a_admin,
            &format!(
                "SELECT company_id FROM citus_probe WHERE company_id = '{}'",
                b_admin.company_id
            ),
        )
        .await?;
    assert!(other.is_empty(), "{other:?}");

    // Writes: the caller's rows only, and nothing into another company.
    let updated = app
        .execute_as(&a_admin, "UPDATE citus_probe SET note = 'touched'")
        .await?;
    assert_eq!(updated, 5);
    let deleted = app
        .execute_as(
            &a_admin,
            &format!(
                "DELETE FROM citus_probe WHERE company_id = '{}'",
                b_admin.company_id
            ),
        )
        .await?;
    assert_eq!(deleted, 0);
    let error = failure(
        app.execute_as(
            &a_admin,
            &format!(
                "INSERT INTO citus_probe (company_id) VALUES ('{}')",
                b_admin.company_id
            ),
        )
        .await,
        "an insert into another company must fail",
    )?;
    assert!(error.contains("row-level security"), "{error:?}");
    let untouched = app
        .sql("SELECT 1 FROM citus_probe WHERE note = 'touched'")
        .await?;
    assert_eq!(untouched, 5);
    Ok(())
}

#[tokio::test]
async fn the_workers_admit_request_roles_with_the_coordinators_credential_only()
-> anyhow::Result<()> {
    let app = TestApp::spawn_on_citus().await?;
    let cluster = citus_cluster().await?;
    let citus = cluster
        .citus()
        .ok_or_else(|| anyhow::anyhow!("not a Citus cluster"))?;
    let db = &app.db_name;
    let timeout = Duration::from_secs(10);

    // The pool role logs in on the coordinator, on no worker.
    assert!(
        server::db::connect_pool(&cluster.app_url(db), 1, timeout)
            .await
            .is_ok()
    );
    for url in cluster.worker_urls("app_authenticator", cluster.app_password(), db) {
        let refused = server::db::connect_pool(&url, 1, timeout).await;
        assert!(refused.is_err(), "the pool role reached a worker");
    }
    // A request role logs in on no worker without the coordinator's password, and never on
    // the coordinator.
    for role in devservices::REQUEST_ROLES {
        for url in cluster.worker_urls(role, cluster.app_password(), db) {
            let refused = server::db::connect_pool(&url, 1, timeout).await;
            assert!(
                refused.is_err(),
                "{role} reached a worker with another password"
            );
        }
        let refused =
            server::db::connect_pool(&cluster.url(role, citus.request_password(), db), 1, timeout)
                .await;
        assert!(refused.is_err(), "{role} logged in on the coordinator");
    }
    // The password is in a catalog only a superuser reads: neither the pool role nor a request
    // role can.
    let pool = server::db::connect_pool(&cluster.app_url(db), 1, timeout).await?;
    let error = failure(
        pool.query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT authinfo FROM pg_dist_authinfo",
        ))
        .await,
        "the pool role must not read pg_dist_authinfo",
    )?;
    assert!(error.contains("permission denied"), "{error:?}");
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let error = failure(
        app.query_as(&admin, "SELECT authinfo FROM pg_dist_authinfo")
            .await,
        "a request role must not read pg_dist_authinfo",
    )?;
    assert!(error.contains("permission denied"), "{error:?}");
    // With it, the coordinator's connections get in (which the other test relies on).
    for url in cluster.worker_urls("app_user", citus.request_password(), db) {
        let conn = server::db::connect_pool(&url, 1, timeout).await?;
        let _ = conn.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_statement_of_one_company_is_one_task() -> anyhow::Result<()> {
    let app = TestApp::spawn_on_citus().await?;
    let (a_admin, _) = two_companies(&app, 3).await?;
    let tx = app
        .request_tx(&a_admin, server::db::Access::ReadOnly)
        .await?;
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "EXPLAIN (FORMAT JSON) SELECT note FROM citus_probe WHERE company_id = '{}'",
                a_admin.company_id
            ),
        ))
        .await?;
    let plan: Value = rows[0].try_get("", "QUERY PLAN")?;
    let text = plan.to_string();
    assert!(text.contains("\"Task Count\":1"), "{text}");
    tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// The application's tables distributed by company, parents before the tables whose foreign
/// keys name them (`companies` by `id`, every other by `company_id`, all co-located): each
/// table that Citus refused, with its error. Rows already there are moved to the shards.
async fn distribute_the_schema(app: &TestApp) -> anyhow::Result<Vec<(String, String)>> {
    let edges: Vec<(String, String)> = app
        .admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent \
             FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid \
             WHERE c.contype = 'f' AND r.relnamespace = 'public'::regnamespace \
               AND c.conrelid <> c.confrelid",
        ))
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "child")?, row.try_get("", "parent")?)))
        .collect::<anyhow::Result<_>>()?;
    let mut pending: Vec<String> = std::iter::once("companies")
        .chain(migration::TENANT_TABLES.iter().copied())
        .map(str::to_owned)
        .collect();
    pending.dedup();
    let mut refused = Vec::new();
    app.sql("ALTER SYSTEM SET citus.enable_unsafe_triggers = on; SELECT pg_reload_conf()")
        .await?;
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|t| {
                !edges
                    .iter()
                    .any(|(child, parent)| child == t && parent != t && pending.contains(parent))
            })
            .unwrap_or(0);
        let table = pending.remove(ready);
        let sql = if table == "companies" {
            "SET citus.enable_unsafe_triggers = on; SELECT create_distributed_table('companies', 'id')"
                .to_owned()
        } else {
            format!(
                "SET citus.enable_unsafe_triggers = on; \
                 SELECT create_distributed_table('{table}', 'company_id', colocate_with => 'companies')"
            )
        };
        if let Err(error) = app.sql(&sql).await {
            refused.push((table, format!("{error}")));
        }
    }
    Ok(refused)
}

/// What `user` reads of `sql` (one text column `v`) in a request transaction, sorted.
async fn read_as(app: &TestApp, user: &TestUser, sql: &str) -> anyhow::Result<Vec<String>> {
    let tx = app.request_tx(user, server::db::Access::ReadOnly).await?;
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await;
    tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut values = rows?
        .iter()
        .map(|r| r.try_get::<String>("", "v").map_err(Into::into))
        .collect::<anyhow::Result<Vec<_>>>()?;
    values.sort();
    Ok(values)
}

/// The schema's own policies, distributed: Citus accepts them (no sub-select), and on the
/// workers they decide the rows they decide on one node (users, activities with friends,
/// blocks and shares, presets), with the grants, friends and blocks the request set.
#[tokio::test]
async fn the_schemas_policies_decide_the_same_rows_on_the_workers() -> anyhow::Result<()> {
    let app = TestApp::spawn_on_citus().await?;
    let (a, owner, members) = app.company_with_users("Acme", 3).await?;
    let (friend, blocked, stranger) = (&members[0], &members[1], &members[2]);
    let (_, other_admin, _) = app.company_with_users("Globex", 0).await?;
    let pair = |x: Uuid, y: Uuid| if x < y { (x, y) } else { (y, x) };
    let (fa, fb) = pair(owner.id, friend.id);
    let (ba, bb) = pair(owner.id, blocked.id);
    app.sql(&format!(
        "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, responded_at) \
         VALUES ('{a}', '{fa}', '{fb}', 'accepted', '{o}', now()); \
         INSERT INTO friendships (company_id, user_a, user_b, status, requested_by, blocked_by, responded_at) \
         VALUES ('{a}', '{ba}', '{bb}', 'blocked', '{o}', '{o}', now()); \
         INSERT INTO activity_kinds (company_id, id, name, metrics) \
         VALUES ('{a}', '{k}', 'run', '[{{\"name\": \"km\", \"type\": \"number\"}}]'); \
         INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics, note, visibility, shared_with) VALUES \
             ('{a}', '{o}', '{k}', now(), '{{\"km\": 1}}', 'private', 'private', '{{}}'), \
             ('{a}', '{o}', '{k}', now(), '{{\"km\": 2}}', 'friends', 'friends', '{{}}'), \
             ('{a}', '{o}', '{k}', now(), '{{\"km\": 3}}', 'company', 'company', '{{}}'), \
             ('{a}', '{o}', '{k}', now(), '{{\"km\": 4}}', 'shared', 'private', '{{{s}}}'); \
         INSERT INTO activity_shares (company_id, activity_id, user_id, owner_id) \
             SELECT company_id, id, '{s}', user_id FROM activities WHERE note = 'shared'; \
         INSERT INTO presets (company_id, owner_id, name, filter, visibility) VALUES \
             ('{a}', '{o}', 'mine', '{{}}', 'private'), ('{a}', '{o}', 'ours', '{{}}', 'company'), \
             ('{a}', '{s}', 'theirs', '{{}}', 'private');",
        o = owner.id,
        s = stranger.id,
        k = Uuid::now_v7(),
    ))
    .await?;

    let activities = "SELECT note AS v FROM activities";
    let users = "SELECT email AS v FROM users";
    let presets = "SELECT name AS v FROM presets";
    let viewers = [&owner, friend, blocked, stranger, &other_admin];
    let mut before = Vec::new();
    for viewer in viewers {
        for sql in [activities, users, presets] {
            before.push(read_as(&app, viewer, sql).await?);
        }
    }
    // What one node decides, as the activity tests say it.
    assert_eq!(before[0], ["company", "friends", "private", "shared"]);
    assert_eq!(before[3], ["company", "friends"]);
    assert!(before[6].is_empty(), "{:?}", before[6]);
    assert_eq!(before[9], ["company", "shared"]);
    assert!(before[12].is_empty(), "{:?}", before[12]);
    assert_eq!(before[1].len(), 4);
    assert_eq!(before[11], ["ours", "theirs"]);
    assert_eq!(before[13], [other_admin.email.clone()]);

    let refused = distribute_the_schema(&app).await?;
    for (table, error) in &refused {
        eprintln!("not distributed: {table}: {error}");
    }
    let distributed: Vec<String> = app
        .admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT logicalrelid::regclass::text AS t FROM pg_dist_partition",
        ))
        .await?
        .iter()
        .map(|r| r.try_get("", "t").map_err(Into::into))
        .collect::<anyhow::Result<_>>()?;
    for table in [
        "users",
        "activities",
        "activity_shares",
        "friendships",
        "presets",
    ] {
        assert!(
            distributed.iter().any(|t| t == table),
            "{table} not distributed: {refused:?}"
        );
    }
    let mut after = Vec::new();
    for viewer in viewers {
        for sql in [activities, users, presets] {
            after.push(read_as(&app, viewer, sql).await?);
        }
    }
    assert_eq!(after, before);
    Ok(())
}
