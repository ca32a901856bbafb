//! A company's e-mail domains: added and removed by those who manage the company (RLS), and
//! counted once an admin whose own verified address is in the domain confirms it
//! (`app.confirm_company_domain`). A verified domain lets people sign up into the company
//! (`signUp(joinCompany: true)`, see `auth::sign_up`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};
use uuid::Uuid;

use crate::{
    caller::Principal,
    db::functions::{self as sql, DomainConfirmation},
    error::{AppError, AppResult},
};

/// A domain of the caller's company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub id: Uuid,
    pub domain: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, domain, verified_at, created_at";

fn decode(row: &QueryResult) -> Result<Domain, DbErr> {
    Ok(Domain {
        id: row.try_get("", "id")?,
        domain: row.try_get("", "domain")?,
        verified_at: row.try_get("", "verified_at")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// A domain name as stored: trimmed, lowercase, without a leading `@`; labels of 1 to 63
/// letters, digits and inner hyphens, at least two, the last starting with a letter.
pub fn check_domain(path: &str, text: &str) -> AppResult<String> {
    let domain = text.trim().trim_start_matches('@').to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let valid = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_lowercase()));
    if valid {
        Ok(domain)
    } else {
        Err(AppError::bad_input(
            path,
            "not a domain name (such as `acme.example`)",
        ))
    }
}

/// The company's domains, by name.
pub async fn list(conn: &impl ConnectionTrait, company: Uuid) -> AppResult<Vec<Domain>> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT {COLUMNS} FROM company_domains WHERE company_id = $1 ORDER BY domain"),
            [company.into()],
        ))
        .await?;
    Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Adds `domain` (checked) to the caller's company, unconfirmed.
pub async fn add(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    domain: &str,
) -> AppResult<Domain> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO company_domains (company_id, domain, added_by) VALUES ($1, $2, $3) \
                 RETURNING {COLUMNS}"
            ),
            [
                principal.company_id.into(),
                domain.into(),
                principal.user_id.into(),
            ],
        ))
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("INSERT returned no row")))?;
    Ok(decode(&row)?)
}

/// Removes domain `id` of the caller's company; whether there was one.
pub async fn remove(conn: &impl ConnectionTrait, company: Uuid, id: Uuid) -> AppResult<bool> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM company_domains WHERE company_id = $1 AND id = $2 RETURNING id",
            [company.into(), id.into()],
        ))
        .await?;
    Ok(!rows.is_empty())
}

/// The caller confirms domain `id` of their company.
pub async fn confirm(conn: &impl ConnectionTrait, company: Uuid, id: Uuid) -> AppResult<Domain> {
    match sql::confirm_company_domain(conn, id).await? {
        DomainConfirmation::Confirmed => {}
        DomainConfirmation::Missing => {
            return Err(AppError::NotFound("no such domain in your company".into()));
        }
        DomainConfirmation::NotAdmin => {
            return Err(AppError::Forbidden(
                "only an admin confirms a domain".into(),
            ));
        }
        DomainConfirmation::Unverified => {
            return Err(AppError::Forbidden(
                "verify your own e-mail address first (verifyEmail)".into(),
            ));
        }
        DomainConfirmation::OtherDomain => {
            return Err(AppError::Forbidden(
                "your verified e-mail address is not in this domain".into(),
            ));
        }
        DomainConfirmation::Taken => {
            return Err(AppError::Conflict(
                "another company has verified this domain".into(),
            ));
        }
    }
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT {COLUMNS} FROM company_domains WHERE company_id = $1 AND id = $2"),
            [company.into(), id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::NotFound("no such domain in your company".into()))?;
    Ok(decode(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_trimmed_lowercased_and_checked() {
        assert_eq!(
            check_domain("d", " @Acme.Example ").ok().as_deref(),
            Some("acme.example")
        );
        assert_eq!(
            check_domain("d", "mail.acme.co.uk").ok().as_deref(),
            Some("mail.acme.co.uk")
        );
        for bad in [
            "",
            "acme",
            "acme.",
            ".acme.example",
            "-acme.example",
            "ac me.example",
            "acme.123",
            "a_b.example",
        ] {
            assert!(check_domain("d", bad).is_err(), "{bad}");
        }
    }
}
