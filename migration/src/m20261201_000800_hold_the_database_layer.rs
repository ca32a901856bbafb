//! The database layer holds on its own: inside a company PostgreSQL refuses what the API
//! refuses (column privileges, `WITH CHECK` clauses and guard triggers), permission-dependent row
//! rules ask `app.may(object, action)`, the pool's login role reaches no function or schema,
//! every definer function pins `search_path` with `pg_temp` last, `TEMP` is revoked, and the
//! audience views are security barriers that honour blocks. The SQL is in `migration/sql/`.

sql_migration!(m20261201_000800_hold_the_database_layer);
