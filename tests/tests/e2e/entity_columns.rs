//! Entities say what a request may read: for every entity of the `entity` crate, selecting all
//! the columns it maps succeeds in a request transaction (`SET LOCAL ROLE app_user` and
//! `app.begin_request(...)`). An entity that maps a column request roles may not select (a
//! password hash, an unmasked e-mail) fails here, not in production.

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
