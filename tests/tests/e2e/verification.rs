//! E-mail verification end to end: sign-up and changing one's address send a one-time link
//! (its token hashed at rest, single use, expiring, superseded by a newer one); `verifyEmail`
//! verifies and `User.emailVerified` shows it; `resendVerification` is rate-limited; a password
//! reset or an invitation accepted through its e-mail link verifies the address too.

use serde_json::{Value, json};
use tests::TestApp;

const PASSWORD: &str = "correct horse battery";
const ME: &str = "{ me { email emailVerified } }";
const VERIFY: &str = "mutation($t: String!) { verifyEmail(token: $t) }";
const RESEND: &str = "mutation { resendVerification }";
const CHANGE: &str = "mutation($p: String!, $e: String!) { changeEmail(currentPassword: $p, newEmail: $e) { email emailVerified } }";

fn access(payload: &Value) -> String {
    payload["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn me(app: &TestApp, token: &str) -> anyhow::Result<Value> {
    Ok(app.graphql(Some(token), ME, json!({})).await?.data()?["me"].clone())
}

async fn verify(app: &TestApp, token: &str) -> anyhow::Result<tests::GqlResponse> {
    app.graphql(None, VERIFY, json!({ "t": token })).await
}

#[tokio::test]
async fn sign_up_sends_a_link_that_verifies_the_address_once() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let token = access(&payload);
    assert_eq!(
        me(&app, &token).await?,
        json!({ "email": "ann@acme.example", "emailVerified": false })
    );
    let link = app.token_mailed_to("ann@acme.example").await?;
    assert!(link.starts_with("ev_"), "{link}");
    // Only the token's hash is stored.
    let stored = app
        .sql(&format!(
            "SELECT 1 FROM email_verifications WHERE token_hash = '{link}'"
        ))
        .await?;
    assert_eq!(stored, 0, "the token itself is never stored");
    let hashed = app
        .sql(&format!(
            "SELECT 1 FROM email_verifications WHERE token_hash = encode(sha256('{link}'::bytea), 'hex')"
        ))
        .await?;
    assert_eq!(hashed, 1, "its SHA-256 is");

    assert!(
        verify(&app, "ev_not-a-token").await?.error_code() == Some("BAD_USER_INPUT"),
        "a made-up token verifies nothing"
    );
    assert_eq!(verify(&app, &link).await?.data()?["verifyEmail"], true);
    assert_eq!(me(&app, &token).await?["emailVerified"], true);
    let again = verify(&app, &link).await?;
    assert_eq!(again.error_code(), Some("BAD_USER_INPUT"), "single use");
    // Verified already: nothing is sent.
    let resent = app.graphql(Some(&token), RESEND, json!({})).await?;
    assert_eq!(resent.data()?["resendVerification"], false);
    Ok(())
}

#[tokio::test]
async fn a_superseded_or_expired_link_does_not_verify() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let token = access(&payload);
    let first = app.token_mailed_to("ann@acme.example").await?;
    let resent = app.graphql(Some(&token), RESEND, json!({})).await?;
    assert_eq!(resent.data()?["resendVerification"], true);
    let second = app.token_mailed_to("ann@acme.example").await?;
    assert_ne!(first, second);
    assert_eq!(
        verify(&app, &first).await?.error_code(),
        Some("BAD_USER_INPUT"),
        "a newer link supersedes the older"
    );
    app.sql("UPDATE email_verifications SET expires_at = now() - interval '1 second'")
        .await?;
    assert_eq!(
        verify(&app, &second).await?.error_code(),
        Some("BAD_USER_INPUT"),
        "an expired link verifies nothing"
    );
    assert_eq!(me(&app, &token).await?["emailVerified"], false);
    Ok(())
}

#[tokio::test]
async fn resend_verification_is_rate_limited_per_user() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|config| config.rate_limit_verification_per_user = 2).await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let token = access(&payload);
    for _ in 0..2 {
        let resent = app.graphql(Some(&token), RESEND, json!({})).await?;
        assert_eq!(resent.data()?["resendVerification"], true);
    }
    let limited = app.graphql(Some(&token), RESEND, json!({})).await?;
    assert_eq!(limited.error_code(), Some("RATE_LIMITED"));
    let anonymous = app.graphql(None, RESEND, json!({})).await?;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    Ok(())
}

#[tokio::test]
async fn changing_the_address_unverifies_it_and_sends_a_link_to_the_new_one() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let token = access(&payload);
    app.sign_up("Globex", "taken@globex.example", PASSWORD)
        .await?;
    let link = app.token_mailed_to("ann@acme.example").await?;
    verify(&app, &link).await?.data()?;
    // A reset asked for before the change must not work after it.
    app.graphql(
        None,
        "mutation { requestPasswordReset(email: \"ann@acme.example\") }",
        json!({}),
    )
    .await?
    .data()?;
    let reset = app.token_mailed_to("ann@acme.example").await?;

    let wrong = app
        .graphql(
            Some(&token),
            CHANGE,
            json!({ "p": "not my password", "e": "ann@new.example" }),
        )
        .await?;
    assert_eq!(wrong.error_code(), Some("BAD_USER_INPUT"));
    let invalid = app
        .graphql(
            Some(&token),
            CHANGE,
            json!({ "p": PASSWORD, "e": "not an address" }),
        )
        .await?;
    assert_eq!(invalid.error_code(), Some("BAD_USER_INPUT"));
    let taken = app
        .graphql(
            Some(&token),
            CHANGE,
            json!({ "p": PASSWORD, "e": "Taken@globex.example" }),
        )
        .await?;
    assert_eq!(taken.error_code(), Some("CONFLICT"));
    assert_eq!(me(&app, &token).await?["email"], "ann@acme.example");

    let changed = app
        .graphql(
            Some(&token),
            CHANGE,
            json!({ "p": PASSWORD, "e": "ann@new.example" }),
        )
        .await?;
    assert_eq!(
        changed.data()?["changeEmail"],
        json!({ "email": "ann@new.example", "emailVerified": false })
    );
    let reset_after = app
        .graphql(
            None,
            "mutation($t: String!) { resetPassword(token: $t, newPassword: \"another long password\") }",
            json!({ "t": reset }),
        )
        .await?;
    assert_eq!(reset_after.error_code(), Some("BAD_USER_INPUT"));
    let new_link = app.token_mailed_to("ann@new.example").await?;
    assert_eq!(verify(&app, &new_link).await?.data()?["verifyEmail"], true);
    assert_eq!(
        me(&app, &token).await?,
        json!({ "email": "ann@new.example", "emailVerified": true })
    );
    Ok(())
}

#[tokio::test]
async fn a_link_sent_to_a_former_address_does_not_verify_the_new_one() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let token = access(&payload);
    let old_link = app.token_mailed_to("ann@acme.example").await?;
    app.graphql(
        Some(&token),
        CHANGE,
        json!({ "p": PASSWORD, "e": "ann@new.example" }),
    )
    .await?
    .data()?;
    assert_eq!(
        verify(&app, &old_link).await?.error_code(),
        Some("BAD_USER_INPUT")
    );
    assert_eq!(me(&app, &token).await?["emailVerified"], false);
    Ok(())
}

#[tokio::test]
async fn a_password_reset_or_an_accepted_invitation_verifies_the_address() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let first = access(&payload);
    assert_eq!(me(&app, &first).await?["emailVerified"], false);
    app.graphql(
        None,
        "mutation { requestPasswordReset(email: \"ann@acme.example\") }",
        json!({}),
    )
    .await?
    .data()?;
    let reset = app.token_mailed_to("ann@acme.example").await?;
    app.graphql(
        None,
        "mutation($t: String!) { resetPassword(token: $t, newPassword: \"another long password\") }",
        json!({ "t": reset }),
    )
    .await?
    .data()?;
    let login = app
        .login("ann@acme.example", "another long password")
        .await?;
    let token = access(&login.data()?["login"]);
    assert_eq!(me(&app, &token).await?["emailVerified"], true);

    // The reset ended Ann's sessions: she invites from the new one.
    app.graphql(
        Some(&token),
        "mutation { inviteUser(input: { email: \"bea@acme.example\", role: \"member\" }) { id } }",
        json!({}),
    )
    .await?
    .data()?;
    let invitation = app.token_mailed_to("bea@acme.example").await?;
    let accepted = app
        .graphql(
            None,
            "mutation($t: String!) { acceptInvitation(input: { token: $t, password: \"bea's own password\", displayName: \"Bea\" }) { user { emailVerified } } }",
            json!({ "t": invitation }),
        )
        .await?;
    assert_eq!(
        accepted.data()?["acceptInvitation"]["user"]["emailVerified"],
        true
    );
    Ok(())
}

#[tokio::test]
async fn a_signed_out_request_for_a_link_is_limited_per_address_and_per_client()
-> anyhow::Result<()> {
    const REQUEST: &str = "mutation($e: String!) { requestVerificationEmail(email: $e) }";
    let app = TestApp::spawn_with(|config| {
        config.rate_limit_verification_per_email = 2;
        config.rate_limit_verification_per_ip = 4;
    })
    .await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    for _ in 0..2 {
        let asked = app
            .graphql(None, REQUEST, json!({ "e": "Ann@acme.example" }))
            .await?;
        assert_eq!(asked.data()?["requestVerificationEmail"], true);
    }
    // The address's quota is spent, whatever its case.
    let limited = app
        .graphql(None, REQUEST, json!({ "e": "ann@ACME.example" }))
        .await?;
    assert_eq!(limited.error_code(), Some("RATE_LIMITED"));
    // Another address from the same client: one more, then the client's quota is spent too.
    let other = app
        .graphql(None, REQUEST, json!({ "e": "bob@acme.example" }))
        .await?;
    assert_eq!(other.data()?["requestVerificationEmail"], true);
    let limited = app
        .graphql(None, REQUEST, json!({ "e": "carl@acme.example" }))
        .await?;
    assert_eq!(limited.error_code(), Some("RATE_LIMITED"));
    // Ann's newest link is the last one sent, and it verifies her address.
    let link = app.token_mailed_to("ann@acme.example").await?;
    assert_eq!(verify(&app, &link).await?.data()?["verifyEmail"], true);
    let bad = app.graphql(None, REQUEST, json!({ "e": "" })).await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    Ok(())
}
