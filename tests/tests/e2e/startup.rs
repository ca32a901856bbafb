//! Start-up safety: a pool role that could bypass Row Level Security is refused.

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
