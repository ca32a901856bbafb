//! Every migration's `down` works: on a fresh database all migrations go up, every `down` runs
//! back to nothing, and up again gives the same catalog. The current definitions
//! (`migration/sql/current/`) are exactly what the history builds.
//!
//! The test runs on the shared cluster: no `down` drops a role (roles are cluster-wide and stay
//! in place), so tests running at the same time on other databases are not disturbed.

use std::time::Duration;

use migration::MigratorTrait as _;
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use tests::cluster;

/// What the migrations leave: the printed catalog, and the full definitions of the functions
/// (the catalog leaves their bodies out).
async fn snapshot(db: &DatabaseConnection) -> anyhow::Result<String> {
    let catalog = server::db::catalog::print(db, migration::TENANT_TABLES).await?;
    let functions = text(
        db,
        "SELECT COALESCE(string_agg(pg_get_functiondef(p.oid), E'\\n' \
                                    ORDER BY p.oid::regprocedure::text), '') \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname IN ('app', 'public') \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                           AND d.objid = p.oid AND d.deptype = 'e')",
    )
    .await?;
    Ok(format!("{catalog}\n{functions}"))
}

/// The one text value `sql` returns.
async fn text(db: &DatabaseConnection, sql: &str) -> anyhow::Result<String> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT ({sql})::text AS value"),
        ))
        .await?;
    Ok(row
        .map(|row| row.try_get::<Option<String>>("", "value"))
        .transpose()?
        .flatten()
        .unwrap_or_default())
}

/// The first line where `a` and `b` differ, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    a.lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| format!("line {}: {x:?} / {y:?}", i + 1))
        .unwrap_or_else(|| "one is a prefix of the other".into())
}

#[tokio::test]
async fn every_down_runs_and_up_again_gives_the_same_catalog() -> anyhow::Result<()> {
    let _roles = tests::hold_cluster_roles().await;
    let cluster = cluster().await?;
    let name = format!("migrations_{}", uuid::Uuid::new_v4().simple());
    devservices::ensure_database(&cluster.admin_url("postgres"), &name).await?;
    let url = cluster.admin_url(&name);
    let db = server::db::connect_pool(&url, 1, Duration::from_secs(30)).await?;

    // The history alone, then the current definitions on top: they change nothing, however
    // often they are applied.
    migration::Migrator::up(&db, None).await?;
    let history = snapshot(&db).await?;
    for _ in 0..2 {
        let tx = db.begin().await?;
        migration::current::apply(&tx).await?;
        tx.commit().await?;
        let current = snapshot(&db).await?;
        assert!(
            current == history,
            "the current definitions differ from what the migrations built (first difference \
             at {}): bring migration/sql/current/ in line with the history",
            first_difference(&history, &current)
        );
    }

    // As the server migrates: the versioned migrations and the current definitions.
    server::db::migrate(&url).await?;
    let first = snapshot(&db).await?;
    assert!(first == history, "{}", first_difference(&history, &first));

    // Every down, back to nothing.
    migration::Migrator::down(&db, None).await?;
    let applied = text(&db, "SELECT count(*) FROM seaql_migrations").await?;
    assert_eq!(applied, "0", "migrations still recorded as applied");
    let left = text(
        &db,
        "SELECT string_agg(what, ', ' ORDER BY what) FROM ( \
           SELECT 'schema ' || nspname AS what FROM pg_namespace WHERE nspname = 'app' \
           UNION ALL \
           SELECT 'relation ' || c.oid::regclass::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname NOT LIKE 'seaql\\_migrations%' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                               AND d.objid = c.oid AND d.deptype = 'e') \
           UNION ALL \
           SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                               AND d.objid = p.oid AND d.deptype = 'e') \
           UNION ALL \
           SELECT 'type ' || t.oid::regtype::text FROM pg_type t \
             JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' \
               AND t.typrelid = 0 AND t.typelem = 0 \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass \
                               AND d.objid = t.oid AND d.deptype = 'e') \
           UNION ALL \
           SELECT 'policy ' || polname FROM pg_policy \
           UNION ALL \
           SELECT 'default privileges' FROM pg_default_acl \
           UNION ALL \
           SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql' \
         ) objects",
    )
    .await?;
    assert_eq!(left, "", "objects left after every down");

    // Up again: the same catalog as the first time.
    server::db::migrate(&url).await?;
    let second = snapshot(&db).await?;
    assert!(
        second == first,
        "the catalog after down and up differs (first difference at {})",
        first_difference(&first, &second)
    );
    // Nothing pending, and applying again is a no-op.
    server::db::migrate(&url).await?;
    assert!(snapshot(&db).await? == first);
    let _ = db.close().await;
    Ok(())
}
