//! Invite links end to end: admins make, list (with use counts) and revoke them; anyone with a
//! link signs up into its company with its role until it expires, is revoked or is used up —
//! concurrent sign-ups never exceed `maxUses`; the database refuses what the API refuses.

use serde_json::{Value, json};
use tests::TestApp;

const PASSWORD: &str = "correct horse battery";
const CREATE: &str = "mutation($r: String!, $m: Int!, $e: DateTime!) { createInviteLink(role: $r, maxUses: $m, expiresAt: $e) { token url inviteLink { id role maxUses uses usable } } }";
const ACCEPT: &str = "mutation($t: String!, $e: String!) { acceptInviteLink(input: { token: $t, email: $e, password: \"correct horse battery\", displayName: \"Joiner\" }) { accessToken user { email role emailVerified } } }";
const LINKS: &str = "{ inviteLinks { role maxUses uses usable } }";

fn access(payload: &Value) -> String {
    payload["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn in_a_day() -> String {
    (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()
}

#[tokio::test]
async fn a_link_signs_people_up_with_its_role_until_it_is_used_up() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let ann = access(&payload);
    let created = app
        .graphql(
            Some(&ann),
            CREATE,
            json!({ "r": "manager", "m": 2, "e": in_a_day() }),
        )
        .await?;
    let created = created.data()?["createInviteLink"].clone();
    let token = created["token"].as_str().unwrap_or_default().to_owned();
    assert!(token.starts_with("il_"));
    assert!(
        created["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/join?token={token}")))
    );
    assert_eq!(created["inviteLink"]["uses"], 0);
    let stored = app
        .sql(&format!(
            "SELECT 1 FROM invite_links WHERE token_hash = '{token}'"
        ))
        .await?;
    assert_eq!(stored, 0, "only the token's hash is stored");

    for (i, email) in ["bo@else.example", "cy@else.example"].iter().enumerate() {
        let joined = app
            .graphql(None, ACCEPT, json!({ "t": token, "e": email }))
            .await?;
        let data = joined.data()?["acceptInviteLink"].clone();
        assert_eq!(
            data["user"],
            json!({ "email": email, "role": "manager", "emailVerified": false })
        );
        let company = app
            .graphql(Some(&access(&data)), "{ company { name } }", json!({}))
            .await?;
        assert_eq!(company.data()?["company"]["name"], "Acme");
        let listed = app.graphql(Some(&ann), LINKS, json!({})).await?;
        assert_eq!(listed.data()?["inviteLinks"][0]["uses"], i + 1);
        // A verification link went to the new member's address.
        assert!(app.token_mailed_to(email).await?.starts_with("ev_"));
    }
    let third = app
        .graphql(None, ACCEPT, json!({ "t": token, "e": "di@else.example" }))
        .await?;
    assert_eq!(third.error_code(), Some("BAD_USER_INPUT"), "used up");
    let listed = app.graphql(Some(&ann), LINKS, json!({})).await?;
    assert_eq!(
        listed.data()?["inviteLinks"],
        json!([{ "role": "manager", "maxUses": 2, "uses": 2, "usable": false }])
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_sign_ups_never_exceed_max_uses() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|config| config.rate_limit_signup_per_ip = 0).await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let ann = access(&payload);
    let created = app
        .graphql(
            Some(&ann),
            CREATE,
            json!({ "r": "member", "m": 3, "e": in_a_day() }),
        )
        .await?;
    let token = created.data()?["createInviteLink"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let attempts = (0..8).map(|i| {
        let (app, token) = (&app, token.clone());
        async move {
            app.graphql(
                None,
                ACCEPT,
                json!({ "t": token, "e": format!("p{i}@else.example") }),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut joined = 0;
    for result in results {
        let response = result?;
        match response.error_code() {
            None => joined += 1,
            Some(code) => assert_eq!(code, "BAD_USER_INPUT"),
        }
    }
    assert_eq!(joined, 3);
    let uses = app
        .sql("SELECT 1 FROM invite_links WHERE uses = 3 AND max_uses = 3")
        .await?;
    assert_eq!(uses, 1);
    Ok(())
}

#[tokio::test]
async fn revoked_expired_and_forged_links_sign_nobody_up() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, members) = app.company_with_users("Acme", 1).await?;
    let admin_token = app.token_for(&admin);
    let make = |role: &'static str| {
        let (app, admin_token) = (&app, admin_token.clone());
        async move {
            let created = app
                .graphql(
                    Some(&admin_token),
                    CREATE,
                    json!({ "r": role, "m": 5, "e": in_a_day() }),
                )
                .await?;
            let data = created.data()?["createInviteLink"].clone();
            anyhow::Ok((
                data["token"].as_str().unwrap_or_default().to_owned(),
                data["inviteLink"]["id"].clone(),
            ))
        }
    };
    let (revoked, revoked_id) = make("member").await?;
    let revoke = app
        .graphql(
            Some(&admin_token),
            "mutation($id: ID!) { revokeInviteLink(id: $id) { usable revokedAt } }",
            json!({ "id": revoked_id }),
        )
        .await?;
    assert_eq!(revoke.data()?["revokeInviteLink"]["usable"], false);
    let refused = app
        .graphql(None, ACCEPT, json!({ "t": revoked, "e": "x@else.example" }))
        .await?;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"));

    let (expired, _) = make("member").await?;
    app.sql(
        "UPDATE invite_links SET expires_at = now() - interval '1 second' WHERE revoked_at IS NULL",
    )
    .await?;
    let late = app
        .graphql(None, ACCEPT, json!({ "t": expired, "e": "y@else.example" }))
        .await?;
    assert_eq!(late.error_code(), Some("BAD_USER_INPUT"));
    let forged = app
        .graphql(
            None,
            ACCEPT,
            json!({ "t": "il_not-a-real-token", "e": "z@else.example" }),
        )
        .await?;
    assert_eq!(forged.error_code(), Some("BAD_USER_INPUT"));

    // Bad input and roles that do not exist.
    let bad = app
        .graphql(
            Some(&admin_token),
            CREATE,
            json!({ "r": "member", "m": 0, "e": in_a_day() }),
        )
        .await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    let past = app
        .graphql(
            Some(&admin_token),
            CREATE,
            json!({ "r": "member", "m": 1, "e": "2020-01-01T00:00:00Z" }),
        )
        .await?;
    assert_eq!(past.error_code(), Some("BAD_USER_INPUT"));
    let no_role = app
        .graphql(
            Some(&admin_token),
            CREATE,
            json!({ "r": "wizard", "m": 1, "e": in_a_day() }),
        )
        .await?;
    assert!(no_role.error_code().is_some());

    // Members may not make or list links, and the database agrees.
    let member = &members[0];
    let member_token = app.token_for(member);
    let as_member = app
        .graphql(
            Some(&member_token),
            CREATE,
            json!({ "r": "admin", "m": 1, "e": in_a_day() }),
        )
        .await?;
    assert_eq!(as_member.error_code(), Some("FORBIDDEN"));
    let listed = app.graphql(Some(&member_token), LINKS, json!({})).await?;
    assert_eq!(listed.error_code(), Some("FORBIDDEN"));
    let sql_insert = app
        .execute_as(
            member,
            &format!(
                "INSERT INTO invite_links (company_id, role, token_hash, max_uses, expires_at, created_by) \
                 VALUES ('{company}', 'admin', 'x', 5, now() + interval '1 day', '{}')",
                member.id
            ),
        )
        .await;
    assert!(sql_insert.is_err(), "a member made an invite link in SQL");
    let seen = app.query_as(member, "SELECT id FROM invite_links").await?;
    assert!(seen.is_empty(), "a member reads invite links in SQL");
    let reset = app
        .execute_as(&admin, "UPDATE invite_links SET uses = 0")
        .await;
    assert!(reset.is_err(), "an admin reset a use count");
    Ok(())
}
