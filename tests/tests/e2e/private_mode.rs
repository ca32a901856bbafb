//! Private mode as `make run` users meet it: `server seed` / `server migrate` while a server of
//! the same DATA_DIR runs say what to do, and the demo admin's login is found on every start.

use sea_orm::ConnectionTrait;
use server::config::Config;
use tests::{TestApp, cluster};

#[tokio::test]
async fn a_second_start_of_a_running_private_cluster_says_what_to_do() -> anyhow::Result<()> {
    let cluster = cluster().await?;
    let data_dir = cluster
        .dir()
        .join(format!("private-{}", uuid::Uuid::new_v4().simple()));
    let mut serving = Config::defaults();
    serving.data_dir = data_dir.clone();
    // Only PostgreSQL is private here; the tests' Redis serves.
    serving.redis_url = Some(cluster.redis_url());
    let running = devservices::prepare_private(&mut serving).await?;
    let port = running
        .postgres
        .as_ref()
        .map(devservices::PrivatePostgres::port)
        .ok_or_else(|| anyhow::anyhow!("no private PostgreSQL"))?;
    // The key secrets are sealed with was generated into DATA_DIR, for its owner only.
    let keys = serving
        .secrets_keys
        .as_ref()
        .map(|k| server::secrets::Secrets::parse(k.expose()))
        .transpose()?;
    assert!(keys.is_some_and(|k| k.can_seal()), "no key in private mode");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data_dir.join("secrets_keys"))?.permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // What `server seed` / `server migrate` do first, on the same DATA_DIR.
    let mut second = Config::defaults();
    second.data_dir = data_dir.clone();
    second.redis_url = Some(cluster.redis_url());
    let refused = devservices::prepare_private(&mut second).await;
    let message = match refused {
        Ok(_) => anyhow::bail!("a second private cluster started on the same data"),
        Err(error) => format!("{error:#}"),
    };
    for part in [
        "is already running".to_owned(),
        format!("port {port}"),
        // This process started the cluster: it is named, with how to stop it.
        format!("pid {}", std::process::id()),
        format!("kill {}", std::process::id()),
        format!("DATABASE_ADMIN_URL=postgres://postgres:PASSWORD@127.0.0.1:{port}/app"),
        data_dir.join("secrets.json").display().to_string(),
    ] {
        assert!(message.contains(&part), "{part:?} missing from: {message}");
    }
    // The running cluster was left alone.
    let url = serving
        .database_admin_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no admin URL"))?;
    let db = server::db::connect_pool(&url, 1, std::time::Duration::from_secs(30)).await?;
    db.execute_unprepared("SELECT 1").await?;
    let _ = db.close().await;
    drop(running);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

#[tokio::test]
async fn the_demo_admin_is_found_on_later_starts() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let url = app
        .config
        .database_admin_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no admin URL"))?;
    assert!(devservices::seed::find_demo(&url).await?.is_none());
    let seeded = devservices::seed::seed(&url, "Demo", 5, devservices::seed::DEMO_PASSWORD).await?;
    let demo = devservices::seed::find_demo(&url)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo company was not found"))?;
    assert_eq!(demo.admin_email, seeded.admin_email);
    assert_eq!(demo.users, 5);
    assert!(demo.password_unchanged && !demo.seeded_now);
    // The login printed works.
    app.login(&demo.admin_email, devservices::seed::DEMO_PASSWORD)
        .await?
        .data()?;
    // Once its password changed, the banner says so instead of printing a wrong one.
    app.sql(&format!(
        "UPDATE users SET password_hash = NULL WHERE email = '{}'",
        demo.admin_email
    ))
    .await?;
    let changed = devservices::seed::find_demo(&url)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the demo company was not found"))?;
    assert!(!changed.password_unchanged);
    Ok(())
}
