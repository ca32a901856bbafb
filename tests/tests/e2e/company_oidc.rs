//! OpenID providers a company's admins configure, end to end against the real OpenID provider
//! of the tests (each company provider is a client registered there): new people sign in into
//! the provider's company with its role, addresses outside its domains are refused, an existing
//! account is linked by its verified address only where the company allows it, another
//! company's admin neither sees nor changes the provider (in the API and in the database, each
//! alone), the client secret is stored sealed and `rotate-secrets` re-seals it.

use base64::Engine as _;
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde_json::{Value, json};
use server::{
    config::HttpRule,
    secrets::{COMPANY_OIDC_CLIENT_SECRET, SecretText, Secrets, rotate::rotate, row_aad},
};
use tests::{
    TestApp, TestUser,
    oidc::{Browser, OidcProvider, provider},
};
use uuid::Uuid;

use super::oidc::{IDENTITIES, account, error_of, me, to_callback};

const SET: &str = "mutation($i: SetCompanyOidcProviderInput!) { setCompanyOidcProvider(input: $i) {
  id name key issuer clientId hasClientSecret role allowedDomains linkVerifiedEmail startPath callbackUrl } }";
const LIST: &str = "{ companyOidcProviders { name key clientId hasClientSecret role } }";
const REMOVE: &str = "mutation($n: String!) { removeCompanyOidcProvider(name: $n) }";

/// A `SECRETS_KEYS` entry: key `id` of 32 bytes `byte`.
fn key(id: &str, byte: u8) -> String {
    format!(
        "{id}:{}",
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    )
}

/// A server on a port known in advance (the redirect URIs registered at the provider name it),
/// company issuers allowed over http on loopback, SECRETS_KEYS k1.
async fn spawn() -> anyhow::Result<(TestApp, &'static OidcProvider)> {
    let idp = provider().await?;
    let port = devservices::free_port()?;
    let bind: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let app = TestApp::spawn_with(|c| {
        c.bind_addr = bind;
        c.public_url = Some(format!("http://127.0.0.1:{port}"));
        c.company_oidc_http = HttpRule::Loopback;
        c.secrets_keys = Some(SecretText::new(key("k1", 1)));
        c.oidc_jwks_refresh_interval_ms = 0;
    })
    .await?;
    Ok((app, idp))
}

/// Registers a client at the provider for `admin`'s company's provider `name` and sets that
/// provider with `extra` settings: the provider as the API answered, and the client secret.
async fn set_provider(
    app: &TestApp,
    idp: &OidcProvider,
    admin: &TestUser,
    name: &str,
    extra: Value,
) -> anyhow::Result<(Value, String)> {
    let callback = app.url(&format!("/auth/oidc/{}.{name}/callback", admin.company_id));
    let (client_id, secret) = idp.register_client(&callback).await?;
    let mut input = json!({
        "name": name, "issuer": idp.issuer, "clientId": client_id, "clientSecret": secret,
    });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    let set = app
        .graphql(Some(&app.token_for(admin)), SET, json!({ "i": input }))
        .await?;
    let provider = set.data()?["setCompanyOidcProvider"].clone();
    anyhow::ensure!(provider["callbackUrl"] == json!(callback), "{provider}");
    Ok((provider, secret))
}

/// Walks a sign-in with provider `key` as `login` in a fresh browser: the callback's answer
/// and the access token it set, if any.
async fn sign_in(
    app: &TestApp,
    key: &str,
    query: &str,
    login: &str,
) -> anyhow::Result<(tests::oidc::Hop, Option<String>)> {
    let mut browser = Browser::new();
    let callback = to_callback(app, &mut browser, key, query, login).await?;
    let done = browser.get(&callback).await?;
    let token = browser.cookie(&app.url("/"), "__Host-access_token");
    Ok((done, token))
}

/// The stored sealed secret of provider `name` of `company` (as the superuser: no
/// application role may read it).
async fn sealed_of(app: &TestApp, company: Uuid, name: &str) -> anyhow::Result<(Uuid, String)> {
    let row = app
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, client_secret_sealed FROM company_oidc_providers \
             WHERE company_id = $1 AND name = $2",
            [company.into(), name.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no provider {name}"))?;
    Ok((
        row.try_get("", "id")?,
        row.try_get::<Option<String>>("", "client_secret_sealed")?
            .unwrap_or_default(),
    ))
}

#[tokio::test]
async fn new_people_sign_in_into_the_providers_company_with_its_role_and_only_from_its_domains()
-> anyhow::Result<()> {
    let (app, idp) = spawn().await?;
    let (acme, admin, _) = app.company_with_users("Acme", 0).await?;
    let (provider, secret) = set_provider(
        &app,
        idp,
        &admin,
        "corp",
        json!({ "role": "manager", "allowedDomains": ["Example.com"] }),
    )
    .await?;
    let corp = format!("{acme}.corp");
    assert_eq!(
        (
            &provider["key"],
            &provider["hasClientSecret"],
            &provider["role"],
            &provider["allowedDomains"],
            &provider["linkVerifiedEmail"],
            &provider["startPath"],
        ),
        (
            &json!(corp),
            &json!(true),
            &json!("manager"),
            &json!(["example.com"]),
            &json!(false),
            &json!(format!("/auth/oidc/{corp}/start")),
        )
    );
    // The secret is stored sealed for this row: never its plaintext.
    let (id, sealed) = sealed_of(&app, acme, "corp").await?;
    assert!(sealed.starts_with("v1:k1:"), "{sealed}");
    assert!(!sealed.contains(&secret));
    let opened = Secrets::parse(&key("k1", 1))?.open_string(
        COMPANY_OIDC_CLIENT_SECRET,
        &row_aad(acme, id),
        &sealed,
    )?;
    assert_eq!(opened.as_str(), secret);
    // The API has no way to read it back.
    let asked = app
        .graphql(
            Some(&app.token_for(&admin)),
            "{ companyOidcProviders { clientSecret } }",
            json!({}),
        )
        .await?;
    assert!(asked.error_message().is_some(), "{:?}", asked.body);

    // A new person of example.com joins Acme as a manager, with a verified address.
    let (login, email) = account(idp, None).await?;
    let (done, token) = sign_in(&app, &corp, "redirect_to=/welcome", &login).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, Some(app.url("/welcome")));
    let token = token.ok_or_else(|| anyhow::anyhow!("no access cookie"))?;
    let user = me(&app, &token).await?;
    assert_eq!(
        (&user["email"], &user["role"], &user["emailVerified"]),
        (&json!(email), &json!("manager"), &json!(true))
    );
    let company = app
        .graphql(Some(&token), "{ company { id } }", json!({}))
        .await?;
    assert_eq!(company.data()?["company"]["id"], json!(acme));
    let identities = app.graphql(Some(&token), IDENTITIES, json!({})).await?;
    assert_eq!(identities.data()?["identities"][0]["provider"], json!(corp));
    // Signing in again finds the same user.
    let (_, again) = sign_in(&app, &corp, "", &login).await?;
    let again = again.ok_or_else(|| anyhow::anyhow!("no access cookie"))?;
    assert_eq!(me(&app, &again).await?["id"], user["id"]);

    // An address of another domain is refused, and nobody is created.
    let outsider = format!("u{}", Uuid::new_v4().simple());
    idp.account(
        &outsider,
        &format!("{outsider}@elsewhere.example"),
        true,
        None,
    )
    .await?;
    let (refused, token) = sign_in(&app, &corp, "", &outsider).await?;
    let (status, code, message) = error_of(&refused);
    assert_eq!(
        (status, code.as_str()),
        (403, "FORBIDDEN"),
        "{}",
        refused.body
    );
    assert!(message.contains("domain"), "{message}");
    assert!(token.is_none());
    // With the app's return URL, the browser goes back to it with the error.
    let (refused, _) = sign_in(&app, &corp, "redirect_to=/app/signed-in", &outsider).await?;
    assert_eq!(refused.status, 303, "{}", refused.body);
    let location = reqwest::Url::parse(&refused.location.unwrap_or_default())?;
    assert_eq!(location.path(), "/app/signed-in");
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(
        params.get("error_code").map(String::as_str),
        Some("FORBIDDEN")
    );
    assert!(
        params
            .get("error_description")
            .is_some_and(|d| d.contains("domain")),
        "{params:?}"
    );
    let created = app
        .sql(&format!(
            "SELECT 1 FROM users WHERE email = '{outsider}@elsewhere.example'"
        ))
        .await?;
    assert_eq!(created, 0);

    // Removed, the provider signs nobody in.
    let removed = app
        .graphql(Some(&app.token_for(&admin)), REMOVE, json!({ "n": "corp" }))
        .await?;
    assert_eq!(removed.data()?["removeCompanyOidcProvider"], json!(true));
    let gone = Browser::new()
        .get(&app.url(&format!("/auth/oidc/{corp}/start")))
        .await?;
    assert_eq!(error_of(&gone).0, 404, "{}", gone.body);
    Ok(())
}

#[tokio::test]
async fn an_existing_account_is_linked_by_its_verified_address_only_when_the_company_allows_it()
-> anyhow::Result<()> {
    let (app, idp) = spawn().await?;
    let (acme, admin, _) = app.company_with_users("Acme", 0).await?;
    set_provider(&app, idp, &admin, "corp", json!({})).await?;
    let corp = format!("{acme}.corp");
    let login = format!("u{}", Uuid::new_v4().simple());
    let email = format!("{login}@example.com");
    let existing = app.create_user(acme, &email, "member").await?;
    idp.account(&login, &email, true, None).await?;

    // Off by default: the account exists, so no new one either.
    let (refused, token) = sign_in(&app, &corp, "", &login).await?;
    assert_eq!(error_of(&refused).0, 409, "{}", refused.body);
    assert!(token.is_none());
    // Turned on (the stored secret kept: none given), it links and signs in as that user.
    let listed = app
        .graphql(Some(&app.token_for(&admin)), LIST, json!({}))
        .await?;
    let client_id = listed.data()?["companyOidcProviders"][0]["clientId"].clone();
    let turned_on = app
        .graphql(
            Some(&app.token_for(&admin)),
            SET,
            json!({ "i": {
                "name": "corp", "issuer": idp.issuer, "clientId": client_id,
                "linkVerifiedEmail": true,
            } }),
        )
        .await?;
    let turned_on = turned_on.data()?["setCompanyOidcProvider"].clone();
    assert_eq!(
        (
            &turned_on["linkVerifiedEmail"],
            &turned_on["hasClientSecret"]
        ),
        (&json!(true), &json!(true))
    );
    let (done, token) = sign_in(&app, &corp, "", &login).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    let token = token.ok_or_else(|| anyhow::anyhow!("no access cookie"))?;
    assert_eq!(me(&app, &token).await?["id"], json!(existing.id));
    let identities = app
        .graphql(Some(&app.token_for(&existing)), IDENTITIES, json!({}))
        .await?;
    assert_eq!(identities.data()?["identities"][0]["provider"], json!(corp));

    // An account of another company with the address is never linked through Acme's provider.
    let globex = app.create_company("Globex").await?;
    let other_login = format!("u{}", Uuid::new_v4().simple());
    let other_email = format!("{other_login}@example.com");
    app.create_user(globex, &other_email, "member").await?;
    idp.account(&other_login, &other_email, true, None).await?;
    let (refused, _) = sign_in(&app, &corp, "", &other_login).await?;
    assert_eq!(error_of(&refused).0, 409, "{}", refused.body);

    // The database refuses a link the provider does not allow, whatever the server asks.
    app.sql(&format!(
        "UPDATE company_oidc_providers SET link_verified_email = false WHERE company_id = '{acme}'"
    ))
    .await?;
    let outcome = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT outcome FROM app.company_oidc_link_email('{acme}', \
                 (SELECT id FROM company_oidc_providers WHERE company_id = '{acme}'), \
                 gen_random_uuid(), '{}', 'another-subject', '{email}')",
                idp.issuer
            ),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?
        .try_get::<String>("", "outcome")?;
    assert_eq!(outcome, "not_allowed");
    Ok(())
}

#[tokio::test]
async fn another_companys_admin_neither_sees_nor_changes_the_provider() -> anyhow::Result<()> {
    let (app, idp) = spawn().await?;
    let (acme, acme_admin, acme_members) = app.company_with_users("Acme", 1).await?;
    let (globex, globex_admin, _) = app.company_with_users("Globex", 0).await?;
    let member = &acme_members[0];
    let (acme_provider, _) = set_provider(&app, idp, &acme_admin, "corp", json!({})).await?;
    let client_id = acme_provider["clientId"].clone();
    let globex_token = app.token_for(&globex_admin);

    // The API: Globex's admin lists only Globex's providers, setting `corp` makes Globex's
    // own, removing `corp` removes nothing of Acme's; Acme's member may do none of it.
    let listed = app.graphql(Some(&globex_token), LIST, json!({})).await?;
    assert_eq!(listed.data()?["companyOidcProviders"], json!([]));
    let (globex_provider, _) = set_provider(&app, idp, &globex_admin, "corp", json!({})).await?;
    assert_eq!(globex_provider["key"], json!(format!("{globex}.corp")));
    let removed = app
        .graphql(Some(&globex_token), REMOVE, json!({ "n": "corp" }))
        .await?;
    assert_eq!(removed.data()?["removeCompanyOidcProvider"], json!(true));
    let again = app
        .graphql(Some(&globex_token), REMOVE, json!({ "n": "corp" }))
        .await?;
    assert_eq!(again.data()?["removeCompanyOidcProvider"], json!(false));
    let acme_list = app
        .graphql(Some(&app.token_for(&acme_admin)), LIST, json!({}))
        .await?;
    assert_eq!(
        acme_list.data()?["companyOidcProviders"][0]["clientId"],
        client_id,
        "Acme's provider is untouched"
    );
    let member_token = app.token_for(member);
    for (query, variables) in [
        (LIST, json!({})),
        (REMOVE, json!({ "n": "corp" })),
        (
            SET,
            json!({ "i": { "name": "corp", "issuer": idp.issuer, "clientId": "stolen" } }),
        ),
    ] {
        let refused = app.graphql(Some(&member_token), query, variables).await?;
        assert_eq!(
            refused.error_code(),
            Some("FORBIDDEN"),
            "{:?}",
            refused.body
        );
    }

    // Row Level Security alone: raw SQL in Globex's admin's request transaction neither reads
    // nor changes Acme's row, nor adds one to Acme; Acme's member reads nothing; no request
    // role, admins included, reads the sealed secret.
    let seen = app
        .query_as(&globex_admin, "SELECT id FROM company_oidc_providers")
        .await?;
    assert!(seen.is_empty(), "{seen:?}");
    let changed = app
        .execute_as(
            &globex_admin,
            &format!(
                "UPDATE company_oidc_providers SET client_id = 'stolen' WHERE company_id = '{acme}'"
            ),
        )
        .await?;
    assert_eq!(changed, 0);
    let deleted = app
        .execute_as(
            &globex_admin,
            &format!("DELETE FROM company_oidc_providers WHERE company_id = '{acme}'"),
        )
        .await?;
    assert_eq!(deleted, 0);
    let inserted = app
        .execute_as(
            &globex_admin,
            &format!(
                "INSERT INTO company_oidc_providers (company_id, id, name, issuer, client_id, role) \
                 VALUES ('{acme}', gen_random_uuid(), 'evil', 'https://evil.example', 'c', 'admin')"
            ),
        )
        .await;
    assert!(
        inserted.is_err_and(|e| format!("{e:?}").contains("row-level security")),
        "another company's admin added a provider to Acme"
    );
    assert!(
        app.query_as(member, "SELECT id FROM company_oidc_providers")
            .await?
            .is_empty()
    );
    let changed = app
        .execute_as(member, "UPDATE company_oidc_providers SET role = 'admin'")
        .await?;
    assert_eq!(changed, 0, "a member changed the role new people get");
    let denied = app
        .query_as(
            &acme_admin,
            "SELECT client_secret_sealed FROM company_oidc_providers",
        )
        .await;
    assert!(
        denied.is_err_and(|e| format!("{e:?}").contains("permission denied")),
        "a request role read the sealed secret"
    );
    assert_eq!(
        app.query_as(&acme_admin, "SELECT client_id FROM company_oidc_providers")
            .await?,
        [json!({ "client_id": client_id })]
    );
    Ok(())
}

#[tokio::test]
async fn rotate_secrets_reseals_the_client_secrets() -> anyhow::Result<()> {
    let (app, idp) = spawn().await?;
    let (acme, admin, _) = app.company_with_users("Acme", 0).await?;
    let (_, secret) = set_provider(&app, idp, &admin, "corp", json!({})).await?;
    let key_of = format!("{acme}.corp");
    // A first sign-in makes the server's provider (with the secret opened under k1).
    let (login, _) = account(idp, None).await?;
    let (done, _) = sign_in(&app, &key_of, "", &login).await?;
    assert_eq!(done.status, 303, "{}", done.body);

    let rotated_keys = format!("{},{}", key("k2", 2), key("k1", 1));
    let rotated = Secrets::parse(&rotated_keys)?;
    let report = rotate(&app.state().db, &rotated).await?;
    let column = report
        .columns
        .iter()
        .find(|c| c.name == "company_oidc_providers.client_secret_sealed")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("rotate-secrets skips the client secrets: {report}"))?;
    assert_eq!((column.resealed, column.failed), (1, 0), "{report}");
    let (id, sealed) = sealed_of(&app, acme, "corp").await?;
    assert!(sealed.starts_with("v1:k2:"), "{sealed}");
    let opened = rotated.open_string(COMPANY_OIDC_CLIENT_SECRET, &row_aad(acme, id), &sealed)?;
    assert_eq!(opened.as_str(), secret);
    // Idempotent.
    let again = rotate(&app.state().db, &rotated).await?;
    assert_eq!(again.resealed(), 0, "{again}");

    // The server that has only k1 reads the re-sealed row and refuses clearly to go on.
    let mut browser = Browser::new();
    let start = browser
        .get(&app.url(&format!("/auth/oidc/{key_of}/start")))
        .await?;
    let (status, code, message) = error_of(&start);
    assert_eq!(
        (status, code.as_str()),
        (503, "UNAVAILABLE"),
        "{}",
        start.body
    );
    assert!(message.contains("`k2`"), "{message}");
    Ok(())
}
