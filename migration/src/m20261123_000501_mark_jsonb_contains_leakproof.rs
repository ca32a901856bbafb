//! Lets audience filters use the GIN index on `users.attributes` under Row Level Security.
//!
//! With RLS, PostgreSQL evaluates a query's own conditions after the policy's unless their
//! functions are LEAKPROOF, so `attributes @> $1` (`jsonb_contains`, not marked LEAKPROOF by
//! default) can only filter rows, never drive an index scan: a selective filter becomes a scan
//! of the whole company. `jsonb_contains` raises no error that depends on the data it compares
//! (only resource limits), so marking it LEAKPROOF reveals nothing through errors. Only a
//! superuser may do so; otherwise a warning says what to run, and queries stay correct, only
//! slower.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000501_mark_jsonb_contains_leakproof"
    }
}

const UP: &str = r#"
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF;
    ELSE
        RAISE WARNING 'audience filters on attributes cannot use their GIN index under Row Level '
            'Security until a superuser runs: ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF';
    END IF;
END
$$;
"#;

const DOWN: &str = r#"
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) NOT LEAKPROOF;
    END IF;
END
$$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(UP)
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(DOWN)
            .await
            .map(|_| ())
    }
}
