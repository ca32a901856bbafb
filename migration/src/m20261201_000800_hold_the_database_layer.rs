//! The database layer holds on its own: inside a company PostgreSQL refuses what the API
//! refuses (column privileges, `WITH CHECK` clauses and guard triggers), permission-dependent row
//! rules ask `app.may(object, action)`, the pool's login role reaches no function or schema,
//! every definer function pins `search_path` with `pg_temp` last, `TEMP` is revoked, and the
//! audience views are security barriers that honour blocks. The SQL is in `migration/sql/`.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000800_hold_the_database_layer"
    }
}

const UP: &str = include_str!("../sql/m20261201_000800_hold_the_database_layer.up.sql");
const DOWN: &str = include_str!("../sql/m20261201_000800_hold_the_database_layer.down.sql");

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
