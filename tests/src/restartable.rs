//! A PostgreSQL cluster and a redis-server of one test's own that the test stops and starts
//! again on the same port, so the URLs the server was given stay valid across the restart, as
//! when a database server restarts in production. Their data is kept across the restart; both
//! are stopped, and their data removed, when dropped.

use std::path::PathBuf;

use devservices::{PgMode, PrivatePostgres, Secrets};

/// The migrated database of a [`RestartablePostgres`].
const DATABASE: &str = "app";

/// A private PostgreSQL cluster with one migrated database, `app`, restartable on its port.
pub struct RestartablePostgres {
    postgres: Option<PrivatePostgres>,
    dir: PathBuf,
    port: u16,
    secrets: Secrets,
}

impl RestartablePostgres {
    /// Creates and starts the cluster under the test run's directory, and migrates its
    /// database as a fresh deployment is.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = crate::cluster()
            .await?
            .dir()
            .join(format!("postgres-{}", uuid::Uuid::new_v4().simple()));
        let secrets = Secrets::generate();
        // Durable, so the data survives the stops; it is removed on drop.
        let postgres = PrivatePostgres::start(
            &dir.join("data"),
            None,
            &secrets.postgres_superuser_password,
            PgMode::Persistent,
        )
        .await?;
        let port = postgres.port();
        let this = Self {
            postgres: Some(postgres),
            dir,
            port,
            secrets,
        };
        devservices::ensure_database(&this.admin_url_of("postgres"), DATABASE).await?;
        server::db::migrate(&this.admin_url()).await?;
        devservices::grant_login(&this.admin_url(), &this.secrets.postgres_app_password).await?;
        Ok(this)
    }

    /// Stops PostgreSQL (fast shutdown: sessions are terminated, clients see their
    /// connections end), keeping the data.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(postgres) = self.postgres.take() {
            // Stopping waits for the process: not on the runtime's threads.
            tokio::task::spawn_blocking(move || drop(postgres)).await?;
        }
        Ok(())
    }

    /// Starts it again on the same port.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.postgres.is_none(), "PostgreSQL is running");
        self.postgres = Some(
            PrivatePostgres::start_on_port(
                &self.dir.join("data"),
                None,
                &self.secrets.postgres_superuser_password,
                PgMode::Persistent,
                self.port,
            )
            .await?,
        );
        Ok(())
    }

    /// The pool role's URL of the migrated database.
    pub fn app_url(&self) -> String {
        format!(
            "postgres://app_authenticator:{}@127.0.0.1:{}/{DATABASE}",
            self.secrets.postgres_app_password, self.port
        )
    }

    /// The superuser's URL of the migrated database.
    pub fn admin_url(&self) -> String {
        self.admin_url_of(DATABASE)
    }

    fn admin_url_of(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.secrets.postgres_superuser_password, self.port
        )
    }
}

impl Drop for RestartablePostgres {
    fn drop(&mut self) {
        drop(self.postgres.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const REDIS_PASSWORD: &str = "restartable-redis-password";

/// A redis-server restartable on its port. It snapshots its data when stopped and loads it
/// when started again, as a Redis with persistence does.
pub struct RestartableRedis {
    redis: Option<devservices::PrivateRedis>,
    dir: PathBuf,
    port: u16,
}

impl RestartableRedis {
    pub async fn start() -> anyhow::Result<Self> {
        let dir = crate::cluster()
            .await?
            .dir()
            .join(format!("redis-{}", uuid::Uuid::new_v4().simple()));
        let mut this = Self {
            redis: None,
            dir,
            port: devservices::free_port()?,
        };
        this.start_again().await?;
        Ok(this)
    }

    /// Starts redis-server (again) on the port, with the data it saved when it stopped.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.redis.is_none(), "redis-server is running");
        let redis =
            devservices::PrivateRedis::start_on_port(&self.dir, REDIS_PASSWORD, true, self.port)
                .await?;
        self.redis = Some(redis);
        Ok(())
    }

    /// Stops redis-server (SIGTERM: it saves its data and exits) and waits until it is gone.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut redis) = self.redis.take() {
            tokio::task::spawn_blocking(move || redis.stop()).await?;
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RestartableRedis {
    fn drop(&mut self) {
        drop(self.redis.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
