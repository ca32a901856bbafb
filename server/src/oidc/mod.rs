//! OpenID Connect sign-in: the providers configured for the server (`OIDC_PROVIDERS`,
//! `OIDC_PROVIDERS_FILE`) and by a company's admins ([`company`]), their discovery documents
//! and keys ([`provider`]), the state of a
//! flow between its start and its callback, and the one-time codes apps exchange for
//! credentials ([`flow`]).
//!
//! The protocol is written on `reqwest` and `jsonwebtoken`, both already dependencies: the
//! server needs the authorization code flow with PKCE and ID-token validation only, which is
//! a few hundred lines on top of them, against a full OAuth2/OIDC client stack (the
//! `openidconnect` crate and its own HTTP and crypto dependencies) that would double the
//! server's dependency tree for the same checks.

pub mod company;
pub mod flow;
pub mod provider;

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use serde::Deserialize;
use uuid::Uuid;

pub use provider::{Provider, VerifiedIdentity};

use crate::{caller::RoleName, config::Config};

/// One provider as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The name in the URLs (`/auth/oidc/{name}/start`): letters, digits, `-` and `_`.
    pub name: String,
    /// The issuer: its `/.well-known/openid-configuration` is read, and must name it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Scopes asked for; `openid` is always among them.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The company new users join (with `role`); none: a first sign-in creates a company of
    /// its own, whose admin the new user is, as `signUp` does.
    #[serde(default)]
    pub company_id: Option<Uuid>,
    /// The role of new members of `company_id`.
    #[serde(default = "default_role")]
    pub role: String,
    /// E-mail domains whose addresses may sign in for the first time; empty: any.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Whether a first sign-in whose verified address is that of an existing account (of
    /// `company_id`, when set) links to that account. Off by default: the account's owner
    /// links the provider while signed in instead.
    #[serde(default)]
    pub link_verified_email: bool,
    /// The row of `company_oidc_providers` of a provider a company's admins configured (of
    /// company `company_id`); none for the server's own. Never read from the configuration.
    #[serde(skip)]
    pub owner: Option<Uuid>,
}

pub(crate) fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(str::to_owned).to_vec()
}

fn default_role() -> String {
    "member".to_owned()
}

impl ProviderConfig {
    /// Whether `email`'s domain may sign in for the first time.
    pub fn allows_domain(&self, email: &str) -> bool {
        if self.allowed_domains.is_empty() {
            return true;
        }
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.allowed_domains
            .iter()
            .any(|allowed| allowed.trim().eq_ignore_ascii_case(domain))
    }

    fn check(&self) -> anyhow::Result<()> {
        let name = &self.name;
        anyhow::ensure!(
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "OIDC provider name {name:?}: use 1 to 64 letters, digits, `-` or `_`"
        );
        let issuer = reqwest::Url::parse(&self.issuer)
            .with_context(|| format!("OIDC provider {name}: issuer is not a URL"))?;
        anyhow::ensure!(
            issuer.scheme() == "https" || is_loopback(&issuer),
            "OIDC provider {name}: the issuer must be https (plain http only on loopback)"
        );
        anyhow::ensure!(
            !self.client_id.is_empty() && !self.client_secret.is_empty(),
            "OIDC provider {name}: client_id and client_secret are required"
        );
        self.role
            .parse::<RoleName>()
            .map_err(|e| anyhow::anyhow!("OIDC provider {name}: role: {e}"))?;
        Ok(())
    }
}

/// Whether a URL's host is this machine (where plain http is allowed, for development).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses the providers of OIDC_PROVIDERS and OIDC_PROVIDERS_FILE.
pub fn configured(config: &Config) -> anyhow::Result<Vec<ProviderConfig>> {
    let mut providers: Vec<ProviderConfig> = Vec::new();
    if let Some(json) = config
        .oidc_providers
        .as_deref()
        .filter(|j| !j.trim().is_empty())
    {
        providers.extend(
            serde_json::from_str::<Vec<ProviderConfig>>(json)
                .context("OIDC_PROVIDERS is not a JSON array of providers")?,
        );
    }
    if let Some(path) = &config.oidc_providers_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read OIDC_PROVIDERS_FILE {}", path.display()))?;
        providers.extend(
            serde_json::from_str::<Vec<ProviderConfig>>(&text)
                .with_context(|| format!("{} is not a JSON array of providers", path.display()))?,
        );
    }
    let mut seen = std::collections::HashSet::new();
    for provider in &providers {
        provider.check()?;
        anyhow::ensure!(
            seen.insert(provider.name.clone()),
            "OIDC provider {} is configured twice",
            provider.name
        );
    }
    Ok(providers)
}

/// The configured providers, by name, and those of companies. Cheap to clone.
#[derive(Clone)]
pub struct Oidc {
    providers: Arc<HashMap<String, Arc<Provider>>>,
    /// The names, in configuration order.
    names: Arc<Vec<String>>,
    companies: Arc<company::CompanyProviders>,
}

impl Default for Oidc {
    fn default() -> Self {
        Self {
            providers: Arc::default(),
            names: Arc::default(),
            companies: Arc::new(company::CompanyProviders::new(
                reqwest::Client::new(),
                Duration::from_secs(10),
            )),
        }
    }
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("providers", &self.names)
            .finish()
    }
}

impl Oidc {
    /// The providers of `config`; their discovery documents are read on first use.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("build the OIDC HTTP client")?;
        let refresh = Duration::from_millis(config.oidc_jwks_refresh_interval_ms);
        let mut providers = HashMap::new();
        let mut names = Vec::new();
        for provider in configured(config)? {
            names.push(provider.name.clone());
            providers.insert(
                provider.name.clone(),
                Arc::new(Provider::new(provider, http.clone(), refresh)),
            );
        }
        Ok(Self {
            providers: Arc::new(providers),
            names: Arc::new(names),
            companies: Arc::new(company::CompanyProviders::new(http, refresh)),
        })
    }

    /// The provider a sign-in URL names: a server-wide one by its name, else a company's by
    /// its key `<company id>.<name>`; `NOT_FOUND` when there is none.
    pub async fn resolve(
        &self,
        db: &crate::db::DatabaseConnection,
        secrets: &crate::secrets::Secrets,
        key: &str,
    ) -> crate::error::AppResult<Arc<Provider>> {
        let not_found = || crate::error::AppError::NotFound(format!("no sign-in provider {key}"));
        if let Some(provider) = self.get(key) {
            return Ok(provider.clone());
        }
        let Some((company, name)) = company::parse_key(key) else {
            return Err(not_found());
        };
        self.companies
            .resolve(db, secrets, company, name)
            .await?
            .ok_or_else(not_found)
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.get(name)
    }

    /// Every provider, in configuration order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.names.iter().filter_map(|n| self.providers.get(n))
    }
}

/// Where this server is reached for its callbacks: `OIDC_CALLBACK_BASE_URL`, else
/// `PUBLIC_URL`, else the bind address; without a trailing slash.
pub fn callback_base(config: &crate::config::Config) -> String {
    config
        .oidc_callback_base_url
        .clone()
        .or_else(|| config.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", config.bind_addr))
        .trim_end_matches('/')
        .to_owned()
}

/// The redirect URI registered at the provider.
pub fn callback_url(config: &crate::config::Config, provider: &str) -> String {
    format!("{}/auth/oidc/{provider}/callback", callback_base(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(json: &str) -> anyhow::Result<ProviderConfig> {
        let p: ProviderConfig = serde_json::from_str(json)?;
        p.check()?;
        Ok(p)
    }

    #[test]
    fn providers_are_checked_when_configured() {
        let ok = provider(
            r#"{"name":"google","issuer":"https://accounts.google.com","client_id":"c","client_secret":"s"}"#,
        );
        assert!(ok.is_ok_and(|p| p.scopes == ["openid", "email", "profile"]
            && p.role == "member"
            && !p.link_verified_email));
        let plain = provider(
            r#"{"name":"x","issuer":"http://idp.example.com","client_id":"c","client_secret":"s"}"#,
        );
        assert!(plain.is_err_and(|e| e.to_string().contains("must be https")));
        let local = provider(
            r#"{"name":"x","issuer":"http://127.0.0.1:8080","client_id":"c","client_secret":"s"}"#,
        );
        assert!(local.is_ok());
        let name = provider(
            r#"{"name":"a/b","issuer":"https://idp.example.com","client_id":"c","client_secret":"s"}"#,
        );
        assert!(name.is_err());
        let unknown = provider(
            r#"{"name":"x","issuer":"https://idp.example.com","client_id":"c","client_secret":"s","secret":"typo"}"#,
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn allowed_domains_match_the_whole_domain() {
        let p = provider(
            r#"{"name":"x","issuer":"https://idp.example.com","client_id":"c","client_secret":"s","allowed_domains":["example.com"]}"#,
        );
        let Ok(p) = p else {
            panic!("valid provider refused");
        };
        assert!(p.allows_domain("ann@example.com"));
        assert!(p.allows_domain("ann@EXAMPLE.com"));
        assert!(!p.allows_domain("ann@evil-example.com"));
        assert!(!p.allows_domain("ann@example.com.evil.org"));
        assert!(!p.allows_domain("no-at-sign"));
    }
}
