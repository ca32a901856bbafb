//! A private Citus cluster (a coordinator and two workers) with database `app` migrated, the
//! pool role's login granted and the request roles admitted on the workers, plus a private
//! redis-server, for `scripts/bench-citus.sh`: `citus_cluster DIR` starts them under `DIR`,
//! writes `DIR/secrets.json` (the shape of private mode's) and `DIR/cluster.json` (the ports),
//! prints `citus cluster ready`, and stops everything at SIGTERM or SIGINT.

use std::path::PathBuf;

use anyhow::Context as _;
use devservices::{PgMode, PrivateCitus, PrivateRedis, Secrets};
use tokio::signal::unix::{SignalKind, signal};

const DATABASE: &str = "app";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: citus_cluster DIR")?,
    );
    std::fs::create_dir_all(&dir)?;
    let secrets = Secrets::generate();
    let citus = PrivateCitus::start(
        &dir.join("citus"),
        None,
        &secrets.postgres_superuser_password,
        PgMode::Ephemeral,
    )
    .await?;
    citus.prepare_database(DATABASE).await?;
    let coordinator = citus.coordinator();
    server::db::migrate(&coordinator.admin_url(DATABASE)).await?;
    devservices::grant_login(
        &coordinator.admin_url(DATABASE),
        &secrets.postgres_app_password,
    )
    .await?;
    citus.admit_request_roles(DATABASE).await?;
    // What the migrations' last step left (run again: it is idempotent).
    let admin = server::db::connect_pool(
        &coordinator.admin_url(DATABASE),
        1,
        std::time::Duration::from_secs(30),
    )
    .await?;
    println!(
        "distribution: {:?}",
        migration::distribute::apply(&admin).await?
    );
    let _ = admin.close().await;
    let redis = PrivateRedis::start(&dir.join("redis"), &secrets.redis_password, false).await?;
    std::fs::write(dir.join("secrets.json"), serde_json::to_vec(&secrets)?)?;
    let ports = serde_json::json!({
        "coordinator": coordinator.port(),
        "workers": citus.workers().iter().map(|w| w.port()).collect::<Vec<_>>(),
        "redis_url": redis.url(),
    });
    std::fs::write(dir.join("cluster.json"), serde_json::to_vec(&ports)?)?;
    println!("citus cluster ready");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(redis);
    drop(citus);
    Ok(())
}
