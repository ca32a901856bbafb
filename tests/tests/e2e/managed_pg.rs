//! Deployable on managed PostgreSQL: the migrations succeed when run by a role that may create
//! roles but is no superuser, as managed services give, and the server then starts on them.

use sea_orm::ConnectionTrait as _;
use tests::{TestApp, cluster};

#[tokio::test]
async fn migrations_run_as_a_createrole_owner_that_is_no_superuser() -> anyhow::Result<()> {
    let _roles = tests::hold_cluster_roles().await;
    let cluster = cluster().await?;
    // A fresh, unmigrated database owned by a CREATEROLE role, as a managed service sets it up.
    let name = format!("managed_{}", uuid::Uuid::new_v4().simple());
    let owner = format!("owner_{}", &name[8..20]);
    let superuser = server::db::connect_pool(
        &cluster.admin_url("postgres"),
        1,
        std::time::Duration::from_secs(30),
    )
    .await?;
    superuser
        .execute_unprepared(&format!(
            "CREATE ROLE {owner} LOGIN CREATEROLE NOSUPERUSER PASSWORD 'owner-password'"
        ))
        .await?;
    superuser
        .execute_unprepared(&format!("CREATE DATABASE {name} OWNER {owner}"))
        .await?;
    let owner_url = cluster.url(&owner, "owner-password", &name);
    server::db::migrate(&owner_url).await?;
    // Applying them again is a no-op.
    server::db::migrate(&owner_url).await?;

    // The server starts on that database with its safety checks, and serves.
    let app = TestApp::spawn().await?;
    let mut config = app.config.clone();
    config.database_url = Some(cluster.app_url(&name));
    config.database_admin_url = Some(owner_url);
    let server = server::start(config).await?;
    let response = app
        .client
        .post(format!("http://{}/graphql", server.addr))
        .json(&serde_json::json!({ "query": "{ __typename }" }))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    server.shutdown().await?;
    Ok(())
}
