//! The database: the request pool, migrations, the start-up safety checks (the pool's role, and
//! the catalog in [`safety`]), the printed catalog ([`catalog`]), and the request transaction
//! that carries the caller's identity into Row Level Security; [`functions`] is the typed seam to
//! the `app.*` SQL functions.

mod cancel;
pub mod catalog;
pub mod constraints;
mod errors;
pub mod functions;
pub mod safety;
mod scope;
mod share;
mod tx;

use std::time::Duration;

use anyhow::Context as _;
use migration::MigratorTrait as _;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};

pub use cancel::TxConn;
pub use scope::{RequestBudget, RequestScope};
/// The pool of connections, and the error of a statement: what the layers above the services
/// hold and pass down, without naming the ORM.
pub use sea_orm::{DatabaseConnection, DbErr};
pub use share::{SharePermit, Shares};
pub use tx::{Access, RequestTx, SystemRole, query_all_as, query_one_as};

/// What every session of the request pool is started with, so that no statement or
/// transaction of a request can run unbounded. Each is in milliseconds; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionLimits {
    /// `statement_timeout`: a statement running longer is cancelled (SQLSTATE 57014).
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout`: a transaction idle longer ends its session.
    pub idle_in_transaction_timeout_ms: u64,
    /// `lock_timeout`: a statement waiting longer for a lock fails (SQLSTATE 55P03).
    pub lock_timeout_ms: u64,
}

impl SessionLimits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            statement_timeout_ms: config.db_statement_timeout_ms,
            idle_in_transaction_timeout_ms: config.db_idle_in_transaction_timeout_ms,
            lock_timeout_ms: config.db_lock_timeout_ms,
        }
    }

    /// The settings as connection start-up parameters.
    fn parameters(self) -> [(&'static str, String); 3] {
        [
            ("statement_timeout", self.statement_timeout_ms.to_string()),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_timeout_ms.to_string(),
            ),
            ("lock_timeout", self.lock_timeout_ms.to_string()),
        ]
    }
}

/// Opens a pool for administrative work (migrations, seeding, set-up): no session limits.
/// Connections are not pinged before use (a broken one fails its work and is discarded).
pub async fn connect_pool(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<DatabaseConnection> {
    connect(url, max_connections, acquire_timeout, None).await
}

/// Opens the request pool: every session starts with `limits` as start-up parameters, so they
/// hold from the first statement, for every transaction, at no cost per request.
/// Connections are not pinged before use (a broken one fails its request and is discarded),
/// which saves a round trip per request.
pub async fn connect_request_pool(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
    limits: SessionLimits,
) -> anyhow::Result<DatabaseConnection> {
    connect(url, max_connections, acquire_timeout, Some(limits)).await
}

async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
    limits: Option<SessionLimits>,
) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(acquire_timeout)
        .connect_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .sqlx_logging(false);
    if let Some(limits) = limits {
        options.map_sqlx_postgres_opts(move |pg| pg.options(limits.parameters()));
    }
    Database::connect(options)
        .await
        .context("connect to PostgreSQL")
}

/// Sends `payload` as a notification on the PostgreSQL channel `channel`. `pg_notify` is a
/// `pg_catalog` function any role may call: the login role needs no privilege of the
/// application's for it.
pub async fn notify(db: &DatabaseConnection, channel: &str, payload: &str) -> Result<(), DbErr> {
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), payload.into()],
    );
    db.execute_raw(statement).await?;
    Ok(())
}

/// Applies pending migrations as the schema owner.
pub async fn migrate(admin_url: &str) -> anyhow::Result<()> {
    // One connection: the advisory lock below belongs to the session that took it, so every
    // statement (and the unlock) must run on that same connection.
    let db = connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    // Two instances starting at once must not both migrate: serialize on an advisory lock.
    db.execute_unprepared("SELECT pg_advisory_lock(727274001)")
        .await?;
    let mut result = apply_migrations(&db).await;
    if result.is_ok() {
        result = distribute(&db).await;
    }
    db.execute_unprepared("SELECT pg_advisory_unlock(727274001)")
        .await?;
    let _ = db.close().await;
    result
}

/// Applies the pending versioned migrations, then the current definitions
/// (`migration/sql/current/`) when a versioned migration ran or the definitions changed since
/// they were last applied, and notes both in the comment on schema `app`.
async fn apply_migrations(db: &DatabaseConnection) -> anyhow::Result<()> {
    let pending = migration::Migrator::get_pending_migrations(db)
        .await
        .context("list pending migrations")?
        .len();
    migration::Migrator::up(db, None)
        .await
        .context("apply migrations")?;
    let note = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT obj_description('app'::regnamespace, 'pg_namespace') AS note",
        ))
        .await
        .context("read the migration note")?
        .and_then(|row| row.try_get::<Option<String>>("", "note").ok().flatten());
    if pending == 0 && note.as_deref() == Some(current_note().as_str()) {
        return Ok(());
    }
    let tx = db.begin().await?;
    migration::current::apply(&tx)
        .await
        .context("apply the current definitions")?;
    // Readiness probes run as the pool's role, which may read no table: they compare this
    // note with what the server knows.
    tx.execute_unprepared(&format!("COMMENT ON SCHEMA app IS '{}'", current_note()))
        .await
        .context("note the newest migration")?;
    tx.commit().await?;
    Ok(())
}

/// On a Citus cluster, places every table not placed yet (`migration::distribute`): tenant
/// tables by company, co-located; directory tables by their keys; tables without a company as
/// reference tables. Nothing on plain PostgreSQL. While the schema holds something Citus cannot
/// run distributed, the tables stay on the coordinator and the reasons are logged.
async fn distribute(db: &DatabaseConnection) -> anyhow::Result<()> {
    match migration::distribute::apply(db)
        .await
        .context("distribute the tables on Citus")?
    {
        migration::distribute::Outcome::NotCitus => {}
        migration::distribute::Outcome::Distributed(tables) => {
            if !tables.is_empty() {
                tracing::info!(tables = ?tables, "distributed on Citus");
            }
        }
        migration::distribute::Outcome::Blocked(reasons) => {
            tracing::warn!(
                reasons = ?reasons,
                "Citus: the tables stay on the coordinator, since the schema holds what a distributed table cannot have"
            );
        }
    }
    Ok(())
}

/// How the comment on schema `app` names the newest migration applied.
const MIGRATED_TO: &str = "migrated to ";
/// How it names the checksum of the current definitions applied.
const DEFINITIONS: &str = "; definitions ";

/// The comment on schema `app` once this server's migrations and current definitions are
/// applied.
fn current_note() -> String {
    format!(
        "{MIGRATED_TO}{}{DEFINITIONS}{}",
        newest_migration(),
        migration::current::checksum()
    )
}

/// The name of the newest migration this server knows.
pub fn newest_migration() -> String {
    migration::Migrator::migrations()
        .last()
        .map(|m| m.name().to_owned())
        .unwrap_or_default()
}

/// Whether `note`, the comment on schema `app`, names the newest migration and the current
/// definitions this server knows ([`migrate`] leaves it; readiness probes run as the pool's
/// role, which may read no table).
pub fn is_current_note(note: &str) -> bool {
    note == current_note()
}

/// What the pool's role is allowed, as far as Row Level Security is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRoleCheck {
    pub role: String,
    pub superuser: bool,
    pub bypass_rls: bool,
    pub owns_tenant_tables: bool,
}

impl PoolRoleCheck {
    /// Why this role would bypass RLS, if it would.
    pub fn bypass_reason(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if self.superuser {
            reasons.push("is a superuser");
        }
        if self.bypass_rls {
            reasons.push("has BYPASSRLS");
        }
        if self.owns_tenant_tables {
            reasons.push("owns (or is a member of the owner of) tenant tables");
        }
        (!reasons.is_empty())
            .then(|| format!("the pool's role `{}` {}", self.role, reasons.join(" and ")))
    }
}

/// Inspects the role the pool logs in as.
pub async fn check_pool_role(db: &DatabaseConnection) -> anyhow::Result<PoolRoleCheck> {
    let tables: Vec<String> = migration::TENANT_TABLES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"SELECT r.rolname::text AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls,
                      EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = 'public' AND c.relname = ANY($1)
                                AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owns
               FROM pg_roles r WHERE r.rolname = current_user"#,
            [tables.into()],
        ))
        .await?
        .context("the pool's role is not in pg_roles")?;
    Ok(PoolRoleCheck {
        role: row.try_get("", "role")?,
        superuser: row.try_get("", "superuser")?,
        bypass_rls: row.try_get("", "bypass_rls")?,
        owns_tenant_tables: row.try_get("", "owns")?,
    })
}
