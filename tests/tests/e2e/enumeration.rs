//! Enumeration and abuse: sign-in answers tell nobody which addresses have accounts, invitations
//! reveal nothing about other companies and their tokens reach only the invitee, and a
//! stranger's failed logins cannot lock the owner out.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;
use tests::{GqlResponse, TestApp};

const PASSWORD: &str = "correct horse battery";
const INVITE: &str = "mutation($e: String!) { inviteUser(input: { email: $e, role: \"member\" }) { id email role token link } }";

#[tokio::test]
async fn login_does_the_same_work_for_unknown_wrong_and_deactivated_accounts() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    app.sign_up("Globex", "gone@globex.example", PASSWORD)
        .await?;
    app.sql("UPDATE users SET is_active = false WHERE email = 'gone@globex.example'")
        .await?;
    let passwords = &app.state().passwords;
    for (email, password) in [
        ("nobody@nowhere.example", PASSWORD),
        ("ann@acme.example", "a wrong password"),
        ("gone@globex.example", PASSWORD),
    ] {
        let before = passwords.verifications();
        let response = app.login(email, password).await?;
        assert_eq!(response.error_code(), Some("UNAUTHENTICATED"), "{email}");
        assert_eq!(
            response.error_message(),
            Some("wrong e-mail or password"),
            "{email}"
        );
        // One full argon2 verification each, like a real attempt.
        assert_eq!(passwords.verifications(), before + 1, "{email}");
    }
    Ok(())
}

#[tokio::test]
async fn an_invitation_answers_alike_for_unknown_and_other_companies_addresses()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let (_, outsider, _) = app.company_with_users("Globex", 0).await?;
    let token = app.token_for(&admin);
    let invite = |email: String| {
        let token = token.clone();
        let app = &app;
        async move {
            app.graphql(Some(&token), INVITE, json!({ "e": email }))
                .await
        }
    };
    let unknown = invite("new@elsewhere.example".into()).await?;
    let elsewhere = invite(outsider.email.clone()).await?;
    for response in [&unknown, &elsewhere] {
        let data = &response.data()?["inviteUser"];
        assert_eq!(data["role"], "member");
        // The token and link reach only the invited address.
        assert_eq!(data["token"], json!(null), "{data}");
        assert_eq!(data["link"], json!(null), "{data}");
    }
    assert_eq!(
        unknown.data()?["inviteUser"].as_object().map(|o| o.len()),
        elsewhere.data()?["inviteUser"].as_object().map(|o| o.len())
    );
    // A colleague is a conflict: the admin lists their people anyway.
    let colleague = invite(members[0].email.clone()).await?;
    assert_eq!(colleague.error_code(), Some("CONFLICT"));

    // The invitee reads the token from their mailbox; the address of another company's user
    // cannot take a second account.
    let mailed = app.token_mailed_to(&outsider.email).await?;
    let accepted = app
        .graphql(
            None,
            "mutation($t: String!) { acceptInvitation(input: { token: $t, password: \"a long password\", displayName: \"X\" }) { accessToken } }",
            json!({ "t": mailed }),
        )
        .await?;
    assert_eq!(accepted.error_code(), Some("CONFLICT"), "{}", accepted.body);
    Ok(())
}

#[tokio::test]
async fn invitations_are_rate_limited_per_company() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit_invite_per_company = 2;
        c.rate_limit_period_secs = 3600;
    })
    .await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let (_, other_admin, _) = app.company_with_users("Globex", 0).await?;
    for i in 0..2 {
        let response = app
            .graphql(
                Some(&app.token_for(&admin)),
                INVITE,
                json!({ "e": format!("new{i}@x.example") }),
            )
            .await?;
        response.data()?;
    }
    let limited = app
        .graphql(
            Some(&app.token_for(&admin)),
            INVITE,
            json!({ "e": "new9@x.example" }),
        )
        .await?;
    assert_eq!(limited.error_code(), Some("RATE_LIMITED"));
    assert!(
        limited.body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some()
    );
    // Another company is not affected.
    let other = app
        .graphql(
            Some(&app.token_for(&other_admin)),
            INVITE,
            json!({ "e": "new9@x.example" }),
        )
        .await?;
    other.data()?;
    Ok(())
}

async fn login_from(
    app: &TestApp,
    ip: Ipv4Addr,
    email: &str,
    password: &str,
) -> anyhow::Result<GqlResponse> {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()?;
    let response = client
        .post(app.url("/graphql"))
        .json(&json!({
            "query": "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            "variables": { "input": { "email": email, "password": password } },
        }))
        .send()
        .await?;
    GqlResponse::from_reqwest(response).await
}

#[tokio::test]
async fn a_strangers_failed_logins_cannot_lock_the_owner_out() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit_login_per_email_and_ip = 2;
        c.rate_limit_login_per_email = 5;
        c.rate_limit_period_secs = 3600;
    })
    .await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let stranger = Ipv4Addr::new(127, 0, 0, 2);
    let owner = Ipv4Addr::new(127, 0, 0, 1);
    let mut codes = Vec::new();
    for _ in 0..8 {
        let response = login_from(&app, stranger, "ann@acme.example", "guess guess guess").await?;
        codes.push(response.error_code().unwrap_or("none").to_owned());
    }
    assert_eq!(
        &codes[..2],
        ["UNAUTHENTICATED", "UNAUTHENTICATED"],
        "{codes:?}"
    );
    assert!(codes[2..].iter().all(|c| c == "RATE_LIMITED"), "{codes:?}");
    // The owner, from their own address, still gets in.
    let response = login_from(&app, owner, "ann@acme.example", PASSWORD).await?;
    assert!(response.data().is_ok(), "{}", response.body);
    Ok(())
}
