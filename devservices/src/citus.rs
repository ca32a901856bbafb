//! A private Citus cluster: a coordinator and two workers, each a [`PrivatePostgres`] on a
//! loopback port of its own, started by the same code as the single private cluster, with
//! `shared_preload_libraries = citus`.
//!
//! How a request's identity reaches the workers (README, "Scaling out"): Citus opens its
//! connections to the workers as the *current* role of the coordinator's session, so a request
//! transaction, which runs as a request role (`app_user`, `app_anon`, ...), reaches the workers
//! as that role. The request roles stay `NOLOGIN` on the coordinator, where the pool logs in as
//! `app_authenticator` and switches to them; on the workers they may log in, from the
//! coordinator's address only (`pg_hba.conf`), with a password that only the coordinator holds,
//! in its superuser-only `pg_dist_authinfo` catalog (Citus reads it when it connects). The pool
//! role may log in on no worker. The variables the policies read travel as `SET LOCAL`
//! commands, which Citus repeats on every worker connection of the transaction
//! (`citus.propagate_set_commands = 'local'`, set by `app.begin_request` for its own
//! transaction only).
//!
//! TLS: `CREATE EXTENSION citus` turns `ssl` on with a self-signed version-1 certificate, which
//! rustls refuses (`UnsupportedCertVersion`). The private nodes listen on loopback only, so they
//! run with `ssl = off` on the command line (which wins over the extension's `ALTER SYSTEM`) and
//! connect to each other with `sslmode=disable`. A deployment across machines gives every node
//! a certificate of its own CA and sets `citus.node_conninfo = 'sslmode=verify-full
//! sslrootcert=...'`.

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use server::db;

use crate::{
    PgMode, PrivateError, PrivatePostgres, postgres::PgExtra, secrets::random_secret,
    supervisor::free_port,
};

/// The roles request transactions run as (and the definer functions' owners): they reach the
/// workers as themselves.
pub const REQUEST_ROLES: &[&str] = &[
    "app_user",
    "app_anon",
    "app_auth",
    "app_profiles",
    "app_worker",
];

/// The role the server's pool logs in as: on the coordinator only.
const POOL_ROLE: &str = "app_authenticator";

/// How many workers a private cluster has.
const WORKERS: usize = 2;

/// The address every node listens on, and the coordinator's as the workers see it.
const HOST: &str = "127.0.0.1";

/// A running private Citus cluster; its nodes stop when it is dropped.
#[derive(Debug)]
pub struct PrivateCitus {
    coordinator: PrivatePostgres,
    workers: Vec<PrivatePostgres>,
    superuser_password: String,
    /// What the request roles log in to the workers with; only the coordinator's
    /// `pg_dist_authinfo` (and this process) knows it.
    request_password: String,
}

/// Settings of every node.
fn node_settings() -> Vec<(String, String)> {
    [
        ("shared_preload_libraries", "citus"),
        ("ssl", "off"),
        ("citus.node_conninfo", "sslmode=disable"),
        // Writes that touch several workers commit in two phases.
        ("max_prepared_transactions", "100"),
        // A tenant's rows are on one shard whatever their number; fewer shards make a
        // throw-away cluster quicker to create databases in.
        ("citus.shard_count", "8"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

fn role_list() -> String {
    REQUEST_ROLES.join(",")
}

impl PrivateCitus {
    /// Starts a coordinator and two workers under `dir` (`coordinator/`, `worker1/`, ...).
    pub async fn start(
        dir: &Path,
        bin_dir: Option<&Path>,
        superuser_password: &str,
        mode: PgMode,
    ) -> Result<Self, PrivateError> {
        let coordinator_extra = PgExtra {
            settings: node_settings(),
            // The request roles are NOLOGIN here anyway; say so at the door too.
            hba_first: vec![format!("host all {} all reject", role_list())],
        };
        let worker_extra = PgExtra {
            settings: node_settings(),
            hba_first: vec![
                format!("host all {POOL_ROLE} all reject"),
                format!("host all {} {HOST}/32 scram-sha-256", role_list()),
                format!("host all {} all reject", role_list()),
            ],
        };
        let coordinator_dir = dir.join("coordinator");
        let worker_dirs: Vec<_> = (1..=WORKERS)
            .map(|n| dir.join(format!("worker{n}")))
            .collect();
        let coordinator = PrivatePostgres::start_with(
            &coordinator_dir,
            bin_dir,
            superuser_password,
            mode,
            free_port()?,
            &coordinator_extra,
        );
        let mut ports = Vec::new();
        for _ in 0..WORKERS {
            ports.push(free_port()?);
        }
        let workers = futures_util::future::try_join_all(worker_dirs.iter().zip(&ports).map(
            |(path, port)| {
                PrivatePostgres::start_with(
                    path,
                    bin_dir,
                    superuser_password,
                    mode,
                    *port,
                    &worker_extra,
                )
            },
        ));
        let (coordinator, workers) = futures_util::future::try_join(coordinator, workers).await?;
        Ok(Self {
            coordinator,
            workers,
            superuser_password: superuser_password.to_owned(),
            request_password: random_secret(),
        })
    }

    /// The coordinator: the server's pool, the migrations and the admin connect here.
    pub fn coordinator(&self) -> &PrivatePostgres {
        &self.coordinator
    }

    /// The workers, which hold the shards.
    pub fn workers(&self) -> &[PrivatePostgres] {
        &self.workers
    }

    /// Creates database `name` on every node (unless it exists) with the `citus` extension, and
    /// makes the coordinator's metadata in it name the coordinator and the workers.
    pub async fn prepare_database(&self, name: &str) -> anyhow::Result<()> {
        for node in self.nodes() {
            crate::ensure_database(&node.admin_url("postgres"), name).await?;
            let conn = connect(&node.admin_url(name)).await?;
            conn.execute_unprepared("CREATE EXTENSION IF NOT EXISTS citus")
                .await
                .context("CREATE EXTENSION citus")?;
            let _ = conn.close().await;
        }
        let conn = connect(&self.coordinator.admin_url(name)).await?;
        // The superuser reaches the workers with its password, as the request roles do.
        set_authinfo(&conn, "postgres", &self.superuser_password).await?;
        conn.execute_unprepared(&format!(
            "SELECT citus_set_coordinator_host('{HOST}', {})",
            self.coordinator.port()
        ))
        .await
        .context("citus_set_coordinator_host")?;
        for worker in &self.workers {
            conn.execute_unprepared(&format!(
                "SELECT citus_add_node('{HOST}', {port}) WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_dist_node WHERE nodename = '{HOST}' AND nodeport = {port})",
                port = worker.port()
            ))
            .await
            .context("citus_add_node")?;
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// Lets the request roles reach the workers from the coordinator of database `name` (run
    /// after the migrations created them and after the pool role was given its login, both of
    /// which Citus propagates to the workers): on each worker they may log in with the
    /// cluster's request password and the pool role may not log in at all; the coordinator's
    /// `pg_dist_authinfo` holds the password.
    pub async fn admit_request_roles(&self, name: &str) -> anyhow::Result<()> {
        let password = quote_literal(&self.request_password);
        for worker in &self.workers {
            // Database `postgres` has no citus extension: these stay on this node.
            let conn = connect(&worker.admin_url("postgres")).await?;
            for role in REQUEST_ROLES {
                conn.execute_unprepared(&format!(
                    "ALTER ROLE {role} WITH LOGIN PASSWORD {password}"
                ))
                .await
                .with_context(|| format!("let {role} log in on a worker"))?;
            }
            conn.execute_unprepared(&format!(
                "ALTER ROLE {POOL_ROLE} WITH NOLOGIN PASSWORD NULL"
            ))
            .await
            .context("keep the pool role off the workers")?;
            let _ = conn.close().await;
        }
        let conn = connect(&self.coordinator.admin_url(name)).await?;
        for role in REQUEST_ROLES {
            set_authinfo(&conn, role, &self.request_password).await?;
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// Database `name` cloned from `template` on every node (the shards live in the workers'
    /// databases of the same name, so each node clones its own).
    pub async fn clone_database(&self, template: &str, name: &str) -> anyhow::Result<()> {
        for node in self.nodes() {
            clone_on(node, template, name).await?;
        }
        Ok(())
    }

    /// The coordinator's request-role password, for tests that prove the workers refuse
    /// everything else.
    pub fn request_password(&self) -> &str {
        &self.request_password
    }

    fn nodes(&self) -> impl Iterator<Item = &PrivatePostgres> {
        std::iter::once(&self.coordinator).chain(&self.workers)
    }
}

async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    db::connect_pool(url, 1, Duration::from_secs(30)).await
}

/// Tells the coordinator's Citus to log in to every node as `role` with `password`.
async fn set_authinfo(conn: &DatabaseConnection, role: &str, password: &str) -> anyhow::Result<()> {
    conn.execute_unprepared(&format!(
        "DELETE FROM pg_dist_authinfo WHERE nodeid = 0 AND rolename = {role_literal}; \
         INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, {role_literal}, {info})",
        role_literal = quote_literal(role),
        info = quote_literal(&format!("password={password}")),
    ))
    .await
    .with_context(|| format!("pg_dist_authinfo for {role}"))?;
    Ok(())
}

/// `CREATE DATABASE name TEMPLATE template` on one node. Citus's maintenance daemon keeps a
/// connection to every database with the extension, and PostgreSQL copies no database that
/// another session uses: end the daemon's session first (it comes back five seconds later, and
/// a copy that still finds it is tried again).
async fn clone_on(node: &PrivatePostgres, template: &str, name: &str) -> anyhow::Result<()> {
    let conn = connect(&node.admin_url("postgres")).await?;
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        conn.execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = {} AND pid <> pg_backend_pid()",
            quote_literal(template)
        ))
        .await?;
        match conn
            .execute_unprepared(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
            ))
            .await
        {
            Ok(_) => break Ok(()),
            Err(error) if attempt < 10 && error.to_string().contains("being accessed") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => break Err(error),
        }
    };
    result.with_context(|| format!("clone {template} as {name} on port {}", node.port()))?;
    // A clone does not copy the template's database privileges.
    conn.execute_unprepared(&format!(
        "REVOKE TEMPORARY ON DATABASE \"{name}\" FROM PUBLIC"
    ))
    .await?;
    let _ = conn.close().await;
    Ok(())
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
