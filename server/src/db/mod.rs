//! The database: the request pool, migrations, the start-up safety checks (the pool's role, and
//! the catalog in [`safety`]), the printed catalog ([`catalog`]), and the request transaction
//! that carries the caller's identity into Row Level Security.

pub mod catalog;
pub mod safety;
mod scope;
mod tx;

use std::time::Duration;

use anyhow::Context as _;
use migration::MigratorTrait as _;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

pub use scope::RequestScope;
pub use tx::{Access, RequestTx, SystemRole, query_all_as, query_one_as};

/// Opens the request pool. Connections are not pinged before use (a broken one fails its
/// request and is discarded), which saves a round trip per request.
pub async fn connect_pool(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(acquire_timeout)
        .connect_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .context("connect to PostgreSQL")
}

/// Applies pending migrations as the schema owner.
pub async fn migrate(admin_url: &str) -> anyhow::Result<()> {
    // One connection: the advisory lock below belongs to the session that took it, so every
    // statement (and the unlock) must run on that same connection.
    let db = connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    // Two instances starting at once must not both migrate: serialize on an advisory lock.
    db.execute_unprepared("SELECT pg_advisory_lock(727274001)")
        .await?;
    let mut result = migration::Migrator::up(&db, None)
        .await
        .context("apply migrations");
    if result.is_ok() {
        // Readiness probes run as the pool's role, which may read no table: they compare this
        // note with the newest migration the server knows.
        result = db
            .execute_unprepared(&format!(
                "COMMENT ON SCHEMA app IS '{MIGRATED_TO}{}'",
                newest_migration()
            ))
            .await
            .map(|_| ())
            .context("note the newest migration");
    }
    db.execute_unprepared("SELECT pg_advisory_unlock(727274001)")
        .await?;
    let _ = db.close().await;
    result
}

/// How the comment on schema `app` names the newest migration applied.
const MIGRATED_TO: &str = "migrated to ";

/// The name of the newest migration this server knows.
pub fn newest_migration() -> String {
    migration::Migrator::migrations()
        .last()
        .map(|m| m.name().to_owned())
        .unwrap_or_default()
}

/// Whether `note`, the comment on schema `app`, names the newest migration this server knows
/// ([`migrate`] leaves it; readiness probes run as the pool's role, which may read no table).
pub fn is_current_note(note: &str) -> bool {
    note.strip_prefix(MIGRATED_TO) == Some(newest_migration().as_str())
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
