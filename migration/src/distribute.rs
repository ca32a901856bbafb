//! The placement of every table on a Citus cluster, applied as the last step of migrating
//! (after the versioned migrations and the current definitions): on plain PostgreSQL it does
//! nothing; on a database with the `citus` extension it distributes
//!
//! 1. the tables without a company ([`REFERENCE_TABLES`]) as reference tables (a copy on every
//!    node), first, since tenant tables may refer to them;
//! 2. `companies` by its `id`, then every other tenant table ([`crate::TENANT_TABLES`]) by
//!    `company_id`, co-located with `companies`, each after the tenant tables its foreign keys
//!    refer to (the order comes from the catalog, [`foreign_key_order`]);
//! 3. the directory tables ([`crate::DIRECTORY_TABLES`]) each by its own key, on its own.
//!
//! It is idempotent: a table Citus already places is left alone, so it runs at every start-up
//! and distributes what a new migration added.
//!
//! It distributes nothing while the schema holds something Citus cannot run on a distributed
//! table, and says what ([`Outcome::Blocked`]): a policy with a subquery (Citus refuses it), a
//! trigger whose function writes another table (a shard's trigger cannot reach a table placed
//! by another key, nor run a distributed statement), a table of the schema that no list here
//! places. The tables then stay on the coordinator, as on one PostgreSQL: every guarantee holds,
//! only the scaling out waits.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, Statement};

/// Tables without a company, read by every company's statements: a copy on every node.
pub const REFERENCE_TABLES: &[&str] = &["app.builtin_grants"];

/// Tables that stay on the coordinator: the migrations' own bookkeeping.
pub const LOCAL_TABLES: &[&str] = &["public.seaql_migrations"];

/// The tenant table every other one is co-located with, distributed by this column.
const ANCHOR: (&str, &str) = ("companies", "id");

/// What the distribution step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a Citus database: nothing to do.
    NotCitus,
    /// Every table placed; the ones this run distributed (empty when all already were).
    Distributed(Vec<String>),
    /// Nothing distributed, for these reasons (one line each).
    Blocked(Vec<String>),
}

/// One step of the placement: the SQL that places `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub table: String,
    pub sql: String,
}

/// The tenant tables in an order in which each comes after every tenant table its foreign keys
/// refer to, given those references as (table, referenced table) pairs; the anchor first.
/// Tables on a cycle (which a foreign key between tenant tables never makes today) keep their
/// order of [`crate::TENANT_TABLES`] at the end.
pub fn foreign_key_order(tables: &[&str], references: &[(String, String)]) -> Vec<String> {
    let mut left: Vec<&str> = tables.to_vec();
    let mut done: Vec<String> = Vec::new();
    if let Some(i) = left.iter().position(|t| *t == ANCHOR.0) {
        done.push(left.remove(i).to_owned());
    }
    while !left.is_empty() {
        let ready = left.iter().position(|t| {
            references.iter().all(|(from, to)| {
                from != t || to == t || done.contains(to) || !tables.contains(&to.as_str())
            })
        });
        match ready {
            Some(i) => done.push(left.remove(i).to_owned()),
            None => {
                done.extend(left.drain(..).map(str::to_owned));
            }
        }
    }
    done
}

/// The placement steps, in order, for tenant tables in `tenant_order` (see
/// [`foreign_key_order`]).
pub fn plan(tenant_order: &[String]) -> Vec<Step> {
    let mut steps: Vec<Step> = REFERENCE_TABLES
        .iter()
        .map(|table| Step {
            table: (*table).to_owned(),
            sql: format!("SELECT create_reference_table('{table}')"),
        })
        .collect();
    for table in tenant_order {
        let sql = if table == ANCHOR.0 {
            format!(
                "SELECT create_distributed_table('{table}', '{}', colocate_with => 'none')",
                ANCHOR.1
            )
        } else {
            format!(
                "SELECT create_distributed_table('{table}', 'company_id', colocate_with => '{}')",
                ANCHOR.0
            )
        };
        steps.push(Step {
            table: table.clone(),
            sql,
        });
    }
    for (table, column) in crate::DIRECTORY_TABLES {
        steps.push(Step {
            table: (*table).to_owned(),
            sql: format!("SELECT create_distributed_table('{table}', '{column}')"),
        });
    }
    steps
}

/// Whether the database has the `citus` extension.
pub async fn is_citus(conn: &impl ConnectionTrait) -> Result<bool, DbErr> {
    Ok(conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_extension WHERE extname = 'citus'",
        ))
        .await?
        .is_some())
}

/// Strings of column `column` of every row `sql` returns.
async fn strings(
    conn: &impl ConnectionTrait,
    sql: &str,
    column: &str,
) -> Result<Vec<String>, DbErr> {
    conn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", column))
        .collect()
}

/// Policies with a subquery on the tables to distribute (Citus refuses them).
const SUBQUERY_POLICIES: &str = "
    SELECT format('policy %s on %s has a subquery', p.polname, p.polrelid::regclass) AS reason
      FROM pg_policy p
     WHERE (p.polqual::text LIKE '%{SUBLINK%' OR p.polwithcheck::text LIKE '%{SUBLINK%')
     ORDER BY 1";

/// Triggers whose function writes a table other than the trigger's own.
const WRITING_TRIGGERS: &str = "
    SELECT DISTINCT format('trigger %s on %s writes %s', t.tgname, t.tgrelid::regclass, m[2]) AS reason
      FROM pg_trigger t
      JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_proc f ON f.oid = t.tgfoid
     CROSS JOIN LATERAL regexp_matches(f.prosrc,
           '(insert\\s+into|update|delete\\s+from)\\s+([a-z_][a-z_0-9.]*)', 'gi') AS m
     WHERE NOT t.tgisinternal AND n.nspname IN ('public', 'app')
       AND lower(m[2]) NOT IN ('set', c.relname, n.nspname || '.' || c.relname)
     ORDER BY 1";

/// Tables of the schema, as `schema.table`.
const SCHEMA_TABLES: &str = "
    SELECT n.nspname || '.' || c.relname AS name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'app')
     ORDER BY 1";

/// Foreign keys between tables of schema `public`: (table, referenced table).
const FOREIGN_KEYS: &str = "
    SELECT c.conrelid::regclass::text AS from_table, c.confrelid::regclass::text AS to_table
      FROM pg_constraint c
     WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace";

/// Tables Citus places already.
const PLACED: &str = "SELECT logicalrelid::regclass::text AS name FROM pg_dist_partition";

/// The placement steps still to run on `conn` and the reasons nothing can be distributed yet.
pub async fn pending(conn: &impl ConnectionTrait) -> Result<(Vec<Step>, Vec<String>), DbErr> {
    let mut blocked = strings(conn, SUBQUERY_POLICIES, "reason").await?;
    blocked.extend(strings(conn, WRITING_TRIGGERS, "reason").await?);
    let placed_somehow: Vec<String> = REFERENCE_TABLES
        .iter()
        .chain(LOCAL_TABLES)
        .map(|t| (*t).to_owned())
        .chain(
            crate::rls_tables()
                .into_iter()
                .map(|t| format!("public.{t}")),
        )
        .collect();
    for table in strings(conn, SCHEMA_TABLES, "name").await? {
        if !placed_somehow.contains(&table) {
            blocked.push(format!(
                "table {table} is in neither TENANT_TABLES, DIRECTORY_TABLES, REFERENCE_TABLES nor LOCAL_TABLES"
            ));
        }
    }
    let references: Vec<(String, String)> = conn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, FOREIGN_KEYS))
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "from_table")?, row.try_get("", "to_table")?)))
        .collect::<Result<_, DbErr>>()?;
    for (from, to) in &references {
        let from_tenant = crate::TENANT_TABLES.contains(&from.as_str());
        let to_tenant = crate::TENANT_TABLES.contains(&to.as_str());
        if from_tenant && !to_tenant {
            blocked.push(format!(
                "foreign key from tenant table {from} to {to}, which is not co-located"
            ));
        }
    }
    let placed = strings(conn, PLACED, "name").await?;
    let order = foreign_key_order(crate::TENANT_TABLES, &references);
    let steps = plan(&order)
        .into_iter()
        .filter(|step| {
            let bare = step.table.trim_start_matches("public.");
            !placed.iter().any(|p| p == bare || p == &step.table)
        })
        .collect();
    Ok((steps, blocked))
}

/// Distributes what is not distributed yet on a Citus database (see the module's docs); on
/// plain PostgreSQL does nothing. Each table is placed by one statement of its own, so a run
/// that stops half-way is finished by the next.
pub async fn apply(conn: &impl ConnectionTrait) -> Result<Outcome, DbErr> {
    if !is_citus(conn).await? {
        return Ok(Outcome::NotCitus);
    }
    let (steps, blocked) = pending(conn).await?;
    if steps.is_empty() {
        return Ok(Outcome::Distributed(Vec::new()));
    }
    if !blocked.is_empty() {
        return Ok(Outcome::Blocked(blocked));
    }
    // The triggers left on tenant tables change only the row they fire for (`updated_at`,
    // guards, stamps): they run on the shard that holds it.
    conn.execute_unprepared("SET citus.enable_unsafe_triggers = on")
        .await?;
    let mut done = Vec::new();
    for step in steps {
        conn.execute_unprepared(&step.sql)
            .await
            .map_err(|e| DbErr::Migration(format!("distribute {}: {e}", step.table)))?;
        done.push(step.table);
    }
    conn.execute_unprepared("RESET citus.enable_unsafe_triggers")
        .await?;
    Ok(Outcome::Distributed(done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn referenced_tables_come_first() {
        let order = foreign_key_order(
            &["refresh_tokens", "sessions", "users", "companies"],
            &refs(&[
                ("refresh_tokens", "sessions"),
                ("sessions", "users"),
                ("users", "companies"),
            ]),
        );
        assert_eq!(order, ["companies", "users", "sessions", "refresh_tokens"]);
    }

    #[test]
    fn self_references_and_outside_tables_do_not_hold_a_table_back() {
        let order = foreign_key_order(
            &["companies", "messages", "users"],
            &refs(&[
                ("messages", "messages"),
                ("messages", "users"),
                ("users", "elsewhere"),
            ]),
        );
        assert_eq!(order, ["companies", "users", "messages"]);
    }

    #[test]
    fn a_cycle_keeps_its_tables_at_the_end() {
        let order = foreign_key_order(
            &["companies", "a", "b", "c"],
            &refs(&[("a", "b"), ("b", "a")]),
        );
        assert_eq!(order, ["companies", "c", "a", "b"]);
    }

    #[test]
    fn the_plan_places_reference_tables_then_companies_then_tenants_then_directories() {
        let order = foreign_key_order(crate::TENANT_TABLES, &[]);
        let steps = plan(&order);
        assert_eq!(steps[0].table, "app.builtin_grants");
        assert!(steps[0].sql.contains("create_reference_table"));
        assert_eq!(steps[1].table, "companies");
        assert!(steps[1].sql.contains("'companies', 'id'"));
        let tenants = &steps[1..=crate::TENANT_TABLES.len()];
        for step in &tenants[1..] {
            assert!(
                step.sql
                    .contains("'company_id', colocate_with => 'companies'"),
                "{step:?}"
            );
        }
        let directories = &steps[1 + crate::TENANT_TABLES.len()..];
        assert_eq!(directories.len(), crate::DIRECTORY_TABLES.len());
        assert!(directories[0].sql.contains("'login_emails', 'email'"));
        assert!(directories[1].sql.contains("'oidc_subjects', 'subject'"));
    }
}
