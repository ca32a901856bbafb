//! `companies` and `users`: their indexes and RLS policies.
//!
//! The SQL is in `migration/sql/m20261123_000002_create_companies_and_users.{up,down}.sql`.

sql_migration!(m20261123_000002_create_companies_and_users);
