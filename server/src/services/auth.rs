//! Authentication and sessions. Sessions, passwords and invitations on the request's
//! transaction (the caller's own rows, as RLS allows) are here; the flows that run before there
//! is a caller — sign-up, login, refresh, password reset, accepting an invitation — go through
//! `SECURITY DEFINER` functions in anonymous transactions and are in [`sign_in`], under the rate
//! limits of [`limits`]. They reach what they need through [`AuthDeps`], never the whole state
//! of the server.

pub mod limits;
mod sign_in;

use chrono::{DateTime, Utc};
use entity::sessions;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Statement,
};
use uuid::Uuid;

pub use sign_in::{
    Acceptance, Issued, LinkSignUp, SignUp, SignedUp, accept_invitation, accept_invite_link,
    access_token, change_email, check_email, check_name, email_company, invitation_link,
    invite_link_url, login, refresh, request_password_reset, request_verification_email,
    resend_verification, reset_password, send_verification, sign_up, start_session, verify_email,
};

use super::users::{self as user_service, Profile};
use crate::{
    auth::{JwtKeys, SessionCache, password::Passwords},
    caller::{Principal, RoleName, Viewer},
    config::Config,
    db::{Access, RequestTx, Shares},
    error::{AppError, AppResult},
    ratelimit::RateLimiter,
};

/// What the authentication flows reach, borrowed from the server's state: the pool with its
/// shares, password hashing, the token keys, the session cache, the rate limits and the
/// configuration.
#[derive(Clone, Copy)]
pub struct AuthDeps<'a> {
    pub db: &'a DatabaseConnection,
    pub shares: &'a Shares,
    pub passwords: &'a Passwords,
    pub jwt: &'a JwtKeys,
    pub sessions: &'a SessionCache,
    /// Key refresh-token successors are derived with (see `auth::tokens::successor`).
    pub refresh_key: &'a [u8],
    pub ratelimit: &'a RateLimiter,
    pub config: &'a Config,
}

/// A live session of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// The caller's live sessions, newest first.
pub async fn live_sessions(
    conn: &impl ConnectionTrait,
    principal: &Principal,
) -> AppResult<Vec<LiveSession>> {
    Ok(sessions::Entity::find()
        .filter(sessions::Column::CompanyId.eq(principal.company_id))
        .filter(sessions::Column::UserId.eq(principal.user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::AbsoluteExpiresAt.gt(Utc::now()))
        .order_by_desc(sessions::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(|s| LiveSession {
            id: s.id,
            created_at: s.created_at.with_timezone(&Utc),
            last_used_at: s.last_used_at.with_timezone(&Utc),
            expires_at: s.expires_at.with_timezone(&Utc),
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect())
}

/// Which of the caller's own sessions to revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnSessions {
    /// The session of the current request.
    Current,
    /// One session by id.
    One(Uuid),
    /// Every session but the current one.
    Others,
    /// Every session, the current one included.
    All,
}

/// Revokes the caller's live sessions that `which` names, returning their ids. After the
/// transaction commits, pass them to `state.sessions.revoked`.
pub async fn revoke_own(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    which: OwnSessions,
    reason: &str,
) -> AppResult<Vec<Uuid>> {
    let (condition, session) = match which {
        OwnSessions::Current => ("id = $3", principal.session_id),
        OwnSessions::One(id) => ("id = $3", id),
        OwnSessions::Others => ("id <> $3", principal.session_id),
        OwnSessions::All => ("true", principal.session_id),
    };
    let sql = format!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $4 \
         WHERE user_id = $1 AND company_id = $2 AND revoked_at IS NULL AND ({condition}) RETURNING id"
    );
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            &sql,
            [
                principal.user_id.into(),
                principal.company_id.into(),
                session.into(),
                reason.into(),
            ],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<Uuid>("", "id").ok())
        .collect())
}

/// Revokes every live session of a user inside the caller's transaction (the caller must be
/// the user or an admin of the company, as RLS requires), returning their ids. After the
/// transaction commits, pass them to `state.sessions.revoked`.
pub async fn revoke_user_sessions(
    conn: &impl ConnectionTrait,
    company: Uuid,
    user: Uuid,
    reason: &str,
) -> AppResult<Vec<Uuid>> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 \
             WHERE company_id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id",
            [company.into(), user.into(), reason.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<Uuid>("", "id").ok())
        .collect())
}

/// The caller's password hash (if they have a password) and e-mail address. Request roles
/// cannot read password hashes (or e-mails) from `users`: the hash comes from a definer
/// function, the address from the caller's own (unmasked) profile.
pub async fn own_credentials(
    conn: &impl ConnectionTrait,
    principal: &Principal,
) -> AppResult<(Option<String>, String)> {
    // Request roles cannot read password hashes (or e-mails) from `users`: the caller's own
    // come from a definer function and the caller's own (unmasked) profile.
    let hash = crate::db::functions::current_password_hash(conn).await?;
    let email = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT email FROM user_profiles WHERE id = $1 AND company_id = $2",
            [principal.user_id.into(), principal.company_id.into()],
        ))
        .await?
        .map(|row| row.try_get::<Option<String>>("", "email"))
        .transpose()?
        .flatten();
    Ok((hash, email.unwrap_or_default()))
}

/// Stores the caller's new password hash.
pub async fn set_own_password(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    hash: String,
) -> AppResult<()> {
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE users SET password_hash = $1 WHERE id = $2 AND company_id = $3",
        [
            hash.into(),
            principal.user_id.into(),
            principal.company_id.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A new invitation of the caller's company, with the e-mail that carries its token.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub id: Uuid,
    pub email: String,
    pub role: RoleName,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// The invitation e-mail's body (with the link).
    pub body: String,
}

/// Stores an invitation from the caller and queues its e-mail in `outbound_emails`.
pub async fn create_invitation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    invitation: NewInvitation,
) -> AppResult<()> {
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO invitations (id, company_id, email, role, token_hash, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            invitation.id.into(),
            principal.company_id.into(),
            invitation.email.clone().into(),
            invitation.role.to_string().into(),
            invitation.token_hash.into(),
            principal.user_id.into(),
            invitation.expires_at.into(),
        ],
    ))
    .await?;
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO outbound_emails (company_id, recipient, template, subject, body) \
         VALUES ($1, $2, 'invitation', 'You are invited', $3)",
        [
            principal.company_id.into(),
            invitation.email.into(),
            invitation.body.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// An invitation not yet accepted, as its readers see it (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingInvitation {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
}

/// A pending invitation of the caller's company (neither accepted nor expired), by id.
pub async fn pending_invitation(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Option<PendingInvitation>> {
    use entity::invitations::{Column, Entity};
    Ok(Entity::find_by_id((principal.company_id, id))
        .filter(Column::AcceptedAt.is_null())
        .filter(Column::ExpiresAt.gt(Utc::now()))
        .one(conn)
        .await?
        .map(|row| PendingInvitation {
            id: row.id,
            email: row.email,
            role: row.role,
            expires_at: row.expires_at.to_utc(),
        }))
}

/// Reads a freshly signed-in user as that user, through RLS (there is no request scope yet:
/// the request was anonymous).
pub async fn signed_in_profile(deps: &AuthDeps<'_>, principal: &Principal) -> AppResult<Profile> {
    let share = deps.shares.acquire(Some(principal.company_id)).await?;
    let mut tx =
        RequestTx::begin(deps.db, &Viewer::User(principal.clone()), Access::ReadOnly).await?;
    tx.hold(share);
    let user = user_service::profile(tx.conn(), principal.company_id, principal.user_id)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("signed-in user not readable")))?;
    tx.commit().await?;
    Ok(user)
}
