//! Replies are never stranded: a streaming reply's `heartbeat_at` (stamped at insert, bumped by
//! its generator), and the definer functions background work uses to store the text so far
//! (`app.chat_progress_message`), find replies whose generator went silent
//! (`app.chat_silent_replies`) and finalise them once (`app.chat_interrupt_message`). The SQL
//! is in `migration/sql/`.

sql_migration!(m20261215_000900_replies_are_never_stranded);
