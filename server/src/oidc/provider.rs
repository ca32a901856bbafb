//! One provider at run time: its discovery document (read once, on first use), its keys (the
//! JWKS, cached, fetched again when an ID token names a key it does not hold, at most once
//! per `OIDC_JWKS_REFRESH_INTERVAL_MS`), the token request, and the ID token's validation.
//!
//! The ID token is checked as OpenID Connect Core 3.1.3.7 says: its signature by a key of the
//! provider's JWKS with the algorithm pinned to what the provider advertises for ID tokens and
//! what the key says of itself (never `none`, never a shared-secret HMAC), `iss`, `aud` (with
//! `azp` when it names several audiences), `exp` and `iat` within a small leeway, and the
//! `nonce` of the flow.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};
use subtle::ConstantTimeEq as _;

use base64::Engine as _;
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse},
};
use serde::Deserialize;
use serde_json::Value;

use super::ProviderConfig;
use crate::error::{AppError, AppResult};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
const LEEWAY_SECS: u64 = 60;

/// The parts of the discovery document the server uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// The cached key set and when it was fetched.
struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// A provider: its configuration, discovery document and keys.
pub struct Provider {
    pub config: ProviderConfig,
    http: reqwest::Client,
    discovery: tokio::sync::OnceCell<Discovery>,
    keys: Mutex<Option<Keys>>,
    /// Held while the JWKS is being fetched: one fetch serves every waiting sign-in.
    fetching: tokio::sync::Mutex<()>,
    refresh_interval: Duration,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.config.name)
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// Who the provider says signed in, from a validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    /// The address, when the provider asserted one.
    pub email: Option<String>,
    /// Whether the provider says the address is verified.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// The claims of an ID token the server reads (the signature and the registered claims are
/// checked by `jsonwebtoken` first).
#[derive(Debug, Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    aud: Audience,
    #[serde(default)]
    azp: Option<String>,
    iat: Option<u64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Value>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn all(&self) -> Vec<&str> {
        match self {
            Self::One(one) => vec![one.as_str()],
            Self::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

fn rejected(why: impl Into<String>) -> AppError {
    AppError::Unauthenticated(format!("the ID token was refused: {}", why.into()))
}

fn unreachable_provider(name: &str, error: impl std::fmt::Display) -> AppError {
    tracing::warn!(provider = name, %error, "OIDC provider unreachable or answering nonsense");
    AppError::Unavailable(format!(
        "the sign-in provider {name} cannot be reached; retry later"
    ))
}

/// The asymmetric algorithms an ID token may be signed with here.
fn asymmetric(name: &str) -> Option<Algorithm> {
    let alg: Algorithm = name.parse().ok()?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
        other => Some(other),
    }
}

/// Whether key `jwk` may verify a token of `alg`: a public signing key, of the algorithm it
/// names (if it names one), of a family that fits.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return false;
    }
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return false;
    }
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg.to_string() != format!("{alg:?}")
    {
        return false;
    }
    true
}

/// Whether a key set fetched at `fetched` may be fetched again now (a token named a key it
/// does not hold).
pub fn may_refresh(fetched: Instant, now: Instant, interval: Duration) -> bool {
    now.saturating_duration_since(fetched) >= interval
}

impl Provider {
    pub fn new(config: ProviderConfig, http: reqwest::Client, refresh_interval: Duration) -> Self {
        Self {
            config,
            http,
            discovery: tokio::sync::OnceCell::new(),
            keys: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            refresh_interval,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The discovery document, read on first use (a failed read is tried again next time).
    pub async fn discovery(&self) -> AppResult<&Discovery> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let document: Discovery = self
                    .get_json(&url)
                    .await
                    .map_err(|e| unreachable_provider(self.name(), e))?;
                // OpenID Connect Discovery 4.3: the document's issuer is the configured one.
                if document.issuer != self.config.issuer {
                    return Err(unreachable_provider(
                        self.name(),
                        format!(
                            "the discovery document names issuer {:?}, not {:?}",
                            document.issuer, self.config.issuer
                        ),
                    ));
                }
                Ok(document)
            })
            .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    /// The algorithms ID tokens may be signed with: those the provider advertises, asymmetric
    /// only (RS256, the default of OpenID Connect, when it advertises none).
    fn algorithms(discovery: &Discovery) -> Vec<Algorithm> {
        if discovery.id_token_signing_alg_values_supported.is_empty() {
            return vec![Algorithm::RS256];
        }
        discovery
            .id_token_signing_alg_values_supported
            .iter()
            .map(String::as_str)
            .filter_map(asymmetric)
            .collect()
    }

    fn cached_key(&self, kid: Option<&str>, alg: Algorithm) -> (Option<Jwk>, Option<Instant>) {
        let keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(keys) = keys.as_ref() else {
            return (None, None);
        };
        let found = match kid {
            Some(kid) => keys.set.find(kid).cloned(),
            // No key id: only a set with exactly one fitting key says which one.
            None => {
                let fitting: Vec<&Jwk> =
                    keys.set.keys.iter().filter(|k| key_fits(k, alg)).collect();
                match fitting.as_slice() {
                    [one] => Some((*one).clone()),
                    _ => None,
                }
            }
        };
        (found, Some(keys.fetched))
    }

    /// The key named `kid`: from the cache, else from a fresh JWKS when the cache is older
    /// than the refresh interval (or empty).
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> AppResult<Jwk> {
        if let (Some(jwk), _) = self.cached_key(kid, alg) {
            return Ok(jwk);
        }
        let _fetching = self.fetching.lock().await;
        // Another sign-in may have fetched it meanwhile.
        let (found, fetched) = self.cached_key(kid, alg);
        if let Some(jwk) = found {
            return Ok(jwk);
        }
        if let Some(fetched) = fetched
            && !may_refresh(fetched, Instant::now(), self.refresh_interval)
        {
            return Err(rejected(
                "it is signed with a key the provider does not list",
            ));
        }
        let jwks_uri = self.discovery().await?.jwks_uri.clone();
        let set: JwkSet = self
            .get_json(&jwks_uri)
            .await
            .map_err(|e| unreachable_provider(self.name(), e))?;
        tracing::info!(
            provider = self.name(),
            keys = set.keys.len(),
            "OIDC provider keys fetched"
        );
        *self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Keys {
            set,
            fetched: Instant::now(),
        });
        match self.cached_key(kid, alg) {
            (Some(jwk), _) => Ok(jwk),
            _ => Err(rejected(
                "it is signed with a key the provider does not list",
            )),
        }
    }

    /// The URL the browser goes to: the provider's authorization endpoint with the request.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> AppResult<String> {
        let discovery = self.discovery().await?;
        let mut url = reqwest::Url::parse(&discovery.authorization_endpoint)
            .map_err(|e| unreachable_provider(self.name(), e))?;
        let mut scopes: Vec<&str> = vec!["openid"];
        scopes.extend(
            self.config
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| *s != "openid"),
        );
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.to_string())
    }

    /// Exchanges an authorization code at the token endpoint; the ID token it answers.
    pub async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> AppResult<String> {
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let discovery = self.discovery().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        // A public client (a company's provider set without a secret) proves itself by PKCE
        // alone and names itself in the form (RFC 6749 3.2.1).
        let public = self.config.client_secret.is_empty();
        let basic = !public && discovery.token_endpoint_auth_methods_supported.is_empty()
            || discovery
                .token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_basic");
        let request = self.http.post(&discovery.token_endpoint);
        let request = if basic {
            // RFC 6749 2.3.1: both form-encoded before they are joined.
            let encode = |s: &str| {
                serde_urlencoded::to_string([("", s)])
                    .map(|pair| pair.trim_start_matches('=').to_owned())
                    .unwrap_or_default()
            };
            let credentials = format!(
                "{}:{}",
                encode(&self.config.client_id),
                encode(&self.config.client_secret)
            );
            request
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(credentials)
                    ),
                )
                .form(&form)
        } else {
            let mut with_secret = form.to_vec();
            with_secret.push(("client_id", self.config.client_id.as_str()));
            if !public {
                with_secret.push(("client_secret", self.config.client_secret.as_str()));
            }
            request.form(&with_secret)
        };
        let response = request
            .send()
            .await
            .map_err(|e| unreachable_provider(self.name(), e))?;
        let status = response.status();
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| unreachable_provider(self.name(), e))?;
        if let Some(error) = body.error.filter(|_| !status.is_success()) {
            return Err(AppError::Unauthenticated(format!(
                "the provider refused the authorization code: {error}{}",
                body.error_description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )));
        }
        if !status.is_success() {
            return Err(unreachable_provider(
                self.name(),
                format!("token endpoint answered {status}"),
            ));
        }
        body.id_token
            .ok_or_else(|| rejected("the token response holds no ID token"))
    }

    /// Validates an ID token for this provider's client and the flow's `nonce`.
    pub async fn verify(&self, id_token: &str, nonce: &str) -> AppResult<VerifiedIdentity> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| rejected("it is not a signed JWT of a supported algorithm"))?;
        let discovery = self.discovery().await?;
        let allowed = Self::algorithms(discovery);
        if !allowed.contains(&header.alg) {
            return Err(rejected(format!(
                "it is signed with {:?}, which the provider does not use for ID tokens",
                header.alg
            )));
        }
        let jwk = self.key(header.kid.as_deref(), header.alg).await?;
        if !key_fits(&jwk, header.alg) {
            return Err(rejected("its key does not sign with that algorithm"));
        }
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|_| rejected("the provider's key is unusable"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => rejected("it has expired"),
                ErrorKind::InvalidAudience => rejected("it is meant for another client"),
                ErrorKind::InvalidIssuer => rejected("another issuer made it"),
                ErrorKind::InvalidSignature => rejected("its signature does not verify"),
                ErrorKind::ImmatureSignature => rejected("it is not valid yet"),
                ErrorKind::MissingRequiredClaim(claim) => {
                    rejected(format!("it lacks the `{claim}` claim"))
                }
                _ => rejected("it is malformed"),
            }
        })?;
        let claims = data.claims;
        let audiences = claims.aud.all();
        if audiences.len() > 1 && claims.azp.as_deref() != Some(self.config.client_id.as_str()) {
            return Err(rejected(
                "it names several audiences and its authorized party is not this client",
            ));
        }
        if let Some(azp) = &claims.azp
            && *azp != self.config.client_id
        {
            return Err(rejected("its authorized party is another client"));
        }
        let now = jsonwebtoken::get_current_timestamp();
        match claims.iat {
            None => return Err(rejected("it lacks the `iat` claim")),
            Some(iat) if iat > now + LEEWAY_SECS => {
                return Err(rejected("it was issued in the future"));
            }
            Some(_) => {}
        }
        let nonce_matches = claims
            .nonce
            .as_deref()
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
        if !nonce_matches {
            return Err(rejected("its nonce is not the one of this sign-in"));
        }
        let email_verified = match claims.email_verified {
            Some(Value::Bool(verified)) => verified,
            // Some providers send the boolean as a string.
            Some(Value::String(text)) => text == "true",
            _ => false,
        };
        Ok(VerifiedIdentity {
            issuer: claims.iss,
            subject: claims.sub,
            email: claims
                .email
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty()),
            email_verified,
            name: claims
                .name
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        assert_eq!(asymmetric("RS256"), Some(Algorithm::RS256));
        assert_eq!(asymmetric("ES256"), Some(Algorithm::ES256));
        assert_eq!(asymmetric("EdDSA"), Some(Algorithm::EdDSA));
        assert_eq!(asymmetric("HS256"), None);
        assert_eq!(asymmetric("none"), None);
        let discovery = |algs: &[&str]| Discovery {
            issuer: String::new(),
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            id_token_signing_alg_values_supported: algs.iter().map(|s| (*s).to_owned()).collect(),
            token_endpoint_auth_methods_supported: Vec::new(),
            code_challenge_methods_supported: Vec::new(),
        };
        assert_eq!(
            Provider::algorithms(&discovery(&["none", "HS256", "RS256"])),
            vec![Algorithm::RS256]
        );
        assert_eq!(
            Provider::algorithms(&discovery(&[])),
            vec![Algorithm::RS256]
        );
    }

    #[test]
    fn a_key_fits_only_its_own_algorithm_and_use() {
        let jwk = |extra: &str| -> Jwk {
            let text = format!(r#"{{"kty":"RSA","n":"AQAB","e":"AQAB"{extra}}}"#);
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(key_fits(&jwk(""), Algorithm::RS256));
        assert!(key_fits(
            &jwk(r#","alg":"RS256","use":"sig""#),
            Algorithm::RS256
        ));
        assert!(!key_fits(&jwk(r#","alg":"RS256""#), Algorithm::PS256));
        assert!(!key_fits(&jwk(r#","use":"enc""#), Algorithm::RS256));
        let secret: Jwk = serde_json::from_str(r#"{"kty":"oct","k":"c2VjcmV0"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!key_fits(&secret, Algorithm::RS256));
    }

    #[test]
    fn keys_are_fetched_again_at_most_once_per_interval() {
        let fetched = Instant::now();
        let interval = Duration::from_secs(10);
        assert!(!may_refresh(
            fetched,
            fetched + Duration::from_secs(3),
            interval
        ));
        assert!(may_refresh(
            fetched,
            fetched + Duration::from_secs(10),
            interval
        ));
        assert!(may_refresh(fetched, fetched, Duration::ZERO));
    }
}
