//! Access tokens: JWTs with a pinned algorithm and required, checked `iss`, `aud`, `sub`, `exp`.
//!
//! HS256 with a shared secret by default; with a private key (Ed25519 or RSA) tokens are signed
//! asymmetrically, carry a `kid` (the key's RFC 7638 thumbprint), and the public key is
//! published as a JWK set.

use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, KeyAlgorithm,
        OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
    },
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::{config::Config, error::AppError};

/// Access-token lifetime when none is configured.
const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(900);

/// Shortest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    /// The user's company id.
    pub company: Uuid,
    /// The user's role in that company.
    pub role: String,
    /// The session the token was issued for.
    pub sid: Uuid,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

/// Keys and validation rules for access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    algorithm: Algorithm,
    /// `kid` of the signing key, asymmetric keys only.
    kid: Option<String>,
    /// The public key, published in the JWK set; asymmetric keys only.
    public_jwk: Option<Jwk>,
    access_ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// The keys the configuration asks for: asymmetric with `JWT_PRIVATE_KEY` when it is set,
    /// else HS256 with `JWT_SECRET`.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let leeway = Duration::from_secs(config.jwt_leeway_secs);
        let (issuer, audience) = (&config.jwt_issuer, &config.jwt_audience);
        let keys = match config.jwt_private_key.as_deref() {
            Some(value) => {
                let pem = read_pem(value)?;
                Self::from_private_pem(pem.as_bytes(), issuer, audience, leeway)
                    .context("JWT_PRIVATE_KEY")?
            }
            None => {
                let secret = config
                    .jwt_secret
                    .as_deref()
                    .context("JWT_SECRET (or JWT_PRIVATE_KEY) is not set")?;
                Self::hs256(secret.as_bytes(), issuer, audience, leeway)?
            }
        };
        anyhow::ensure!(
            config.jwt_access_ttl_secs > 0,
            "JWT_ACCESS_TTL_SECS must be positive"
        );
        Ok(keys.with_access_ttl(Duration::from_secs(config.jwt_access_ttl_secs)))
    }

    /// HS256 keys from a shared secret of at least 32 bytes.
    pub fn hs256(
        secret: &[u8],
        issuer: &str,
        audience: &str,
        leeway: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= 32,
            "JWT_SECRET must be at least 32 bytes long"
        );
        Ok(Self::assemble(
            Algorithm::HS256,
            EncodingKey::from_secret(secret),
            DecodingKey::from_secret(secret),
            None,
            issuer,
            audience,
            leeway,
        ))
    }

    /// Asymmetric keys from a PEM private key: Ed25519 (PKCS#8) signs with EdDSA, RSA (PKCS#1 or
    /// PKCS#8, 2048 bits or more) with RS256.
    pub fn from_private_pem(
        pem: &[u8],
        issuer: &str,
        audience: &str,
        leeway: Duration,
    ) -> anyhow::Result<Self> {
        let text = std::str::from_utf8(pem).context("the key is not PEM text")?;
        if text.contains("ENCRYPTED PRIVATE KEY") {
            bail!("the private key is encrypted; give it unencrypted (and keep the file private)");
        }
        if !text.contains("PRIVATE KEY-----") {
            bail!("expected a PEM private key (-----BEGIN PRIVATE KEY-----)");
        }
        let (algorithm, params, encoding) = if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            (Algorithm::EdDSA, ed25519_public(&key)?, key)
        } else if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, rsa_public(&key)?, key)
        } else {
            bail!("the key is neither Ed25519 (PKCS#8) nor RSA (PKCS#1 or PKCS#8)");
        };
        let mut jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(match algorithm {
                    Algorithm::EdDSA => KeyAlgorithm::EdDSA,
                    _ => KeyAlgorithm::RS256,
                }),
                ..CommonParameters::default()
            },
            algorithm: params,
        };
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_jwk(&jwk).context("build the verifying key")?;
        let keys = Self::assemble(
            algorithm,
            encoding,
            decoding,
            Some((kid, jwk)),
            issuer,
            audience,
            leeway,
        );
        keys.self_check()?;
        Ok(keys)
    }

    fn assemble(
        algorithm: Algorithm,
        encoding: EncodingKey,
        decoding: DecodingKey,
        public: Option<(String, Jwk)>,
        issuer: &str,
        audience: &str,
        leeway: Duration,
    ) -> Self {
        // jsonwebtoken's defaults are looser than ours: 60 s leeway, and `aud`/`iss` only
        // checked when present. Pin everything, the algorithm above all: a token is checked
        // with exactly the one algorithm our key is for, whatever its header says.
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let (kid, public_jwk) = match public {
            Some((kid, jwk)) => (Some(kid), Some(jwk)),
            None => (None, None),
        };
        Self {
            encoding,
            decoding,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            algorithm,
            kid,
            public_jwk,
            access_ttl: DEFAULT_ACCESS_TTL,
        }
    }

    /// The same keys with another access-token lifetime.
    pub fn with_access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Signs and verifies a throwaway token, so a key that cannot do both fails at start-up.
    fn self_check(&self) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = AccessClaims {
            sub: Uuid::nil(),
            company: Uuid::nil(),
            role: String::new(),
            sid: Uuid::nil(),
            iat: now,
            nbf: None,
            exp: now + 60,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let token = self.sign(&claims).context("sign a test token")?;
        self.verify(&token)
            .map_err(|_| anyhow::anyhow!("a token signed with the key does not verify"))?;
        Ok(())
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The one algorithm tokens are signed and accepted with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// `kid` of the signing key (asymmetric keys only).
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// How long an access token is valid.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// The public keys as a JWK set (`{"keys": [...]}`); empty for HS256, whose key is secret.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .public_jwk
            .iter()
            .filter_map(|jwk| serde_json::to_value(jwk).ok())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// A 32-byte secret derived from the signing key for another purpose named by `label`
    /// (e.g. refresh-token derivation): from the HS256 secret, or from the private key.
    pub fn derive_secret(&self, label: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"jwt-keys-derive\0");
        hasher.update((label.len() as u64).to_be_bytes());
        hasher.update(label);
        hasher.update(self.encoding.inner());
        hasher.finalize().into()
    }

    /// Signs claims.
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = self.kid.clone();
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Checks a token: signature with the pinned algorithm, `exp`, `nbf`, `iss`, `aud`, `sub`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AppError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match error.kind() {
                    ErrorKind::ExpiredSignature => "the access token has expired",
                    ErrorKind::ImmatureSignature => "the access token is not valid yet",
                    ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => {
                        "the access token was not issued for this server"
                    }
                    _ => "the access token is invalid",
                };
                tracing::debug!(%error, "access token rejected");
                AppError::Unauthenticated(reason.into())
            })
    }
}

/// `JWT_PRIVATE_KEY` is the PEM itself or the path of a PEM file. Environment files often
/// carry a PEM on one line with `\n` escapes; those are turned back into newlines.
fn read_pem(value: &str) -> anyhow::Result<String> {
    let text = if value.contains("-----BEGIN") {
        value.to_owned()
    } else {
        std::fs::read_to_string(value.trim())
            .with_context(|| format!("read the key file {}", value.trim()))?
    };
    if !text.contains('\n') && text.contains("\\n") {
        return Ok(text.replace("\\n", "\n"));
    }
    Ok(text)
}

/// The JWK parameters of an Ed25519 key's public half.
fn ed25519_public(key: &EncodingKey) -> anyhow::Result<AlgorithmParameters> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let signing = ed25519_dalek::SigningKey::from_pkcs8_der(key.inner())
        .map_err(|_| anyhow::anyhow!("invalid Ed25519 private key"))?;
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
    Ok(AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
        key_type: OctetKeyPairType::OctetKeyPair,
        curve: EllipticCurve::Ed25519,
        x,
    }))
}

/// The JWK parameters of an RSA key's public half; short keys are refused.
fn rsa_public(key: &EncodingKey) -> anyhow::Result<AlgorithmParameters> {
    let jwk = Jwk::from_encoding_key(key, Algorithm::RS256)
        .map_err(|_| anyhow::anyhow!("invalid RSA private key"))?;
    let AlgorithmParameters::RSA(params) = jwk.algorithm else {
        bail!("invalid RSA private key");
    };
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&params.n)
        .context("RSA modulus")?;
    let bits = modulus.len() * 8;
    anyhow::ensure!(
        bits >= MIN_RSA_BITS,
        "the RSA key has {bits} bits; use {MIN_RSA_BITS} or more"
    );
    Ok(AlgorithmParameters::RSA(params))
}

#[cfg(test)]
mod tests;
