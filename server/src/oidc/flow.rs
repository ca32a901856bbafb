//! What a flow keeps between its start and its callback, and the one-time codes apps exchange
//! for credentials: both in Redis under hashed keys, with a short lifetime, and taken with
//! `GETDEL`, so that each is used at most once (a replayed `state` or code finds nothing).
//! Without Redis no flow starts or ends: there is no fallback that could let one be replayed.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    kv::Redis,
};

/// How long a started flow waits for its callback.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How long an app has to exchange its one-time code.
pub const CODE_TTL: Duration = Duration::from_secs(120);

/// The label of these calls in `redis_errors_total`.
const COMPONENT: &str = "oidc";

/// How the callback hands the result over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The browser gets the session cookies.
    Cookie,
    /// The app at `redirect_to` gets a one-time code for `exchangeOidcCode`.
    Code,
}

/// The signed-in user a linking flow links the identity to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTo {
    pub user: Uuid,
    pub company: Uuid,
    pub session: Uuid,
}

/// A started flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub provider: String,
    pub nonce: String,
    pub code_verifier: String,
    pub redirect_to: String,
    /// Whether the app named `redirect_to` (else it is this server's home page): errors of the
    /// callback go back to it (`?error=`), not as JSON.
    #[serde(default)]
    pub app_return: bool,
    pub mode: Mode,
    pub link: Option<LinkTo>,
}

/// What a one-time code stands for: a user whose sign-in the callback proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: Uuid,
    pub company: Uuid,
    pub role: String,
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `code_challenge` of a verifier (S256, RFC 7636 4.2).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn unavailable(error: impl std::fmt::Display) -> AppError {
    tracing::warn!(%error, "OIDC flow state unavailable");
    AppError::Unavailable("sign-in with a provider needs Redis, which is unavailable; retry".into())
}

/// The flows and codes of one deployment (its Redis key prefix).
#[derive(Clone, Debug)]
pub struct Flows {
    redis: Redis,
    prefix: String,
}

impl Flows {
    pub fn new(redis: Redis, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, kind: &str, secret: &str) -> String {
        format!(
            "{}oidc:{kind}:{}",
            self.prefix,
            hex::encode(Sha256::digest(secret.as_bytes()))
        )
    }

    async fn put(&self, key: String, value: String, ttl: Duration) -> AppResult<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let set: Option<String> = self.redis.cmd(COMPONENT, &cmd).await.map_err(unavailable)?;
        if set.is_none() {
            return Err(AppError::internal(anyhow::anyhow!(
                "a fresh random OIDC key was already taken"
            )));
        }
        Ok(())
    }

    async fn take(&self, key: String) -> AppResult<Option<String>> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(key);
        self.redis.cmd(COMPONENT, &cmd).await.map_err(unavailable)
    }

    /// Stores a started flow under `state`.
    pub async fn start(&self, state: &str, flow: &Flow) -> AppResult<()> {
        let value = serde_json::to_string(flow).map_err(AppError::internal)?;
        self.put(self.key("state", state), value, FLOW_TTL).await
    }

    /// The flow of `state`, once: a second call finds nothing.
    pub async fn finish(&self, state: &str) -> AppResult<Option<Flow>> {
        match self.take(self.key("state", state)).await? {
            Some(value) => Ok(Some(
                serde_json::from_str(&value).map_err(AppError::internal)?,
            )),
            None => Ok(None),
        }
    }

    /// The flow of `state` without taking it (for where to send the browser back when a
    /// callback fails before its own flow is found).
    pub async fn peek(&self, state: &str) -> AppResult<Option<Flow>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key("state", state));
        let value: Option<String> = self.redis.cmd(COMPONENT, &cmd).await.map_err(unavailable)?;
        match value {
            Some(value) => Ok(Some(
                serde_json::from_str(&value).map_err(AppError::internal)?,
            )),
            None => Ok(None),
        }
    }

    /// A new one-time code for `signed_in`.
    pub async fn issue_code(&self, signed_in: &SignedIn) -> AppResult<String> {
        let code = format!("oc_{}", random_token());
        let value = serde_json::to_string(signed_in).map_err(AppError::internal)?;
        self.put(self.key("code", &code), value, CODE_TTL).await?;
        Ok(code)
    }

    /// What a one-time code stands for, once.
    pub async fn redeem_code(&self, code: &str) -> AppResult<Option<SignedIn>> {
        if !code.starts_with("oc_") || code.len() > 100 {
            return Ok(None);
        }
        match self.take(self.key("code", code)).await? {
            Some(value) => Ok(Some(
                serde_json::from_str(&value).map_err(AppError::internal)?,
            )),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_challenge_is_the_verifiers_sha256_in_base64url() {
        // `printf %s "$verifier" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d =`
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r2wW1gFWFOEjXk"),
            "dZrJz5b___3oA5uVny1DZqEO9NM98brdg_f4AEY03Bc"
        );
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
