//! Authentication flows end to end: sign-up, login, refresh rotation, logout, sessions,
//! password change and reset, invitations.

use serde_json::{Value, json};
use tests::TestApp;

const PASSWORD: &str = "correct horse battery";
const ME: &str = "{ me { id email role } }";
const REFRESH: &str = "mutation($t: String) { refreshToken(refreshToken: $t) { accessToken refreshToken user { email } } }";

fn token(payload: &Value, field: &str) -> String {
    payload[field].as_str().unwrap_or_default().to_owned()
}

async fn me_status(app: &TestApp, access: &str) -> anyhow::Result<Option<String>> {
    let response = app.graphql(Some(access), ME, json!({})).await?;
    Ok(response.error_code().map(str::to_owned))
}

#[tokio::test]
async fn sign_up_creates_a_company_whose_admin_is_signed_in() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app
        .sign_up("Acme", "Founder@Acme.example", PASSWORD)
        .await?;
    assert_eq!(payload["user"]["role"], "admin");
    assert!(token(&payload, "refreshToken").starts_with("rt_"));
    let access = token(&payload, "accessToken");
    let response = app
        .graphql(
            Some(&access),
            "{ me { email } company { name } sessions { current } }",
            json!({}),
        )
        .await?;
    let data = response.data()?;
    assert_eq!(data["me"]["email"], "Founder@Acme.example");
    assert_eq!(data["company"]["name"], "Acme");
    assert_eq!(data["sessions"], json!([{ "current": true }]));
    Ok(())
}

#[tokio::test]
async fn sign_up_rejects_bad_input_with_the_offending_field() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sign_up("Acme", "taken@acme.example", PASSWORD).await?;
    let cases = [
        (
            json!({ "companyName": "X", "email": "a@x.example", "password": "short", "displayName": "A" }),
            "BAD_USER_INPUT",
            Some("input.password"),
        ),
        (
            json!({ "companyName": "X", "email": "same@x.example", "password": "SAME@x.example", "displayName": "A" }),
            "BAD_USER_INPUT",
            Some("input.password"),
        ),
        (
            json!({ "companyName": "X", "email": "not an email", "password": PASSWORD, "displayName": "A" }),
            "BAD_USER_INPUT",
            Some("input.email"),
        ),
        (
            json!({ "companyName": " ", "email": "b@x.example", "password": PASSWORD, "displayName": "A" }),
            "BAD_USER_INPUT",
            Some("input.companyName"),
        ),
        (
            json!({ "companyName": "X", "email": "TAKEN@acme.example", "password": PASSWORD, "displayName": "A" }),
            "CONFLICT",
            None,
        ),
    ];
    for (input, code, path) in cases {
        let response = app
            .graphql(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
                json!({ "input": input }),
            )
            .await?;
        assert_eq!(response.error_code(), Some(code), "{input}");
        if let Some(path) = path {
            assert_eq!(
                response.body["errors"][0]["extensions"]["path"], path,
                "{input}"
            );
        }
    }
    // Nothing half-written: the conflicting sign-up left no company behind.
    let companies = app.sql("SELECT 1 FROM companies").await?;
    assert_eq!(companies, 1);
    Ok(())
}

#[tokio::test]
async fn login_gives_the_same_error_for_unknown_email_wrong_password_and_inactive_user()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let ok = app.login("ANN@acme.example", PASSWORD).await?;
    assert_eq!(ok.data()?["login"]["user"]["email"], "ann@acme.example");

    let wrong = app.login("ann@acme.example", "wrong password!!").await?;
    let unknown = app.login("nobody@acme.example", PASSWORD).await?;
    app.sql(&format!(
        "UPDATE users SET is_active = false WHERE id = '{}'",
        payload["user"]["id"].as_str().unwrap_or_default()
    ))
    .await?;
    let inactive = app.login("ann@acme.example", PASSWORD).await?;
    for response in [&wrong, &unknown, &inactive] {
        assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
        assert_eq!(response.error_message(), wrong.error_message());
    }
    Ok(())
}

#[tokio::test]
async fn refresh_rotates_and_a_retry_within_the_grace_window_gets_the_same_family()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let first = token(&payload, "refreshToken");

    let rotated = app.graphql(None, REFRESH, json!({ "t": first })).await?;
    let second = token(&rotated.data()?["refreshToken"], "refreshToken");
    assert_ne!(second, first);
    assert_eq!(
        me_status(
            &app,
            &token(&rotated.data()?["refreshToken"], "accessToken")
        )
        .await?,
        None
    );

    // A lost response: the same predecessor again, within the grace window, yields the same
    // successor — one live family, not two.
    let retried = app.graphql(None, REFRESH, json!({ "t": first })).await?;
    assert_eq!(
        token(&retried.data()?["refreshToken"], "refreshToken"),
        second
    );

    let third = app.graphql(None, REFRESH, json!({ "t": second })).await?;
    assert!(third.data().is_ok());
    Ok(())
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.refresh_grace_secs = 0).await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let stolen = token(&payload, "refreshToken");
    let rotated = app.graphql(None, REFRESH, json!({ "t": stolen })).await?;
    let newest_refresh = token(&rotated.data()?["refreshToken"], "refreshToken");
    let newest_access = token(&rotated.data()?["refreshToken"], "accessToken");

    let reuse = app.graphql(None, REFRESH, json!({ "t": stolen })).await?;
    assert_eq!(reuse.error_code(), Some("UNAUTHENTICATED"));
    assert!(reuse.error_message().unwrap_or_default().contains("reuse"));

    // The newest token of the family stops working too, and so does its access token.
    let newest = app
        .graphql(None, REFRESH, json!({ "t": newest_refresh }))
        .await?;
    assert_eq!(newest.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(
        me_status(&app, &newest_access).await?,
        Some("UNAUTHENTICATED".into())
    );
    Ok(())
}

#[tokio::test]
async fn a_refresh_from_another_device_is_refused_and_revokes_the_session() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let laptop = [("user-agent", "Browser/1"), ("x-device-id", "laptop")];
    let login = app
        .graphql_with(&laptop, None, "mutation { login(input: { email: \"ann@acme.example\", password: \"correct horse battery\" }) { refreshToken accessToken } }", json!({}))
        .await?;
    let refresh = token(&login.data()?["login"], "refreshToken");
    let access = token(&login.data()?["login"], "accessToken");

    let elsewhere = app
        .graphql_with(
            &[("user-agent", "Browser/1"), ("x-device-id", "phone")],
            None,
            REFRESH,
            json!({ "t": refresh }),
        )
        .await?;
    assert_eq!(elsewhere.error_code(), Some("UNAUTHENTICATED"));
    // The session is gone for the laptop too.
    let back_home = app
        .graphql_with(&laptop, None, REFRESH, json!({ "t": refresh }))
        .await?;
    assert_eq!(back_home.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(
        me_status(&app, &access).await?,
        Some("UNAUTHENTICATED".into())
    );
    Ok(())
}

#[tokio::test]
async fn access_and_refresh_credentials_cannot_stand_in_for_each_other() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let as_refresh = app
        .graphql(
            None,
            REFRESH,
            json!({ "t": token(&payload, "accessToken") }),
        )
        .await?;
    assert_eq!(as_refresh.error_code(), Some("UNAUTHENTICATED"));
    let as_bearer = app
        .graphql(Some(&token(&payload, "refreshToken")), ME, json!({}))
        .await?;
    assert_eq!(
        (as_bearer.status, as_bearer.error_code()),
        (401, Some("UNAUTHENTICATED"))
    );
    Ok(())
}

#[tokio::test]
async fn logout_revokes_the_session_at_the_next_request() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let access = token(&payload, "accessToken");
    let other = app.login("ann@acme.example", PASSWORD).await?;
    let other_access = token(&other.data()?["login"], "accessToken");

    let out = app
        .graphql(Some(&access), "mutation { logout }", json!({}))
        .await?;
    assert_eq!(out.data()?["logout"], true);
    assert_eq!(
        me_status(&app, &access).await?,
        Some("UNAUTHENTICATED".into())
    );
    let refresh = app
        .graphql(
            None,
            REFRESH,
            json!({ "t": token(&payload, "refreshToken") }),
        )
        .await?;
    assert_eq!(refresh.error_code(), Some("UNAUTHENTICATED"));
    // The other device is unaffected.
    assert_eq!(me_status(&app, &other_access).await?, None);
    Ok(())
}

#[tokio::test]
async fn sessions_can_be_listed_revoked_one_by_one_or_all_at_once() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let access = token(&payload, "accessToken");
    let second = app.login("ann@acme.example", PASSWORD).await?;
    let second_access = token(&second.data()?["login"], "accessToken");
    app.login("ann@acme.example", PASSWORD).await?;

    let listed = app
        .graphql(Some(&access), "{ sessions { id current } }", json!({}))
        .await?;
    let sessions = listed.data()?["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    let second_listed = app
        .graphql(
            Some(&second_access),
            "{ sessions { id current } }",
            json!({}),
        )
        .await?;
    let second_id = second_listed.data()?["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["current"] == true))
        .map(|s| s["id"].clone())
        .unwrap_or_default();
    let revoked = app
        .graphql(
            Some(&access),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": second_id }),
        )
        .await?;
    assert_eq!(revoked.data()?["revokeSession"], true);
    assert_eq!(
        me_status(&app, &second_access).await?,
        Some("UNAUTHENTICATED".into())
    );
    let again = app
        .graphql(
            Some(&access),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": second_id }),
        )
        .await?;
    assert_eq!(again.error_code(), Some("NOT_FOUND"));

    let all = app
        .graphql(Some(&access), "mutation { logoutAll }", json!({}))
        .await?;
    assert_eq!(all.data()?["logoutAll"], 2);
    assert_eq!(
        me_status(&app, &access).await?,
        Some("UNAUTHENTICATED".into())
    );
    Ok(())
}

#[tokio::test]
async fn another_users_session_cannot_be_revoked() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let response = app
        .graphql(
            Some(&app.token_for(&members[0])),
            "mutation($id: ID!) { revokeSession(id: $id) }",
            json!({ "id": admin.session_id }),
        )
        .await?;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
    assert_eq!(me_status(&app, &app.token_for(&admin)).await?, None);
    Ok(())
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_revokes_other_sessions() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let access = token(&payload, "accessToken");
    let other = app.login("ann@acme.example", PASSWORD).await?;
    let other_access = token(&other.data()?["login"], "accessToken");
    let change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

    let wrong = app
        .graphql(
            Some(&access),
            change,
            json!({ "c": "not my password", "n": "a brand new password" }),
        )
        .await?;
    assert_eq!(wrong.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        wrong.body["errors"][0]["extensions"]["path"],
        "currentPassword"
    );
    let weak = app
        .graphql(
            Some(&access),
            change,
            json!({ "c": PASSWORD, "n": "short" }),
        )
        .await?;
    assert_eq!(weak.body["errors"][0]["extensions"]["path"], "newPassword");

    let changed = app
        .graphql(
            Some(&access),
            change,
            json!({ "c": PASSWORD, "n": "a brand new password" }),
        )
        .await?;
    assert_eq!(changed.data()?["changePassword"], true);
    assert_eq!(me_status(&app, &access).await?, None);
    assert_eq!(
        me_status(&app, &other_access).await?,
        Some("UNAUTHENTICATED".into())
    );
    assert_eq!(
        app.login("ann@acme.example", PASSWORD).await?.error_code(),
        Some("UNAUTHENTICATED")
    );
    assert!(
        app.login("ann@acme.example", "a brand new password")
            .await?
            .data()
            .is_ok()
    );
    Ok(())
}

async fn reset_token_from_outbox(app: &TestApp, email: &str) -> anyhow::Result<String> {
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        &app.admin,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT body FROM outbound_emails WHERE recipient = '{email}' ORDER BY created_at DESC LIMIT 1"),
        ),
    )
    .await?;
    let body: String = rows
        .first()
        .map(|r| r.try_get("", "body"))
        .transpose()?
        .unwrap_or_default();
    let token = body
        .split("token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_default();
    anyhow::ensure!(
        !token.is_empty(),
        "no reset link in the outbox for {email}: {body}"
    );
    Ok(token.to_owned())
}

#[tokio::test]
async fn password_reset_works_once_and_revokes_every_session() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let access = token(&payload, "accessToken");
    let request = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    let reset = "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) }";

    let unknown = app
        .graphql(None, request, json!({ "e": "nobody@acme.example" }))
        .await?;
    assert_eq!(unknown.data()?["requestPasswordReset"], true);
    let known = app
        .graphql(None, request, json!({ "e": "ann@acme.example" }))
        .await?;
    assert_eq!(known.data()?["requestPasswordReset"], true);
    let reset_token = reset_token_from_outbox(&app, "ann@acme.example").await?;

    let weak = app
        .graphql(
            None,
            reset,
            json!({ "t": reset_token, "p": "ann@acme.example" }),
        )
        .await?;
    assert_eq!(weak.body["errors"][0]["extensions"]["path"], "newPassword");
    let done = app
        .graphql(
            None,
            reset,
            json!({ "t": reset_token, "p": "a brand new password" }),
        )
        .await?;
    assert_eq!(done.data()?["resetPassword"], true);
    assert_eq!(
        me_status(&app, &access).await?,
        Some("UNAUTHENTICATED".into())
    );
    assert!(
        app.login("ann@acme.example", "a brand new password")
            .await?
            .data()
            .is_ok()
    );

    let twice = app
        .graphql(
            None,
            reset,
            json!({ "t": reset_token, "p": "yet another password" }),
        )
        .await?;
    assert_eq!(twice.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(twice.body["errors"][0]["extensions"]["path"], "token");
    Ok(())
}

#[tokio::test]
async fn an_expired_reset_token_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    app.graphql(
        None,
        "mutation { requestPasswordReset(email: \"ann@acme.example\") }",
        json!({}),
    )
    .await?;
    let reset_token = reset_token_from_outbox(&app, "ann@acme.example").await?;
    app.sql("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .await?;
    let expired = app
        .graphql(None, "mutation($t: String!) { resetPassword(token: $t, newPassword: \"a brand new password\") }", json!({ "t": reset_token }))
        .await?;
    assert_eq!(expired.error_code(), Some("BAD_USER_INPUT"));
    assert!(
        app.login("ann@acme.example", PASSWORD)
            .await?
            .data()
            .is_ok()
    );
    Ok(())
}

const INVITE: &str = "mutation($e: String!, $r: String!) { inviteUser(input: { email: $e, role: $r }) { id email role expiresAt token } }";
const ACCEPT: &str = "mutation($t: String!, $p: String!) { acceptInvitation(input: { token: $t, password: $p, displayName: \"Bea\" }) { accessToken user { email role } } }";

#[tokio::test]
async fn an_invitation_is_accepted_once_into_the_inviters_company_with_its_role()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let admin = token(&payload, "accessToken");
    let invited = app
        .graphql(
            Some(&admin),
            INVITE,
            json!({ "e": "bea@acme.example", "r": "manager" }),
        )
        .await?;
    let invitation = invited.data()?["inviteUser"].clone();
    assert_eq!(invitation["role"], "manager");
    let invite_token = token(&invitation, "token");
    assert!(invite_token.starts_with("iv_"));

    let accepted = app
        .graphql(
            None,
            ACCEPT,
            json!({ "t": invite_token, "p": "bea's own password" }),
        )
        .await?;
    let data = accepted.data()?["acceptInvitation"].clone();
    assert_eq!(
        data["user"],
        json!({ "email": "bea@acme.example", "role": "manager" })
    );
    let company = app
        .graphql(
            Some(&token(&data, "accessToken")),
            "{ company { name } }",
            json!({}),
        )
        .await?;
    assert_eq!(company.data()?["company"]["name"], "Acme");

    let twice = app
        .graphql(
            None,
            ACCEPT,
            json!({ "t": invite_token, "p": "bea's own password" }),
        )
        .await?;
    assert_eq!(twice.error_code(), Some("BAD_USER_INPUT"));
    Ok(())
}

#[tokio::test]
async fn invitations_refuse_bad_roles_taken_emails_and_expiry() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let admin = token(&payload, "accessToken");
    let bad_role = app
        .graphql(
            Some(&admin),
            INVITE,
            json!({ "e": "bea@acme.example", "r": "overlord" }),
        )
        .await?;
    assert_eq!(bad_role.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        bad_role.body["errors"][0]["extensions"]["path"],
        "input.role"
    );
    let taken = app
        .graphql(
            Some(&admin),
            INVITE,
            json!({ "e": "ANN@acme.example", "r": "member" }),
        )
        .await?;
    assert_eq!(taken.error_code(), Some("CONFLICT"));

    let invited = app
        .graphql(
            Some(&admin),
            INVITE,
            json!({ "e": "bea@acme.example", "r": "member" }),
        )
        .await?;
    let invite_token = token(&invited.data()?["inviteUser"], "token");
    app.sql("UPDATE invitations SET expires_at = now() - interval '1 second'")
        .await?;
    let expired = app
        .graphql(
            None,
            ACCEPT,
            json!({ "t": invite_token, "p": "bea's own password" }),
        )
        .await?;
    assert_eq!(expired.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        app.sql("SELECT 1 FROM users WHERE email = 'bea@acme.example'")
            .await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn a_member_cannot_invite() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let response = app
        .graphql(
            Some(&app.token_for(&members[0])),
            INVITE,
            json!({ "e": "bea@acme.example", "r": "member" }),
        )
        .await?;
    assert_eq!(response.error_code(), Some("FORBIDDEN"));
    assert_eq!(app.sql("SELECT 1 FROM invitations").await?, 0);
    Ok(())
}

#[tokio::test]
async fn a_session_past_its_absolute_lifetime_ends() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    app.sql("UPDATE sessions SET absolute_expires_at = now() - interval '1 second', expires_at = now() - interval '1 second'").await?;
    let refresh = app
        .graphql(
            None,
            REFRESH,
            json!({ "t": token(&payload, "refreshToken") }),
        )
        .await?;
    assert_eq!(refresh.error_code(), Some("UNAUTHENTICATED"));
    Ok(())
}

#[tokio::test]
async fn a_deactivated_user_cannot_refresh() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    app.sql("UPDATE users SET is_active = false").await?;
    let refresh = app
        .graphql(
            None,
            REFRESH,
            json!({ "t": token(&payload, "refreshToken") }),
        )
        .await?;
    assert_eq!(refresh.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(
        me_status(&app, &token(&payload, "accessToken")).await?,
        Some("UNAUTHENTICATED".into())
    );
    Ok(())
}

#[tokio::test]
async fn login_is_rate_limited_per_email_and_recovers() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        // One attempt comes back every 10 s: the three below fit in that even on a loaded
        // machine, and recovery takes seconds, not a minute.
        c.rate_limit_login_per_email = 2;
        c.rate_limit_period_secs = 20;
    })
    .await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    assert_eq!(
        app.login("ann@acme.example", "a wrong password")
            .await?
            .error_code(),
        Some("UNAUTHENTICATED")
    );
    assert!(
        app.login("ann@acme.example", PASSWORD)
            .await?
            .data()
            .is_ok()
    );
    let limited = app.login("ANN@acme.example", PASSWORD).await?;
    assert_eq!(limited.error_code(), Some("RATE_LIMITED"));
    assert!(
        limited.body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some_and(|s| s >= 1)
    );
    // Another address is not affected.
    assert_eq!(
        app.login("bob@acme.example", PASSWORD).await?.error_code(),
        Some("UNAUTHENTICATED")
    );
    tests::eventually(
        std::time::Duration::from_secs(60),
        "the login limit to recover",
        || async {
            app.login("ann@acme.example", PASSWORD)
                .await
                .is_ok_and(|r| r.data().is_ok())
        },
    )
    .await
}

#[tokio::test]
async fn deactivation_revokes_sessions_for_good() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let member = &members[0];
    let member_token = app.token_for(member);
    assert_eq!(me_status(&app, &member_token).await?, None);
    let admin_token = app.token_for(&admin);
    app.graphql(
        Some(&admin_token),
        "mutation($id: ID!) { deactivateUser(id: $id) { id } }",
        json!({ "id": member.id }),
    )
    .await?
    .data()?;
    let revoked = app
        .sql(&format!(
            "SELECT 1 FROM sessions WHERE user_id = '{}' AND revoked_reason = 'deactivated'",
            member.id
        ))
        .await?;
    assert_eq!(revoked, 1);
    // Reactivating the account does not bring the old session back.
    app.graphql(
        Some(&admin_token),
        "mutation($id: ID!) { updateUser(id: $id, input: { isActive: true }) { id } }",
        json!({ "id": member.id }),
    )
    .await?
    .data()?;
    assert_eq!(
        me_status(&app, &member_token).await?,
        Some("UNAUTHENTICATED".into())
    );
    Ok(())
}
