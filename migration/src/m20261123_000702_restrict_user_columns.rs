//! Privacy enforced by PostgreSQL itself: request roles may no longer read `users.email`,
//! `users.attributes` or `users.password_hash` directly. People are read through
//! `user_profiles` (masked per the target's privacy settings), audiences filter through
//! `audience_users_admin` (admins: everyone) or `audience_users` (anyone else: people who share
//! their whole profile with the company), and the caller's own password hash
//! comes from `app.current_password_hash()`.
//!
//! The SQL is in `migration/sql/m20261123_000702_restrict_user_columns.{up,down}.sql`.

sql_migration!(m20261123_000702_restrict_user_columns);
