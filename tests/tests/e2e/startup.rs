//! Start-up safety: a pool role that could bypass Row Level Security is refused, and so is an
//! unsafe catalog (tenant tables without forced RLS, unpinned or public definer functions, a
//! login role with privileges of its own).

use sea_orm::ConnectionTrait as _;
use server::{
    config::Config,
    db::safety::{CatalogProblem, catalog_problems},
};
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
    // Migration 000800 itself revokes TEMP (clones of the template get it from the harness):
    // back to before it, and up again.
    db.execute_unprepared(&format!(
        "GRANT TEMPORARY ON DATABASE \"{}\" TO PUBLIC",
        app.db_name
    ))
    .await?;
    let migrations = migration::Migrator::migrations();
    let since_000800 = migrations.len()
        - migrations
            .iter()
            .position(|m| m.name() == "m20261201_000800_hold_the_database_layer")
            .unwrap_or_default();
    migration::Migrator::down(&db, Some(since_000800 as u32)).await?;
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

/// What the pool's role finds unsafe in the catalog, and what `server::start` says about it.
async fn refused(app: &TestApp, config: Config) -> anyhow::Result<(Vec<CatalogProblem>, String)> {
    let problems = catalog_problems(&app.state().db, &migration::rls_tables()).await?;
    let error = server::start(config)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    Ok((problems, error))
}

#[tokio::test]
async fn a_correct_database_starts_with_a_clean_catalog() -> anyhow::Result<()> {
    // Spawning started a server on the freshly migrated database already; check it found
    // nothing to excuse either.
    let app = TestApp::spawn().await?;
    let problems = catalog_problems(&app.state().db, &migration::rls_tables()).await?;
    assert_eq!(problems, Vec::new());
    let peer = app.spawn_peer().await?;
    peer.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_tenant_table_without_enabled_and_forced_rls_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sql("ALTER TABLE presets NO FORCE ROW LEVEL SECURITY")
        .await?;
    app.sql("ALTER TABLE knowledge DISABLE ROW LEVEL SECURITY")
        .await?;
    let (problems, error) = refused(&app, app.config.clone()).await?;
    assert_eq!(
        problems,
        vec![
            CatalogProblem::TenantTableRls {
                table: "presets".into(),
                enabled: true,
                forced: false
            },
            CatalogProblem::TenantTableRls {
                table: "knowledge".into(),
                enabled: false,
                forced: true
            },
        ]
    );
    assert!(
        error.contains("authorization catalog is unsafe")
            && error.contains("tenant table `presets` does not force Row Level Security")
            && error.contains("tenant table `knowledge` does not enable Row Level Security"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_definer_function_without_pg_temp_last_in_its_search_path_is_refused()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sql(
        "CREATE FUNCTION app.unpinned() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
             AS 'SELECT count(*) FROM users'; \
         CREATE FUNCTION app.temp_first() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
             SET search_path = pg_temp, public AS 'SELECT count(*) FROM users'; \
         REVOKE EXECUTE ON FUNCTION app.unpinned(), app.temp_first() FROM PUBLIC",
    )
    .await?;
    let (problems, error) = refused(&app, app.config.clone()).await?;
    assert_eq!(
        problems,
        vec![
            CatalogProblem::DefinerSearchPath {
                function: "app.temp_first()".into(),
                search_path: Some("pg_temp, public".into()),
            },
            CatalogProblem::DefinerSearchPath {
                function: "app.unpinned()".into(),
                search_path: None,
            },
        ]
    );
    assert!(
        error.contains("SECURITY DEFINER function app.unpinned() has no pinned search_path")
            && error.contains(
                "SECURITY DEFINER function app.temp_first() has search_path `pg_temp, public` \
                 without pg_temp last"
            ),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_definer_function_executable_by_public_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sql("GRANT EXECUTE ON FUNCTION app.login_lookup(text) TO PUBLIC")
        .await?;
    let (problems, error) = refused(&app, app.config.clone()).await?;
    assert_eq!(
        problems,
        vec![CatalogProblem::DefinerExecutableByPublic {
            function: "app.login_lookup(text)".into()
        }]
    );
    assert!(
        error.contains("SECURITY DEFINER function app.login_lookup(text) is executable by PUBLIC"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_login_role_with_privileges_of_its_own_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let db = &app.db_name;
    app.sql(&format!(
        "GRANT SELECT ON presets TO app_authenticator; \
         GRANT UPDATE (name) ON presets TO app_authenticator; \
         GRANT USAGE ON SCHEMA app TO app_authenticator; \
         CREATE TABLE owned_by_login (id int); \
         ALTER TABLE owned_by_login OWNER TO app_authenticator; \
         GRANT TEMPORARY ON DATABASE \"{db}\" TO PUBLIC; \
         GRANT CREATE ON DATABASE \"{db}\" TO app_authenticator; \
         GRANT EXECUTE ON FUNCTION app.current_user_id() TO PUBLIC"
    ))
    .await?;
    let (problems, error) = refused(&app, app.config.clone()).await?;
    let role = || "app_authenticator".to_owned();
    assert_eq!(
        problems,
        vec![
            CatalogProblem::LoginRoleGrant {
                role: role(),
                object: "column name of table presets".into(),
                privileges: vec!["UPDATE".into()],
            },
            CatalogProblem::LoginRoleGrant {
                role: role(),
                object: "schema app".into(),
                privileges: vec!["USAGE".into()],
            },
            CatalogProblem::LoginRoleGrant {
                role: role(),
                object: "table presets".into(),
                privileges: vec!["SELECT".into()],
            },
            CatalogProblem::LoginRoleOwns {
                role: role(),
                object: "table owned_by_login".into(),
            },
            CatalogProblem::DatabasePrivilege {
                role: role(),
                database: db.clone(),
                grantee: "PUBLIC".into(),
                privileges: vec!["TEMPORARY".into()],
            },
            CatalogProblem::DatabasePrivilege {
                role: role(),
                database: db.clone(),
                grantee: role(),
                privileges: vec!["CREATE".into()],
            },
            CatalogProblem::ExecutableThroughPublic {
                role: role(),
                function: "app.current_user_id()".into(),
            },
        ]
    );
    for expected in [
        "the login role `app_authenticator` has privileges of its own: SELECT on table presets",
        "the login role `app_authenticator` has privileges of its own: UPDATE on column name of table presets",
        "the login role `app_authenticator` has privileges of its own: USAGE on schema app",
        "the login role `app_authenticator` owns table owned_by_login",
        "PUBLIC, and so the login role `app_authenticator`, has TEMPORARY on database",
        "the login role `app_authenticator` has CREATE on database",
        "the login role `app_authenticator` may execute app.current_user_id() through PUBLIC",
    ] {
        assert!(error.contains(expected), "{expected}\nnot in: {error}");
    }
    Ok(())
}

#[tokio::test]
async fn the_bypass_flag_excuses_only_the_privileges_of_a_bypassing_pool_role() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    app.sql(&format!(
        "GRANT TEMPORARY ON DATABASE \"{}\" TO PUBLIC",
        app.db_name
    ))
    .await?;
    // The unprivileged pool role: the flag is about bypassing RLS, which it does not, so what
    // it may do of its own is refused all the same.
    let mut config = app.config.clone();
    config.allow_rls_bypass = true;
    let (_, error) = refused(&app, config.clone()).await?;
    assert!(
        error.contains("PUBLIC, and so the login role `app_authenticator`, has TEMPORARY"),
        "{error}"
    );

    // A superuser pool allowed to bypass holds every privilege by design: that is only logged.
    config.database_url = Some(cluster().await?.admin_url(&app.db_name));
    let server = server::start(config.clone()).await?;
    server.shutdown().await?;

    // Tables and definer functions are every role's business: refused even then.
    app.sql("ALTER TABLE presets NO FORCE ROW LEVEL SECURITY")
        .await?;
    let error = server::start(config)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        error.contains("tenant table `presets` does not force Row Level Security")
            && !error.contains("TEMPORARY"),
        "{error}"
    );
    Ok(())
}
