//! Invite links (`invite_links`): anyone with the link signs up into its company with its role,
//! until it expires, is revoked or is used up; `app.accept_invite_link` counts uses atomically.
//! The SQL is in `migration/sql/`.

sql_migration!(m20261222_001203_invite_links);
