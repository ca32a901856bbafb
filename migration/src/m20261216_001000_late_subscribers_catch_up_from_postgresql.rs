//! Late subscribers catch up from PostgreSQL while Redis is unavailable: a streaming reply's
//! `content_deltas` (how many deltas its stored text holds), stored with the text by the
//! four-argument `app.chat_progress_message`. The SQL is in `migration/sql/`.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261216_001000_late_subscribers_catch_up_from_postgresql"
    }
}

const UP: &str =
    include_str!("../sql/m20261216_001000_late_subscribers_catch_up_from_postgresql.up.sql");
const DOWN: &str =
    include_str!("../sql/m20261216_001000_late_subscribers_catch_up_from_postgresql.down.sql");

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
