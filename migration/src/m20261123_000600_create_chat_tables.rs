//! Chat: `conversations`, their `messages`, and the user's `knowledge` notes, each visible only
//! to its owner (RLS on `user_id` within the company). `app.chat_finish_message` lets the
//! background generation store a reply without a request transaction (the user may have
//! disconnected, or their session may have ended meanwhile).
//!
//! The SQL is in `migration/sql/m20261123_000600_create_chat_tables.{up,down}.sql`.

sql_migration!(m20261123_000600_create_chat_tables);
