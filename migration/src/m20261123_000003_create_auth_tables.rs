//! Authentication: sessions and their rotating refresh tokens, password resets, invitations,
//! the outbound e-mail outbox, and the SECURITY DEFINER functions for the few lookups that must
//! cross tenants (login by e-mail, refresh by token hash, sign-up, reset, invitation).
//!
//! Those functions belong to `app_auth`, a NOLOGIN role whose only powers are narrow policies on
//! exactly the rows they touch, so they work whether or not the migration owner bypasses RLS.
//! Only the pool's login role may execute them. `app.begin_request` now also requires a live
//! session, so a revoked session stops working on the next request.
//!
//! The SQL is in `migration/sql/m20261123_000003_create_auth_tables.{up,down}.sql`.

sql_migration!(m20261123_000003_create_auth_tables);
