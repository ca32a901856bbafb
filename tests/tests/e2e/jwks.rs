//! Asymmetric access tokens: the public key is served at `/.well-known/jwks.json`, the
//! server's own tokens work, and forgeries (algorithm confusion, `alg: none`, another key)
//! are UNAUTHENTICATED.

use base64::Engine as _;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{Jwk, JwkSet},
};
use serde_json::{Value, json};
use server::auth::AccessClaims;
use tests::{TestApp, TestUser};

// Test-only keys (see server/tests/fixtures/README.md).
const ED25519: &str = include_str!("../../../server/tests/fixtures/jwt-ed25519.pem");
const ED25519_PUBLIC: &str = include_str!("../../../server/tests/fixtures/jwt-ed25519.pub.pem");
const ED25519_OTHER: &str = include_str!("../../../server/tests/fixtures/jwt-ed25519-other.pem");
const RSA: &str = include_str!("../../../server/tests/fixtures/jwt-rsa-pkcs8.pem");

const ME: &str = "{ me { id email role } }";

async fn spawn_with_key(pem: &str) -> anyhow::Result<TestApp> {
    TestApp::spawn_with(|c| {
        c.jwt_private_key = Some(pem.to_owned());
        // Asymmetric mode does not need the shared secret.
        c.jwt_secret = None;
    })
    .await
}

async fn jwks(app: &TestApp) -> anyhow::Result<(u16, Option<String>, Value)> {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await?;
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, cache, response.json().await?))
}

/// The claims of a valid token for `user`, as the server's own type.
fn claims(app: &TestApp, user: &TestUser) -> anyhow::Result<AccessClaims> {
    Ok(serde_json::from_value(app.claims_for(user))?)
}

/// Status and error code of `me` called with `token`.
async fn me_with(app: &TestApp, token: &str) -> anyhow::Result<(u16, Option<String>)> {
    let response = app.graphql(Some(token), ME, json!({})).await?;
    Ok((response.status, response.error_code().map(str::to_owned)))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn an_ed25519_server_publishes_its_public_key() -> anyhow::Result<()> {
    let app = spawn_with_key(ED25519).await?;
    let (status, cache, body) = jwks(&app).await?;
    assert_eq!(status, 200);
    assert!(cache.is_some_and(|c| c.contains("max-age")));
    let keys = body["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 1, "{body}");
    let key = &keys[0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert!(
        key.get("d").is_none(),
        "the private key is published: {key}"
    );
    // It is the public half of the configured key: the same bytes as its public PEM.
    let spki = pem_body(ED25519_PUBLIC)?;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap_or_default())?;
    assert!(spki.ends_with(&x) && x.len() == 32);
    assert_eq!(key["kid"].as_str(), app.state().jwt.kid());
    Ok(())
}

#[tokio::test]
async fn an_hs256_server_publishes_no_keys() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (status, _, body) = jwks(&app).await?;
    assert_eq!((status, body), (200, json!({ "keys": [] })));
    Ok(())
}

#[tokio::test]
async fn an_ed25519_server_accepts_its_own_tokens() -> anyhow::Result<()> {
    let app = spawn_with_key(ED25519).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let token = app.state().jwt.sign(&claims(&app, &admin)?)?;
    let header = jsonwebtoken::decode_header(&token)?;
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), app.state().jwt.kid());
    let response = app.graphql(Some(&token), ME, json!({})).await?;
    assert_eq!(response.data()?["me"]["email"], json!(admin.email));
    Ok(())
}

#[tokio::test]
async fn a_client_verifies_the_servers_tokens_with_the_published_keys() -> anyhow::Result<()> {
    for pem in [ED25519, RSA] {
        let app = spawn_with_key(pem).await?;
        let (_, admin, _) = app.company_with_users("Acme", 0).await?;
        let token = app.state().jwt.sign(&claims(&app, &admin)?)?;
        let (_, _, body) = jwks(&app).await?;
        let set: JwkSet = serde_json::from_value(body)?;
        let header = jsonwebtoken::decode_header(&token)?;
        let jwk: &Jwk = set
            .find(header.kid.as_deref().unwrap_or_default())
            .ok_or_else(|| anyhow::anyhow!("the token's kid is not in the set"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&app.config.jwt_audience]);
        validation.set_issuer(&[&app.config.jwt_issuer]);
        let decoded = jsonwebtoken::decode::<AccessClaims>(
            &token,
            &DecodingKey::from_jwk(jwk)?,
            &validation,
        )?;
        assert_eq!(decoded.claims.sub, admin.id);
    }
    Ok(())
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_is_rejected() -> anyhow::Result<()> {
    // Algorithm confusion: a verifier that let the header pick the algorithm would check this
    // HMAC with the (public) key as the secret.
    let app = spawn_with_key(ED25519).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let claims = claims(&app, &admin)?;
    let (_, _, body) = jwks(&app).await?;
    let jwk = body["keys"][0].clone();
    let raw_x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap_or_default())?;
    let secrets: [(&str, Vec<u8>); 4] = [
        ("public PEM", ED25519_PUBLIC.as_bytes().to_vec()),
        ("public key DER", pem_body(ED25519_PUBLIC)?),
        ("raw public key", raw_x),
        ("JWK", jwk.to_string().into_bytes()),
    ];
    for (what, secret) in secrets {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = app.state().jwt.kid().map(str::to_owned);
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))?;
        let (status, code) = me_with(&app, &forged).await?;
        assert_eq!(
            (status, code.as_deref()),
            (401, Some("UNAUTHENTICATED")),
            "{what}"
        );
    }
    // Nor does the harness's shared secret mean anything to an asymmetric server.
    let (status, code) = me_with(&app, &app.token_for(&admin)).await?;
    assert_eq!((status, code.as_deref()), (401, Some("UNAUTHENTICATED")));
    Ok(())
}

#[tokio::test]
async fn an_unsigned_token_is_rejected() -> anyhow::Result<()> {
    let app = spawn_with_key(ED25519).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let claims = serde_json::to_vec(&claims(&app, &admin)?)?;
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": app.state().jwt.kid() });
        let unsigned = format!("{}.{}.", b64(header.to_string().as_bytes()), b64(&claims));
        let (status, code) = me_with(&app, &unsigned).await?;
        assert_eq!(
            (status, code.as_deref()),
            (401, Some("UNAUTHENTICATED")),
            "{alg}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_token_signed_by_another_ed25519_key_is_rejected() -> anyhow::Result<()> {
    let app = spawn_with_key(ED25519).await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let claims = claims(&app, &admin)?;
    // Even when it claims our key's kid.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = app.state().jwt.kid().map(str::to_owned);
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_pem(ED25519_OTHER.as_bytes())?,
    )?;
    let (status, code) = me_with(&app, &forged).await?;
    assert_eq!((status, code.as_deref()), (401, Some("UNAUTHENTICATED")));
    // And our own signature on the same claims is fine.
    let (status, code) = me_with(&app, &app.state().jwt.sign(&claims)?).await?;
    assert_eq!((status, code), (200, None));
    Ok(())
}

/// The DER bytes inside a PEM.
fn pem_body(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}
