//! Lets audience filters use the GIN index on `users.attributes` under Row Level Security.
//!
//! With RLS, PostgreSQL evaluates a query's own conditions after the policy's unless their
//! functions are LEAKPROOF, so `attributes @> $1` (`jsonb_contains`, not marked LEAKPROOF by
//! default) can only filter rows, never drive an index scan: a selective filter becomes a scan
//! of the whole company. `jsonb_contains` raises no error that depends on the data it compares
//! (only resource limits), so marking it LEAKPROOF reveals nothing through errors. Only a
//! superuser may do so; otherwise a warning says what to run, and queries stay correct, only
//! slower.
//!
//! The SQL is in `migration/sql/m20261123_000501_mark_jsonb_contains_leakproof.{up,down}.sql`.

sql_migration!(m20261123_000501_mark_jsonb_contains_leakproof);
