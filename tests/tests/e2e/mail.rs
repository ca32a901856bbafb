//! The outbox is delivered over SMTP to a real SMTP server on loopback (`tests::smtp`), which
//! the tests read: a verification link, an invitation and a password reset arrive with their
//! links, from MAIL_FROM,
//! after authenticating with the credentials of SMTP_URL; a refusing server is retried with
//! backoff, then the message is `failed` with the reason; two instances on one database send
//! each message once.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tests::{
    TestApp, eventually,
    smtp::{Refusal, SmtpServer},
};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";
const INVITE: &str =
    "mutation($e: String!, $r: String!) { inviteUser(input: { email: $e, role: $r }) { id } }";
const ACCEPT: &str = "mutation($t: String!) { acceptInvitation(input: { token: $t, password: \"bea's own password\", displayName: \"Bea\" }) { user { email role } } }";
const WAIT: Duration = Duration::from_secs(60);

fn token(payload: &Value) -> String {
    payload["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A server that sends through `smtp_url`, looking for due mail every 50 ms.
async fn app_sending_to(
    smtp_url: String,
    customize: impl FnOnce(&mut server::config::Config),
) -> anyhow::Result<TestApp> {
    TestApp::spawn_with(|config| {
        config.smtp_url = Some(smtp_url);
        config.mail_from = Some("Acme Team <team@acme.example>".to_owned());
        config.mail_poll_ms = 50;
        customize(config);
    })
    .await
}

/// The outbox row `id`: (status, attempts, last_error, sent).
async fn outbox_row(
    app: &TestApp,
    id: Uuid,
) -> anyhow::Result<(String, i32, Option<String>, bool)> {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT status, attempts, last_error, sent_at IS NOT NULL AS sent \
             FROM outbound_emails WHERE id = $1",
            [id.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no outbox row {id}"))?;
    Ok((
        row.try_get("", "status")?,
        row.try_get("", "attempts")?,
        row.try_get("", "last_error")?,
        row.try_get("", "sent")?,
    ))
}

async fn status_of(app: &TestApp, id: Uuid) -> String {
    outbox_row(app, id)
        .await
        .map(|row| row.0)
        .unwrap_or_default()
}

/// Queues a message directly, as the definer functions do; returns its id.
async fn queue(app: &TestApp, company: Uuid, recipient: &str) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    app.admin
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO outbound_emails (id, company_id, recipient, template, subject, body) \
             VALUES ($1, $2, $3, 'test', 'Hello', 'Hello there.')",
            [id.into(), company.into(), recipient.into()],
        ))
        .await?;
    Ok(id)
}

async fn outbox_id_to(app: &TestApp, recipient: &str) -> anyhow::Result<Uuid> {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM outbound_emails WHERE recipient = $1 ORDER BY created_at DESC LIMIT 1",
            [recipient.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no e-mail queued to {recipient}"))?;
    Ok(row.try_get("", "id")?)
}

#[tokio::test]
async fn a_verification_an_invitation_and_a_reset_arrive_over_smtp_with_their_links()
-> anyhow::Result<()> {
    let smtp = SmtpServer::start_with_auth("mailer", "s3cret p@ss").await?;
    // Credentials percent-encoded in the URL, as SMTP_URL documents.
    let url = format!("smtp://mailer:s3cret%20p%40ss@{}", smtp.addr);
    let app = app_sending_to(url, |_| {}).await?;
    let payload = app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let verification = smtp
        .wait_for_mail(
            "ann@acme.example",
            Some("Confirm your e-mail address"),
            WAIT,
        )
        .await?;
    let verify_token = verification.token()?;
    assert!(verify_token.starts_with("ev_"), "{verification:?}");
    let verified = app
        .graphql(
            None,
            "mutation($t: String!) { verifyEmail(token: $t) }",
            json!({ "t": verify_token }),
        )
        .await?;
    assert_eq!(verified.data()?["verifyEmail"], true);
    let invited = app
        .graphql(
            Some(&token(&payload)),
            INVITE,
            json!({ "e": "bea@acme.example", "r": "manager" }),
        )
        .await?;
    invited.data()?;

    let mail = smtp.wait_for_mail_to("bea@acme.example", WAIT).await?;
    assert_eq!(mail.from, "team@acme.example");
    assert_eq!(mail.user.as_deref(), Some("mailer"));
    assert_eq!(mail.header("Subject").as_deref(), Some("You are invited"));
    assert!(
        mail.header("From")
            .is_some_and(|f| f.contains("Acme Team") && f.contains("<team@acme.example>")),
        "{mail:?}"
    );
    let body = mail.body()?;
    assert!(
        body.contains("/accept-invitation?token=iv_"),
        "no invitation link in {body}"
    );
    // The link carries the invitation's token, and it works.
    let link_token = mail.token()?;
    assert_eq!(link_token, app.token_mailed_to("bea@acme.example").await?);
    let id = outbox_id_to(&app, "bea@acme.example").await?;
    assert!(
        mail.header("Message-ID")
            .is_some_and(|m| m.contains(&id.to_string())),
        "the Message-ID names the outbox row: {mail:?}"
    );
    eventually(WAIT, "the invitation marked sent", || async {
        status_of(&app, id).await == "sent"
    })
    .await?;
    let (_, attempts, last_error, sent) = outbox_row(&app, id).await?;
    assert_eq!((attempts, last_error, sent), (1, None, true));
    let accepted = app
        .graphql(None, ACCEPT, json!({ "t": link_token }))
        .await?;
    assert_eq!(
        accepted.data()?["acceptInvitation"]["user"],
        json!({ "email": "bea@acme.example", "role": "manager" })
    );

    app.graphql(
        None,
        "mutation { requestPasswordReset(email: \"ann@acme.example\") }",
        json!({}),
    )
    .await?
    .data()?;
    let reset = smtp
        .wait_for_mail("ann@acme.example", Some("Reset your password"), WAIT)
        .await?;
    assert!(reset.body()?.contains("/reset-password?token=pr_"));
    assert_eq!(smtp.received().len(), 3, "each e-mail arrives once");
    Ok(())
}

#[tokio::test]
async fn wrong_smtp_credentials_fail_the_message_with_the_reason() -> anyhow::Result<()> {
    let smtp = SmtpServer::start_with_auth("mailer", "right").await?;
    let url = format!("smtp://mailer:wrong@{}", smtp.addr);
    let app = app_sending_to(url, |_| {}).await?;
    let company = app.create_company("Acme").await?;
    let id = queue(&app, company, "someone@acme.example").await?;
    eventually(WAIT, "the message failed", || async {
        status_of(&app, id).await == "failed"
    })
    .await?;
    let (_, attempts, last_error, sent) = outbox_row(&app, id).await?;
    // 535 is a permanent refusal: not retried.
    assert_eq!((attempts, sent), (1, false));
    assert!(
        last_error.as_deref().is_some_and(|e| e.contains("535")),
        "{last_error:?}"
    );
    assert!(smtp.received().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_refusing_server_is_retried_with_backoff_then_the_message_failed() -> anyhow::Result<()> {
    let smtp = SmtpServer::start().await?;
    smtp.refuse("busy@acme.example", Refusal::Transient);
    smtp.refuse("gone@acme.example", Refusal::Permanent);
    let app = app_sending_to(smtp.url(), |config| {
        config.mail_max_attempts = 3;
        config.mail_retry_base_ms = 100;
    })
    .await?;
    let company = app.create_company("Acme").await?;
    let busy = queue(&app, company, "busy@acme.example").await?;
    let gone = queue(&app, company, "gone@acme.example").await?;
    let fine = queue(&app, company, "fine@acme.example").await?;

    eventually(WAIT, "both refused messages failed", || async {
        status_of(&app, busy).await == "failed" && status_of(&app, gone).await == "failed"
    })
    .await?;
    let (_, attempts, last_error, sent) = outbox_row(&app, busy).await?;
    assert_eq!(
        (attempts, sent),
        (3, false),
        "tried MAIL_MAX_ATTEMPTS times"
    );
    assert!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("451") && e.contains("try again later")),
        "the reason is the server's: {last_error:?}"
    );
    assert_eq!(smtp.rcpt_attempts("busy@acme.example"), 3);
    let (_, attempts, last_error, _) = outbox_row(&app, gone).await?;
    assert_eq!(attempts, 1, "a permanent refusal is not retried");
    assert!(last_error.as_deref().is_some_and(|e| e.contains("550")));
    assert_eq!(smtp.rcpt_attempts("gone@acme.example"), 1);

    smtp.wait_for_mail_to("fine@acme.example", WAIT).await?;
    eventually(WAIT, "the accepted message marked sent", || async {
        status_of(&app, fine).await == "sent"
    })
    .await?;
    assert_eq!(smtp.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_waits_between_attempts_double() -> anyhow::Result<()> {
    let smtp = SmtpServer::start().await?;
    smtp.refuse("busy@acme.example", Refusal::Transient);
    // Long waits: the test reads when each attempt is due, it does not wait for them.
    let app = app_sending_to(smtp.url(), |config| {
        config.mail_max_attempts = 5;
        config.mail_retry_base_ms = 600_000;
    })
    .await?;
    let company = app.create_company("Acme").await?;
    let busy = queue(&app, company, "busy@acme.example").await?;
    eventually(WAIT, "a first attempt", || async {
        outbox_row(&app, busy)
            .await
            .is_ok_and(|row| row.1 == 1 && row.2.is_some())
    })
    .await?;
    let due_in = |app: &TestApp| {
        let admin = app.admin.clone();
        async move {
            let row = admin
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT extract(epoch FROM next_attempt_at - updated_at)::float8 AS secs \
                     FROM outbound_emails WHERE id = $1",
                    [busy.into()],
                ))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no row"))?;
            anyhow::Ok(row.try_get::<f64>("", "secs")?)
        }
    };
    let first = due_in(&app).await?;
    assert!((599.0..=601.0).contains(&first), "first wait {first} s");
    // Make it due now: the second failure waits twice as long.
    app.sql(&format!(
        "UPDATE outbound_emails SET next_attempt_at = now() WHERE id = '{busy}'"
    ))
    .await?;
    eventually(WAIT, "a second attempt", || async {
        outbox_row(&app, busy).await.is_ok_and(|row| row.1 == 2)
            && due_in(&app).await.is_ok_and(|secs| secs > 1000.0)
    })
    .await?;
    let second = due_in(&app).await?;
    assert!(
        (1199.0..=1201.0).contains(&second),
        "second wait {second} s"
    );
    Ok(())
}

#[tokio::test]
async fn two_instances_on_one_database_send_each_message_once() -> anyhow::Result<()> {
    let smtp = SmtpServer::start().await?;
    // The instances' own polls are rare: the test drives both mailers at once, many times.
    let app = app_sending_to(smtp.url(), |config| config.mail_poll_ms = 600_000).await?;
    let peer = app.spawn_peer().await?;
    let company = app.create_company("Acme").await?;
    const MESSAGES: usize = 40;
    app.sql(&format!(
        "INSERT INTO outbound_emails (company_id, recipient, template, subject, body) \
         SELECT '{company}', 'person' || n || '@acme.example', 'test', 'Hello ' || n, 'Hello.' \
         FROM generate_series(1, {MESSAGES}) AS n"
    ))
    .await?;
    let (a, b) = (&app.state().mail, &peer.state.mail);
    let mut claimed = 0;
    loop {
        let rounds = futures_util::future::join4(
            a.deliver_due(),
            b.deliver_due(),
            a.deliver_due(),
            b.deliver_due(),
        )
        .await;
        let round = rounds.0 + rounds.1 + rounds.2 + rounds.3;
        claimed += round;
        if round == 0 {
            break;
        }
    }
    assert_eq!(claimed, MESSAGES, "every message claimed exactly once");
    let received = smtp.wait_for(MESSAGES, WAIT).await?;
    let mut recipients: Vec<_> = received.iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), MESSAGES);
    assert_eq!(received.len(), MESSAGES, "no message sent twice");
    let unsent = app
        .admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id FROM outbound_emails WHERE status <> 'sent' OR attempts <> 1",
        ))
        .await?;
    assert!(unsent.is_empty(), "every message sent at its first attempt");
    peer.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_member_whose_link_expired_asks_for_a_new_one_signed_out_then_signs_in()
-> anyhow::Result<()> {
    const REQUEST: &str = "mutation($e: String!) { requestVerificationEmail(email: $e) }";
    const VERIFY: &str = "mutation($t: String!) { verifyEmail(token: $t) }";
    let smtp = SmtpServer::start().await?;
    let app = app_sending_to(smtp.url(), |_| {}).await?;
    // Ann's company counts acme.example as its domain (her address verified, then confirmed).
    let ann = token(&app.sign_up("Acme", "ann@acme.example", PASSWORD).await?);
    let link = smtp
        .wait_for_mail_to("ann@acme.example", WAIT)
        .await?
        .token()?;
    app.graphql(None, VERIFY, json!({ "t": link }))
        .await?
        .data()?;
    let added = app
        .graphql(
            Some(&ann),
            "mutation { addCompanyDomain(domain: \"acme.example\") { id } }",
            json!({}),
        )
        .await?;
    let id = added.data()?["addCompanyDomain"]["id"].clone();
    app.graphql(
        Some(&ann),
        "mutation($id: ID!) { confirmCompanyDomain(id: $id) { verified } }",
        json!({ "id": id }),
    )
    .await?
    .data()?;
    // Dan joins by the domain: no access before the address is verified.
    app.graphql(
        None,
        "mutation { signUp(input: { companyName: \"Mine\", email: \"dan@acme.example\", password: \"correct horse battery\", displayName: \"Dan\", joinCompany: true }) { accessToken } }",
        json!({}),
    )
    .await?
    .data()?;
    let first = smtp
        .wait_for_mail_to("dan@acme.example", WAIT)
        .await?
        .token()?;
    // His link expires unused: it verifies nothing, and he cannot sign in.
    app.sql("UPDATE email_verifications SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .await?;
    let expired = app.graphql(None, VERIFY, json!({ "t": first })).await?;
    assert_eq!(expired.error_code(), Some("BAD_USER_INPUT"));
    let stuck = app.login("dan@acme.example", PASSWORD).await?;
    assert_eq!(stuck.error_code(), Some("UNAUTHENTICATED"));

    // Signed out, he asks for a new link; the answer is the same for an unknown address and a
    // verified one, which get nothing.
    for email in [
        "dan@ACME.example",
        "nobody@acme.example",
        "ann@acme.example",
    ] {
        let asked = app.graphql(None, REQUEST, json!({ "e": email })).await?;
        assert_eq!(
            asked.data()?["requestVerificationEmail"],
            json!(true),
            "{email}"
        );
    }
    eventually(WAIT, "a second link for Dan", || async {
        smtp.received_by("dan@acme.example").len() >= 2
    })
    .await?;
    let second = smtp
        .received_by("dan@acme.example")
        .last()
        .ok_or_else(|| anyhow::anyhow!("no second e-mail"))?
        .clone();
    assert_eq!(
        second.header("Subject").as_deref(),
        Some("Confirm your e-mail address")
    );
    let verified = app
        .graphql(None, VERIFY, json!({ "t": second.token()? }))
        .await?;
    assert_eq!(verified.data()?["verifyEmail"], json!(true));
    let login = app.login("dan@acme.example", PASSWORD).await?;
    let dan = token(&login.data()?["login"]);
    let me = app
        .graphql(
            Some(&dan),
            "{ me { isActive emailVerified } company { name } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        me.data()?.clone(),
        json!({ "me": { "isActive": true, "emailVerified": true }, "company": { "name": "Acme" } })
    );
    // Nothing was queued for the unknown and the verified address.
    let queued = app
        .sql(
            "SELECT 1 FROM outbound_emails WHERE recipient IN ('nobody@acme.example', 'ann@acme.example') \
             AND template = 'email_verification'",
        )
        .await?;
    assert_eq!(queued, 1, "only Ann's first link");
    assert!(smtp.received_by("nobody@acme.example").is_empty());
    Ok(())
}
