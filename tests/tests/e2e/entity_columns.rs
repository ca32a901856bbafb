//! Entities say what a request may read: for every entity of the `entity` crate, selecting all
//! the columns it maps succeeds in a request transaction (`SET LOCAL ROLE app_user` and
//! `app.begin_request(...)`). An entity that maps a column request roles may not select (a
//! password hash, an unmasked e-mail) fails here, not in production. And entities are keyed as
//! their tables are: by the company first, as every tenant table's keys are.

use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect, QueryTrait, Statement};
use tests::{TestApp, TestUser};

/// `SELECT <every mapped column> FROM <table> LIMIT 1` of `E`, as `user`.
async fn select_all_columns<E: EntityTrait>(app: &TestApp, user: &TestUser) -> Result<(), String> {
    let statement = E::find()
        .limit(1)
        .build(sea_orm::DbBackend::Postgres)
        .to_string();
    let tx = app
        .request_tx(user, server::db::Access::ReadOnly)
        .await
        .map_err(|e| e.to_string())?;
    tx.conn()
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            statement.clone(),
        ))
        .await
        .map_err(|e| format!("{statement}: {e}"))?;
    tx.commit().await.map_err(|e| format!("{e:?}"))?;
    Ok(())
}

#[tokio::test]
async fn every_entity_selects_only_columns_a_request_may_read() -> anyhow::Result<()> {
    use entity::*;
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let member = &members[0];
    let mut failures = Vec::new();
    for user in [&admin, member] {
        let results = [
            (
                "activities",
                select_all_columns::<activities::Entity>(&app, user).await,
            ),
            (
                "activity_kinds",
                select_all_columns::<activity_kinds::Entity>(&app, user).await,
            ),
            (
                "audience_fields",
                select_all_columns::<audience_fields::Entity>(&app, user).await,
            ),
            (
                "audience_users",
                select_all_columns::<audience_users::Entity>(&app, user).await,
            ),
            (
                "companies",
                select_all_columns::<companies::Entity>(&app, user).await,
            ),
            (
                "conversations",
                select_all_columns::<conversations::Entity>(&app, user).await,
            ),
            (
                "friendships",
                select_all_columns::<friendships::Entity>(&app, user).await,
            ),
            (
                "invitations",
                select_all_columns::<invitations::Entity>(&app, user).await,
            ),
            (
                "knowledge",
                select_all_columns::<knowledge::Entity>(&app, user).await,
            ),
            (
                "messages",
                select_all_columns::<messages::Entity>(&app, user).await,
            ),
            (
                "presets",
                select_all_columns::<presets::Entity>(&app, user).await,
            ),
            (
                "roles",
                select_all_columns::<roles::Entity>(&app, user).await,
            ),
            (
                "sessions",
                select_all_columns::<sessions::Entity>(&app, user).await,
            ),
            (
                "user_profiles",
                select_all_columns::<user_profiles::Entity>(&app, user).await,
            ),
            (
                "users",
                select_all_columns::<users::Entity>(&app, user).await,
            ),
        ];
        for (entity, result) in results {
            if let Err(error) = result {
                failures.push(format!("{entity} as {}: {error}", user.role));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "entities mapping columns a request may not read:\n{}",
        failures.join("\n")
    );
    Ok(())
}

/// The columns of `E`'s primary key, in order.
fn entity_key<E: EntityTrait>() -> Vec<String> {
    use sea_orm::{IdenStatic as _, Iterable as _, PrimaryKeyToColumn as _};
    E::PrimaryKey::iter()
        .map(|key| key.into_column().as_str().to_owned())
        .collect()
}

/// The columns of `table`'s primary key in the database, in order (empty for a view).
async fn table_key(app: &TestApp, table: &str) -> anyhow::Result<Vec<String>> {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord)
                                FROM pg_index i
                                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k (attnum, ord)
                                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                               WHERE i.indisprimary AND i.indrelid = ('public.' || $1)::regclass),
                             '{}') AS key",
            [table.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get("", "key")?)
}

#[tokio::test]
async fn entities_have_the_primary_keys_of_their_tables() -> anyhow::Result<()> {
    use entity::*;
    let app = TestApp::spawn().await?;
    // Views have no primary key: theirs is that of the table they show.
    let keys = [
        (
            "audience_fields",
            entity_key::<audience_fields::Entity>(),
            "audience_fields",
        ),
        (
            "audience_users",
            entity_key::<audience_users::Entity>(),
            "users",
        ),
        ("companies", entity_key::<companies::Entity>(), "companies"),
        (
            "conversations",
            entity_key::<conversations::Entity>(),
            "conversations",
        ),
        (
            "friendships",
            entity_key::<friendships::Entity>(),
            "friendships",
        ),
        (
            "invitations",
            entity_key::<invitations::Entity>(),
            "invitations",
        ),
        ("knowledge", entity_key::<knowledge::Entity>(), "knowledge"),
        ("messages", entity_key::<messages::Entity>(), "messages"),
        ("presets", entity_key::<presets::Entity>(), "presets"),
        ("roles", entity_key::<roles::Entity>(), "roles"),
        ("sessions", entity_key::<sessions::Entity>(), "sessions"),
        (
            "user_profiles",
            entity_key::<user_profiles::Entity>(),
            "users",
        ),
        ("users", entity_key::<users::Entity>(), "users"),
    ];
    let mut failures = Vec::new();
    for (entity, key, table) in keys {
        let stored = table_key(&app, table).await?;
        if stored != key {
            failures.push(format!(
                "{entity}: entity {key:?}, table {table} {stored:?}"
            ));
        }
        // Every tenant table is keyed by its company first (companies: its id is the company).
        if table != "companies" && stored.first().map(String::as_str) != Some("company_id") {
            failures.push(format!(
                "{table}: primary key {stored:?} does not start with company_id"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn every_tenant_key_and_unique_index_starts_with_the_company() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let tables: Vec<String> = migration::TENANT_TABLES
        .iter()
        .filter(|t| **t != "companies")
        .map(|t| (*t).to_owned())
        .collect();
    // Unique indexes (primary keys included) without company_id, and foreign keys between
    // tenant tables without it.
    let rows = app
        .admin
        .query_all_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT c.relname::text || ': ' || pg_get_indexdef(i.indexrelid) AS problem
               FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
              WHERE i.indisunique AND c.relnamespace = 'public'::regnamespace AND c.relname::text = ANY($1)
                AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) k (attnum)
                                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                WHERE a.attname = 'company_id')
             UNION ALL
             SELECT k.conrelid::regclass::text || ': ' || pg_get_constraintdef(k.oid)
               FROM pg_constraint k
              WHERE k.contype = 'f' AND k.conrelid::regclass::text = ANY($1)
                AND k.confrelid::regclass::text = ANY($1)
                AND NOT EXISTS (SELECT 1 FROM unnest(k.conkey) c (attnum)
                                JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = c.attnum
                                WHERE a.attname = 'company_id')",
            [tables.into()],
        ))
        .await?;
    let problems: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String>("", "problem"))
        .collect::<Result<_, _>>()?;
    assert!(
        problems.is_empty(),
        "keys without company_id:\n{}",
        problems.join("\n")
    );
    Ok(())
}
