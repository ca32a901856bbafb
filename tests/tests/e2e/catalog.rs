//! `policies/database.sql` is exactly what `server print-catalog --fresh` prints for a freshly
//! migrated database, whoever prints it.

use std::time::Duration;

use tests::cluster;

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/database.sql");

#[tokio::test]
async fn policies_database_sql_matches_a_freshly_migrated_database() -> anyhow::Result<()> {
    let _roles = tests::hold_cluster_roles().await;
    let cluster = cluster().await?;
    // A database of its own, cloned from the migrated template, under another name than the
    // file was made from: the name must not show.
    let db_name = format!("catalog_{}", std::process::id());
    cluster.create_database(&db_name).await?;
    let owner =
        server::db::connect_pool(&cluster.admin_url(&db_name), 1, Duration::from_secs(30)).await?;
    let current = server::db::catalog::print(&owner, migration::TENANT_TABLES).await?;
    let current = server::db::catalog::checked_in(&current);
    // The pool's role reads only pg_catalog, and sees the same catalog.
    let pool =
        server::db::connect_pool(&cluster.app_url(&db_name), 1, Duration::from_secs(30)).await?;
    let as_pool_role = server::db::catalog::print(&pool, migration::TENANT_TABLES).await?;
    let as_pool_role = server::db::catalog::checked_in(&as_pool_role);
    assert!(
        as_pool_role == current,
        "the catalog printed as the pool's role differs from the owner's"
    );

    let checked_in = std::fs::read_to_string(CATALOG).unwrap_or_default();
    let first_difference = checked_in
        .lines()
        .zip(current.lines())
        .position(|(a, b)| a != b)
        .map(|i| i + 1)
        .unwrap_or(checked_in.lines().count().min(current.lines().count()) + 1);
    assert!(
        checked_in == current,
        "policies/database.sql is out of date (first difference at line {first_difference}): \
         run `make catalog` (cargo run -p server-cli -- print-catalog --fresh > policies/database.sql)"
    );
    Ok(())
}
