//! A company's e-mail domains: `companyDomains`, `addCompanyDomain`, `confirmCompanyDomain`,
//! `removeCompanyDomain` (those who manage the company; confirming takes an admin whose own
//! verified address is in the domain).

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{connection::parse_id, principal, scope};
use crate::{
    authz::{Action, Object as Obj, requires},
    error::AppResult,
    services::domains::{self as domain_service, Domain},
};

/// An e-mail domain of the caller's company. Once verified, whoever signs up with
/// `joinCompany: true` and an address in it becomes a member of the company (active once their
/// address is verified).
#[derive(Debug, Clone, SimpleObject)]
pub struct CompanyDomain {
    pub id: ID,
    /// Lowercase, e.g. `acme.example`.
    pub domain: String,
    /// Whether an admin with a verified address in the domain confirmed it.
    pub verified: bool,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Domain> for CompanyDomain {
    fn from(d: Domain) -> Self {
        Self {
            id: ID(d.id.to_string()),
            domain: d.domain,
            verified: d.verified_at.is_some(),
            verified_at: d.verified_at,
            created_at: d.created_at,
        }
    }
}

/// The company's domains.
#[derive(Default)]
pub struct DomainQuery;

#[Object]
impl DomainQuery {
    /// The e-mail domains of the caller's company, by name (those who manage the company).
    #[graphql(directive = requires::apply(Obj::Company, Action::Update))]
    async fn company_domains(&self, ctx: &Context<'_>) -> AppResult<Vec<CompanyDomain>> {
        let company = principal(ctx)?.company_id;
        let domains = scope(ctx)?
            .read(move |tx| Box::pin(async move { domain_service::list(tx.conn(), company).await }))
            .await?;
        Ok(domains.into_iter().map(CompanyDomain::from).collect())
    }
}

/// Adding, confirming and removing the company's domains.
#[derive(Default)]
pub struct DomainMutation;

#[Object]
impl DomainMutation {
    /// Adds an e-mail domain to the caller's company, unconfirmed: it counts once an admin whose
    /// own verified address is in it confirms it (`confirmCompanyDomain`).
    #[graphql(directive = requires::apply(Obj::Company, Action::Update))]
    async fn add_company_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
    ) -> AppResult<CompanyDomain> {
        let principal = principal(ctx)?.clone();
        let domain = domain_service::check_domain("domain", &domain)?;
        scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { domain_service::add(tx.conn(), &principal, &domain).await })
            })
            .await
            .map(CompanyDomain::from)
    }

    /// Confirms a domain of the caller's company: the caller must be an admin whose own address
    /// is verified and in that domain. A domain counts for one company at most.
    #[graphql(directive = requires::apply(Obj::Company, Action::Update))]
    async fn confirm_company_domain(&self, ctx: &Context<'_>, id: ID) -> AppResult<CompanyDomain> {
        let id = parse_id("id", &id)?;
        let company = principal(ctx)?.company_id;
        scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { domain_service::confirm(tx.conn(), company, id).await })
            })
            .await
            .map(CompanyDomain::from)
    }

    /// Removes a domain of the caller's company (no one joins by it any more).
    #[graphql(directive = requires::apply(Obj::Company, Action::Update))]
    async fn remove_company_domain(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let id = parse_id("id", &id)?;
        let company = principal(ctx)?.company_id;
        let removed = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { domain_service::remove(tx.conn(), company, id).await })
            })
            .await?;
        if !removed {
            return Err(crate::error::AppError::NotFound(
                "no such domain in your company".into(),
            ));
        }
        Ok(true)
    }
}
