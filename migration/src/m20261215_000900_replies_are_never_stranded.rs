//! Replies are never stranded: a streaming reply's `heartbeat_at` (stamped at insert, bumped by
//! its generator), and the definer functions background work uses to store the text so far
//! (`app.chat_progress_message`), find replies whose generator went silent
//! (`app.chat_silent_replies`) and finalise them once (`app.chat_interrupt_message`). The SQL
//! is in `migration/sql/`.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261215_000900_replies_are_never_stranded"
    }
}

const UP: &str = include_str!("../sql/m20261215_000900_replies_are_never_stranded.up.sql");
const DOWN: &str = include_str!("../sql/m20261215_000900_replies_are_never_stranded.down.sql");

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
