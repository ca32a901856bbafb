//! `server print-catalog`: the authorization catalog ([`server::db::catalog`]) of the
//! configured database, or of a freshly migrated one in a throw-away private cluster.

use std::time::Duration;

use anyhow::Context as _;
use server::{
    config::Config,
    db::{self, catalog},
};

use crate::{PgMode, PrivatePostgres, Secrets};

/// The catalog `server print-catalog` prints: of the database at DATABASE_ADMIN_URL (else
/// DATABASE_URL), or, with `fresh` or neither set, of a freshly migrated database in a
/// throw-away private cluster, set up as private mode does (so `app_authenticator` may log in).
pub async fn generate(config: &Config, fresh: bool) -> anyhow::Result<String> {
    let url = config
        .database_admin_url
        .clone()
        .or_else(|| config.database_url.clone());
    match url {
        Some(url) if !fresh => {
            let conn = db::connect_pool(&url, 1, Duration::from_secs(30)).await?;
            let text = catalog::print(&conn, migration::TENANT_TABLES).await;
            let _ = conn.close().await;
            text
        }
        _ => Ok(catalog::checked_in(&print_fresh(config).await?)),
    }
}

async fn print_fresh(config: &Config) -> anyhow::Result<String> {
    const DB: &str = "app";
    let dir = std::env::temp_dir().join(format!(
        "server-catalog-{}-{}",
        std::process::id(),
        crate::free_port()?
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let secrets = Secrets::generate();
    let result = async {
        let mut pg = PrivatePostgres::start(
            &dir.join("postgres"),
            config.pg_bin_dir.as_deref(),
            &secrets.postgres_superuser_password,
            PgMode::Ephemeral,
        )
        .await?;
        let text = async {
            crate::ensure_database(&pg.admin_url("postgres"), DB).await?;
            let admin_url = pg.admin_url(DB);
            db::migrate(&admin_url).await?;
            crate::grant_login(&admin_url, &secrets.postgres_app_password).await?;
            let conn = db::connect_pool(&admin_url, 1, Duration::from_secs(30)).await?;
            let text = catalog::print(&conn, migration::TENANT_TABLES).await;
            let _ = conn.close().await;
            text
        }
        .await;
        pg.stop();
        text
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
