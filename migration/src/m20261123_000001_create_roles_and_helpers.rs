//! Database roles (the pool's login role, `app_user`, `app_anon`) and the `app` schema with the
//! helpers that policies read the per-transaction identity through.
//!
//! The SQL is in `migration/sql/m20261123_000001_create_roles_and_helpers.{up,down}.sql`.
//! Its `down` drops the `app` schema but leaves the roles in place: they are cluster-wide and
//! may serve other databases.

sql_migration!(m20261123_000001_create_roles_and_helpers);
