//! A company's own LLM provider and the secrets sealed at rest, end to end: two fake
//! providers on loopback (the server's default and a company's own), the key sealed under
//! SECRETS_KEYS, what the API and each database role may see of it, `rotate-secrets`, and the
//! clear failures of a key that does not open.

use std::time::Duration;

use base64::Engine as _;
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde_json::{Value, json};
use server::{
    llm::company::HttpRule,
    secrets::{SecretText, Secrets, rotate::rotate},
};
use tests::{
    TestApp, TestUser,
    fake_llm::{FakeLlm, Reply, StreamScript},
};
use uuid::Uuid;

use super::chat_support::{chat_app, create_conversation, send_ok_at, stored};

const SET: &str = "mutation($i: SetCompanyLlmProviderInput!) {
  setCompanyLlmProvider(input: $i) { baseUrl model hasApiKey } }";
const SHOW: &str = "{ company { llmProvider { baseUrl model hasApiKey } } }";
const DEFAULT_KEY: &str = "sk-default-0000";
const ACME_KEY: &str = "sk-acme-1234567890";

/// A `SECRETS_KEYS` entry: key `id` of 32 bytes `byte`.
fn key(id: &str, byte: u8) -> String {
    format!(
        "{id}:{}",
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    )
}

fn answers(tokens: &[&str]) -> Reply {
    Reply::Stream(StreamScript::tokens(tokens.iter().copied()))
}

/// A server whose default provider is `default` (with key `DEFAULT_KEY`), company providers
/// allowed on loopback over http, and `keys` as SECRETS_KEYS.
async fn app_with(default: &FakeLlm, keys: Option<String>) -> anyhow::Result<TestApp> {
    chat_app(default, move |c| {
        c.llm_api_key = Some(DEFAULT_KEY.into());
        c.company_llm_http = HttpRule::Loopback;
        c.secrets_keys = keys.map(SecretText::new);
    })
    .await
}

async fn set_provider(
    app: &TestApp,
    admin: &TestUser,
    base_url: &str,
    api_key: Option<&str>,
) -> anyhow::Result<tests::GqlResponse> {
    app.graphql(
        Some(&app.token_for(admin)),
        SET,
        json!({ "i": { "baseUrl": base_url, "model": "model-own", "apiKey": api_key } }),
    )
    .await
}

/// Sends a message as `user` to the server at `addr` and returns the stored reply once it
/// ended.
async fn finished_reply(
    app: &TestApp,
    addr: std::net::SocketAddr,
    user: &TestUser,
) -> anyhow::Result<Value> {
    let token = app.token_for(user);
    let conversation = create_conversation(app, &token, None).await?;
    let reply = send_ok_at(addr, &token, &conversation, "Hello?").await?;
    // Polled, as `tests::eventually` does (the reply is stored by a background task).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(row) = stored(app, user, &reply).await
            && row["status"] != "streaming"
        {
            return Ok(row);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for reply {reply} to end"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The sealed key stored for `company` (read as the superuser: no application role may).
async fn sealed_of(app: &TestApp, company: Uuid) -> anyhow::Result<Option<String>> {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT api_key_sealed FROM company_llm_providers WHERE company_id = $1",
            [company.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<Option<String>>("", "api_key_sealed"))
        .transpose()?
        .flatten())
}

#[tokio::test]
async fn a_companys_replies_come_from_its_own_provider_with_its_key_and_others_from_the_default()
-> anyhow::Result<()> {
    let default = FakeLlm::start(answers(&["from ", "default"])).await?;
    let own = FakeLlm::start(answers(&["from ", "own"])).await?;
    let app = app_with(&default, Some(key("k1", 1))).await?;
    let (acme, acme_admin, acme_members) = app.company_with_users("Acme", 1).await?;
    let (globex, _, globex_members) = app.company_with_users("Globex", 1).await?;
    let member = &acme_members[0];

    let set = set_provider(&app, &acme_admin, &own.base_url(), Some(ACME_KEY)).await?;
    assert_eq!(
        set.data()?["setCompanyLlmProvider"],
        json!({ "baseUrl": own.base_url(), "model": "model-own", "hasApiKey": true })
    );

    let acme_reply = finished_reply(&app, app.addr, member).await?;
    assert_eq!(acme_reply["status"], "complete", "{acme_reply}");
    assert_eq!(acme_reply["content"], "from own");
    let globex_reply = finished_reply(&app, app.addr, &globex_members[0]).await?;
    assert_eq!(globex_reply["status"], "complete", "{globex_reply}");
    assert_eq!(globex_reply["content"], "from default");
    // Each provider was asked once, with its own key and model.
    assert_eq!(own.authorizations(), [Some(format!("Bearer {ACME_KEY}"))]);
    assert_eq!(own.requests()[0]["model"], "model-own");
    assert_eq!(
        default.authorizations(),
        [Some(format!("Bearer {DEFAULT_KEY}"))]
    );

    // PostgreSQL holds ciphertext only.
    let sealed = sealed_of(&app, acme).await?.unwrap_or_default();
    assert!(sealed.starts_with("v1:k1:"), "{sealed}");
    assert!(!sealed.contains(ACME_KEY), "{sealed}");
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ACME_KEY);
    assert!(!sealed.contains(&encoded[..12]), "{sealed}");

    // The API shows admins whether a key is set, never the key; others are refused.
    let shown = app
        .graphql(Some(&app.token_for(&acme_admin)), SHOW, json!({}))
        .await?;
    assert_eq!(
        shown.data()?["company"]["llmProvider"],
        json!({ "baseUrl": own.base_url(), "model": "model-own", "hasApiKey": true })
    );
    assert!(!shown.body.to_string().contains("sk-acme"));
    let refused = app
        .graphql(Some(&app.token_for(member)), SHOW, json!({}))
        .await?;
    assert_eq!(
        refused.error_code(),
        Some("FORBIDDEN"),
        "{:?}",
        refused.body
    );
    let refused = set_provider(&app, member, &own.base_url(), Some("sk-member")).await?;
    assert_eq!(
        refused.error_code(),
        Some("FORBIDDEN"),
        "{:?}",
        refused.body
    );

    // Row Level Security alone: a member's raw SQL neither reads nor changes the row, and no
    // request role, admins included, may select the sealed column.
    assert!(
        app.query_as(member, "SELECT company_id FROM company_llm_providers")
            .await?
            .is_empty()
    );
    let changed = app
        .execute_as(member, "UPDATE company_llm_providers SET model = 'stolen'")
        .await?;
    assert_eq!(changed, 0);
    let inserted = app
        .execute_as(
            member,
            &format!(
                "INSERT INTO company_llm_providers (company_id, base_url, model) \
                 VALUES ('{acme}', 'https://evil.example', 'm')"
            ),
        )
        .await;
    assert!(
        inserted.is_err_and(|e| format!("{e:?}").contains("row-level security")),
        "a member inserted a provider"
    );
    let denied = app
        .query_as(
            &acme_admin,
            "SELECT api_key_sealed FROM company_llm_providers",
        )
        .await;
    assert!(
        denied.is_err_and(|e| format!("{e:?}").contains("permission denied")),
        "a request role read the sealed key"
    );
    assert_eq!(
        app.query_as(&acme_admin, "SELECT has_api_key FROM company_llm_providers")
            .await?,
        [json!({ "has_api_key": true })]
    );

    // A ciphertext copied into another company's row does not open there: that company's
    // reply fails with a clear reason, and its provider is never asked.
    app.sql(&format!(
        "INSERT INTO company_llm_providers (company_id, base_url, model, api_key_sealed) \
         SELECT '{globex}', base_url, model, api_key_sealed FROM company_llm_providers \
         WHERE company_id = '{acme}'"
    ))
    .await?;
    let copied = finished_reply(&app, app.addr, &globex_members[0]).await?;
    assert_eq!(copied["status"], "failed", "{copied}");
    let reason = copied["error"].as_str().unwrap_or_default();
    assert!(reason.contains("key cannot be used"), "{reason}");
    assert_eq!(own.requests().len(), 1);

    // Cleared, the company's replies come from the default again.
    let cleared = app
        .graphql(
            Some(&app.token_for(&acme_admin)),
            "mutation { clearCompanyLlmProvider }",
            json!({}),
        )
        .await?;
    assert_eq!(cleared.data()?["clearCompanyLlmProvider"], true);
    let after = finished_reply(&app, app.addr, member).await?;
    assert_eq!(after["content"], "from default", "{after}");
    assert_eq!(own.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn rotate_secrets_reseals_under_the_new_key_and_replies_still_stream() -> anyhow::Result<()> {
    let default = FakeLlm::start(answers(&["from ", "default"])).await?;
    let own = FakeLlm::start(answers(&["from ", "own"])).await?;
    let app = app_with(&default, Some(key("k1", 1))).await?;
    let (acme, admin, members) = app.company_with_users("Acme", 1).await?;
    set_provider(&app, &admin, &own.base_url(), Some(ACME_KEY))
        .await?
        .data()?;

    let rotated_keys = format!("{},{}", key("k2", 2), key("k1", 1));
    let rotated = Secrets::parse(&rotated_keys)?;
    let report = rotate(&app.state().db, &rotated).await?;
    assert_eq!((report.resealed(), report.failed()), (1, 0), "{report}");
    let sealed = sealed_of(&app, acme).await?.unwrap_or_default();
    assert!(sealed.starts_with("v1:k2:"), "{sealed}");
    // Idempotent: a second run finds everything current and writes nothing.
    let again = rotate(&app.state().db, &rotated).await?;
    assert_eq!(again.resealed(), 0, "{again}");
    assert_eq!(again.columns[0].current, 1, "{again}");
    assert_eq!(sealed_of(&app, acme).await?.unwrap_or_default(), sealed);

    // A server given the new keys streams the company's replies with its key.
    let mut config = app.config.clone();
    config.secrets_keys = Some(SecretText::new(rotated_keys));
    let peer = server::start(config).await?;
    let reply = finished_reply(&app, peer.addr, &members[0]).await?;
    assert_eq!(reply["content"], "from own", "{reply}");
    assert_eq!(own.authorizations(), [Some(format!("Bearer {ACME_KEY}"))]);

    // The server that still has only k1 fails the reply clearly, and asks no provider.
    let stale = finished_reply(&app, app.addr, &members[0]).await?;
    assert_eq!(stale["status"], "failed", "{stale}");
    let reason = stale["error"].as_str().unwrap_or_default();
    assert!(reason.contains("key `k2`"), "{reason}");
    assert_eq!(own.requests().len(), 1);
    assert!(default.requests().is_empty());
    peer.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn without_secrets_keys_a_key_is_refused_and_base_urls_are_checked() -> anyhow::Result<()> {
    let default = FakeLlm::start(answers(&["from ", "default"])).await?;
    let own = FakeLlm::start(answers(&["from ", "own"])).await?;
    let app = app_with(&default, None).await?;
    let (acme, admin, members) = app.company_with_users("Acme", 1).await?;

    let refused = set_provider(&app, &admin, &own.base_url(), Some(ACME_KEY)).await?;
    assert_eq!(
        refused.error_code(),
        Some("UNAVAILABLE"),
        "{:?}",
        refused.body
    );
    assert!(
        refused
            .error_message()
            .is_some_and(|m| m.contains("SECRETS_KEYS")),
        "{:?}",
        refused.body
    );
    let rows = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*)::bigint AS n FROM company_llm_providers",
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?;
    assert_eq!(rows, Some(0), "nothing is half-written");

    for (url, expected) in [
        ("http://10.0.0.1/v1", "https://"),
        (
            "https://user:secret@llm.example.com/v1",
            "user name or password",
        ),
        ("https://llm.example.com/v1?key=1", "query"),
        ("file:///etc/passwd", "https://"),
        ("not a url", "not a URL"),
    ] {
        let response = set_provider(&app, &admin, url, None).await?;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{url}");
        assert_eq!(
            response.body["errors"][0]["extensions"]["path"], "input.baseUrl",
            "{url}"
        );
        let message = response.error_message().unwrap_or_default();
        assert!(message.contains(expected), "{url}: {message}");
    }

    // A provider without a key needs no secret: it is stored and used, with no key sent.
    let set = set_provider(&app, &admin, &own.base_url(), None).await?;
    assert_eq!(set.data()?["setCompanyLlmProvider"]["hasApiKey"], false);
    assert_eq!(sealed_of(&app, acme).await?, None);
    let reply = finished_reply(&app, app.addr, &members[0]).await?;
    assert_eq!(reply["content"], "from own", "{reply}");
    assert_eq!(own.authorizations(), [None]);

    // A key stored by a server that had one cannot be read by this one: the reply fails
    // clearly, and the provider is not asked without it.
    let sealed = Secrets::parse(&key("k1", 1))?.seal(
        server::secrets::COMPANY_LLM_API_KEY,
        &server::llm::company::api_key_aad(acme),
        ACME_KEY.as_bytes(),
    )?;
    app.sql(&format!(
        "UPDATE company_llm_providers SET api_key_sealed = '{sealed}' WHERE company_id = '{acme}'"
    ))
    .await?;
    let failed = finished_reply(&app, app.addr, &members[0]).await?;
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["error"].as_str().unwrap_or_default();
    assert!(reason.contains("SECRETS_KEYS is not set"), "{reason}");
    assert_eq!(own.requests().len(), 1);
    Ok(())
}
