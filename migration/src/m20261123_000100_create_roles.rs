//! `roles`: a company's custom roles and the permissions they grant, with RLS (read: same
//! company; write: its admins only). Built-in role names are reserved.
//!
//! The SQL is in `migration/sql/m20261123_000100_create_roles.{up,down}.sql`.

sql_migration!(m20261123_000100_create_roles);
