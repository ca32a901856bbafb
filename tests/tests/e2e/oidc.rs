//! OpenID Connect sign-in end to end, against a real OpenID provider (the `oidc-provider` npm
//! package, see `tests/fixtures/oidc-provider`): a browser walks `/auth/oidc/{provider}/start`,
//! the provider's login and consent, and the server's callback with plain HTTP. ID tokens the
//! provider alters on the way out (another audience, expired, an old nonce, an unknown key)
//! come through the same token endpoint and callback as real ones.

use serde_json::{Value, json};
use tests::{
    TestApp, TestUser,
    oidc::{Browser, OidcProvider, provider},
};
use uuid::Uuid;

pub(crate) const ME: &str = "{ me { id email role emailVerified } }";
pub(crate) const IDENTITIES: &str = "{ identities { id provider issuer email } }";

/// A server whose providers are `idp` and the extra ones named in `extra`, each with its own
/// client registered at the test provider (with the extra settings given), and the test
/// provider.
async fn spawn(extra: &[(&str, Value)]) -> anyhow::Result<(TestApp, &'static OidcProvider)> {
    let idp = provider().await?;
    let port = devservices::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut providers = Vec::new();
    let mut all = vec![("idp", json!({}))];
    all.extend(extra.iter().cloned());
    for (name, settings) in all {
        let (client_id, client_secret) = idp
            .register_client(&format!("{base}/auth/oidc/{name}/callback"))
            .await?;
        let mut entry = json!({
            "name": name, "issuer": idp.issuer,
            "client_id": client_id, "client_secret": client_secret,
        });
        if let (Some(entry), Some(settings)) = (entry.as_object_mut(), settings.as_object()) {
            entry.extend(settings.clone());
        }
        providers.push(entry);
    }
    let bind: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let app = TestApp::spawn_with(|c| {
        c.bind_addr = bind;
        c.public_url = Some(base.clone());
        c.oidc_providers = Some(Value::Array(providers).to_string());
        // Every ID token naming a key the cache lacks fetches the JWKS again: the provider is
        // shared by the tests, which rotate its keys.
        c.oidc_jwks_refresh_interval_ms = 0;
    })
    .await?;
    Ok((app, idp))
}

/// `pairs` form-encoded, as a query string.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse("http://query.invalid/")?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url.query().unwrap_or_default().to_owned())
}

/// A fresh account at the provider: its id (the `login_hint`) and address.
pub(crate) async fn account(
    idp: &OidcProvider,
    tamper: Option<Value>,
) -> anyhow::Result<(String, String)> {
    let id = format!("u{}", Uuid::new_v4().simple());
    let email = format!("{id}@example.com");
    idp.account(&id, &email, true, tamper).await?;
    Ok((id, email))
}

/// Starts a flow with `query` and walks the provider's login as `login`: the callback URL the
/// provider sends the browser back to (not visited yet).
pub(crate) async fn to_callback(
    app: &TestApp,
    browser: &mut Browser,
    provider_name: &str,
    query: &str,
    login: &str,
) -> anyhow::Result<String> {
    let start = browser
        .get(&app.url(&format!("/auth/oidc/{provider_name}/start?{query}")))
        .await?;
    anyhow::ensure!(
        start.status == 303,
        "start answered {}: {}",
        start.status,
        start.body
    );
    let authorize = format!("{}&login_hint={login}", start.location.unwrap_or_default());
    browser
        .follow_until(
            &authorize,
            &app.url(&format!("/auth/oidc/{provider_name}/callback")),
        )
        .await
}

/// The error a callback or start answered: (status, code, message).
pub(crate) fn error_of(hop: &tests::oidc::Hop) -> (u16, String, String) {
    let body: Value = serde_json::from_str(&hop.body).unwrap_or(Value::Null);
    (
        hop.status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
        body["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

/// Signs in with cookies as `login`; the browser then holds the session cookies.
async fn browser_sign_in(app: &TestApp, login: &str) -> anyhow::Result<(Browser, String)> {
    let mut browser = Browser::new();
    let callback = to_callback(app, &mut browser, "idp", "redirect_to=/welcome", login).await?;
    let done = browser.get(&callback).await?;
    anyhow::ensure!(
        done.status == 303,
        "callback answered {}: {}",
        done.status,
        done.body
    );
    let token = browser
        .cookie(&app.url("/"), "__Host-access_token")
        .ok_or_else(|| anyhow::anyhow!("no access cookie"))?;
    Ok((browser, token))
}

pub(crate) async fn me(app: &TestApp, token: &str) -> anyhow::Result<Value> {
    Ok(app.graphql(Some(token), ME, json!({})).await?.data()?["me"].clone())
}

#[tokio::test]
async fn a_browser_signs_in_with_the_session_cookies_as_a_new_company_s_admin() -> anyhow::Result<()>
{
    let (app, idp) = spawn(&[]).await?;
    let (login, email) = account(idp, None).await?;
    let mut browser = Browser::new();
    let callback = to_callback(
        &app,
        &mut browser,
        "idp",
        "redirect_to=/welcome?tab=1",
        &login,
    )
    .await?;
    assert!(
        browser.cookie(&app.url("/"), "__Host-oidc_flow").is_some(),
        "the flow is bound to the browser"
    );
    let done = browser.get(&callback).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, Some(app.url("/welcome?tab=1")));
    assert_eq!(browser.cookie(&app.url("/"), "__Host-oidc_flow"), None);
    let token = browser
        .cookie(&app.url("/"), "__Host-access_token")
        .ok_or_else(|| anyhow::anyhow!("no access cookie"))?;
    assert!(
        browser
            .cookie(&app.url("/"), "__Host-refresh_token")
            .is_some()
    );
    assert!(browser.cookie(&app.url("/"), "__Host-csrf_token").is_some());
    let user = me(&app, &token).await?;
    assert_eq!(user["email"], json!(email));
    assert_eq!(user["role"], json!("admin"), "a new company's first user");
    assert_eq!(
        user["emailVerified"],
        json!(true),
        "the provider asserted the address"
    );
    let identities = app.graphql(Some(&token), IDENTITIES, json!({})).await?;
    let identities = identities.data()?["identities"].clone();
    assert_eq!(identities.as_array().map(Vec::len), Some(1));
    assert_eq!(identities[0]["provider"], json!("idp"));
    assert_eq!(identities[0]["issuer"], json!(idp.issuer));

    // Signing in again finds the same user through the linked identity.
    let (_, again) = browser_sign_in(&app, &login).await?;
    assert_eq!(me(&app, &again).await?["id"], user["id"]);
    Ok(())
}

#[tokio::test]
async fn an_app_exchanges_a_one_time_code_for_credentials_once() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (login, email) = account(idp, None).await?;
    let mut browser = Browser::new();
    let redirect = app.url("/app/done");
    let query = query_string(&[("mode", "code"), ("redirect_to", &redirect)])?;
    let callback = to_callback(&app, &mut browser, "idp", &query, &login).await?;
    let done = browser.get(&callback).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        browser
            .cookie(&app.url("/"), "__Host-access_token")
            .is_none(),
        "code mode sets no session cookies"
    );
    let location = reqwest::Url::parse(&done.location.unwrap_or_default())?;
    assert!(location.as_str().starts_with(&redirect), "{location}");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "oidc_code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("no oidc_code in {location}"))?;
    let exchange = "mutation($code: String!) { exchangeOidcCode(code: $code) { accessToken refreshToken user { email } } }";
    let payload = app.graphql(None, exchange, json!({ "code": code })).await?;
    let payload = payload.data()?["exchangeOidcCode"].clone();
    assert_eq!(payload["user"]["email"], json!(email));
    let token = payload["accessToken"].as_str().unwrap_or_default();
    assert_eq!(me(&app, token).await?["email"], json!(email));
    assert!(
        payload["refreshToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    let replay = app.graphql(None, exchange, json!({ "code": code })).await?;
    assert_eq!(replay.error_code(), Some("BAD_USER_INPUT"));
    let made_up = app
        .graphql(None, exchange, json!({ "code": "oc_made-up" }))
        .await?;
    assert_eq!(made_up.error_code(), Some("BAD_USER_INPUT"));
    Ok(())
}

#[tokio::test]
async fn redirect_targets_are_limited_to_the_server_and_its_apps() -> anyhow::Result<()> {
    let (app, _) = spawn(&[]).await?;
    let mut browser = Browser::new();
    for bad in [
        "https://evil.example/steal",
        "//evil.example/steal",
        "http://user@127.0.0.1:1/x",
        "javascript:alert(1)",
    ] {
        let query = query_string(&[("redirect_to", bad)])?;
        let hop = browser
            .get(&app.url(&format!("/auth/oidc/idp/start?{query}")))
            .await?;
        let (status, code, _) = error_of(&hop);
        assert_eq!((status, code.as_str()), (400, "BAD_USER_INPUT"), "{bad}");
    }
    let unknown = browser.get(&app.url("/auth/oidc/nope/start")).await?;
    assert_eq!(error_of(&unknown).0, 404);
    let mode = browser
        .get(&app.url("/auth/oidc/idp/start?mode=token"))
        .await?;
    assert_eq!(error_of(&mode).0, 400);
    Ok(())
}

/// A user of a company with no password, and a browser holding their session cookies.
async fn signed_in_user(app: &TestApp, email: &str) -> anyhow::Result<(TestUser, Browser, String)> {
    let company = app.create_company("Linkers").await?;
    let user = app.create_user(company, email, "member").await?;
    let mut browser = Browser::new();
    let home = app.url("/");
    browser.set_cookie(&home, "__Host-access_token", &app.token_for(&user))?;
    let csrf = server::auth::cookies::csrf_token(
        &server::auth::csrf_key(&app.state().jwt),
        user.session_id,
    );
    browser.set_cookie(&home, "__Host-csrf_token", &csrf)?;
    Ok((user, browser, csrf))
}

#[tokio::test]
async fn a_signed_in_user_links_a_provider_and_keeps_a_way_to_sign_in() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (login, _) = account(idp, None).await?;
    let (user, mut browser, csrf) = signed_in_user(&app, "linker@corp.example").await?;

    // With the session cookies alone (what another site could make a browser send), no.
    let forged = browser.get(&app.url("/auth/oidc/idp/start?link=1")).await?;
    assert_eq!(
        error_of(&forged).0,
        403,
        "linking without the CSRF token: {}",
        forged.body
    );
    let anonymous = Browser::new()
        .get(&app.url("/auth/oidc/idp/start?link=1"))
        .await?;
    assert_eq!(error_of(&anonymous).0, 401);

    let callback = to_callback(
        &app,
        &mut browser,
        "idp",
        &format!("link=1&csrf={csrf}&redirect_to=/settings"),
        &login,
    )
    .await?;
    let done = browser.get(&callback).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, Some(app.url("/settings?oidc_linked=idp")));
    let token = app.token_for(&user);
    let identities = app.graphql(Some(&token), IDENTITIES, json!({})).await?;
    let identities = identities.data()?["identities"].clone();
    assert_eq!(identities.as_array().map(Vec::len), Some(1));
    let identity = identities[0]["id"].as_str().unwrap_or_default().to_owned();

    // Signing in with the provider now is signing in as that user.
    let (_, signed_in) = browser_sign_in(&app, &login).await?;
    assert_eq!(me(&app, &signed_in).await?["id"], json!(user.id));

    // No password, no other identity: the last way in stays, in the API and in the database.
    let unlink = "mutation($id: ID!) { unlinkIdentity(id: $id) }";
    let refused = app
        .graphql(Some(&token), unlink, json!({ "id": identity }))
        .await?;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"));
    let raw = app
        .execute_as(
            &user,
            &format!("DELETE FROM identities WHERE id = '{identity}'"),
        )
        .await;
    assert!(
        raw.as_ref()
            .is_err_and(|e| format!("{e:?}").contains("last way to sign in")),
        "{raw:?}"
    );
    // With a password, it goes.
    app.sql(&format!(
        "UPDATE users SET password_hash = 'x' WHERE id = '{}'",
        user.id
    ))
    .await?;
    let unlinked = app
        .graphql(Some(&token), unlink, json!({ "id": identity }))
        .await?;
    assert_eq!(unlinked.data()?["unlinkIdentity"], json!(true));
    let none = app.graphql(Some(&token), IDENTITIES, json!({})).await?;
    assert_eq!(none.data()?["identities"], json!([]));
    Ok(())
}

#[tokio::test]
async fn an_identity_linked_to_one_account_is_not_linked_to_another() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (login, _) = account(idp, None).await?;
    let (_first, signed_in) = browser_sign_in(&app, &login).await?;
    assert!(!signed_in.is_empty());
    let (_, mut browser, csrf) = signed_in_user(&app, "other@corp.example").await?;
    let callback = to_callback(
        &app,
        &mut browser,
        "idp",
        &format!("link=1&csrf={csrf}"),
        &login,
    )
    .await?;
    let done = browser.get(&callback).await?;
    assert_eq!(error_of(&done).0, 409, "{}", done.body);
    Ok(())
}

#[tokio::test]
async fn a_verified_address_links_to_its_account_only_where_the_provider_allows_it()
-> anyhow::Result<()> {
    let (app, idp) = spawn(&[
        ("trusting", json!({ "link_verified_email": true })),
        ("corp", json!({ "allowed_domains": ["corp.example"] })),
    ])
    .await?;
    let company = app.create_company("Existing").await?;
    let login = format!("u{}", Uuid::new_v4().simple());
    let email = format!("{login}@example.com");
    let existing = app.create_user(company, &email, "member").await?;
    idp.account(&login, &email, true, None).await?;

    // `idp` does not link by address: the account exists, so no new one either.
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "idp", "", &login).await?;
    let refused = browser.get(&callback).await?;
    assert_eq!(error_of(&refused).0, 409, "{}", refused.body);
    // `corp` takes addresses of corp.example only.
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "corp", "", &login).await?;
    let refused = browser.get(&callback).await?;
    assert_eq!(error_of(&refused).0, 403, "{}", refused.body);
    // `trusting` links the verified address to its account and signs in as its user.
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "trusting", "", &login).await?;
    let done = browser.get(&callback).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    let token = browser
        .cookie(&app.url("/"), "__Host-access_token")
        .ok_or_else(|| anyhow::anyhow!("no access cookie"))?;
    assert_eq!(me(&app, &token).await?["id"], json!(existing.id));
    let identities = app
        .graphql(Some(&app.token_for(&existing)), IDENTITIES, json!({}))
        .await?;
    assert_eq!(
        identities.data()?["identities"][0]["provider"],
        json!("trusting")
    );

    // An address the provider does not vouch for signs nobody in for the first time.
    let unverified = format!("u{}", Uuid::new_v4().simple());
    idp.account(
        &unverified,
        &format!("{unverified}@example.com"),
        false,
        None,
    )
    .await?;
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "trusting", "", &unverified).await?;
    let refused = browser.get(&callback).await?;
    assert_eq!(error_of(&refused).0, 403, "{}", refused.body);
    Ok(())
}

#[tokio::test]
async fn a_new_member_joins_the_company_of_its_provider_with_its_role() -> anyhow::Result<()> {
    let company = Uuid::new_v4();
    let (app, idp) = spawn(&[(
        "team",
        json!({ "company_id": company, "role": "manager", "allowed_domains": ["example.com"] }),
    )])
    .await?;
    app.sql(&format!(
        "INSERT INTO companies (id, name) VALUES ('{company}', 'Team')"
    ))
    .await?;
    let (login, email) = account(idp, None).await?;
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "team", "", &login).await?;
    let done = browser.get(&callback).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    let token = browser
        .cookie(&app.url("/"), "__Host-access_token")
        .ok_or_else(|| anyhow::anyhow!("no access cookie"))?;
    let user = me(&app, &token).await?;
    assert_eq!(user["email"], json!(email));
    assert_eq!(user["role"], json!("manager"));
    assert_eq!(user["emailVerified"], json!(true));
    let company_of = app
        .graphql(Some(&token), "{ company { id } }", json!({}))
        .await?;
    assert_eq!(company_of.data()?["company"]["id"], json!(company));
    Ok(())
}

#[tokio::test]
async fn a_wrong_state_or_another_browser_is_refused_and_a_state_works_once() -> anyhow::Result<()>
{
    let (app, idp) = spawn(&[]).await?;
    let (login, _) = account(idp, None).await?;
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "idp", "", &login).await?;
    let url = reqwest::Url::parse(&callback)?;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();

    // A state the server never issued.
    let mut wrong = url.clone();
    wrong
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs.iter().map(|(k, v)| {
            if k == "state" {
                (k.as_str(), "forged")
            } else {
                (k.as_str(), v.as_str())
            }
        }));
    let hop = browser.get(wrong.as_str()).await?;
    let (status, code, _) = error_of(&hop);
    assert_eq!(
        (status, code.as_str()),
        (400, "BAD_USER_INPUT"),
        "{}",
        hop.body
    );
    assert!(hop.body.contains("\"field\":\"state\""), "{}", hop.body);

    // The right state from a browser that did not start the flow: refused, and used up.
    let hop = Browser::new().get(&callback).await?;
    assert_eq!(error_of(&hop).0, 403, "{}", hop.body);
    let hop = browser.get(&callback).await?;
    let (status, _, message) = error_of(&hop);
    assert_eq!(status, 400, "{}", hop.body);
    assert!(message.contains("state"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_replayed_callback_or_nonce_is_refused() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (login, email) = account(idp, None).await?;
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "idp", "", &login).await?;
    let first = browser.get(&callback).await?;
    assert_eq!(first.status, 303, "{}", first.body);
    // The same callback again (its flow cookie restored): the state was used.
    let state = reqwest::Url::parse(&callback)?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    browser.set_cookie(&app.url("/"), "__Host-oidc_flow", &state)?;
    let again = browser.get(&callback).await?;
    assert_eq!(error_of(&again).0, 400, "{}", again.body);

    // A fresh flow whose ID token carries the nonce of the previous sign-in.
    idp.account(&login, &email, true, Some(json!({ "replayNonce": true })))
        .await?;
    let mut browser = Browser::new();
    let callback = to_callback(&app, &mut browser, "idp", "", &login).await?;
    let hop = browser.get(&callback).await?;
    let (status, code, message) = error_of(&hop);
    assert_eq!(
        (status, code.as_str()),
        (401, "UNAUTHENTICATED"),
        "{}",
        hop.body
    );
    assert!(message.contains("nonce"), "{message}");
    Ok(())
}

/// Signs in as a fresh account whose ID tokens are altered by `tamper`: the callback's error.
async fn tampered(
    app: &TestApp,
    idp: &OidcProvider,
    tamper: Value,
) -> anyhow::Result<(u16, String, String)> {
    let (login, _) = account(idp, Some(tamper)).await?;
    let mut browser = Browser::new();
    let callback = to_callback(app, &mut browser, "idp", "", &login).await?;
    let hop = browser.get(&callback).await?;
    anyhow::ensure!(
        browser
            .cookie(&app.url("/"), "__Host-access_token")
            .is_none(),
        "signed in with a bad ID token"
    );
    Ok(error_of(&hop))
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (status, code, message) =
        tampered(&app, idp, json!({ "claims": { "aud": "someone-else" } })).await?;
    assert_eq!((status, code.as_str()), (401, "UNAUTHENTICATED"));
    assert!(message.contains("another client"), "{message}");
    // Several audiences, ours among them, but no authorized party naming us.
    let client_id = app
        .config
        .oidc_providers
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p[0]["client_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let (status, _, message) = tampered(
        &app,
        idp,
        json!({ "claims": { "aud": [client_id, "someone-else"] } }),
    )
    .await?;
    assert_eq!(status, 401);
    assert!(message.contains("several audiences"), "{message}");
    Ok(())
}

#[tokio::test]
async fn an_expired_id_token_is_refused() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (status, code, message) = tampered(&app, idp, json!({ "expired": true })).await?;
    assert_eq!((status, code.as_str()), (401, "UNAUTHENTICATED"));
    assert!(message.contains("expired"), "{message}");
    // Another issuer's token, signed by the same key, is refused as well.
    let (status, _, message) = tampered(
        &app,
        idp,
        json!({ "claims": { "iss": "https://evil.example" } }),
    )
    .await?;
    assert_eq!(status, 401);
    assert!(message.contains("issuer"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (login, _) = account(idp, None).await?;
    // The server caches the provider's keys with the first sign-in.
    browser_sign_in(&app, &login).await?;
    let before = idp.current_kid().await?;
    let rotated = idp.rotate().await?;
    assert_ne!(before, rotated);
    // The next ID token names the new key, which the cached set lacks: fetched, and it works.
    let (_, token) = browser_sign_in(&app, &login).await?;
    assert!(!me(&app, &token).await?["id"].is_null());
    // A key the provider never listed is refused after the fresh fetch.
    let (status, _, message) = tampered(&app, idp, json!({ "strayKey": true })).await?;
    assert_eq!(status, 401);
    assert!(message.contains("does not list"), "{message}");
    Ok(())
}

#[tokio::test]
async fn callback_errors_go_back_to_the_app_with_oauth_error_parameters() -> anyhow::Result<()> {
    let (app, idp) = spawn(&[]).await?;
    let (login, _) = account(idp, None).await?;
    let mut browser = Browser::new();
    let back = app.url("/app/signed-in?step=2");
    let query = query_string(&[("redirect_to", &back)])?;
    let callback = to_callback(&app, &mut browser, "idp", &query, &login).await?;
    let mut wrong = reqwest::Url::parse(&callback)?;
    let pairs: Vec<(String, String)> = wrong.query_pairs().into_owned().collect();
    wrong
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs.iter().map(|(k, v)| {
            if k == "state" {
                (k.as_str(), "forged")
            } else {
                (k.as_str(), v.as_str())
            }
        }));

    // A client that asks for JSON gets JSON.
    let json = browser
        .get_with(wrong.as_str(), &[("accept", "application/json")])
        .await?;
    let (status, code, _) = error_of(&json);
    assert_eq!(
        (status, code.as_str()),
        (400, "BAD_USER_INPUT"),
        "{}",
        json.body
    );

    // A browser goes back to the return URL of its flow, with the error.
    let hop = browser.get(wrong.as_str()).await?;
    assert_eq!(hop.status, 303, "{}", hop.body);
    let location = reqwest::Url::parse(&hop.location.unwrap_or_default())?;
    assert!(location.as_str().starts_with(&back), "{location}");
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params.get("step").map(String::as_str), Some("2"));
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert_eq!(
        params.get("error_code").map(String::as_str),
        Some("BAD_USER_INPUT")
    );
    assert!(
        params
            .get("error_description")
            .is_some_and(|d| d.contains("state")),
        "{params:?}"
    );
    assert!(
        !location.as_str().contains("oidc_code"),
        "no credentials on an error"
    );
    assert!(
        browser
            .cookie(&app.url("/"), "__Host-access_token")
            .is_none()
    );
    Ok(())
}
