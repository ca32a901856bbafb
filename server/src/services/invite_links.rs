//! Invite links of the caller's company: made by whoever may create invitations, listed with
//! their use counts for whoever may read them, revoked by whoever may delete them (RLS decides);
//! used by signing up with their token (`auth::accept_invite_link`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};
use uuid::Uuid;

use crate::{
    caller::Principal,
    error::{AppError, AppResult},
};

/// An invite link (never its token: only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteLink {
    pub id: Uuid,
    pub role: String,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A new link of the caller's company.
#[derive(Debug, Clone)]
pub struct NewInviteLink {
    pub role: String,
    pub token_hash: String,
    pub max_uses: i32,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, role, max_uses, uses, expires_at, revoked_at, created_at";

fn decode(row: &QueryResult) -> Result<InviteLink, DbErr> {
    Ok(InviteLink {
        id: row.try_get("", "id")?,
        role: row.try_get("", "role")?,
        max_uses: row.try_get("", "max_uses")?,
        uses: row.try_get("", "uses")?,
        expires_at: row.try_get("", "expires_at")?,
        revoked_at: row.try_get("", "revoked_at")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// Stores a new link of the caller's company, in the caller's name.
pub async fn create(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    link: NewInviteLink,
) -> AppResult<InviteLink> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO invite_links (company_id, role, token_hash, max_uses, expires_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
            ),
            [
                principal.company_id.into(),
                link.role.into(),
                link.token_hash.into(),
                link.max_uses.into(),
                link.expires_at.into(),
                principal.user_id.into(),
            ],
        ))
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("INSERT returned no row")))?;
    Ok(decode(&row)?)
}

/// The company's links, newest first.
pub async fn list(conn: &impl ConnectionTrait, company: Uuid) -> AppResult<Vec<InviteLink>> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {COLUMNS} FROM invite_links WHERE company_id = $1 ORDER BY created_at DESC, id DESC"
            ),
            [company.into()],
        ))
        .await?;
    Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
}

/// Revokes link `id` of the company (at once: it signs nobody up from then on).
pub async fn revoke(conn: &impl ConnectionTrait, company: Uuid, id: Uuid) -> AppResult<InviteLink> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "UPDATE invite_links SET revoked_at = COALESCE(revoked_at, now()) \
                 WHERE company_id = $1 AND id = $2 RETURNING {COLUMNS}"
            ),
            [company.into(), id.into()],
        ))
        .await?
        .ok_or_else(|| AppError::NotFound("no such invite link".into()))?;
    Ok(decode(&row)?)
}
