//! Late subscribers catch up from PostgreSQL while Redis is unavailable: a streaming reply's
//! `content_deltas` (how many deltas its stored text holds), stored with the text by the
//! four-argument `app.chat_progress_message`. The SQL is in `migration/sql/`.

sql_migration!(m20261216_001000_late_subscribers_catch_up_from_postgresql);
