//! Private mode: private PostgreSQL / Redis for whichever URL is not given, set up as a
//! deployment would be (database, migrations, a pool role that may log in).

use std::time::Duration;

use anyhow::{Context as _, bail};
use sea_orm::ConnectionTrait;
use server::{config::Config, db};

use crate::{PgMode, PrivateError, PrivatePostgres, PrivateRedis, Secrets};

/// Name of the database in a private cluster.
const PRIVATE_DB: &str = "app";

/// The private servers started for this process, if any; they stop when this is dropped.
#[derive(Debug, Default)]
pub struct PrivateServices {
    pub postgres: Option<PrivatePostgres>,
    pub redis: Option<PrivateRedis>,
}

impl PrivateServices {
    /// Whether any private server was started.
    pub fn any(&self) -> bool {
        self.postgres.is_some() || self.redis.is_some()
    }
}

/// Starts private PostgreSQL / Redis for whichever of DATABASE_URL / REDIS_URL is unset, and
/// fills the configuration in with their URLs (and the JWT secret and the key secrets are
/// sealed with, kept in DATA_DIR).
pub async fn prepare_private(config: &mut Config) -> anyhow::Result<PrivateServices> {
    let mut services = PrivateServices::default();
    if config.database_url.is_some() && config.redis_url.is_some() {
        if config.jwt_secret.is_none() && config.jwt_private_key.is_none() {
            bail!(
                "JWT_SECRET (or JWT_PRIVATE_KEY) is required when DATABASE_URL and REDIS_URL are set"
            );
        }
        return Ok(services);
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create DATA_DIR {}", config.data_dir.display()))?;
    let secrets = Secrets::load_or_create(&config.data_dir)?;
    if config.database_url.is_none() {
        let pg = PrivatePostgres::start(
            &config.data_dir.join("postgres"),
            config.pg_bin_dir.as_deref(),
            &secrets.postgres_superuser_password,
            PgMode::Persistent,
        )
        .await
        .map_err(|error| match &error {
            PrivateError::ClusterRunning {
                port: Some(port), ..
            } => anyhow::anyhow!(
                "{error}. To run `server seed` or `server migrate` while it serves, connect to \
                 its cluster instead: DATABASE_ADMIN_URL=postgres://postgres:PASSWORD@127.0.0.1:\
                 {port}/{PRIVATE_DB} server ..., with PASSWORD the `postgres_superuser_password` \
                 of {}",
                config.data_dir.join("secrets.json").display()
            ),
            _ => anyhow::Error::new(error),
        })?;
        ensure_database(&pg.admin_url("postgres"), PRIVATE_DB).await?;
        let admin_url = pg.admin_url(PRIVATE_DB);
        db::migrate(&admin_url).await?;
        grant_login(&admin_url, &secrets.postgres_app_password).await?;
        config.database_admin_url = Some(admin_url);
        config.database_url = Some(pg.url(
            "app_authenticator",
            &secrets.postgres_app_password,
            PRIVATE_DB,
        ));
        services.postgres = Some(pg);
        config.private_mode = true;
    }
    if config.redis_url.is_none() {
        let redis = PrivateRedis::start(
            &config.data_dir.join("redis"),
            &secrets.redis_password,
            true,
        )
        .await?;
        config.redis_url = Some(redis.url());
        services.redis = Some(redis);
        config.private_mode = true;
    }
    if config.jwt_secret.is_none() {
        config.jwt_secret = Some(secrets.jwt_secret.clone());
    }
    if config.secrets_keys.is_none() {
        config.secrets_keys = Some(crate::secrets::load_or_create_secrets_keys(
            &config.data_dir,
        )?);
    }
    Ok(services)
}

/// Creates database `name` unless it exists (connected as a superuser to another database).
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let conn = db::connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    let exists = conn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if !exists {
        conn.execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await?;
    }
    let _ = conn.close().await;
    Ok(())
}

/// Lets the pool's role log in with `password` (private mode; deployments do this themselves).
pub async fn grant_login(admin_url: &str, password: &str) -> anyhow::Result<()> {
    let conn = db::connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    conn.execute_unprepared(&format!(
        "ALTER ROLE app_authenticator WITH LOGIN PASSWORD {}",
        quote_literal(password)
    ))
    .await
    .context("let app_authenticator log in")?;
    let _ = conn.close().await;
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
