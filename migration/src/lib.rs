//! Schema migrations: tables, indexes, database roles, Row Level Security policies and the SQL
//! helpers the policies read. Each migration is idempotent SQL with a real `down`.

pub use sea_orm_migration::prelude::*;

/// The SQL of migration `$name` going `$direction` (`"up"` or `"down"`):
/// `migration/sql/<name>.<direction>.sql`.
macro_rules! sql_file {
    ($name:ident, $direction:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sql/",
            stringify!($name),
            ".",
            $direction,
            ".sql"
        ))
    };
}

/// A migration whose SQL is `migration/sql/<name>.up.sql` and `<name>.down.sql`, run as they
/// are (several statements each); sea-orm records it by `<name>`.
macro_rules! sql_migration {
    ($name:ident) => {
        pub struct Migration;

        impl sea_orm_migration::MigrationName for Migration {
            fn name(&self) -> &str {
                stringify!($name)
            }
        }

        #[sea_orm_migration::async_trait::async_trait]
        impl sea_orm_migration::MigrationTrait for Migration {
            async fn up(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm_migration::DbErr> {
                $crate::run_sql(manager, sql_file!($name, "up")).await
            }

            async fn down(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm_migration::DbErr> {
                $crate::run_sql(manager, sql_file!($name, "down")).await
            }
        }
    };
}

/// Runs `sql`, one or more statements, on the migration's connection, one statement at a time
/// (see [`statements`]: Citus repeats some DDL on the workers with the text of its whole query).
async fn run_sql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    for statement in statements::split(sql) {
        conn.execute_unprepared(statement).await?;
    }
    Ok(())
}

pub mod current;
pub mod distribute;
pub mod statements;

mod m20261123_000001_create_roles_and_helpers;
mod m20261123_000002_create_companies_and_users;
mod m20261123_000003_create_auth_tables;
mod m20261123_000100_create_roles;
mod m20261123_000101_index_users_for_listing;
mod m20261123_000500_create_presets_and_audience_fields;
mod m20261123_000501_mark_jsonb_contains_leakproof;
mod m20261123_000600_create_chat_tables;
mod m20261123_000700_create_friendships;
mod m20261123_000701_stream_user_profiles;
mod m20261123_000702_restrict_user_columns;
mod m20261201_000800_hold_the_database_layer;
mod m20261215_000900_replies_are_never_stranded;
mod m20261216_001000_late_subscribers_catch_up_from_postgresql;
mod m20261221_001100_count_audiences_with_bitmaps;
mod m20261221_001150_plan_definer_functions_once;
mod m20261222_001200_deliver_the_outbox;
mod m20261222_001201_verify_email_addresses;
mod m20261222_001202_verify_company_domains;
mod m20261222_001203_invite_links;
mod m20261223_001300_seal_company_llm_providers;
mod m20261224_001400_link_sign_in_identities;
mod m20261224_001401_oidc_addresses_are_verified;
mod m20261225_001500_company_oidc_providers;
mod m20261226_001600_share_activities;
mod m20261227_001700_conversations_as_training_data;
mod m20261227_001701_audiences_over_activities;
mod m20261228_001800_key_tenant_tables_by_company;
mod m20261228_001801_directories_of_global_keys;
mod m20261228_001802_tokens_carry_their_company;
mod m20261229_001900_set_the_identity_for_every_node;
mod m20261231_002000_policies_read_no_tables;
mod m20261231_002200_index_activities_by_owner_and_kind;

/// Runs every migration of this crate, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_roles_and_helpers::Migration),
            Box::new(m20261123_000002_create_companies_and_users::Migration),
            Box::new(m20261123_000003_create_auth_tables::Migration),
            Box::new(m20261123_000100_create_roles::Migration),
            Box::new(m20261123_000101_index_users_for_listing::Migration),
            Box::new(m20261123_000500_create_presets_and_audience_fields::Migration),
            Box::new(m20261123_000501_mark_jsonb_contains_leakproof::Migration),
            Box::new(m20261123_000600_create_chat_tables::Migration),
            Box::new(m20261123_000700_create_friendships::Migration),
            Box::new(m20261123_000701_stream_user_profiles::Migration),
            Box::new(m20261123_000702_restrict_user_columns::Migration),
            Box::new(m20261201_000800_hold_the_database_layer::Migration),
            Box::new(m20261215_000900_replies_are_never_stranded::Migration),
            Box::new(m20261216_001000_late_subscribers_catch_up_from_postgresql::Migration),
            Box::new(m20261221_001100_count_audiences_with_bitmaps::Migration),
            Box::new(m20261221_001150_plan_definer_functions_once::Migration),
            Box::new(m20261222_001200_deliver_the_outbox::Migration),
            Box::new(m20261222_001201_verify_email_addresses::Migration),
            Box::new(m20261222_001202_verify_company_domains::Migration),
            Box::new(m20261222_001203_invite_links::Migration),
            Box::new(m20261223_001300_seal_company_llm_providers::Migration),
            Box::new(m20261224_001400_link_sign_in_identities::Migration),
            Box::new(m20261224_001401_oidc_addresses_are_verified::Migration),
            Box::new(m20261225_001500_company_oidc_providers::Migration),
            Box::new(m20261226_001600_share_activities::Migration),
            Box::new(m20261227_001700_conversations_as_training_data::Migration),
            Box::new(m20261227_001701_audiences_over_activities::Migration),
            Box::new(m20261228_001800_key_tenant_tables_by_company::Migration),
            Box::new(m20261228_001801_directories_of_global_keys::Migration),
            Box::new(m20261228_001802_tokens_carry_their_company::Migration),
            Box::new(m20261229_001900_set_the_identity_for_every_node::Migration),
            Box::new(m20261231_002000_policies_read_no_tables::Migration),
            Box::new(m20261231_002200_index_activities_by_owner_and_kind::Migration),
        ]
    }
}

/// Names of the tables that hold tenant data: each has RLS enabled and forced, and a
/// `company_id` column. Tests walk this list to prove isolation.
///
/// Keys (so that each table can be distributed by `company_id`, co-located): the primary key
/// starts with `company_id` (`companies` is keyed by its `id`, which is the company); every
/// unique constraint or index includes `company_id`; every foreign key to another tenant table
/// includes `company_id`. Values unique across companies live in [`DIRECTORY_TABLES`].
pub const TENANT_TABLES: &[&str] = &[
    "companies",
    "users",
    "sessions",
    "refresh_tokens",
    "password_resets",
    "email_verifications",
    "invitations",
    "company_domains",
    "invite_links",
    "outbound_emails",
    "roles",
    "presets",
    "audience_fields",
    "friendships",
    "conversations",
    "messages",
    "knowledge",
    "audience_members",
    "audience_bits",
    "company_llm_providers",
    "identities",
    "company_oidc_providers",
    "activity_kinds",
    "activities",
    "activity_shares",
];

/// Directory tables: what must be unique across companies, keyed by that value, naming the
/// company (and row) it belongs to, each with its distribution column. Lookups that start
/// without a company (signing in by e-mail or by an OpenID identity, signing up by a verified
/// domain) read one row of a directory by its primary key, then the tenant tables by
/// `company_id`. Triggers on the tenant table keep each in step in the same transaction
/// (`migration/sql/current/directories.sql`); its primary key enforces the uniqueness. Each has
/// RLS enabled and forced and is read only by the definer role `app_auth` (no request role has
/// a grant). None has a foreign key, so that a distributed deployment may place it on its own:
/// each is to be distributed by the column given here (`create_distributed_table(table,
/// column)`, not co-located with the tenant tables), which is in its primary key, so that a
/// lookup by the key is one shard.
///
/// | table | primary key | distributed by | kept in step with |
/// |---|---|---|---|
/// | `login_emails` | `email` (lowercase) | `email` | `users.email` |
/// | `oidc_subjects` | `(issuer, subject)` | `subject` (few issuers would crowd few shards) | `identities` |
/// | `verified_domains` | `domain` | `domain` | `company_domains` (the verified ones) |
pub const DIRECTORY_TABLES: &[(&str, &str)] = &[
    ("login_emails", "email"),
    ("oidc_subjects", "subject"),
    ("verified_domains", "domain"),
];

/// Every table with Row Level Security enabled and forced that the application reads: the
/// tenant tables and the directory tables.
pub fn rls_tables() -> Vec<&'static str> {
    TENANT_TABLES
        .iter()
        .copied()
        .chain(DIRECTORY_TABLES.iter().map(|(table, _)| *table))
        .collect()
}
