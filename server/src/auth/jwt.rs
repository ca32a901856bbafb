//! Access tokens: JWTs with a pinned algorithm and required, checked `iss`, `aud`, `sub`, `exp`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppError;

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
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
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
        let algorithm = Algorithm::HS256;
        // jsonwebtoken's defaults are looser than ours: 60 s leeway, and `aud`/`iss` only
        // checked when present. Pin everything.
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            algorithm,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs claims.
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            claims,
            &self.encoding,
        )?)
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
