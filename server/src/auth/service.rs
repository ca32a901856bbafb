//! The authentication flows: sign-up, login, refresh rotation, password reset and invitations.
//! Cross-tenant lookups go through the `SECURITY DEFINER` functions of the migrations, called in
//! anonymous transactions (`app_anon`, whose only powers are those functions).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

use super::{AccessClaims, Principal, RequestMeta, password, tokens};
use crate::{
    db::{self, SystemRole},
    error::{AppError, AppResult},
    state::AppState,
};

/// Credentials issued to a client.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub principal: Principal,
}

fn wrong_credentials() -> AppError {
    AppError::Unauthenticated("wrong e-mail or password".into())
}

fn invalid_refresh() -> AppError {
    AppError::Unauthenticated("the refresh token is invalid or has expired".into())
}

async fn call_one(
    state: &AppState,
    sql: &str,
    values: Vec<Value>,
) -> AppResult<Option<QueryResult>> {
    Ok(db::query_one_as(
        &state.db,
        SystemRole::Anonymous,
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values),
    )
    .await?)
}

async fn call_all(state: &AppState, sql: &str, values: Vec<Value>) -> AppResult<Vec<QueryResult>> {
    Ok(db::query_all_as(
        &state.db,
        SystemRole::Anonymous,
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values),
    )
    .await?)
}

/// Checks an e-mail address's shape (the mailer proves it exists); returns it trimmed.
pub fn check_email(path: &str, email: &str) -> AppResult<String> {
    let email = email.trim();
    let valid = email.len() <= 320
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(AppError::bad_input(path, "not a valid e-mail address"))
    }
}

/// Checks a display name or company name: 1 to 200 characters once trimmed.
pub fn check_name(path: &str, name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::bad_input(
            path,
            "must be 1 to 200 characters long",
        ));
    }
    Ok(name.to_owned())
}

/// Signs an access token for `principal`.
pub fn access_token(state: &AppState, principal: &Principal) -> AppResult<(String, DateTime<Utc>)> {
    let now = Utc::now();
    let expires_at = now + ChronoDuration::seconds(state.jwt.access_ttl().as_secs() as i64);
    let claims = AccessClaims {
        sub: principal.user_id,
        company: principal.company_id,
        role: principal.role.clone(),
        sid: principal.session_id,
        iat: now.timestamp() as u64,
        nbf: Some(now.timestamp() as u64),
        exp: expires_at.timestamp() as u64,
        iss: state.jwt.issuer().to_owned(),
        aud: state.jwt.audience().to_owned(),
    };
    Ok((state.jwt.sign(&claims)?, expires_at))
}

/// Creates a session for a user whose credentials were just proven.
async fn start_session(
    state: &AppState,
    meta: &RequestMeta,
    user: Uuid,
    company: Uuid,
    role: String,
) -> AppResult<Issued> {
    let config = &state.config;
    let session = Uuid::now_v7();
    let refresh = tokens::generate(tokens::Kind::Refresh);
    let now = Utc::now();
    let absolute = now + ChronoDuration::seconds(config.session_absolute_ttl_secs as i64);
    let expires = (now + ChronoDuration::seconds(config.session_ttl_secs as i64)).min(absolute);
    let row = call_one(
        state,
        "SELECT app.create_session($1, $2, $3, $4, $5, $6, $7, $8, $9) AS ok",
        vec![
            session.into(),
            user.into(),
            company.into(),
            tokens::hash(&refresh).into(),
            expires.into(),
            absolute.into(),
            meta.user_agent.clone().into(),
            meta.ip.clone().into(),
            meta.fingerprint().into(),
        ],
    )
    .await?;
    if !row
        .map(|r| r.try_get::<bool>("", "ok"))
        .transpose()?
        .unwrap_or(false)
    {
        return Err(wrong_credentials());
    }
    let principal = Principal {
        user_id: user,
        company_id: company,
        role,
        session_id: session,
    };
    let (access_token, access_expires_at) = access_token(state, &principal)?;
    tracing::info!(user = %user, session = %session, "session started");
    Ok(Issued {
        access_token,
        access_expires_at,
        refresh_token: refresh,
        refresh_expires_at: expires,
        principal,
    })
}

/// Input of [`sign_up`].
#[derive(Debug, Clone)]
pub struct SignUp {
    pub company_name: String,
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// Creates a company and its first admin, and signs them in.
pub async fn sign_up(state: &AppState, meta: &RequestMeta, input: SignUp) -> AppResult<Issued> {
    let company_name = check_name("input.companyName", &input.company_name)?;
    let email = check_email("input.email", &input.email)?;
    let display_name = check_name("input.displayName", &input.display_name)?;
    password::check_policy("input.password", &input.password, &email)?;
    super::limits::sign_up(state, meta).await?;
    let hash = state.passwords.hash(input.password).await?;
    let (company, user) = (Uuid::now_v7(), Uuid::now_v7());
    let result = call_one(
        state,
        "SELECT app.sign_up($1, $2, $3, $4, $5, $6)::text AS done",
        vec![
            company.into(),
            company_name.into(),
            user.into(),
            email.into(),
            hash.into(),
            display_name.into(),
        ],
    )
    .await;
    match result {
        Ok(_) => {}
        Err(AppError::Conflict(_)) => {
            return Err(AppError::Conflict(
                "an account with this e-mail address already exists".into(),
            ));
        }
        Err(other) => return Err(other),
    }
    start_session(state, meta, user, company, "admin".into()).await
}

/// Proves an e-mail and password. Unknown e-mail, wrong password and inactive user give the
/// same error after the same work.
pub async fn login(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    password: String,
) -> AppResult<Issued> {
    super::limits::login(state, meta, email).await?;
    let row = call_one(
        state,
        "SELECT user_id, company_id, role, password_hash, is_active FROM app.login_lookup($1)",
        vec![email.trim().to_owned().into()],
    )
    .await?;
    let found = match row {
        Some(r) => Some((
            r.try_get::<Uuid>("", "user_id")?,
            r.try_get::<Uuid>("", "company_id")?,
            r.try_get::<String>("", "role")?,
            r.try_get::<Option<String>>("", "password_hash")?,
            r.try_get::<bool>("", "is_active")?,
        )),
        None => None,
    };
    let stored = found
        .as_ref()
        .and_then(|(.., hash, active)| if *active { hash.clone() } else { None });
    if !state.passwords.verify(password, stored).await? {
        return Err(wrong_credentials());
    }
    let Some((user, company, role, ..)) = found else {
        return Err(wrong_credentials());
    };
    start_session(state, meta, user, company, role).await
}

/// Rotates a refresh token: returns fresh credentials for the same session.
pub async fn refresh(state: &AppState, meta: &RequestMeta, token: &str) -> AppResult<Issued> {
    super::limits::refresh(state, meta).await?;
    if !tokens::is_kind(token, tokens::Kind::Refresh) {
        return Err(invalid_refresh());
    }
    let next = tokens::successor(&state.refresh_key, token);
    let row = call_one(
        state,
        "SELECT outcome, session_id, user_id, company_id, role, expires_at \
         FROM app.refresh_session($1, $2, $3, make_interval(secs => $4), make_interval(secs => $5))",
        vec![
            tokens::hash(token).into(),
            tokens::hash(&next).into(),
            meta.fingerprint().into(),
            (state.config.refresh_grace_secs as f64).into(),
            (state.config.session_ttl_secs as f64).into(),
        ],
    )
    .await?
    .ok_or_else(invalid_refresh)?;
    let outcome: String = row.try_get("", "outcome")?;
    let session: Option<Uuid> = row.try_get("", "session_id")?;
    match outcome.as_str() {
        "rotated" | "replayed" => {
            let principal = Principal {
                user_id: row.try_get("", "user_id")?,
                company_id: row.try_get("", "company_id")?,
                role: row.try_get("", "role")?,
                session_id: session.ok_or_else(invalid_refresh)?,
            };
            let (access_token, access_expires_at) = access_token(state, &principal)?;
            let refresh_expires_at: DateTime<Utc> = row.try_get("", "expires_at")?;
            Ok(Issued {
                access_token,
                access_expires_at,
                refresh_token: next,
                refresh_expires_at,
                principal,
            })
        }
        "reused" => {
            tracing::warn!(security_event = "refresh_token_reuse", session = ?session, ip = ?meta.ip,
                "a rotated refresh token was presented again: the whole session is revoked");
            state
                .sessions
                .revoked(&session.into_iter().collect::<Vec<_>>())
                .await;
            Err(AppError::Unauthenticated(
                "refresh token reuse detected: the session has been revoked".into(),
            ))
        }
        "fingerprint" => {
            tracing::warn!(security_event = "refresh_from_other_device", session = ?session, ip = ?meta.ip,
                "refresh from a different device fingerprint: the session is revoked");
            state
                .sessions
                .revoked(&session.into_iter().collect::<Vec<_>>())
                .await;
            Err(AppError::Unauthenticated(
                "this session belongs to another device; it has been revoked".into(),
            ))
        }
        "inactive" => {
            state
                .sessions
                .revoked(&session.into_iter().collect::<Vec<_>>())
                .await;
            Err(AppError::Unauthenticated(
                "the account is deactivated".into(),
            ))
        }
        _ => Err(invalid_refresh()),
    }
}

fn public_url(state: &AppState) -> String {
    state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.bind_addr))
        .trim_end_matches('/')
        .to_owned()
}

/// Starts a password reset: stores a one-time token and queues the e-mail with its link.
/// Says nothing about whether the address exists.
pub async fn request_password_reset(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
) -> AppResult<()> {
    super::limits::password_reset(state, meta, email).await?;
    let token = tokens::generate(tokens::Kind::PasswordReset);
    let link = format!("{}/reset-password?token={token}", public_url(state));
    let expires = Utc::now() + ChronoDuration::seconds(state.config.password_reset_ttl_secs as i64);
    let minutes = state.config.password_reset_ttl_secs / 60;
    let body = format!(
        "Someone asked to reset the password of this account.\n\nSet a new password here (valid {minutes} minutes, once):\n{link}\n\nIf it was not you, ignore this e-mail."
    );
    let row = call_one(
        state,
        "SELECT app.create_password_reset($1, $2, $3, $4, $5) AS created",
        vec![
            email.trim().to_owned().into(),
            tokens::hash(&token).into(),
            expires.into(),
            "Reset your password".into(),
            body.into(),
        ],
    )
    .await?;
    let created = row
        .map(|r| r.try_get::<bool>("", "created"))
        .transpose()?
        .unwrap_or(false);
    if created && state.config.private_mode {
        tracing::info!(%link, "password reset link (private mode: a mailer would send it from outbound_emails)");
    }
    Ok(())
}

async fn pending_email(
    state: &AppState,
    function: &str,
    token_hash: String,
) -> AppResult<Option<String>> {
    let row = call_one(
        state,
        &format!("SELECT {function}($1) AS email"),
        vec![token_hash.into()],
    )
    .await?;
    Ok(row
        .map(|r| r.try_get::<Option<String>>("", "email"))
        .transpose()?
        .flatten())
}

/// Sets a new password with a reset token (once), and revokes every session of that user.
pub async fn reset_password(state: &AppState, token: &str, new_password: String) -> AppResult<()> {
    let unusable = || AppError::bad_input("token", "the reset token is invalid, used or expired");
    if !tokens::is_kind(token, tokens::Kind::PasswordReset) {
        return Err(unusable());
    }
    let token_hash = tokens::hash(token);
    let email = pending_email(state, "app.pending_password_reset", token_hash.clone())
        .await?
        .ok_or_else(unusable)?;
    password::check_policy("newPassword", &new_password, &email)?;
    let hash = state.passwords.hash(new_password).await?;
    let rows = call_all(
        state,
        "SELECT user_id, revoked_session FROM app.consume_password_reset($1, $2)",
        vec![token_hash.into(), hash.into()],
    )
    .await?;
    if rows.is_empty() {
        return Err(unusable());
    }
    let revoked: Vec<Uuid> = rows
        .iter()
        .filter_map(|r| {
            r.try_get::<Option<Uuid>>("", "revoked_session")
                .ok()
                .flatten()
        })
        .collect();
    state.sessions.revoked(&revoked).await;
    tracing::info!(sessions_revoked = revoked.len(), "password reset");
    Ok(())
}

/// Input of [`accept_invitation`].
#[derive(Debug, Clone)]
pub struct Acceptance {
    pub token: String,
    pub password: String,
    pub display_name: String,
}

/// Creates the invited user (once, before the invitation expires) and signs them in.
pub async fn accept_invitation(
    state: &AppState,
    meta: &RequestMeta,
    input: Acceptance,
) -> AppResult<Issued> {
    let unusable =
        || AppError::bad_input("input.token", "the invitation is invalid, used or expired");
    if !tokens::is_kind(&input.token, tokens::Kind::Invitation) {
        return Err(unusable());
    }
    let display_name = check_name("input.displayName", &input.display_name)?;
    let token_hash = tokens::hash(&input.token);
    let email = pending_email(state, "app.pending_invitation", token_hash.clone())
        .await?
        .ok_or_else(unusable)?;
    password::check_policy("input.password", &input.password, &email)?;
    let hash = state.passwords.hash(input.password).await?;
    let user = Uuid::now_v7();
    let row = match call_one(
        state,
        "SELECT user_id, company_id, role FROM app.accept_invitation($1, $2, $3, $4)",
        vec![
            token_hash.into(),
            user.into(),
            hash.into(),
            display_name.into(),
        ],
    )
    .await
    {
        Err(AppError::Conflict(_)) => {
            return Err(AppError::Conflict(
                "an account with this e-mail address already exists".into(),
            ));
        }
        other => other?,
    };
    let row = row.ok_or_else(unusable)?;
    start_session(
        state,
        meta,
        row.try_get("", "user_id")?,
        row.try_get("", "company_id")?,
        row.try_get("", "role")?,
    )
    .await
}

/// Whether a user with this e-mail exists (for invitations; admins only).
/// The company of the user with this e-mail address, if there is one.
pub async fn email_company(state: &AppState, email: &str) -> AppResult<Option<Uuid>> {
    let row = call_one(
        state,
        "SELECT company_id FROM app.login_lookup($1)",
        vec![email.to_owned().into()],
    )
    .await?;
    Ok(row
        .map(|r| r.try_get::<Uuid>("", "company_id"))
        .transpose()?)
}

/// The link an invitation e-mail carries.
pub fn invitation_link(state: &AppState, token: &str) -> String {
    format!("{}/accept-invitation?token={token}", public_url(state))
}

/// Roles every company has.
pub const BUILT_IN_ROLES: &[&str] = &["admin", "manager", "member"];

/// `BAD_USER_INPUT` at `input.role` unless `role` is a built-in role or one of the company's
/// custom roles.
pub async fn check_role_exists(scope: &crate::db::RequestScope, role: &str) -> AppResult<()> {
    if BUILT_IN_ROLES.contains(&role) {
        return Ok(());
    }
    let principal = scope.viewer().principal()?;
    let tx = scope.read_guard().await?;
    let found = tx
        .conn()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM roles WHERE company_id = $1 AND name = $2",
            [principal.company_id.into(), role.to_owned().into()],
        ))
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(AppError::bad_input(
            "input.role",
            format!("unknown role `{role}`"),
        )),
    }
}

/// Revokes every live session of a user inside the caller's transaction (the caller must be
/// the user or an admin of the company, as RLS requires), returning their ids. After the
/// transaction commits, pass them to `state.sessions.revoked`.
pub async fn revoke_user_sessions(
    tx: &crate::db::RequestTx,
    company: Uuid,
    user: Uuid,
    reason: &str,
) -> AppResult<Vec<Uuid>> {
    let rows = tx
        .conn()
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
