//! The outbox is delivered: `outbound_emails` gains a status and when it is next due, and the
//! mailer's definer functions claim (`FOR UPDATE SKIP LOCKED`, with a lease), mark sent and
//! retry or fail messages. The SQL is in `migration/sql/`.

sql_migration!(m20261222_001200_deliver_the_outbox);
