//! The current definitions: each table's Row Level Security, policies, grants, triggers and
//! functions, and the views, as they stand now, one file per table (or per area) in
//! `migration/sql/current/`. The versioned migrations are the history that built them; these
//! files are what a reader reviews and what a change edits.
//!
//! They are repeatable, as Flyway's repeatable migrations are: every statement can run again and
//! leaves the same catalog. [`apply`] runs them all, in the order of [`FILES`], after the
//! versioned migrations whenever one of those ran or the files' [`checksum`] differs from the
//! one recorded in the database (the server's `migrate` keeps it in the comment on schema `app`,
//! so it goes with the schema when the migrations are rolled back).

use sea_orm_migration::prelude::*;

macro_rules! current {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/current/", $file)),
        )
    };
}

/// The files of `migration/sql/current/` with their SQL, in the order they are applied: the
/// `app` schema's helpers first (policies everywhere call them), the views last.
pub const FILES: &[(&str, &str)] = &[
    current!("app.sql"),
    current!("auth.sql"),
    current!("companies.sql"),
    current!("company_llm_providers.sql"),
    current!("users.sql"),
    current!("sessions.sql"),
    current!("refresh_tokens.sql"),
    current!("password_resets.sql"),
    current!("email_verifications.sql"),
    current!("invitations.sql"),
    current!("identities.sql"),
    current!("company_oidc_providers.sql"),
    current!("company_domains.sql"),
    current!("directories.sql"),
    current!("invite_links.sql"),
    current!("outbound_emails.sql"),
    current!("roles.sql"),
    current!("presets.sql"),
    current!("audience_fields.sql"),
    current!("audience_bits.sql"),
    current!("friendships.sql"),
    current!("activities.sql"),
    current!("conversations.sql"),
    current!("knowledge.sql"),
    current!("messages.sql"),
    current!("training.sql"),
    current!("user_profiles.sql"),
    current!("audience_users.sql"),
    current!("audience_activities.sql"),
];

/// Owners of definer objects must be allowed to create in the schema while objects are handed
/// to them (superusers skip that check; a managed service's CREATEROLE owner does not).
///
/// On Citus, triggers of distributed tables are (re)created only with
/// `citus.enable_unsafe_triggers` (the ones left on tenant tables change only their own row,
/// see [`crate::distribute`]); on plain PostgreSQL the setting is an unused placeholder, for this
/// transaction only.
const BEFORE: &str = "GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles; \
                      SET LOCAL citus.enable_unsafe_triggers = on";
const AFTER: &str = "REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles";

/// A checksum of the files' names and contents (64-bit FNV-1a, hex): it changes whenever a
/// file does. It detects changes; it protects against nothing.
pub fn checksum() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, sql) in FILES {
        for byte in name.bytes().chain([0]).chain(sql.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Applies every file, in order, on `conn` (run it in a transaction: a file that fails leaves
/// nothing half-applied). The error names the file.
pub async fn apply(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    for statement in crate::statements::split(BEFORE) {
        conn.execute_unprepared(statement).await?;
    }
    for (name, sql) in FILES {
        // One statement at a time: Citus repeats some DDL on the workers with the text of the
        // whole query that held it (see [`crate::statements`]).
        for statement in crate::statements::split(sql) {
            conn.execute_unprepared(statement)
                .await
                .map_err(|e| DbErr::Migration(format!("migration/sql/current/{name}: {e}")))?;
        }
    }
    conn.execute_unprepared(AFTER).await?;
    Ok(())
}
