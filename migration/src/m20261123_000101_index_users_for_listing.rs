//! Indexes behind `users(role:, isActive:, orderBy:)`: each ordering pages by keyset on
//! `(company_id, <sort key>, id)`, and `deleteRole` finds the users of a role.
//!
//! The SQL is in `migration/sql/m20261123_000101_index_users_for_listing.{up,down}.sql`.

sql_migration!(m20261123_000101_index_users_for_listing);
