//! The private PostgreSQL cluster and redis-server shared by all tests of one run. With
//! `TEST_CITUS=1` in the environment (`make test-citus`) that cluster is a private Citus
//! cluster (a coordinator and two workers, [`PrivateCitus`]) and every test runs on it; tests
//! about Citus itself ask for one with [`citus_cluster`] whatever the environment says.

use std::path::{Path, PathBuf};

use devservices::{PgMode, PrivateCitus, PrivatePostgres, PrivateRedis, Secrets};
use sea_orm::ConnectionTrait;
use tokio::sync::{Mutex, OnceCell};

const TEMPLATE: &str = "app_template";

/// The database servers of a run: one PostgreSQL cluster, or a Citus cluster.
enum Database {
    Single(PrivatePostgres),
    Citus(PrivateCitus),
}

impl Database {
    /// Where the server, the migrations and the admin connect.
    fn entry(&self) -> &PrivatePostgres {
        match self {
            Database::Single(postgres) => postgres,
            Database::Citus(citus) => citus.coordinator(),
        }
    }
}

/// Servers shared by the whole test run; they stop when the test process exits.
pub struct Cluster {
    postgres: Database,
    redis: PrivateRedis,
    secrets: Secrets,
    dir: PathBuf,
    /// `CREATE DATABASE ... TEMPLATE` fails while another one copies the same template.
    create_lock: Mutex<()>,
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();
static CITUS_CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

/// Whether the run targets Citus (`TEST_CITUS=1`).
pub fn targets_citus() -> bool {
    std::env::var("TEST_CITUS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Roles and their memberships belong to the whole cluster, not to a test's database: a test
/// that creates roles or runs every migration down and up again holds this, and so does a test
/// that prints the catalog (which lists roles), so that it never sees another test's roles
/// half made.
static CLUSTER_ROLES: Mutex<()> = Mutex::const_new(());

/// Holds the cluster's roles still for the caller (see [`CLUSTER_ROLES`]).
pub async fn hold_cluster_roles() -> tokio::sync::MutexGuard<'static, ()> {
    CLUSTER_ROLES.lock().await
}

/// The shared cluster, started (and its template migrated) on first use: a Citus cluster when
/// the run targets Citus.
pub async fn cluster() -> anyhow::Result<&'static Cluster> {
    if targets_citus() {
        return citus_cluster().await;
    }
    CLUSTER
        .get_or_try_init(|| Box::pin(Cluster::start(false)))
        .await
}

/// A private Citus cluster shared by the tests that need one, started on first use.
pub async fn citus_cluster() -> anyhow::Result<&'static Cluster> {
    CITUS_CLUSTER
        .get_or_try_init(|| Box::pin(Cluster::start(true)))
        .await
}

impl Cluster {
    async fn start(citus: bool) -> anyhow::Result<Self> {
        remove_stale_runs();
        let dir = std::env::temp_dir().join(format!(
            "gql-tests-{}-{}",
            std::process::id(),
            devservices::free_port()?
        ));
        std::fs::create_dir_all(&dir)?;
        let secrets = Secrets::generate();
        let postgres = if citus {
            let citus = PrivateCitus::start(
                &dir.join("citus"),
                None,
                &secrets.postgres_superuser_password,
                PgMode::Ephemeral,
            )
            .await?;
            citus.prepare_database(TEMPLATE).await?;
            Database::Citus(citus)
        } else {
            let postgres = PrivatePostgres::start(
                &dir.join("postgres"),
                None,
                &secrets.postgres_superuser_password,
                PgMode::Ephemeral,
            )
            .await?;
            devservices::ensure_database(&postgres.admin_url("postgres"), TEMPLATE).await?;
            Database::Single(postgres)
        };
        let redis = PrivateRedis::start(&dir.join("redis"), &secrets.redis_password, false).await?;
        let entry = postgres.entry();
        server::db::migrate(&entry.admin_url(TEMPLATE)).await?;
        devservices::grant_login(&entry.admin_url(TEMPLATE), &secrets.postgres_app_password)
            .await?;
        if let Database::Citus(citus) = &postgres {
            citus.admit_request_roles(TEMPLATE).await?;
        }
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
        let postgres = match &self.postgres {
            Database::Citus(citus) => return citus.clone_database(TEMPLATE, name).await,
            Database::Single(postgres) => postgres,
        };
        let admin = server::db::connect_pool(
            &postgres.admin_url("postgres"),
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
            .entry()
            .url("app_authenticator", &self.secrets.postgres_app_password, db)
    }

    /// The URL of `user` with `password` for database `db`.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        self.postgres.entry().url(user, password, db)
    }

    /// The superuser's URL for database `db`.
    pub fn admin_url(&self, db: &str) -> String {
        self.postgres.entry().admin_url(db)
    }

    /// The Citus cluster, when this is one.
    pub fn citus(&self) -> Option<&PrivateCitus> {
        match &self.postgres {
            Database::Citus(citus) => Some(citus),
            Database::Single(_) => None,
        }
    }

    /// The URL of `user` with `password` for database `db` on each Citus worker (none on a
    /// single cluster).
    pub fn worker_urls(&self, user: &str, password: &str, db: &str) -> Vec<String> {
        self.citus()
            .map(|citus| {
                citus
                    .workers()
                    .iter()
                    .map(|w| w.url(user, password, db))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pool role's password.
    pub fn app_password(&self) -> &str {
        &self.secrets.postgres_app_password
    }

    /// The superuser's URL for database `db` on each Citus worker (none on a single cluster).
    pub fn worker_admin_urls(&self, db: &str) -> Vec<String> {
        self.citus()
            .map(|citus| citus.workers().iter().map(|w| w.admin_url(db)).collect())
            .unwrap_or_default()
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
