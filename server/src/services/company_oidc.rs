//! OpenID providers of the caller's company, configured by its admins: listed, set (created or
//! replaced, by name) and removed. The client secret is sealed here, by the server, before it
//! is written; requests read back only whether one is set (`has_client_secret`: request roles
//! have no `SELECT` on the sealed column), and Row Level Security lets only who manages the
//! company read or write the rows. The sign-in flow reads them through definer functions
//! ([`crate::oidc::company`]).
//!
//! Plain statements rather than an `entity` model: the sealed column is write-only for the
//! request, which a model mapping every column cannot express.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::{
    auth::Principal,
    config::HttpRule,
    error::{AppError, AppResult},
    llm::company::validate_base_url,
    oidc::company::{MAX_NAME, client_secret_aad, valid_name},
    secrets::{COMPANY_OIDC_CLIENT_SECRET, Secrets},
    services::roles as role_service,
};

/// A company's provider as requests see it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyOidcProvider {
    pub id: Uuid,
    pub company_id: Uuid,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub has_client_secret: bool,
    pub role: String,
    pub allowed_domains: Vec<String>,
    pub link_verified_email: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an admin asks for.
#[derive(Clone)]
pub struct NewCompanyOidcProvider {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// `None`: keep the stored secret (a new provider without one is a public client).
    pub client_secret: Option<Zeroizing<String>>,
    pub role: String,
    pub allowed_domains: Vec<String>,
    pub link_verified_email: bool,
}

impl std::fmt::Debug for NewCompanyOidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCompanyOidcProvider")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("has_client_secret", &self.client_secret.is_some())
            .field("role", &self.role)
            .field("allowed_domains", &self.allowed_domains)
            .field("link_verified_email", &self.link_verified_email)
            .finish()
    }
}

/// Longest client id and client secret accepted, in characters.
const MAX_CLIENT_ID: usize = 500;
const MAX_CLIENT_SECRET: usize = 4096;
/// Most allowed domains of one provider.
const MAX_DOMAINS: usize = 50;

const COLUMNS: &str = "id, company_id, name, issuer, client_id, has_client_secret, role, \
                       allowed_domains, link_verified_email, created_at, updated_at";

fn from_row(row: &sea_orm::QueryResult) -> AppResult<CompanyOidcProvider> {
    let domains: serde_json::Value = row.try_get("", "allowed_domains")?;
    Ok(CompanyOidcProvider {
        id: row.try_get("", "id")?,
        company_id: row.try_get("", "company_id")?,
        name: row.try_get("", "name")?,
        issuer: row.try_get("", "issuer")?,
        client_id: row.try_get("", "client_id")?,
        has_client_secret: row.try_get("", "has_client_secret")?,
        role: row.try_get("", "role")?,
        allowed_domains: serde_json::from_value(domains).map_err(AppError::internal)?,
        link_verified_email: row.try_get("", "link_verified_email")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// A domain as stored: trimmed, without a leading `@`, lower-case; `None` when it is no domain
/// name (letters, digits, `-` and `.`, with at least one dot).
fn domain(text: &str) -> Option<String> {
    let domain = text.trim().trim_start_matches('@').to_ascii_lowercase();
    let valid = (3..=253).contains(&domain.len())
        && domain.contains('.')
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(domain)
}

/// Checks `input` (fields named as in `setCompanyOidcProvider(input:)`); the role is checked
/// against the company's roles by [`set`].
pub fn validate(
    input: NewCompanyOidcProvider,
    http: HttpRule,
) -> AppResult<NewCompanyOidcProvider> {
    let name = input.name.trim().to_owned();
    if !valid_name(&name) {
        return Err(AppError::bad_input(
            "input.name",
            format!(
                "a provider's name has 1 to {MAX_NAME} lower-case letters, digits, `-` or `_`, \
                 starting with a letter or digit"
            ),
        ));
    }
    let issuer = input.issuer.trim().to_owned();
    // The rule of a company's LLM base URL: https (http only where COMPANY_OIDC_HTTP allows),
    // no credentials, query or fragment. The issuer is kept as written: the provider's
    // discovery document must name exactly it.
    validate_base_url(&issuer, http).map_err(|message| {
        AppError::bad_input("input.issuer", message.replace("base URL", "issuer"))
    })?;
    let client_id = input.client_id.trim().to_owned();
    if !(1..=MAX_CLIENT_ID).contains(&client_id.len())
        || !client_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(AppError::bad_input(
            "input.clientId",
            format!("a client id has 1 to {MAX_CLIENT_ID} visible ASCII characters"),
        ));
    }
    let client_secret = match input.client_secret {
        Some(secret) => {
            let secret = Zeroizing::new(secret.trim().to_owned());
            if !(1..=MAX_CLIENT_SECRET).contains(&secret.len())
                || !secret.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(AppError::bad_input(
                    "input.clientSecret",
                    format!(
                        "a client secret has 1 to {MAX_CLIENT_SECRET} visible ASCII characters"
                    ),
                ));
            }
            Some(secret)
        }
        None => None,
    };
    if input.allowed_domains.len() > MAX_DOMAINS {
        return Err(AppError::bad_input(
            "input.allowedDomains",
            format!("at most {MAX_DOMAINS} domains"),
        ));
    }
    let mut allowed_domains = Vec::with_capacity(input.allowed_domains.len());
    for text in &input.allowed_domains {
        let Some(domain) = domain(text) else {
            return Err(AppError::bad_input(
                "input.allowedDomains",
                format!("{text:?} is not a domain name"),
            ));
        };
        if !allowed_domains.contains(&domain) {
            allowed_domains.push(domain);
        }
    }
    Ok(NewCompanyOidcProvider {
        name,
        issuer,
        client_id,
        client_secret,
        role: input.role.trim().to_owned(),
        allowed_domains,
        link_verified_email: input.link_verified_email,
    })
}

/// The caller's company's providers, by name (RLS: only for who manages the company).
pub async fn list(
    conn: &impl ConnectionTrait,
    principal: &Principal,
) -> AppResult<Vec<CompanyOidcProvider>> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {COLUMNS} FROM company_oidc_providers WHERE company_id = $1 ORDER BY name"
            ),
            [principal.company_id.into()],
        ))
        .await?;
    rows.iter().map(from_row).collect()
}

/// Creates or replaces provider `input.name` of the caller's company, its secret (if given)
/// sealed for that row: `UNAVAILABLE` when the server has no key to seal it with. RLS refuses
/// whoever does not manage the company.
pub async fn set(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    secrets: &Secrets,
    input: NewCompanyOidcProvider,
) -> AppResult<CompanyOidcProvider> {
    let company = principal.company_id;
    role_service::check_exists(conn, company, &input.role).await?;
    let existing = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM company_oidc_providers WHERE company_id = $1 AND name = $2",
            [company.into(), input.name.clone().into()],
        ))
        .await?
        .map(|row| row.try_get::<Uuid>("", "id"))
        .transpose()?;
    let id = existing.unwrap_or_else(Uuid::now_v7);
    let sealed = match &input.client_secret {
        Some(secret) => Some(secrets.seal(
            COMPANY_OIDC_CLIENT_SECRET,
            &client_secret_aad(company, id),
            secret.as_bytes(),
        )?),
        None => None,
    };
    let domains = serde_json::Value::from(input.allowed_domains.clone());
    // The secret is replaced only when one is given ($6 is null otherwise, for a new row). The
    // row must still be the one the secret was sealed for (its id is in the associated data).
    let secret_update = if sealed.is_some() {
        ", client_secret_sealed = $6"
    } else {
        ""
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO company_oidc_providers (company_id, id, name, issuer, client_id, \
                   client_secret_sealed, role, allowed_domains, link_verified_email) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (company_id, name) DO UPDATE SET issuer = $4, client_id = $5, \
                   role = $7, allowed_domains = $8, link_verified_email = $9{secret_update} \
                 WHERE company_oidc_providers.id = $2 \
                 RETURNING {COLUMNS}"
            ),
            [
                company.into(),
                id.into(),
                input.name.clone().into(),
                input.issuer.into(),
                input.client_id.into(),
                sealed.into(),
                input.role.into(),
                domains.into(),
                input.link_verified_email.into(),
            ],
        ))
        .await?
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "the provider {} was changed meanwhile; try again",
                input.name
            ))
        })?;
    from_row(&row)
}

/// Removes provider `name` of the caller's company: nobody signs in with it any more (the
/// identities linked through it stay, and sign in again once a provider of that name and
/// issuer is set). Whether there was one.
pub async fn remove(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    name: &str,
) -> AppResult<bool> {
    let result = conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM company_oidc_providers WHERE company_id = $1 AND name = $2",
            [principal.company_id.into(), name.trim().into()],
        ))
        .await?;
    Ok(result.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> NewCompanyOidcProvider {
        NewCompanyOidcProvider {
            name: " google ".into(),
            issuer: " https://accounts.google.com ".into(),
            client_id: "123.apps.googleusercontent.com".into(),
            client_secret: Some(Zeroizing::new("GOCSPX-secret".into())),
            role: "member".into(),
            allowed_domains: vec!["@Acme.Example".into(), "acme.example".into()],
            link_verified_email: false,
        }
    }

    fn field(result: AppResult<NewCompanyOidcProvider>) -> Option<String> {
        match result {
            Err(AppError::BadUserInput { path, .. }) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn inputs_are_checked_and_normalised() {
        let Ok(ok) = validate(input(), HttpRule::Never) else {
            panic!("a valid input refused");
        };
        assert_eq!(ok.name, "google");
        assert_eq!(ok.issuer, "https://accounts.google.com");
        assert_eq!(ok.allowed_domains, ["acme.example"]);
        let bad = |f: fn(&mut NewCompanyOidcProvider)| {
            let mut i = input();
            f(&mut i);
            field(validate(i, HttpRule::Never))
        };
        assert_eq!(
            bad(|i| i.name = "Google".into()).as_deref(),
            Some("input.name")
        );
        assert_eq!(
            bad(|i| i.name = "a.b".into()).as_deref(),
            Some("input.name")
        );
        assert_eq!(
            bad(|i| i.issuer = "http://idp.example".into()).as_deref(),
            Some("input.issuer")
        );
        assert_eq!(
            bad(|i| i.issuer = "https://user:pw@idp.example".into()).as_deref(),
            Some("input.issuer")
        );
        assert_eq!(
            bad(|i| i.client_id = " ".into()).as_deref(),
            Some("input.clientId")
        );
        assert_eq!(
            bad(|i| i.client_secret = Some(Zeroizing::new("with space".into()))).as_deref(),
            Some("input.clientSecret")
        );
        assert_eq!(
            bad(|i| i.allowed_domains = vec!["not a domain".into()]).as_deref(),
            Some("input.allowedDomains")
        );
        let mut local = input();
        local.issuer = "http://127.0.0.1:4000".into();
        assert!(validate(local, HttpRule::Loopback).is_ok());
    }
}
