//! Identities of OpenID providers: what a proven provider identity signs in to (its linked
//! user; else an existing account with its verified address, where the provider allows that;
//! else a new user), linking one to a signed-in user, and a user's own identities (listed and
//! unlinked on the request's transaction, as RLS allows).
//!
//! Cross-tenant steps go through the `SECURITY DEFINER` functions `app.oidc_*`, called in
//! anonymous transactions, as the other sign-in flows do.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use super::auth::{self as auth_service, AuthDeps, limits};
use crate::{
    auth::RequestMeta,
    caller::{BuiltInRole, Principal, RoleName},
    db::functions::{self as sql, CompanyOidcOutcome, LinkOutcome, NewIdentity},
    error::{AppError, AppResult},
    oidc::{ProviderConfig, VerifiedIdentity, flow::LinkTo},
};

/// What a finished flow did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// The provider's identity is this user's (perhaps a new user): sign them in.
    SignedIn {
        user: Uuid,
        company: Uuid,
        role: RoleName,
    },
    /// The identity is now linked to the signed-in user who started the flow.
    Linked,
}

fn stored_role(name: String) -> AppResult<RoleName> {
    name.parse().map_err(AppError::internal)
}

/// The display name of a new user: the provider's `name`, else the address's local part.
fn display_name(identity: &VerifiedIdentity, email: &str) -> String {
    let name = identity
        .name
        .clone()
        .unwrap_or_else(|| email.split('@').next().unwrap_or(email).to_owned());
    let name: String = name.trim().chars().take(200).collect();
    if name.is_empty() {
        "New user".to_owned()
    } else {
        name
    }
}

/// Signs in (or links) the identity a provider proved, for the flow that asked.
pub async fn complete(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    provider: &ProviderConfig,
    identity: &VerifiedIdentity,
    link: Option<&LinkTo>,
) -> AppResult<Completed> {
    let new_identity = NewIdentity {
        id: Uuid::now_v7(),
        provider: &provider.name,
        issuer: &identity.issuer,
        subject: &identity.subject,
    };
    let verified_email = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified);
    if let Some(link) = link {
        // The session that started the flow must still be live.
        deps.sessions.check(link.company, link.session).await?;
        if provider.owner.is_some() && provider.company_id != Some(link.company) {
            return Err(AppError::Forbidden(
                "this sign-in provider belongs to another company".into(),
            ));
        }
        return match sql::oidc_link(
            deps.db,
            link.user,
            link.company,
            &new_identity,
            verified_email,
        )
        .await?
        {
            LinkOutcome::Linked | LinkOutcome::Already => {
                tracing::info!(user = %link.user, provider = %provider.name, "identity linked");
                Ok(Completed::Linked)
            }
            LinkOutcome::Taken => Err(AppError::Conflict(
                "this identity of the provider is linked to another account".into(),
            )),
            LinkOutcome::NoUser => Err(AppError::Unauthenticated(
                "the account that started linking is no longer active".into(),
            )),
        };
    }
    if let Some(found) = sql::oidc_identity(deps.db, &identity.issuer, &identity.subject).await? {
        // A company's provider signs in only its own company's people.
        if provider.owner.is_some() && provider.company_id != Some(found.company_id) {
            return Err(AppError::Forbidden(
                "this identity belongs to an account of another company: sign in with that \
                 company's provider"
                    .into(),
            ));
        }
        if !found.is_active {
            return Err(AppError::Unauthenticated(
                "the account is deactivated".into(),
            ));
        }
        return Ok(Completed::SignedIn {
            user: found.user_id,
            company: found.company_id,
            role: stored_role(found.role)?,
        });
    }
    // A first sign-in with this identity.
    let Some(email) = verified_email else {
        return Err(AppError::Forbidden(
            "the provider asserted no verified e-mail address, which a first sign-in needs".into(),
        ));
    };
    let email = auth_service::check_email("email", email)?;
    if !provider.allows_domain(&email) {
        return Err(AppError::Forbidden(format!(
            "addresses of this domain may not sign in with {}",
            provider.name
        )));
    }
    if let (Some(owner), Some(company)) = (provider.owner, provider.company_id) {
        return first_company_sign_in(deps, meta, provider, owner, company, identity, &email).await;
    }
    if let Some(existing) = sql::login_lookup(deps.db, &email).await? {
        let may_link = provider.link_verified_email
            && provider
                .company_id
                .is_none_or(|company| company == existing.company_id);
        if !may_link {
            return Err(AppError::Conflict(
                "an account with this e-mail address exists: sign in to it, then link this provider"
                    .into(),
            ));
        }
        if !existing.is_active {
            return Err(AppError::Unauthenticated(
                "the account is deactivated".into(),
            ));
        }
        match sql::oidc_link(
            deps.db,
            existing.user_id,
            existing.company_id,
            &new_identity,
            Some(&email),
        )
        .await?
        {
            LinkOutcome::Linked | LinkOutcome::Already => {}
            LinkOutcome::Taken => {
                return Err(AppError::Conflict(
                    "this identity of the provider is linked to another account".into(),
                ));
            }
            LinkOutcome::NoUser => {
                return Err(AppError::Unauthenticated(
                    "the account is deactivated".into(),
                ));
            }
        }
        tracing::info!(user = %existing.user_id, provider = %provider.name,
            "identity linked by its verified e-mail address");
        return Ok(Completed::SignedIn {
            user: existing.user_id,
            company: existing.company_id,
            role: stored_role(existing.role)?,
        });
    }
    limits::sign_up(deps.ratelimit, meta).await?;
    let user = Uuid::now_v7();
    let name = display_name(identity, &email);
    // A taken e-mail address (a sign-up meanwhile) is `CONFLICT` on `email`.
    let (company, role) = match provider.company_id {
        Some(company) => {
            sql::oidc_join(
                deps.db,
                company,
                user,
                &email,
                &name,
                &provider.role,
                &new_identity,
            )
            .await?;
            (company, stored_role(provider.role.clone())?)
        }
        None => {
            let company = Uuid::now_v7();
            let company_name: String = format!("{name}'s company").chars().take(200).collect();
            sql::oidc_sign_up(
                deps.db,
                company,
                &company_name,
                user,
                &email,
                &name,
                &new_identity,
            )
            .await?;
            (company, BuiltInRole::Admin.into())
        }
    };
    tracing::info!(%user, %company, provider = %provider.name, "user created by a first sign-in");
    Ok(Completed::SignedIn {
        user,
        company,
        role,
    })
}

/// The error of a company provider's outcome that is not done.
fn refused(provider: &ProviderConfig, outcome: CompanyOidcOutcome) -> AppError {
    match outcome {
        CompanyOidcOutcome::Done { .. } => {
            AppError::internal(anyhow::anyhow!("a done outcome is no refusal"))
        }
        CompanyOidcOutcome::Taken => {
            AppError::Conflict("this identity of the provider is linked to another account".into())
        }
        CompanyOidcOutcome::NoProvider => {
            AppError::NotFound(format!("no sign-in provider {}", provider.name))
        }
        CompanyOidcOutcome::Issuer => {
            AppError::Unauthenticated("the identity is another issuer's".into())
        }
        CompanyOidcOutcome::Domain => AppError::Forbidden(format!(
            "addresses of this domain may not sign in with {}",
            provider.name
        )),
        CompanyOidcOutcome::NotAllowed => AppError::Conflict(
            "an account with this e-mail address exists: sign in to it, then link this provider"
                .into(),
        ),
        CompanyOidcOutcome::NoUser => {
            AppError::Unauthenticated("the account is deactivated".into())
        }
    }
}

/// A first sign-in with provider `owner` of `company`, configured by its admins, proving
/// `email`: a link to the company's account of that address where the provider allows it, else
/// a new member with the provider's role. The definer functions check the provider's rules
/// (issuer, domain, linking) again, whatever this code decided.
async fn first_company_sign_in(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    provider: &ProviderConfig,
    owner: Uuid,
    company: Uuid,
    identity: &VerifiedIdentity,
    email: &str,
) -> AppResult<Completed> {
    let new_identity = NewIdentity {
        id: Uuid::now_v7(),
        provider: &provider.name,
        issuer: &identity.issuer,
        subject: &identity.subject,
    };
    if let Some(existing) = sql::login_lookup(deps.db, email).await? {
        if existing.company_id != company || !provider.link_verified_email {
            return Err(AppError::Conflict(
                "an account with this e-mail address exists: sign in to it, then link this \
                 provider"
                    .into(),
            ));
        }
        let outcome =
            sql::company_oidc_link_email(deps.db, company, owner, &new_identity, email).await?;
        let CompanyOidcOutcome::Done {
            user: Some(user),
            role,
        } = outcome
        else {
            return Err(refused(provider, outcome));
        };
        tracing::info!(%user, provider = %provider.name,
            "identity linked by its verified e-mail address");
        return Ok(Completed::SignedIn {
            user,
            company,
            role: stored_role(role)?,
        });
    }
    limits::sign_up(deps.ratelimit, meta).await?;
    let user = Uuid::now_v7();
    let name = display_name(identity, email);
    // A taken e-mail address (a sign-up meanwhile) is `CONFLICT` on `email`.
    let outcome =
        sql::company_oidc_join(deps.db, company, owner, user, email, &name, &new_identity).await?;
    let CompanyOidcOutcome::Done { role, .. } = outcome else {
        return Err(refused(provider, outcome));
    };
    tracing::info!(%user, %company, provider = %provider.name,
        "member created by a first sign-in with the company's provider");
    Ok(Completed::SignedIn {
        user,
        company,
        role: stored_role(role)?,
    })
}

/// A linked identity of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: Uuid,
    pub provider: String,
    pub issuer: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The caller's linked identities, oldest first.
pub async fn own(conn: &impl ConnectionTrait, principal: &Principal) -> AppResult<Vec<Identity>> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, provider, issuer, email, created_at, last_used_at FROM identities \
             WHERE company_id = $1 AND user_id = $2 ORDER BY created_at, id",
            [principal.company_id.into(), principal.user_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Identity {
                id: row.try_get("", "id")?,
                provider: row.try_get("", "provider")?,
                issuer: row.try_get("", "issuer")?,
                email: row.try_get("", "email")?,
                created_at: row.try_get("", "created_at")?,
                last_used_at: row.try_get("", "last_used_at")?,
            })
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(Into::into)
}

/// Unlinks one of the caller's identities, unless it is their last way to sign in (no
/// password and no other identity); the database refuses that too.
pub async fn unlink(conn: &impl ConnectionTrait, principal: &Principal, id: Uuid) -> AppResult<()> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app.keeps_a_way_in($1, $2, $3) AS keeps, \
                    EXISTS (SELECT 1 FROM identities WHERE id = $3 AND company_id = $2 AND user_id = $1) AS mine",
            [
                principal.user_id.into(),
                principal.company_id.into(),
                id.into(),
            ],
        ))
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("no answer")))?;
    let mine: bool = row.try_get("", "mine")?;
    if !mine {
        return Err(AppError::NotFound("no such identity of yours".into()));
    }
    let keeps: bool = row.try_get("", "keeps")?;
    if !keeps {
        return Err(AppError::bad_input(
            "id",
            "this is your last way to sign in: set a password or link another provider first",
        ));
    }
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "DELETE FROM identities WHERE id = $1 AND company_id = $2 AND user_id = $3",
        [
            id.into(),
            principal.company_id.into(),
            principal.user_id.into(),
        ],
    ))
    .await?;
    Ok(())
}
