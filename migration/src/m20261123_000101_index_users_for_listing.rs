//! Indexes behind `users(role:, isActive:, orderBy:)`: each ordering pages by keyset on
//! `(company_id, <sort key>, id)`, and `deleteRole` finds the users of a role.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000101_index_users_for_listing"
    }
}

const UP: &str = r#"
CREATE INDEX IF NOT EXISTS users_company_created_idx ON users (company_id, created_at, id);
CREATE INDEX IF NOT EXISTS users_company_display_name_idx ON users (company_id, display_name, id);
CREATE INDEX IF NOT EXISTS users_company_email_idx ON users (company_id, email, id);
CREATE INDEX IF NOT EXISTS users_company_role_idx ON users (company_id, role);
"#;

const DOWN: &str = r#"
DROP INDEX IF EXISTS users_company_role_idx;
DROP INDEX IF EXISTS users_company_email_idx;
DROP INDEX IF EXISTS users_company_display_name_idx;
DROP INDEX IF EXISTS users_company_created_idx;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(UP)
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(DOWN)
            .await
            .map(|_| ())
    }
}
