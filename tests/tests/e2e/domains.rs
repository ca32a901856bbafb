//! Verified company domains end to end: an admin adds a domain; it counts once an admin whose
//! own address is verified and in the domain confirms it (the database refuses anyone else, and
//! a second company); `signUp(joinCompany: true)` with an address in it makes an inactive member
//! of that company, active (able to log in) once the address is verified; otherwise sign-up
//! creates a company as always.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tests::TestApp;

const PASSWORD: &str = "correct horse battery";
const ADD: &str = "mutation($d: String!) { addCompanyDomain(domain: $d) { id domain verified } }";
const CONFIRM: &str =
    "mutation($id: ID!) { confirmCompanyDomain(id: $id) { domain verified verifiedAt } }";
const DOMAINS: &str = "{ companyDomains { domain verified } }";
const SIGN_UP_JOIN: &str = "mutation($e: String!) { signUp(input: { companyName: \"Mine\", email: $e, password: \"correct horse battery\", displayName: \"Dan\", joinCompany: true }) { accessToken refreshToken user { email role isActive emailVerified } } }";

fn access(payload: &Value) -> String {
    payload["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Signs up `email` as the admin of a new company and verifies the address; the access token.
async fn verified_admin(app: &TestApp, company: &str, email: &str) -> anyhow::Result<String> {
    let payload = app.sign_up(company, email, PASSWORD).await?;
    let link = app.token_mailed_to(email).await?;
    app.graphql(
        None,
        "mutation($t: String!) { verifyEmail(token: $t) }",
        json!({ "t": link }),
    )
    .await?
    .data()?;
    Ok(access(&payload))
}

#[tokio::test]
async fn a_domain_counts_once_a_verified_admin_in_it_confirms_it() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let ann = access(&payload);
    let added = app
        .graphql(Some(&ann), ADD, json!({ "d": " @Acme.Example " }))
        .await?;
    let domain = added.data()?["addCompanyDomain"].clone();
    assert_eq!(domain["domain"], "acme.example");
    assert_eq!(domain["verified"], false);
    let id = domain["id"].as_str().unwrap_or_default().to_owned();
    let twice = app
        .graphql(Some(&ann), ADD, json!({ "d": "acme.example" }))
        .await?;
    assert_eq!(twice.error_code(), Some("CONFLICT"));
    let bad = app
        .graphql(Some(&ann), ADD, json!({ "d": "not a domain" }))
        .await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));

    // Ann's own address is not verified yet.
    let early = app
        .graphql(Some(&ann), CONFIRM, json!({ "id": id }))
        .await?;
    assert_eq!(early.error_code(), Some("FORBIDDEN"));
    let link = app.token_mailed_to("ann@acme.example").await?;
    app.graphql(
        None,
        "mutation($t: String!) { verifyEmail(token: $t) }",
        json!({ "t": link }),
    )
    .await?
    .data()?;
    // Verified, but in another domain.
    let other = app
        .graphql(Some(&ann), ADD, json!({ "d": "globex.example" }))
        .await?;
    let other_id = other.data()?["addCompanyDomain"]["id"].clone();
    let elsewhere = app
        .graphql(Some(&ann), CONFIRM, json!({ "id": other_id }))
        .await?;
    assert_eq!(elsewhere.error_code(), Some("FORBIDDEN"));

    let confirmed = app
        .graphql(Some(&ann), CONFIRM, json!({ "id": id }))
        .await?;
    assert_eq!(confirmed.data()?["confirmCompanyDomain"]["verified"], true);
    let listed = app.graphql(Some(&ann), DOMAINS, json!({})).await?;
    assert_eq!(
        listed.data()?["companyDomains"],
        json!([
            { "domain": "acme.example", "verified": true },
            { "domain": "globex.example", "verified": false },
        ])
    );

    // Another company with its own verified admin in the domain cannot take it.
    let rival = verified_admin(&app, "Rival", "rita@acme.example").await?;
    let rival_domain = app
        .graphql(Some(&rival), ADD, json!({ "d": "acme.example" }))
        .await?;
    let rival_id = rival_domain.data()?["addCompanyDomain"]["id"].clone();
    let taken = app
        .graphql(Some(&rival), CONFIRM, json!({ "id": rival_id }))
        .await?;
    assert_eq!(taken.error_code(), Some("CONFLICT"));
    // Nor see or confirm Acme's.
    let foreign = app
        .graphql(Some(&rival), CONFIRM, json!({ "id": id }))
        .await?;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    Ok(())
}

#[tokio::test]
async fn members_cannot_manage_domains_and_the_database_refuses_a_forged_confirmation()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, members) = app.company_with_users("Acme", 1).await?;
    let member = &members[0];
    let as_member = app
        .graphql(
            Some(&app.token_for(member)),
            ADD,
            json!({ "d": "acme.example" }),
        )
        .await?;
    assert_eq!(as_member.error_code(), Some("FORBIDDEN"));
    let listed = app
        .graphql(Some(&app.token_for(member)), DOMAINS, json!({}))
        .await?;
    assert_eq!(listed.error_code(), Some("FORBIDDEN"));
    // Below the API: a member inserts nothing, an admin inserts only unconfirmed domains and
    // updates none.
    let sql_member = app
        .execute_as(
            member,
            &format!("INSERT INTO company_domains (company_id, domain, added_by) VALUES ('{company}', 'acme.example', '{}')", member.id),
        )
        .await;
    assert!(sql_member.is_err(), "a member inserted a domain");
    let forged = app
        .execute_as(
            &admin,
            &format!("INSERT INTO company_domains (company_id, domain, added_by, verified_at, verified_by) VALUES ('{company}', 'acme.example', '{a}', now(), '{a}')", a = admin.id),
        )
        .await;
    assert!(forged.is_err(), "an admin inserted a confirmed domain");
    app.execute_as(
        &admin,
        &format!("INSERT INTO company_domains (company_id, domain, added_by) VALUES ('{company}', 'acme.example', '{}')", admin.id),
    )
    .await?;
    let updated = app
        .execute_as(&admin, "UPDATE company_domains SET verified_at = now()")
        .await;
    assert!(
        updated.is_err(),
        "an admin confirmed a domain with an UPDATE"
    );
    // An admin whose address is not verified confirms nothing through the definer function.
    let tx = app
        .request_tx(&admin, server::db::Access::ReadWrite)
        .await?;
    let outcome = tx
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT app.confirm_company_domain(id) AS outcome FROM company_domains",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?
        .try_get::<String>("", "outcome")?;
    tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(outcome, "unverified");
    Ok(())
}

#[tokio::test]
async fn signing_up_into_a_verified_domain_makes_a_member_active_once_verified()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let ann = verified_admin(&app, "Acme", "ann@acme.example").await?;
    let added = app
        .graphql(Some(&ann), ADD, json!({ "d": "acme.example" }))
        .await?;
    let id = added.data()?["addCompanyDomain"]["id"].clone();
    app.graphql(Some(&ann), CONFIRM, json!({ "id": id }))
        .await?
        .data()?;

    let joined = app
        .graphql(None, SIGN_UP_JOIN, json!({ "e": "dan@ACME.example" }))
        .await?;
    let payload = joined.data()?["signUp"].clone();
    assert_eq!(
        payload["accessToken"], "",
        "nobody is signed in before verification"
    );
    assert_eq!(
        payload["user"],
        json!({ "email": "dan@ACME.example", "role": "member", "isActive": false, "emailVerified": false })
    );
    let early = app.login("dan@ACME.example", PASSWORD).await?;
    assert_eq!(early.error_code(), Some("UNAUTHENTICATED"));
    let link = app.token_mailed_to("dan@ACME.example").await?;
    app.graphql(
        None,
        "mutation($t: String!) { verifyEmail(token: $t) }",
        json!({ "t": link }),
    )
    .await?
    .data()?;
    let login = app.login("dan@ACME.example", PASSWORD).await?;
    let dan = access(&login.data()?["login"]);
    let company = app
        .graphql(
            Some(&dan),
            "{ company { name } me { role isActive emailVerified } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        company.data()?.clone(),
        json!({ "company": { "name": "Acme" }, "me": { "role": "member", "isActive": true, "emailVerified": true } })
    );

    // An address in no verified domain signs up a company of its own, as without joinCompany.
    let alone = app
        .graphql(None, SIGN_UP_JOIN, json!({ "e": "eve@elsewhere.example" }))
        .await?;
    let payload = alone.data()?["signUp"].clone();
    assert_eq!(payload["user"]["role"], "admin");
    assert_ne!(payload["accessToken"], "");
    // An unconfirmed domain does not count either.
    app.graphql(Some(&ann), ADD, json!({ "d": "unconfirmed.example" }))
        .await?
        .data()?;
    let unconfirmed = app
        .graphql(
            None,
            SIGN_UP_JOIN,
            json!({ "e": "ula@unconfirmed.example" }),
        )
        .await?;
    assert_eq!(unconfirmed.data()?["signUp"]["user"]["role"], "admin");
    Ok(())
}
