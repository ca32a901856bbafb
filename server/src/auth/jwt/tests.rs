//! Unit tests of access-token keys: round trips per algorithm, the JWK set, and forgeries.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header, jwk::JwkSet};
use serde_json::json;

use super::*;

const ISS: &str = "issuer";
const AUD: &str = "audience";
const LEEWAY: Duration = Duration::from_secs(5);
const SECRET: &[u8] = b"unit-test-secret-unit-test-secret-0123";

const ED25519: &str = include_str!("../../../tests/fixtures/jwt-ed25519.pem");
const ED25519_PUBLIC: &str = include_str!("../../../tests/fixtures/jwt-ed25519.pub.pem");
const ED25519_OTHER: &str = include_str!("../../../tests/fixtures/jwt-ed25519-other.pem");
const RSA_PKCS8: &str = include_str!("../../../tests/fixtures/jwt-rsa-pkcs8.pem");
const RSA_PKCS1: &str = include_str!("../../../tests/fixtures/jwt-rsa-pkcs1.pem");
const RSA_PUBLIC: &str = include_str!("../../../tests/fixtures/jwt-rsa.pub.pem");
const RSA_1024: &str = include_str!("../../../tests/fixtures/jwt-rsa-1024.pem");
const EC_P256: &str = include_str!("../../../tests/fixtures/jwt-ec-p256.pem");

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> AccessClaims {
    let now = chrono::Utc::now().timestamp() as u64;
    AccessClaims {
        sub: Uuid::new_v4(),
        company: Uuid::new_v4(),
        role: "member".into(),
        sid: Uuid::new_v4(),
        iat: now,
        nbf: None,
        exp: now + 600,
        iss: ISS.into(),
        aud: AUD.into(),
    }
}

fn keys_from(pem: &str) -> anyhow::Result<JwtKeys> {
    JwtKeys::from_private_pem(pem.as_bytes(), ISS, AUD, LEEWAY)
}

fn header_of(token: &str) -> anyhow::Result<Header> {
    Ok(jsonwebtoken::decode_header(token)?)
}

fn is_rejected(keys: &JwtKeys, token: &str) -> bool {
    matches!(keys.verify(token), Err(AppError::Unauthenticated(_)))
}

/// An unsigned token (`alg: none`) carrying `claims`.
fn alg_none(claims: &AccessClaims) -> anyhow::Result<String> {
    let header = json!({ "alg": "none", "typ": "JWT" });
    Ok(format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(serde_json::to_string(claims)?.as_bytes())
    ))
}

#[test]
fn hs256_tokens_round_trip_without_kid_or_public_keys() -> anyhow::Result<()> {
    let keys = JwtKeys::hs256(SECRET, ISS, AUD, LEEWAY)?;
    let claims = claims();
    let token = keys.sign(&claims)?;
    assert_eq!(keys.verify(&token).ok(), Some(claims));
    let header = header_of(&token)?;
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.kid, None);
    assert_eq!(keys.jwks(), json!({ "keys": [] }));
    assert_eq!(keys.access_ttl(), Duration::from_secs(900));
    Ok(())
}

#[test]
fn hs256_refuses_a_short_secret() {
    assert!(JwtKeys::hs256(b"too short", ISS, AUD, LEEWAY).is_err());
}

#[test]
fn ed25519_tokens_round_trip_with_the_kid_of_the_published_key() -> anyhow::Result<()> {
    let keys = keys_from(ED25519)?;
    assert_eq!(keys.algorithm(), Algorithm::EdDSA);
    let claims = claims();
    let token = keys.sign(&claims)?;
    assert_eq!(keys.verify(&token).ok(), Some(claims));

    let header = header_of(&token)?;
    assert_eq!(header.alg, Algorithm::EdDSA);
    let jwks = keys.jwks();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    assert_eq!(keys.kid(), key["kid"].as_str());
    assert!(
        key.get("d").is_none(),
        "the private key must never be published"
    );
    Ok(())
}

#[test]
fn rsa_keys_in_pkcs1_and_pkcs8_sign_the_same_verifiable_tokens() -> anyhow::Result<()> {
    let pkcs8 = keys_from(RSA_PKCS8)?;
    let pkcs1 = keys_from(RSA_PKCS1)?;
    assert_eq!(pkcs8.algorithm(), Algorithm::RS256);
    assert_eq!(pkcs8.kid(), pkcs1.kid());
    assert!(pkcs8.kid().is_some());
    let claims = claims();
    let token = pkcs8.sign(&claims)?;
    assert_eq!(pkcs1.verify(&token).ok(), Some(claims));
    assert_eq!(header_of(&token)?.alg, Algorithm::RS256);
    let key = &pkcs8.jwks()["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
    assert_eq!(key["e"], "AQAB");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(
            key.get(private).is_none(),
            "{private} must never be published"
        );
    }
    Ok(())
}

#[test]
fn a_client_verifies_tokens_with_the_published_jwk_alone() -> anyhow::Result<()> {
    for pem in [ED25519, RSA_PKCS8] {
        let keys = keys_from(pem)?;
        let token = keys.sign(&claims())?;
        let set: JwkSet = serde_json::from_value(keys.jwks())?;
        let kid = header_of(&token)?.kid.unwrap_or_default();
        let jwk = set
            .find(&kid)
            .ok_or_else(|| anyhow::anyhow!("kid {kid} not in the set"))?;
        let mut validation = Validation::new(keys.algorithm());
        validation.set_audience(&[AUD]);
        validation.set_issuer(&[ISS]);
        let decoded =
            jsonwebtoken::decode::<AccessClaims>(&token, &DecodingKey::from_jwk(jwk)?, &validation);
        assert!(decoded.is_ok(), "{:?}: {decoded:?}", keys.algorithm());
    }
    Ok(())
}

#[test]
fn the_kid_is_the_rfc_7638_thumbprint() -> anyhow::Result<()> {
    // RFC 8037, appendix A.1-A.3: an Ed25519 key and its JWK thumbprint.
    let seed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")?;
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let keys = keys_from(&pem)?;
    assert_eq!(
        keys.jwks()["keys"][0]["x"],
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    assert_eq!(
        keys.kid(),
        Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
    );
    Ok(())
}

#[test]
fn hs256_tokens_signed_with_the_public_key_are_rejected() -> anyhow::Result<()> {
    // The classic algorithm-confusion attack: a verifier that trusts the header's `alg` would
    // check this HMAC with the public key as the secret.
    for (pem, public_pem) in [(ED25519, ED25519_PUBLIC), (RSA_PKCS8, RSA_PUBLIC)] {
        let keys = keys_from(pem)?;
        let jwk = keys.jwks()["keys"][0].clone();
        let raw = match jwk["x"].as_str().or(jwk["n"].as_str()) {
            Some(value) => base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value)?,
            None => anyhow::bail!("no public key material in {jwk}"),
        };
        for secret in [public_pem.as_bytes(), &raw, jwk.to_string().as_bytes()] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = keys.kid().map(str::to_owned);
            let forged =
                jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))?;
            assert!(is_rejected(&keys, &forged), "{:?}", keys.algorithm());
        }
    }
    Ok(())
}

#[test]
fn unsigned_and_foreign_tokens_are_rejected() -> anyhow::Result<()> {
    let ed = keys_from(ED25519)?;
    let other = keys_from(ED25519_OTHER)?;
    let rsa = keys_from(RSA_PKCS8)?;
    let hs = JwtKeys::hs256(SECRET, ISS, AUD, LEEWAY)?;
    let claims = claims();
    for keys in [&ed, &rsa, &hs] {
        assert!(is_rejected(keys, &alg_none(&claims)?), "alg none");
    }
    assert!(
        is_rejected(&ed, &other.sign(&claims)?),
        "another Ed25519 key"
    );
    assert!(is_rejected(&ed, &rsa.sign(&claims)?), "an RSA token");
    assert!(is_rejected(&rsa, &ed.sign(&claims)?), "an EdDSA token");
    assert!(
        is_rejected(&hs, &ed.sign(&claims)?),
        "an EdDSA token for HS256"
    );
    assert!(
        is_rejected(&ed, &hs.sign(&claims)?),
        "an HS256 token for EdDSA"
    );
    // A forged kid changes nothing: the key is ours, not the header's.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = ed.kid().map(str::to_owned);
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_pem(ED25519_OTHER.as_bytes())?,
    )?;
    assert!(is_rejected(&ed, &forged), "our kid, another key");
    Ok(())
}

#[test]
fn expired_immature_and_foreign_claims_are_rejected_with_asymmetric_keys() -> anyhow::Result<()> {
    let keys = keys_from(ED25519)?;
    let now = chrono::Utc::now().timestamp() as u64;
    let mut expired = claims();
    expired.exp = now - 60;
    let mut immature = claims();
    immature.nbf = Some(now + 60);
    let mut wrong_aud = claims();
    wrong_aud.aud = "elsewhere".into();
    let mut wrong_iss = claims();
    wrong_iss.iss = "someone".into();
    for bad in [expired, immature, wrong_aud, wrong_iss] {
        assert!(is_rejected(&keys, &keys.sign(&bad)?), "{bad:?}");
    }
    // Within the leeway is fine.
    let mut just_expired = claims();
    just_expired.exp = now - 1;
    assert!(keys.verify(&keys.sign(&just_expired)?).is_ok());
    Ok(())
}

#[test]
fn unusable_private_keys_are_refused() {
    for (what, pem) in [
        ("short RSA", RSA_1024),
        ("P-256", EC_P256),
        ("a public key", ED25519_PUBLIC),
        ("an RSA public key", RSA_PUBLIC),
        (
            "garbage",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
        ("not PEM", "hello"),
        (
            "encrypted",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ),
    ] {
        assert!(keys_from(pem).is_err(), "{what} was accepted");
    }
}

fn config() -> Config {
    let mut config = Config::defaults();
    config.jwt_issuer = ISS.into();
    config.jwt_audience = AUD.into();
    config.jwt_secret = None;
    config.jwt_private_key = None;
    config
}

#[test]
fn from_config_takes_a_pem_string_an_escaped_one_or_a_path() -> anyhow::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt-ed25519.pem"
    );
    let escaped = ED25519.trim_end().replace('\n', "\\n");
    let expected = keys_from(ED25519)?.kid().map(str::to_owned);
    for value in [ED25519.to_owned(), escaped, path.to_owned()] {
        let mut config = config();
        config.jwt_private_key = Some(value.clone());
        // The private key wins over a secret.
        config.jwt_secret = Some(String::from_utf8_lossy(SECRET).into_owned());
        let keys = JwtKeys::from_config(&config)?;
        assert_eq!(keys.algorithm(), Algorithm::EdDSA, "{value}");
        assert_eq!(keys.kid().map(str::to_owned), expected);
    }
    Ok(())
}

#[test]
fn from_config_uses_hs256_with_a_secret_and_the_configured_ttl() -> anyhow::Result<()> {
    let mut config = config();
    assert!(
        JwtKeys::from_config(&config).is_err(),
        "neither secret nor key"
    );
    config.jwt_secret = Some(String::from_utf8_lossy(SECRET).into_owned());
    config.jwt_access_ttl_secs = 120;
    let keys = JwtKeys::from_config(&config)?;
    assert_eq!(keys.algorithm(), Algorithm::HS256);
    assert_eq!(keys.access_ttl(), Duration::from_secs(120));
    config.jwt_access_ttl_secs = 0;
    assert!(JwtKeys::from_config(&config).is_err(), "a zero TTL");
    config.jwt_private_key = Some("/nonexistent/key.pem".into());
    assert!(JwtKeys::from_config(&config).is_err(), "a missing key file");
    Ok(())
}

#[test]
fn derived_secrets_depend_on_the_label_and_the_key() -> anyhow::Result<()> {
    let hs = JwtKeys::hs256(SECRET, ISS, AUD, LEEWAY)?;
    let other = JwtKeys::hs256(b"another-secret-another-secret-0123456", ISS, AUD, LEEWAY)?;
    let ed = keys_from(ED25519)?;
    assert_eq!(hs.derive_secret(b"a"), hs.derive_secret(b"a"));
    assert_ne!(hs.derive_secret(b"a"), hs.derive_secret(b"b"));
    assert_ne!(hs.derive_secret(b"a"), other.derive_secret(b"a"));
    assert_ne!(hs.derive_secret(b"a"), ed.derive_secret(b"a"));
    Ok(())
}
