//! OpenID providers of a company, configured by its admins (`company_oidc_providers`, see
//! `crate::services::company_oidc`): each is addressed in the sign-in URLs by its public key
//! `<company id>.<name>` (`/auth/oidc/{key}/start`), which the flow resolves without a caller
//! through `app.company_oidc_provider` (it answers what the flow needs, never the secret). The
//! client secret is read sealed through `app.company_oidc_client_secret` (as `app_worker`: no
//! request role reads the sealed column) and opened in memory.
//!
//! One [`Provider`] (its discovery document and key set cached) is kept per company provider for
//! as long as its row does not change: any change of the row (its `updated_at`) makes a new one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use uuid::Uuid;

use super::{Provider, ProviderConfig, default_scopes};
use crate::{
    db::{DatabaseConnection, functions as sql},
    error::{AppError, AppResult},
    secrets::{COMPANY_OIDC_CLIENT_SECRET, Secrets, row_aad},
};

/// Providers kept; beyond it the cache starts afresh.
const CACHE_LIMIT: usize = 1024;

/// Longest name of a company's provider.
pub const MAX_NAME: usize = 40;

/// The public key of provider `name` of `company`: its part of the sign-in URLs.
pub fn key(company: Uuid, name: &str) -> String {
    format!("{company}.{name}")
}

/// Whether `name` may name a company's provider: 1 to 40 of `a-z 0-9 _ -`, starting with a
/// letter or digit (as the table's CHECK says).
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The company and name a public key stands for (server-wide provider names hold no `.`).
pub fn parse_key(key: &str) -> Option<(Uuid, &str)> {
    let (company, name) = key.split_once('.')?;
    let company = Uuid::try_parse(company).ok()?;
    valid_name(name).then_some((company, name))
}

/// The associated data a provider's client secret is sealed with: its company and its row.
pub fn client_secret_aad(company: Uuid, id: Uuid) -> Vec<u8> {
    row_aad(company, id)
}

/// A provider and the row it was made from.
struct Made {
    row: sql::CompanyOidcProvider,
    provider: Arc<Provider>,
}

/// The providers of companies, made on first use.
pub struct CompanyProviders {
    http: reqwest::Client,
    refresh: Duration,
    made: Mutex<HashMap<(Uuid, String), Made>>,
}

impl std::fmt::Debug for CompanyProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompanyProviders").finish_non_exhaustive()
    }
}

impl CompanyProviders {
    pub fn new(http: reqwest::Client, refresh: Duration) -> Self {
        Self {
            http,
            refresh,
            made: Mutex::new(HashMap::new()),
        }
    }

    fn cached(
        &self,
        company: Uuid,
        name: &str,
    ) -> Option<(sql::CompanyOidcProvider, Arc<Provider>)> {
        let made = self.made.lock().ok()?;
        made.get(&(company, name.to_owned()))
            .map(|m| (m.row.clone(), m.provider.clone()))
    }

    fn forget(&self, company: Uuid, name: &str) {
        if let Ok(mut made) = self.made.lock() {
            made.remove(&(company, name.to_owned()));
        }
    }

    /// Provider `name` of `company`, if the company has one. A client secret that cannot be
    /// opened (no or another SECRETS_KEYS, a value copied from elsewhere) is `UNAVAILABLE` with
    /// the reason: the flow never goes on without it.
    pub async fn resolve(
        &self,
        db: &DatabaseConnection,
        secrets: &Secrets,
        company: Uuid,
        name: &str,
    ) -> AppResult<Option<Arc<Provider>>> {
        let Some(row) = sql::company_oidc_provider(db, company, name).await? else {
            self.forget(company, name);
            return Ok(None);
        };
        if let Some((cached, provider)) = self.cached(company, name)
            && cached == row
        {
            return Ok(Some(provider));
        }
        let client_secret = match sql::company_oidc_client_secret(db, company, row.id).await? {
            None => String::new(),
            Some(sealed) => secrets
                .open_string(
                    COMPANY_OIDC_CLIENT_SECRET,
                    &client_secret_aad(company, row.id),
                    &sealed,
                )
                .map_err(|error| {
                    tracing::warn!(%error, %company, provider = name,
                        "the client secret of a company's OpenID provider cannot be opened");
                    AppError::Unavailable(format!(
                        "the client secret of this sign-in provider cannot be used: {error}"
                    ))
                })?
                .to_string(),
        };
        let config = ProviderConfig {
            name: key(company, name),
            issuer: row.issuer.clone(),
            client_id: row.client_id.clone(),
            client_secret,
            scopes: default_scopes(),
            company_id: Some(company),
            role: row.role.clone(),
            allowed_domains: row.allowed_domains.clone(),
            link_verified_email: row.link_verified_email,
            owner: Some(row.id),
        };
        let provider = Arc::new(Provider::new(config, self.http.clone(), self.refresh));
        if let Ok(mut made) = self.made.lock() {
            if made.len() >= CACHE_LIMIT {
                made.clear();
            }
            made.insert(
                (company, name.to_owned()),
                Made {
                    row,
                    provider: provider.clone(),
                },
            );
        }
        Ok(Some(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_a_company_and_a_valid_name() {
        let company = Uuid::now_v7();
        let k = key(company, "google");
        assert_eq!(parse_key(&k), Some((company, "google")));
        assert_eq!(parse_key("google"), None, "server-wide names hold no dot");
        assert_eq!(parse_key("not-a-uuid.google"), None);
        assert_eq!(parse_key(&format!("{company}.Google")), None);
        assert_eq!(parse_key(&format!("{company}.a.b")), None);
        assert_eq!(parse_key(&format!("{company}.")), None);
        assert!(valid_name("azure-ad_2"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(&"x".repeat(MAX_NAME + 1)));
    }
}
