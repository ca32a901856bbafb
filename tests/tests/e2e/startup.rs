//! Start-up safety: a pool role that could bypass Row Level Security is refused.

use sea_orm::ConnectionTrait as _;
use tests::{TestApp, cluster};

#[tokio::test]
async fn a_superuser_pool_is_refused_unless_explicitly_allowed() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let admin_url = cluster().await?.admin_url(&app.db_name);
    let mut config = app.config.clone();
    config.database_url = Some(admin_url);
    let error = server::start(config.clone())
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        error.contains("is a superuser") && error.contains("ALLOW_RLS_BYPASS"),
        "{error}"
    );

    config.allow_rls_bypass = true;
    let server = server::start(config).await?;
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn migrations_are_idempotent() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let admin_url = cluster().await?.admin_url(&app.db_name);
    // The template is already migrated: applying again changes nothing and does not fail.
    server::db::migrate(&admin_url).await?;
    let mut config = app.config.clone();
    config.migrate_on_start = true;
    let server = server::start(config).await?;
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn the_newest_migration_goes_down_and_up_again() -> anyhow::Result<()> {
    use migration::MigratorTrait as _;
    let app = TestApp::spawn().await?;
    let admin_url = cluster().await?.admin_url(&app.db_name);
    let db = server::db::connect_pool(&admin_url, 1, std::time::Duration::from_secs(30)).await?;
    migration::Migrator::down(&db, Some(1)).await?;
    migration::Migrator::up(&db, None).await?;
    // The migration itself revokes TEMP (clones of the template get it from the harness).
    db.execute_unprepared(&format!(
        "GRANT TEMPORARY ON DATABASE \"{}\" TO PUBLIC",
        app.db_name
    ))
    .await?;
    migration::Migrator::down(&db, Some(1)).await?;
    migration::Migrator::up(&db, None).await?;
    let temp = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT has_database_privilege('app_user', current_database(), 'TEMP') AS temp",
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "temp"))
        .transpose()?;
    assert_eq!(temp, Some(false), "the migration leaves TEMP to PUBLIC");
    // The server works on the result: a signed-in request reads its company.
    let (_, admin, _) = app.company_with_users("Acme", 1).await?;
    let response = app
        .graphql(
            Some(&app.token_for(&admin)),
            "{ company { name } }",
            serde_json::json!({}),
        )
        .await?;
    assert_eq!(response.data()?["company"]["name"], "Acme");
    Ok(())
}
