//! The private PostgreSQL cluster and redis-server shared by all tests of one run.

use std::path::{Path, PathBuf};

use devservices::{PgMode, PrivatePostgres, PrivateRedis, Secrets};
use sea_orm::ConnectionTrait;
use tokio::sync::{Mutex, OnceCell};

const TEMPLATE: &str = "app_template";

/// Servers shared by the whole test run; they stop when the test process exits.
pub struct Cluster {
    postgres: PrivatePostgres,
    redis: PrivateRedis,
    secrets: Secrets,
    dir: PathBuf,
    /// `CREATE DATABASE ... TEMPLATE` fails while another one copies the same template.
    create_lock: Mutex<()>,
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

/// Roles and their memberships belong to the whole cluster, not to a test's database: a test
/// that creates roles or runs every migration down and up again holds this, and so does a test
/// that prints the catalog (which lists roles), so that it never sees another test's roles
/// half made.
static CLUSTER_ROLES: Mutex<()> = Mutex::const_new(());

/// Holds the cluster's roles still for the caller (see [`CLUSTER_ROLES`]).
pub async fn hold_cluster_roles() -> tokio::sync::MutexGuard<'static, ()> {
    CLUSTER_ROLES.lock().await
}

/// The shared cluster, started (and its template migrated) on first use.
pub async fn cluster() -> anyhow::Result<&'static Cluster> {
    CLUSTER.get_or_try_init(Cluster::start).await
}

impl Cluster {
    async fn start() -> anyhow::Result<Self> {
        remove_stale_runs();
        let dir = std::env::temp_dir().join(format!(
            "gql-tests-{}-{}",
            std::process::id(),
            devservices::free_port()?
        ));
        std::fs::create_dir_all(&dir)?;
        let secrets = Secrets::generate();
        let postgres = PrivatePostgres::start(
            &dir.join("postgres"),
            None,
            &secrets.postgres_superuser_password,
            PgMode::Ephemeral,
        )
        .await?;
        let redis = PrivateRedis::start(&dir.join("redis"), &secrets.redis_password, false).await?;
        devservices::ensure_database(&postgres.admin_url("postgres"), TEMPLATE).await?;
        server::db::migrate(&postgres.admin_url(TEMPLATE)).await?;
        devservices::grant_login(
            &postgres.admin_url(TEMPLATE),
            &secrets.postgres_app_password,
        )
        .await?;
        Ok(Self {
            postgres,
            redis,
            secrets,
            dir,
            create_lock: Mutex::new(()),
        })
    }

    /// A fresh database cloned from the migrated template.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let _guard = self.create_lock.lock().await;
        let admin = server::db::connect_pool(
            &self.postgres.admin_url("postgres"),
            1,
            std::time::Duration::from_secs(30),
        )
        .await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\" TEMPLATE {TEMPLATE}"))
            .await?;
        // A clone does not copy the template's database privileges: revoke what the
        // migrations revoked, so the clone is what a migrated database is.
        admin
            .execute_unprepared(&format!(
                "REVOKE TEMPORARY ON DATABASE \"{name}\" FROM PUBLIC"
            ))
            .await?;
        let _ = admin.close().await;
        Ok(())
    }

    /// The pool role's URL for database `db`.
    pub fn app_url(&self, db: &str) -> String {
        self.postgres
            .url("app_authenticator", &self.secrets.postgres_app_password, db)
    }

    /// The URL of `user` with `password` for database `db`.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        self.postgres.url(user, password, db)
    }

    /// The superuser's URL for database `db`.
    pub fn admin_url(&self, db: &str) -> String {
        self.postgres.admin_url(db)
    }

    /// The shared redis-server.
    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    /// The directory holding this run's servers.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Removes what earlier test runs left in the temporary directory (their logs; the data goes
/// with their servers): the directories of processes that no longer run.
fn remove_stale_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("gql-tests-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
