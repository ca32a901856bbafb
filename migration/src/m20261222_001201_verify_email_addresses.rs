//! Addresses are verified: `users.email_verified_at`, the one-time tokens of
//! `email_verifications` (hashed, single use, expiring) and their definer functions; a password
//! reset or an accepted invitation verifies the address it came to; `user_profiles` shows
//! `email_verified`. The SQL is in `migration/sql/`.

sql_migration!(m20261222_001201_verify_email_addresses);
