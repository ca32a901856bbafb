//! Directory tables (`migration::DIRECTORY_TABLES`): what must be unique across companies, keyed
//! by that value. Each is kept in step with its tenant table in the same transaction, its key
//! refuses a value another company holds, lookups without a company go through it, and no
//! request role reads it.

use anyhow::Context as _;
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde_json::{Value, json};
use tests::TestApp;
use uuid::Uuid;

/// The rows `sql` returns, as JSON objects, read as the superuser.
async fn rows(app: &TestApp, sql: &str) -> anyhow::Result<Vec<Value>> {
    let row = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT COALESCE(json_agg(r), '[]')::text AS v FROM ({sql}) r"),
        ))
        .await?
        .context("no row")?;
    let text: String = row.try_get("", "v")?;
    Ok(serde_json::from_str(&text)?)
}

/// The error of `sql` run as the superuser (empty when it succeeded).
async fn error_of(app: &TestApp, sql: &str) -> String {
    app.sql(sql)
        .await
        .err()
        .map(|e| format!("{e:?}"))
        .unwrap_or_default()
}

#[tokio::test]
async fn login_emails_follow_the_users_addresses() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (acme, admin, _) = app.company_with_users("Acme", 0).await?;
    let (globex, _, _) = app.company_with_users("Globex", 0).await?;
    let of = |email: &str| {
        format!("SELECT company_id, user_id FROM login_emails WHERE email = '{email}'")
    };
    assert_eq!(
        rows(&app, &of("admin@acme.example")).await?,
        vec![json!({ "company_id": acme, "user_id": admin.id })]
    );

    // Another company cannot have the address, in any case: the directory's key refuses it.
    let taken = error_of(
        &app,
        &format!(
            "INSERT INTO users (id, company_id, email, display_name) \
             VALUES (gen_random_uuid(), '{globex}', 'ADMIN@Acme.example', 'Copy')"
        ),
    )
    .await;
    assert!(taken.contains("login_emails_pkey"), "{taken}");

    // A changed address moves the row; the old address is free again.
    app.sql(&format!(
        "UPDATE users SET email = 'Boss@Acme.example' WHERE company_id = '{acme}' AND id = '{}'",
        admin.id
    ))
    .await?;
    assert_eq!(
        rows(&app, &of("admin@acme.example")).await?,
        Vec::<Value>::new()
    );
    assert_eq!(
        rows(&app, &of("boss@acme.example")).await?,
        vec![json!({ "company_id": acme, "user_id": admin.id })]
    );
    let newcomer = app
        .create_user(globex, "admin@acme.example", "member")
        .await?;
    assert_eq!(
        rows(&app, &of("admin@acme.example")).await?,
        vec![json!({ "company_id": globex, "user_id": newcomer.id })]
    );

    // A failed statement leaves the directory as it was (same transaction).
    let clash = error_of(
        &app,
        &format!(
            "UPDATE users SET email = 'boss@acme.example' WHERE company_id = '{globex}' AND id = '{}'",
            newcomer.id
        ),
    )
    .await;
    assert!(clash.contains("login_emails_pkey"), "{clash}");
    assert_eq!(
        rows(&app, &of("admin@acme.example")).await?,
        vec![json!({ "company_id": globex, "user_id": newcomer.id })]
    );

    // Users that go (here with their company) take their rows along.
    app.sql(&format!("DELETE FROM companies WHERE id = '{acme}'"))
        .await?;
    assert_eq!(
        rows(
            &app,
            &format!("SELECT email FROM login_emails WHERE company_id = '{acme}'")
        )
        .await?,
        Vec::<Value>::new()
    );
    Ok(())
}

#[tokio::test]
async fn oidc_subjects_follow_the_identities() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (acme, ann, _) = app.company_with_users("Acme", 0).await?;
    let (globex, bob, _) = app.company_with_users("Globex", 0).await?;
    let identity = Uuid::new_v4();
    app.sql(&format!(
        "INSERT INTO identities (id, company_id, user_id, provider, issuer, subject) \
         VALUES ('{identity}', '{acme}', '{}', 'idp', 'https://idp.example', 'sub-1')",
        ann.id
    ))
    .await?;
    let subject = "SELECT company_id, user_id, identity_id FROM oidc_subjects \
                   WHERE issuer = 'https://idp.example' AND subject = 'sub-1'";
    assert_eq!(
        rows(&app, subject).await?,
        vec![json!({ "company_id": acme, "user_id": ann.id, "identity_id": identity })]
    );
    // Sign-in finds the user through the directory, of whichever company.
    let found = rows(
        &app,
        "SELECT user_id, company_id FROM app.oidc_identity('https://idp.example', 'sub-1')",
    )
    .await?;
    assert_eq!(
        found,
        vec![json!({ "user_id": ann.id, "company_id": acme })]
    );

    // The same subject of the same provider is one user's, in one company.
    let taken = error_of(
        &app,
        &format!(
            "INSERT INTO identities (id, company_id, user_id, provider, issuer, subject) \
             VALUES (gen_random_uuid(), '{globex}', '{}', 'idp', 'https://idp.example', 'sub-1')",
            bob.id
        ),
    )
    .await;
    assert!(taken.contains("oidc_subjects_pkey"), "{taken}");
    let link = rows(
        &app,
        &format!(
            "SELECT app.oidc_link(gen_random_uuid(), '{}', '{globex}', 'idp', 'https://idp.example', \
             'sub-1', NULL) AS outcome",
            bob.id
        ),
    )
    .await?;
    assert_eq!(link, vec![json!({ "outcome": "taken" })]);
    let again = rows(
        &app,
        &format!(
            "SELECT app.oidc_link(gen_random_uuid(), '{}', '{acme}', 'idp', 'https://idp.example', \
             'sub-1', NULL) AS outcome",
            ann.id
        ),
    )
    .await?;
    assert_eq!(again, vec![json!({ "outcome": "already" })]);

    app.sql(&format!(
        "DELETE FROM identities WHERE company_id = '{acme}' AND id = '{identity}'"
    ))
    .await?;
    assert_eq!(rows(&app, subject).await?, Vec::<Value>::new());
    let none = rows(
        &app,
        "SELECT user_id FROM app.oidc_identity('https://idp.example', 'sub-1')",
    )
    .await?;
    assert_eq!(none, Vec::<Value>::new());
    Ok(())
}

#[tokio::test]
async fn verified_domains_follow_the_verified_company_domains() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (acme, ann, _) = app.company_with_users("Acme", 0).await?;
    let (globex, bob, _) = app.company_with_users("Globex", 0).await?;
    let add = |company: Uuid, by: Uuid| {
        format!(
            "INSERT INTO company_domains (company_id, domain, added_by) \
             VALUES ('{company}', 'shared.example', '{by}')"
        )
    };
    app.sql(&add(acme, ann.id)).await?;
    app.sql(&add(globex, bob.id)).await?;
    let verified = "SELECT company_id FROM verified_domains WHERE domain = 'shared.example'";
    // Added is not verified.
    assert_eq!(rows(&app, verified).await?, Vec::<Value>::new());
    let verify = |company: Uuid| {
        format!(
            "UPDATE company_domains SET verified_at = now() \
             WHERE company_id = '{company}' AND domain = 'shared.example'"
        )
    };
    app.sql(&verify(acme)).await?;
    assert_eq!(
        rows(&app, verified).await?,
        vec![json!({ "company_id": acme })]
    );
    // One company at most verifies a domain.
    let taken = error_of(&app, &verify(globex)).await;
    assert!(taken.contains("verified_domains_pkey"), "{taken}");
    // Sign-up by the domain finds the company through the directory.
    let joined = rows(
        &app,
        "SELECT app.sign_up_member(gen_random_uuid(), 'new@Shared.example', 'hash', 'New') AS company",
    )
    .await?;
    assert_eq!(joined, vec![json!({ "company": acme })]);

    // Removed, the domain is free for another company.
    app.sql(&format!(
        "DELETE FROM company_domains WHERE company_id = '{acme}' AND domain = 'shared.example'"
    ))
    .await?;
    assert_eq!(rows(&app, verified).await?, Vec::<Value>::new());
    app.sql(&verify(globex)).await?;
    assert_eq!(
        rows(&app, verified).await?,
        vec![json!({ "company_id": globex })]
    );
    Ok(())
}

#[tokio::test]
async fn no_request_role_reads_a_directory() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    for (table, _) in migration::DIRECTORY_TABLES {
        for user in [&admin, &members[0]] {
            let read = app.query_as(user, &format!("SELECT * FROM {table}")).await;
            assert!(
                read.is_err_and(|e| format!("{e:?}").contains("permission denied")),
                "{table} is readable by {}",
                user.role
            );
        }
    }
    Ok(())
}
