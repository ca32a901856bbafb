//! Activities in PostgreSQL alone: raw SQL in request transactions reads exactly what the API
//! shows (friend, non-friend, blocked either way, admin, the coach it is shared with, another
//! company), writes only the caller's own rows and shares, and no writer — a request or the
//! table's owner — stores metrics that do not match their kind.

use std::collections::BTreeSet;

use tests::{TestApp, TestUser};

use crate::activities::{expected_reads, fixture};

async fn notes_seen(
    app: &TestApp,
    reader: &TestUser,
    owner: &TestUser,
) -> anyhow::Result<BTreeSet<String>> {
    let rows = app
        .query_as(
            reader,
            &format!("SELECT note FROM activities WHERE user_id = '{}'", owner.id),
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r["note"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn row_level_security_alone_decides_who_reads_an_activity() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let f = fixture(&app).await?;
    for (reader, who, expected) in expected_reads(&f) {
        assert_eq!(notes_seen(&app, reader, &f.owner).await?, expected, "{who}");
    }
    // Shares: the owner sees theirs, the coach the one to them, nobody else any.
    for (reader, count) in [
        (&f.owner, 2),
        (&f.coach, 1),
        (&f.friend, 0),
        (&f.admin, 0),
        (&f.outsider, 0),
    ] {
        let rows = app
            .query_as(reader, "SELECT activity_id FROM activity_shares")
            .await?;
        assert_eq!(rows.len(), count, "shares seen by {}", reader.email);
    }
    // A friendship that ends takes the friends-only activity with it.
    app.execute_as(
        &f.friend,
        &format!(
            "DELETE FROM friendships WHERE '{}' IN (user_a, user_b) AND '{}' IN (user_a, user_b)",
            f.friend.id, f.owner.id
        ),
    )
    .await?;
    assert_eq!(
        notes_seen(&app, &f.friend, &f.owner).await?,
        ["company".to_owned()].into_iter().collect()
    );
    Ok(())
}

#[tokio::test]
async fn requests_write_only_their_own_activities_and_shares() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let f = fixture(&app).await?;
    let owner = f.owner.id;
    let kind = app
        .query_as(&f.owner, "SELECT id FROM activity_kinds")
        .await?
        .first()
        .and_then(|r| r["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    for caller in [&f.friend, &f.admin, &f.coach] {
        // Rows others may read are still not theirs to change.
        let updated = app
            .execute_as(
                caller,
                &format!("UPDATE activities SET note = 'x' WHERE user_id = '{owner}'"),
            )
            .await?;
        assert_eq!(updated, 0, "{}", caller.email);
        let deleted = app
            .execute_as(
                caller,
                &format!("DELETE FROM activities WHERE user_id = '{owner}'"),
            )
            .await?;
        assert_eq!(deleted, 0, "{}", caller.email);
        // Nor may they record in someone else's name, or share someone else's activity.
        let forged = app
            .execute_as(
                caller,
                &format!(
                    "INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics) \
                     VALUES ('{}', '{owner}', '{kind}', now(), '{{}}')",
                    caller.company_id
                ),
            )
            .await;
        if caller.company_id == f.owner.company_id {
            assert!(forged.is_err(), "{} recorded for the owner", caller.email);
        }
        let shared = app
            .execute_as(
                caller,
                &format!(
                    "INSERT INTO activity_shares (company_id, activity_id, user_id, owner_id) \
                     SELECT company_id, id, '{}', user_id FROM activities WHERE user_id = '{owner}'",
                    f.stranger.id
                ),
            )
            .await;
        assert!(
            shared.is_err() || shared.as_ref().is_ok_and(|n| *n == 0),
            "{} shared the owner's activity",
            caller.email
        );
    }
    // The owner changes their own; a column that is not the owner's to change stays.
    assert_eq!(
        app.execute_as(
            &f.owner,
            &format!("UPDATE activities SET note = 'mine' WHERE user_id = '{owner}'")
        )
        .await?,
        4
    );
    assert!(
        app.execute_as(
            &f.owner,
            &format!("UPDATE activities SET user_id = '{}'", f.friend.id)
        )
        .await
        .is_err()
    );
    // Kinds: admins define them, members do not.
    let define = |n: &str| {
        format!(
            "INSERT INTO activity_kinds (company_id, name, metrics) \
             VALUES ('{}', '{n}', '[{{\"name\": \"km\", \"type\": \"number\"}}]')",
            f.owner.company_id
        )
    };
    assert!(app.execute_as(&f.owner, &define("run")).await.is_err());
    assert_eq!(app.execute_as(&f.admin, &define("run")).await?, 1);
    Ok(())
}

#[tokio::test]
async fn no_writer_stores_metrics_that_do_not_match_their_kind() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let f = fixture(&app).await?;
    let kind = app
        .query_as(&f.owner, "SELECT id FROM activity_kinds")
        .await?
        .first()
        .and_then(|r| r["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let insert = |metrics: &str| {
        format!(
            "INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics) \
             VALUES ('{}', '{}', '{kind}', now(), '{metrics}')",
            f.owner.company_id, f.owner.id
        )
    };
    for (metrics, path) in [
        (r#"{"score": "high"}"#, "metrics.score"),
        (r#"{"minutes": 1.5}"#, "metrics.minutes"),
        (r#"{"steps": 3}"#, "metrics.steps"),
        (r#"{"score": null}"#, "metrics.score"),
        (r#"{"score": 1e20}"#, "metrics.score"),
        ("[]", "metrics"),
    ] {
        // As a request and as the table's owner (a superuser here): the database refuses.
        let as_request = app.execute_as(&f.owner, &insert(metrics)).await;
        let message = format!("{:?}", as_request.err());
        assert!(message.contains(path), "{metrics} as a request: {message}");
        let as_owner = app.sql(&insert(metrics)).await;
        let message = format!("{:?}", as_owner.err());
        assert!(message.contains(path), "{metrics} as the owner: {message}");
    }
    assert_eq!(
        app.execute_as(&f.owner, &insert(r#"{"score": 5, "minutes": 3}"#))
            .await?,
        1
    );
    let update = app
        .execute_as(&f.owner, r#"UPDATE activities SET metrics = '{"mood": 1}'"#)
        .await;
    assert!(format!("{:?}", update.err()).contains("metrics.mood"));
    // Kinds with malformed metric definitions are refused by their check.
    for definitions in [
        "[]",
        r#"[{"name": "Bad", "type": "number"}]"#,
        r#"[{"name": "a", "type": "date"}]"#,
        r#"[{"name": "a", "type": "number"}, {"name": "a", "type": "string"}]"#,
        r#"[{"name": "a", "type": "number", "extra": 1}]"#,
        r#"{"name": "a"}"#,
    ] {
        let refused = app
            .sql(&format!(
                "INSERT INTO activity_kinds (company_id, name, metrics) VALUES ('{}', 'k', '{definitions}')",
                f.owner.company_id
            ))
            .await;
        assert!(
            format!("{:?}", refused.err()).contains("activity_kinds_metrics_check"),
            "{definitions}"
        );
    }
    Ok(())
}
