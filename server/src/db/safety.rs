//! What start-up refuses in the database's catalog, besides a pool role that bypasses Row Level
//! Security ([`super::check_pool_role`]): a tenant table without enabled and forced RLS, a
//! `SECURITY DEFINER` function of the application's schemas without a `search_path` pinned with
//! `pg_temp` last or executable by `PUBLIC`, and a login role (the pool's `session_user`) with
//! any privilege of its own. Everything is read from `pg_catalog`, which the pool's role may
//! read like any other.

use std::fmt;

use sea_orm::ConnectionTrait;
use serde::Deserialize;

use super::catalog::{app_schemas_sql, json_rows, privilege_rank};

/// One reason the catalog is unsafe to serve from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogProblem {
    /// A tenant table is missing from schema `public`.
    MissingTenantTable { table: String },
    /// A tenant table without enabled or without forced Row Level Security.
    TenantTableRls {
        table: String,
        enabled: bool,
        forced: bool,
    },
    /// A `SECURITY DEFINER` function whose `search_path` is not pinned with `pg_temp` last
    /// (`None`: not pinned at all).
    DefinerSearchPath {
        function: String,
        search_path: Option<String>,
    },
    /// A `SECURITY DEFINER` function that `PUBLIC` may execute.
    DefinerExecutableByPublic { function: String },
    /// The login role holds privileges on an object itself (`privileges` when they could be
    /// read from the object's ACL).
    LoginRoleGrant {
        role: String,
        object: String,
        privileges: Vec<String>,
    },
    /// The login role owns an object.
    LoginRoleOwns { role: String, object: String },
    /// `CREATE` or `TEMPORARY` on the database, granted to the login role or to `PUBLIC`.
    DatabasePrivilege {
        role: String,
        database: String,
        grantee: String,
        privileges: Vec<String>,
    },
    /// A function of the application's schemas that the login role may execute through
    /// `PUBLIC` (definer functions are reported as [`Self::DefinerExecutableByPublic`]).
    ExecutableThroughPublic { role: String, function: String },
}

impl CatalogProblem {
    /// Whether this is about what the login role itself may do (as opposed to the tables and
    /// functions every role meets). A pool role that bypasses RLS with `ALLOW_RLS_BYPASS` holds
    /// those powers by design, so start-up then only warns about these.
    pub fn concerns_login_role(&self) -> bool {
        matches!(
            self,
            Self::LoginRoleGrant { .. }
                | Self::LoginRoleOwns { .. }
                | Self::DatabasePrivilege { .. }
                | Self::ExecutableThroughPublic { .. }
        )
    }
}

impl fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingTenantTable { table } => {
                write!(f, "tenant table `{table}` does not exist in schema public")
            }
            Self::TenantTableRls {
                table,
                enabled,
                forced,
            } => {
                let missing = match (enabled, forced) {
                    (false, false) => "neither enables nor forces",
                    (false, true) => "does not enable",
                    _ => "does not force",
                };
                let mut fix = Vec::new();
                if !enabled {
                    fix.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
                }
                if !forced {
                    fix.push(format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"));
                }
                write!(
                    f,
                    "tenant table `{table}` {missing} Row Level Security ({})",
                    fix.join("; ")
                )
            }
            Self::DefinerSearchPath {
                function,
                search_path: None,
            } => write!(
                f,
                "SECURITY DEFINER function {function} has no pinned search_path, so the \
                 caller's can shadow its tables (SET search_path = pg_catalog, public, pg_temp)"
            ),
            Self::DefinerSearchPath {
                function,
                search_path: Some(path),
            } => write!(
                f,
                "SECURITY DEFINER function {function} has search_path `{path}` without pg_temp \
                 last, so temporary objects can shadow its tables \
                 (SET search_path = pg_catalog, public, pg_temp)"
            ),
            Self::DefinerExecutableByPublic { function } => write!(
                f,
                "SECURITY DEFINER function {function} is executable by PUBLIC \
                 (REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC)"
            ),
            Self::LoginRoleGrant {
                role,
                object,
                privileges,
            } if privileges.is_empty() => write!(
                f,
                "the login role `{role}` is granted privileges of its own on {object}"
            ),
            Self::LoginRoleGrant {
                role,
                object,
                privileges,
            } => write!(
                f,
                "the login role `{role}` has privileges of its own: {} on {object}",
                privileges.join(", ")
            ),
            Self::LoginRoleOwns { role, object } => {
                write!(f, "the login role `{role}` owns {object}")
            }
            Self::DatabasePrivilege {
                role,
                database,
                grantee,
                privileges,
            } => {
                let privileges = privileges.join(", ");
                if grantee == "PUBLIC" {
                    write!(
                        f,
                        "PUBLIC, and so the login role `{role}`, has {privileges} on database \
                         {database} (REVOKE {privileges} ON DATABASE {database} FROM PUBLIC)"
                    )
                } else {
                    write!(
                        f,
                        "the login role `{role}` has {privileges} on database {database} \
                         (REVOKE {privileges} ON DATABASE {database} FROM {role})"
                    )
                }
            }
            Self::ExecutableThroughPublic { role, function } => write!(
                f,
                "the login role `{role}` may execute {function} through PUBLIC \
                 (REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC)"
            ),
        }
    }
}

/// Whether a `search_path` setting (as `proconfig` stores it, e.g. `pg_catalog, public,
/// pg_temp`) names `pg_temp` last, so temporary objects can never shadow anything.
pub fn search_path_ends_with_pg_temp(path: &str) -> bool {
    path.split(',')
        .map(|part| part.trim().trim_matches('"'))
        .next_back()
        .is_some_and(|last| last == "pg_temp")
}

/// Everything unsafe about the catalog of the database `db` is connected to, as the role it
/// logged in as sees it. `tenant_tables` are the tables that must have enabled and forced RLS
/// (the application's are `migration::TENANT_TABLES`). Empty when all is well.
pub async fn catalog_problems(
    db: &impl ConnectionTrait,
    tenant_tables: &[&str],
) -> anyhow::Result<Vec<CatalogProblem>> {
    let mut problems = tenant_table_problems(db, tenant_tables).await?;
    problems.extend(definer_problems(db).await?);
    problems.extend(login_role_problems(db).await?);
    Ok(problems)
}

async fn tenant_table_problems(
    db: &impl ConnectionTrait,
    tenant_tables: &[&str],
) -> anyhow::Result<Vec<CatalogProblem>> {
    #[derive(Deserialize)]
    struct Table {
        table: String,
        exists: bool,
        enabled: bool,
        forced: bool,
    }
    if tenant_tables.is_empty() {
        return Ok(Vec::new());
    }
    let names = tenant_tables
        .iter()
        .map(|t| format!("'{}'", t.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let tables: Vec<Table> = json_rows(
        db,
        &format!(
            "SELECT t.name AS table, c.oid IS NOT NULL AS exists, \
                    COALESCE(c.relrowsecurity, false) AS enabled, \
                    COALESCE(c.relforcerowsecurity, false) AS forced \
             FROM unnest(ARRAY[{names}]::text[]) WITH ORDINALITY t (name, i) \
             LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        AND n.nspname = 'public' AND c.relkind IN ('r', 'p')) \
                    ON c.relname = t.name \
             ORDER BY t.i"
        ),
    )
    .await?;
    Ok(tables
        .into_iter()
        .filter_map(|t| {
            if !t.exists {
                Some(CatalogProblem::MissingTenantTable { table: t.table })
            } else if !(t.enabled && t.forced) {
                Some(CatalogProblem::TenantTableRls {
                    table: t.table,
                    enabled: t.enabled,
                    forced: t.forced,
                })
            } else {
                None
            }
        })
        .collect())
}

async fn definer_problems(db: &impl ConnectionTrait) -> anyhow::Result<Vec<CatalogProblem>> {
    #[derive(Deserialize)]
    struct Definer {
        function: String,
        config: Vec<String>,
        public_execute: bool,
    }
    let mut definers: Vec<Definer> = json_rows(
        db,
        &format!(
            "SELECT p.oid::regprocedure::text AS function, COALESCE(p.proconfig, '{{}}') AS config, \
                    EXISTS (SELECT 1 FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a \
                            WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.prosecdef AND n.nspname IN ({})",
            app_schemas_sql()
        ),
    )
    .await?;
    definers.sort_by(|a, b| a.function.cmp(&b.function));
    let mut problems = Vec::new();
    for definer in definers {
        // The last setting wins, should one be given twice.
        let path = definer
            .config
            .iter()
            .filter_map(|setting| setting.strip_prefix("search_path="))
            .next_back();
        match path {
            Some(path) if search_path_ends_with_pg_temp(path) => {}
            _ => problems.push(CatalogProblem::DefinerSearchPath {
                function: definer.function.clone(),
                search_path: path.map(str::to_owned),
            }),
        }
        if definer.public_execute {
            problems.push(CatalogProblem::DefinerExecutableByPublic {
                function: definer.function,
            });
        }
    }
    Ok(problems)
}

async fn login_role_problems(db: &impl ConnectionTrait) -> anyhow::Result<Vec<CatalogProblem>> {
    #[derive(Deserialize)]
    struct Dependency {
        role: String,
        kind: String,
        object: String,
        privileges: Vec<String>,
    }
    #[derive(Deserialize)]
    struct DatabaseGrant {
        role: String,
        database: String,
        grantee: String,
        privileges: Vec<String>,
    }
    #[derive(Deserialize)]
    struct PublicFunction {
        role: String,
        function: String,
    }
    // Ownership and privileges are recorded in pg_shdepend for every object of this database
    // and every shared one (CONNECT on the database is fine: it is how the role logs in).
    let mut dependencies: Vec<Dependency> = json_rows(
        db,
        "WITH login AS (SELECT oid, rolname FROM pg_roles WHERE rolname = session_user) \
         SELECT quote_ident(login.rolname) AS role, d.deptype::text AS kind, \
                pg_describe_object(d.classid, d.objid, d.objsubid) AS object, \
                ARRAY(SELECT a.privilege_type FROM aclexplode(CASE \
                    WHEN d.classid = 'pg_class'::regclass AND d.objsubid = 0 \
                        THEN (SELECT relacl FROM pg_class WHERE oid = d.objid) \
                    WHEN d.classid = 'pg_class'::regclass \
                        THEN (SELECT attacl FROM pg_attribute \
                              WHERE attrelid = d.objid AND attnum = d.objsubid) \
                    WHEN d.classid = 'pg_proc'::regclass \
                        THEN (SELECT proacl FROM pg_proc WHERE oid = d.objid) \
                    WHEN d.classid = 'pg_namespace'::regclass \
                        THEN (SELECT nspacl FROM pg_namespace WHERE oid = d.objid) \
                    WHEN d.classid = 'pg_type'::regclass \
                        THEN (SELECT typacl FROM pg_type WHERE oid = d.objid) \
                    WHEN d.classid = 'pg_default_acl'::regclass \
                        THEN (SELECT defaclacl FROM pg_default_acl WHERE oid = d.objid) \
                    END) a WHERE a.grantee = login.oid) AS privileges \
         FROM pg_shdepend d, login \
         WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = login.oid \
           AND d.deptype IN ('o', 'a') \
           AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) \
           AND NOT (d.deptype = 'a' AND d.classid = 'pg_database'::regclass)",
    )
    .await?;
    dependencies.sort_by(|a, b| (&a.kind, &a.object).cmp(&(&b.kind, &b.object)));
    let mut problems: Vec<CatalogProblem> = dependencies
        .into_iter()
        .map(|d| {
            if d.kind == "o" {
                CatalogProblem::LoginRoleOwns {
                    role: d.role,
                    object: d.object,
                }
            } else {
                let mut privileges = d.privileges;
                privileges.sort_by_cached_key(|p| privilege_rank(p));
                privileges.dedup();
                CatalogProblem::LoginRoleGrant {
                    role: d.role,
                    object: d.object,
                    privileges,
                }
            }
        })
        .collect();

    let mut database_grants: Vec<DatabaseGrant> = json_rows(
        db,
        "SELECT quote_ident(session_user) AS role, quote_ident(current_database()) AS database, \
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(session_user) END AS grantee, \
                array_agg(a.privilege_type ORDER BY a.privilege_type) AS privileges \
         FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a \
         WHERE d.datname = current_database() AND a.privilege_type IN ('CREATE', 'TEMPORARY') \
           AND (a.grantee = 0 OR a.grantee = (SELECT oid FROM pg_roles WHERE rolname = session_user)) \
         GROUP BY 1, 2, 3",
    )
    .await?;
    database_grants.sort_by(|a, b| a.grantee.cmp(&b.grantee));
    problems.extend(
        database_grants
            .into_iter()
            .map(|d| CatalogProblem::DatabasePrivilege {
                role: d.role,
                database: d.database,
                grantee: d.grantee,
                privileges: d.privileges,
            }),
    );

    // Functions that belong to an extension (pg_trgm's) run with their caller's rights and
    // reach nothing: they keep PostgreSQL's default. Definer functions are checked above.
    let mut functions: Vec<PublicFunction> = json_rows(
        db,
        &format!(
            "SELECT quote_ident(session_user) AS role, p.oid::regprocedure::text AS function \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname IN ({}) AND NOT p.prosecdef \
               AND EXISTS (SELECT 1 FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a \
                           WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                               AND d.objid = p.oid AND d.deptype = 'e')",
            app_schemas_sql()
        ),
    )
    .await?;
    functions.sort_by(|a, b| a.function.cmp(&b.function));
    problems.extend(
        functions
            .into_iter()
            .map(|f| CatalogProblem::ExecutableThroughPublic {
                role: f.role,
                function: f.function,
            }),
    );
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_search_path_ending_with_pg_temp_is_pinned() {
        assert!(search_path_ends_with_pg_temp("pg_catalog, public, pg_temp"));
        assert!(search_path_ends_with_pg_temp("pg_temp"));
        assert!(search_path_ends_with_pg_temp("public,\"pg_temp\""));
        assert!(!search_path_ends_with_pg_temp("pg_catalog, public"));
        assert!(!search_path_ends_with_pg_temp("pg_temp, public"));
        assert!(!search_path_ends_with_pg_temp("\"$user\", public"));
        assert!(!search_path_ends_with_pg_temp(""));
    }

    #[test]
    fn only_the_login_role_problems_are_excused_by_a_bypass() {
        let table = CatalogProblem::TenantTableRls {
            table: "presets".into(),
            enabled: true,
            forced: false,
        };
        assert!(!table.concerns_login_role());
        assert!(table.to_string().contains("`presets` does not force"));
        let definer = CatalogProblem::DefinerExecutableByPublic {
            function: "app.f()".into(),
        };
        assert!(!definer.concerns_login_role());
        let grant = CatalogProblem::LoginRoleGrant {
            role: "app_authenticator".into(),
            object: "table presets".into(),
            privileges: vec!["SELECT".into()],
        };
        assert!(grant.concerns_login_role());
        assert_eq!(
            grant.to_string(),
            "the login role `app_authenticator` has privileges of its own: SELECT on table presets"
        );
    }
}
