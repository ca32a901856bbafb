//! Schema migrations: tables, indexes, database roles, Row Level Security policies and the SQL
//! helpers the policies read. Each migration is idempotent SQL with a real `down`.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_roles_and_helpers;
mod m20261123_000002_create_companies_and_users;

/// Runs every migration of this crate, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_roles_and_helpers::Migration),
            Box::new(m20261123_000002_create_companies_and_users::Migration),
        ]
    }
}

/// Names of the tables that hold tenant data: each has RLS enabled and forced, and a
/// `company_id` column. Tests walk this list to prove isolation.
pub const TENANT_TABLES: &[&str] = &["companies", "users"];
