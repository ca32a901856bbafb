//! A company's own LLM provider: an admin sets a base URL, a model and an API key for the
//! company (`company_llm_providers`, the key sealed by `crate::secrets`), and that company's
//! replies stream from it; every other company's from the server's default (`LLM_BASE_URL`).
//!
//! [`CompanyProviders::resolve`] is the one place a generation asks which provider answers a
//! company: it reads the company's row through `app.company_llm_provider` (as `app_worker`: no
//! request role reads the sealed key), opens the key in memory, and keeps one client per
//! company for as long as its row does not change.
//!
//! # Which base URLs are accepted
//!
//! A company's base URL makes this server send requests, with the company's key, wherever it
//! points: left open, an admin could aim it at the server's own network (SSRF). So
//! [`validate_base_url`] accepts only
//!
//! - `https://host[:port][/path]`, any host;
//! - `http://` only as `COMPANY_LLM_HTTP` allows: `never` (the default), `loopback` (hosts
//!   `localhost`, `127.0.0.0/8`, `::1`: a model server on the same machine), or `any`
//!   (private networks you trust);
//!
//! and never user info (`user:password@`), a query or a fragment. Redirects are not followed
//! for company providers (a redirect could lead anywhere the rule forbids), and their
//! failures do not count against the circuit breaker of the default provider.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use uuid::Uuid;

use super::{LlmError, OpenAiClient, OpenAiSettings, Provider};
pub use crate::config::HttpRule;
use crate::{
    config::Config,
    db::DatabaseConnection,
    db::functions as sql,
    secrets::{Purpose, Secrets, row_aad},
};

/// The purpose a company's LLM API key is sealed for.
pub const API_KEY: Purpose = crate::secrets::COMPANY_LLM_API_KEY;

/// Longest base URL accepted, in characters.
pub const MAX_BASE_URL: usize = 2000;

/// Companies whose clients are kept; beyond it the cache starts afresh.
const CACHE_LIMIT: usize = 1024;

/// The associated data of a company's key: the company (its row is the company's).
pub fn api_key_aad(company: Uuid) -> Vec<u8> {
    row_aad(company, company)
}

/// Checks a company's base URL against the rule above; the URL to store (without a trailing
/// `/`), or why not.
pub fn validate_base_url(text: &str, http: HttpRule) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_BASE_URL {
        return Err(format!(
            "the base URL must have 1 to {MAX_BASE_URL} characters"
        ));
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the base URL may not hold a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the base URL may not have a query or a fragment".into());
    }
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err("the base URL must use https://".into()),
    };
    let Some(host) = url.host() else {
        return Err("the base URL has no host".into());
    };
    if !https {
        let loopback = match host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
            url::Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
        };
        let allowed = match http {
            HttpRule::Never => false,
            HttpRule::Loopback => loopback,
            HttpRule::Any => true,
        };
        if !allowed {
            return Err(match http {
                HttpRule::Never => "the base URL must use https://".into(),
                _ => "the base URL must use https:// (http:// only to loopback hosts)".into(),
            });
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A company's client and the row it was made from: a changed row makes a new client.
struct Made {
    row: sql::CompanyLlmProvider,
    provider: Arc<dyn Provider>,
}

/// The providers of the companies that have their own, and the server's default.
pub struct CompanyProviders {
    default: Arc<dyn Provider>,
    secrets: Secrets,
    connect_timeout: Duration,
    first_token_timeout: Duration,
    idle_timeout: Duration,
    max_retries: u32,
    clients: Mutex<HashMap<Uuid, Made>>,
}

/// What answers a company's replies.
#[derive(Clone)]
pub struct Resolved {
    pub provider: Arc<dyn Provider>,
    /// Whether it is the server's default provider (whose failures the breaker counts).
    pub is_default: bool,
}

impl CompanyProviders {
    pub fn new(config: &Config, default: Arc<dyn Provider>, secrets: Secrets) -> Self {
        Self {
            default,
            secrets,
            connect_timeout: Duration::from_millis(config.llm_connect_timeout_ms),
            first_token_timeout: Duration::from_millis(config.llm_first_token_timeout_ms),
            idle_timeout: Duration::from_millis(config.llm_idle_timeout_ms),
            max_retries: config.llm_max_retries,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The server's default provider.
    pub fn default_provider(&self) -> &Arc<dyn Provider> {
        &self.default
    }

    /// The provider that answers `company`: its own when it set one, else the default. A key
    /// that cannot be opened (no or another `SECRETS_KEYS`, a value copied from elsewhere)
    /// fails the reply with a clear reason, never falls back to the default.
    pub async fn resolve(
        &self,
        db: &DatabaseConnection,
        company: Uuid,
    ) -> Result<Resolved, LlmError> {
        let row = sql::company_llm_provider(db, company)
            .await
            .map_err(|error| {
                tracing::warn!(%error, %company, "could not read the company's LLM provider");
                LlmError::Misconfigured(
                    "the company's AI provider settings could not be read".into(),
                )
            })?;
        let Some(row) = row else {
            if let Ok(mut clients) = self.clients.lock() {
                clients.remove(&company);
            }
            return Ok(Resolved {
                provider: self.default.clone(),
                is_default: true,
            });
        };
        if let Ok(clients) = self.clients.lock()
            && let Some(made) = clients.get(&company)
            && made.row == row
        {
            return Ok(Resolved {
                provider: made.provider.clone(),
                is_default: false,
            });
        }
        let api_key = match &row.api_key_sealed {
            None => None,
            Some(sealed) => Some(
                self.secrets
                    .open_string(API_KEY, &api_key_aad(company), sealed)
                    .map_err(|error| {
                        tracing::warn!(%error, %company, "the company's LLM API key cannot be opened");
                        LlmError::Misconfigured(format!(
                            "the company's AI provider key cannot be used: {error}"
                        ))
                    })?,
            ),
        };
        let client = OpenAiClient::new(OpenAiSettings {
            base_url: row.base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: row.model.clone(),
            connect_timeout: self.connect_timeout,
            first_token_timeout: self.first_token_timeout,
            idle_timeout: self.idle_timeout,
            max_retries: self.max_retries,
            follow_redirects: false,
        })
        .map_err(|error| {
            tracing::warn!(error = %crate::error::one_line(&error), %company,
                "could not build the company's LLM client");
            LlmError::Misconfigured("the company's AI provider cannot be reached".into())
        })?;
        let provider: Arc<dyn Provider> = Arc::new(client);
        if let Ok(mut clients) = self.clients.lock() {
            if clients.len() >= CACHE_LIMIT {
                clients.clear();
            }
            clients.insert(
                company,
                Made {
                    row,
                    provider: provider.clone(),
                },
            );
        }
        Ok(Resolved {
            provider,
            is_default: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_base_urls_are_accepted_and_trimmed() {
        assert_eq!(
            validate_base_url(" https://api.example.com/v1/ ", HttpRule::Never),
            Ok("https://api.example.com/v1".into())
        );
        assert_eq!(
            validate_base_url("https://10.0.0.7:8443", HttpRule::Never),
            Ok("https://10.0.0.7:8443".into())
        );
    }

    #[test]
    fn http_only_as_the_rule_allows() {
        for url in [
            "http://127.0.0.1:11434/v1",
            "http://localhost/v1",
            "http://[::1]:80",
        ] {
            assert!(validate_base_url(url, HttpRule::Never).is_err(), "{url}");
            assert!(validate_base_url(url, HttpRule::Loopback).is_ok(), "{url}");
            assert!(validate_base_url(url, HttpRule::Any).is_ok(), "{url}");
        }
        for url in [
            "http://10.0.0.1/v1",
            "http://169.254.169.254/latest",
            "http://example.com",
        ] {
            assert!(validate_base_url(url, HttpRule::Loopback).is_err(), "{url}");
            assert!(validate_base_url(url, HttpRule::Any).is_ok(), "{url}");
        }
    }

    #[test]
    fn user_info_queries_other_schemes_and_garbage_are_refused() {
        for url in [
            "https://user:secret@api.example.com/v1",
            "https://user@api.example.com/v1",
            "https://api.example.com/v1?x=1",
            "https://api.example.com/v1#frag",
            "ftp://api.example.com",
            "file:///etc/passwd",
            "unix:/var/run/docker.sock",
            "api.example.com",
            "",
        ] {
            assert!(validate_base_url(url, HttpRule::Any).is_err(), "{url}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_BASE_URL));
        assert!(validate_base_url(&long, HttpRule::Any).is_err());
    }
}
