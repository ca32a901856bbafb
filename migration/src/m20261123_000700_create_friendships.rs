//! Friendships and privacy: the `friendships` table (one row per unordered pair), each user's
//! privacy settings, and `user_profiles`, the security-barrier view through which requests read
//! people with `email` and `attributes` masked as the target's privacy settings allow.
//!
//! The view and the mutual-friends function belong to `app_profiles`, a NOLOGIN role whose only
//! powers are SELECT policies scoped to the caller's company, so they apply tenant isolation
//! whether or not the migration owner bypasses RLS.
//!
//! The SQL is in `migration/sql/m20261123_000700_create_friendships.{up,down}.sql`.

sql_migration!(m20261123_000700_create_friendships);
