//! The flows before there is a caller: sign-up, login, refresh rotation, password reset,
//! accepting an invitation and verifying an address (and, for a signed-in caller, the
//! verification links and address changes, which go through the same definer functions). Cross-tenant lookups go through the `SECURITY DEFINER` functions of
//! the migrations, called in anonymous transactions (`app_anon`, whose only powers are those
//! functions).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use uuid::Uuid;

use super::{AuthDeps, limits};
use crate::services::users::{Profile, Relationship};
use crate::{
    auth::{AccessClaims, RequestMeta, password, tokens},
    caller::{BuiltInRole, Principal, RoleName},
    db::functions::{self as sql, RefreshOutcome},
    error::{AppError, AppResult},
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

/// A role read from the database: a name that is no role is an error, never a default.
fn stored_role(name: String) -> AppResult<RoleName> {
    name.parse().map_err(AppError::internal)
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
pub fn access_token(
    deps: &AuthDeps<'_>,
    principal: &Principal,
) -> AppResult<(String, DateTime<Utc>)> {
    let now = Utc::now();
    let expires_at = now + ChronoDuration::seconds(deps.jwt.access_ttl().as_secs() as i64);
    let claims = AccessClaims {
        sub: principal.user_id,
        company: principal.company_id,
        role: principal.role.to_string(),
        sid: principal.session_id,
        iat: now.timestamp() as u64,
        nbf: Some(now.timestamp() as u64),
        exp: expires_at.timestamp() as u64,
        iss: deps.jwt.issuer().to_owned(),
        aud: deps.jwt.audience().to_owned(),
    };
    Ok((deps.jwt.sign(&claims)?, expires_at))
}

/// Creates a session for a user whose credentials were just proven.
pub async fn start_session(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    user: Uuid,
    company: Uuid,
    role: RoleName,
) -> AppResult<Issued> {
    let config = deps.config;
    let session = Uuid::now_v7();
    let refresh = tokens::generate(tokens::Kind::Refresh, company);
    let now = Utc::now();
    let absolute = now + ChronoDuration::seconds(config.session_absolute_ttl_secs as i64);
    let expires = (now + ChronoDuration::seconds(config.session_ttl_secs as i64)).min(absolute);
    let created = sql::create_session(
        deps.db,
        &sql::NewSession {
            session,
            user,
            company,
            token_hash: &tokens::hash(&refresh),
            expires_at: expires,
            absolute_expires_at: absolute,
            user_agent: meta.user_agent.as_deref(),
            ip: meta.ip.as_deref(),
            fingerprint: &meta.fingerprint(),
        },
    )
    .await?;
    if !created {
        return Err(wrong_credentials());
    }
    let principal = Principal {
        user_id: user,
        company_id: company,
        role,
        session_id: session,
    };
    let (access_token, access_expires_at) = access_token(deps, &principal)?;
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
    /// Join the company that verified the address's domain, if one did.
    pub join_company: bool,
}

/// What [`sign_up`] did.
#[derive(Debug, Clone)]
pub enum SignedUp {
    /// A new company and its admin, signed in.
    Company(Issued),
    /// A member of the company that verified the address's domain, inactive until the link
    /// sent to the address is followed: nobody is signed in.
    Member(Profile),
}

/// Creates a company and its first admin, and signs them in; with `join_company` and an
/// address in a domain a company verified, a member of that company instead, active once the
/// address is verified.
pub async fn sign_up(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    input: SignUp,
) -> AppResult<SignedUp> {
    let company_name = check_name("input.companyName", &input.company_name)?;
    let email = check_email("input.email", &input.email)?;
    let display_name = check_name("input.displayName", &input.display_name)?;
    password::check_policy("input.password", &input.password, &email)?;
    limits::sign_up(deps.ratelimit, meta).await?;
    let hash = deps.passwords.hash(input.password).await?;
    let (company, user) = (Uuid::now_v7(), Uuid::now_v7());
    if input.join_company {
        // A taken e-mail address is `CONFLICT` on `email` (the constraint's mapping).
        if let Some(joined) =
            sql::sign_up_member(deps.db, user, &email, &hash, &display_name).await?
        {
            if let Err(error) = send_verification(deps, user, joined).await {
                tracing::warn!(user = %user, error = ?error, "could not queue the verification e-mail of a new member");
            }
            tracing::info!(user = %user, company = %joined, "signed up into a company by its verified domain; active once verified");
            let now = Utc::now();
            return Ok(SignedUp::Member(Profile {
                id: user,
                company_id: joined,
                email: Some(email),
                display_name,
                role: RoleName::BuiltIn(BuiltInRole::Member),
                attributes: serde_json::json!({}),
                is_active: false,
                created_at: now,
                updated_at: now,
                last_active_at: None,
                relation: Relationship::Oneself,
                profile_visibility: None,
                visible_attributes: None,
                email_verified: false,
            }));
        }
    }
    // A taken e-mail address is `CONFLICT` on `email` (the constraint's mapping).
    sql::sign_up(
        deps.db,
        &sql::NewCompany {
            company,
            company_name: &company_name,
            user,
            email: &email,
            password_hash: &hash,
            display_name: &display_name,
        },
    )
    .await?;
    // The account exists now: a verification link that could not be queued is asked for
    // again with `resendVerification`, it does not fail the sign-up.
    if let Err(error) = send_verification(deps, user, company).await {
        tracing::warn!(user = %user, error = ?error, "could not queue the verification e-mail of a new account");
    }
    start_session(deps, meta, user, company, BuiltInRole::Admin.into())
        .await
        .map(SignedUp::Company)
}

/// Stores a fresh verification token for the current address of `user` and queues the e-mail
/// with its link, unless the address is verified; whether it did.
pub async fn send_verification(deps: &AuthDeps<'_>, user: Uuid, company: Uuid) -> AppResult<bool> {
    let (token, mail) = verification_mail(deps, company);
    let queued = sql::create_email_verification(
        deps.db,
        user,
        company,
        &mail.as_token_mail(&tokens::hash(&token)),
    )
    .await?;
    if queued {
        log_link(deps, "verification", &mail.link);
    }
    Ok(queued)
}

/// A verification e-mail: its link (with the token) and body.
struct VerificationMail {
    link: String,
    body: String,
    expires_at: DateTime<Utc>,
}

impl VerificationMail {
    fn as_token_mail<'a>(&'a self, token_hash: &'a str) -> sql::TokenMail<'a> {
        sql::TokenMail {
            token_hash,
            expires_at: self.expires_at,
            subject: "Confirm your e-mail address",
            body: &self.body,
        }
    }
}

fn verification_mail(deps: &AuthDeps<'_>, company: Uuid) -> (String, VerificationMail) {
    let token = tokens::generate(tokens::Kind::EmailVerification, company);
    let link = format!("{}/verify-email?token={token}", public_url(deps));
    let ttl = deps.config.email_verification_ttl_secs;
    let body = format!(
        "Confirm that this e-mail address is yours (valid {} hours, once):\n{link}\n\nIf you did not sign up or change your address, ignore this e-mail.",
        ttl / 3600
    );
    let mail = VerificationMail {
        link,
        body,
        expires_at: Utc::now() + ChronoDuration::seconds(ttl as i64),
    };
    (token, mail)
}

/// In private mode without SMTP_URL, a queued e-mail's link goes to the log (nothing sends it).
fn log_link(deps: &AuthDeps<'_>, what: &str, link: &str) {
    if deps.config.private_mode && deps.config.smtp_url.is_none() {
        tracing::info!(%link, "{what} link (private mode without SMTP_URL: the e-mail stays in outbound_emails)");
    }
}

/// Verifies an address with the token of the link sent to it (once, before it expires).
pub async fn verify_email(deps: &AuthDeps<'_>, token: &str) -> AppResult<(Uuid, Uuid)> {
    let unusable =
        || AppError::bad_input("token", "the verification link is invalid, used or expired");
    let company = tokens::company(token, tokens::Kind::EmailVerification).ok_or_else(unusable)?;
    let verified = sql::verify_email(deps.db, company, &tokens::hash(token))
        .await?
        .ok_or_else(unusable)?;
    tracing::info!(user = %verified.0, "e-mail address verified");
    Ok(verified)
}

/// Sends a new verification link to the caller's address (rate-limited per user); false when
/// it is verified already.
pub async fn resend_verification(deps: &AuthDeps<'_>, principal: &Principal) -> AppResult<bool> {
    limits::resend_verification(deps.ratelimit, principal.user_id).await?;
    send_verification(deps, principal.user_id, principal.company_id).await
}

/// Sends a new verification link to `email` if it is the address of an account not verified
/// yet, for someone signed out (a member who joined by a verified domain cannot sign in before
/// verifying, so an expired link would leave them stuck). Rate-limited per client and per
/// address; it answers the same whether or not the address has an account, and a verified
/// address gets nothing.
pub async fn request_verification_email(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    email: &str,
) -> AppResult<()> {
    let email = email.trim();
    if email.is_empty() || email.len() > 320 {
        return Err(AppError::bad_input("email", "not a valid e-mail address"));
    }
    limits::request_verification(deps.ratelimit, meta, email).await?;
    if let Some(found) = sql::login_lookup(deps.db, email).await? {
        // Nothing is queued for a verified address (app.create_email_verification).
        let queued = send_verification(deps, found.user_id, found.company_id).await?;
        if queued {
            tracing::info!(user = %found.user_id, "verification link sent again, signed out");
        }
    }
    Ok(())
}

/// Changes the caller's address (their password was checked): unverified until the link sent
/// to the new address is followed; their pending password resets stop working.
pub async fn change_email(
    deps: &AuthDeps<'_>,
    principal: &Principal,
    new_email: &str,
) -> AppResult<()> {
    let email = check_email("newEmail", new_email)?;
    let (token, mail) = verification_mail(deps, principal.company_id);
    // A taken e-mail address is `CONFLICT` on `email` (the constraint's mapping).
    let changed = sql::change_email(
        deps.db,
        principal.user_id,
        principal.company_id,
        &email,
        &mail.as_token_mail(&tokens::hash(&token)),
    )
    .await?;
    if !changed {
        return Err(AppError::Unauthenticated(
            "the account is deactivated".into(),
        ));
    }
    log_link(deps, "verification", &mail.link);
    tracing::info!(user = %principal.user_id, "e-mail address changed");
    Ok(())
}

/// Proves an e-mail and password. Unknown e-mail, wrong password and inactive user give the
/// same error after the same work.
pub async fn login(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    email: &str,
    password: String,
) -> AppResult<Issued> {
    limits::login(deps.ratelimit, meta, email).await?;
    let found = sql::login_lookup(deps.db, email.trim()).await?;
    let stored = found.as_ref().and_then(|f| {
        if f.is_active {
            f.password_hash.clone()
        } else {
            None
        }
    });
    if !deps.passwords.verify(password, stored).await? {
        return Err(wrong_credentials());
    }
    let Some(found) = found else {
        return Err(wrong_credentials());
    };
    start_session(
        deps,
        meta,
        found.user_id,
        found.company_id,
        stored_role(found.role)?,
    )
    .await
}

/// Rotates a refresh token: returns fresh credentials for the same session.
pub async fn refresh(deps: &AuthDeps<'_>, meta: &RequestMeta, token: &str) -> AppResult<Issued> {
    limits::refresh(deps.ratelimit, meta).await?;
    let company = tokens::company(token, tokens::Kind::Refresh).ok_or_else(invalid_refresh)?;
    let next = tokens::successor(deps.refresh_key, company, token);
    let row = sql::refresh_session(
        deps.db,
        company,
        &tokens::hash(token),
        &tokens::hash(&next),
        &meta.fingerprint(),
        std::time::Duration::from_secs(deps.config.refresh_grace_secs),
        std::time::Duration::from_secs(deps.config.session_ttl_secs),
    )
    .await?
    .ok_or_else(invalid_refresh)?;
    let session = row.session_id;
    match row.outcome {
        RefreshOutcome::Rotated | RefreshOutcome::Replayed => {
            let (Some(user_id), Some(company_id), Some(role), Some(session_id), Some(expires_at)) = (
                row.user_id,
                row.company_id,
                row.role,
                session,
                row.expires_at,
            ) else {
                return Err(AppError::internal(anyhow::anyhow!(
                    "app.refresh_session rotated a token without its session"
                )));
            };
            let principal = Principal {
                user_id,
                company_id,
                role: stored_role(role)?,
                session_id,
            };
            let (access_token, access_expires_at) = access_token(deps, &principal)?;
            let refresh_expires_at: DateTime<Utc> = expires_at;
            Ok(Issued {
                access_token,
                access_expires_at,
                refresh_token: next,
                refresh_expires_at,
                principal,
            })
        }
        RefreshOutcome::Reused => {
            tracing::warn!(security_event = "refresh_token_reuse", session = ?session, ip = ?meta.ip,
                "a rotated refresh token was presented again: the whole session is revoked");
            deps.sessions
                .revoked(&session.into_iter().collect::<Vec<_>>())
                .await;
            Err(AppError::Unauthenticated(
                "refresh token reuse detected: the session has been revoked".into(),
            ))
        }
        RefreshOutcome::Fingerprint => {
            tracing::warn!(security_event = "refresh_from_other_device", session = ?session, ip = ?meta.ip,
                "refresh from a different device fingerprint: the session is revoked");
            deps.sessions
                .revoked(&session.into_iter().collect::<Vec<_>>())
                .await;
            Err(AppError::Unauthenticated(
                "this session belongs to another device; it has been revoked".into(),
            ))
        }
        RefreshOutcome::Inactive => {
            deps.sessions
                .revoked(&session.into_iter().collect::<Vec<_>>())
                .await;
            Err(AppError::Unauthenticated(
                "the account is deactivated".into(),
            ))
        }
        RefreshOutcome::Invalid | RefreshOutcome::Revoked | RefreshOutcome::Expired => {
            Err(invalid_refresh())
        }
    }
}

fn public_url(deps: &AuthDeps<'_>) -> String {
    deps.config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", deps.config.bind_addr))
        .trim_end_matches('/')
        .to_owned()
}

/// Starts a password reset: stores a one-time token and queues the e-mail with its link.
/// Says nothing about whether the address exists.
pub async fn request_password_reset(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    email: &str,
) -> AppResult<()> {
    limits::password_reset(deps.ratelimit, meta, email).await?;
    // The token names the company of the address (so that it is looked up in that company's
    // rows). An unknown address takes the same steps, with a company that does not exist.
    let company = sql::login_lookup(deps.db, email.trim())
        .await?
        .map_or(Uuid::nil(), |found| found.company_id);
    let token = tokens::generate(tokens::Kind::PasswordReset, company);
    let link = format!("{}/reset-password?token={token}", public_url(deps));
    let expires = Utc::now() + ChronoDuration::seconds(deps.config.password_reset_ttl_secs as i64);
    let minutes = deps.config.password_reset_ttl_secs / 60;
    let body = format!(
        "Someone asked to reset the password of this account.\n\nSet a new password here (valid {minutes} minutes, once):\n{link}\n\nIf it was not you, ignore this e-mail."
    );
    let created = sql::create_password_reset(
        deps.db,
        company,
        email.trim(),
        &tokens::hash(&token),
        expires,
        "Reset your password",
        &body,
    )
    .await?;
    if created {
        log_link(deps, "password reset", &link);
    }
    Ok(())
}

/// Sets a new password with a reset token (once), and revokes every session of that user.
pub async fn reset_password(
    deps: &AuthDeps<'_>,
    token: &str,
    new_password: String,
) -> AppResult<()> {
    let unusable = || AppError::bad_input("token", "the reset token is invalid, used or expired");
    let company = tokens::company(token, tokens::Kind::PasswordReset).ok_or_else(unusable)?;
    let token_hash = tokens::hash(token);
    let email = sql::pending_password_reset(deps.db, company, &token_hash)
        .await?
        .ok_or_else(unusable)?;
    password::check_policy("newPassword", &new_password, &email)?;
    let hash = deps.passwords.hash(new_password).await?;
    let rows = sql::consume_password_reset(deps.db, company, &token_hash, &hash).await?;
    if rows.is_empty() {
        return Err(unusable());
    }
    let revoked: Vec<Uuid> = rows.iter().filter_map(|r| r.revoked_session).collect();
    deps.sessions.revoked(&revoked).await;
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
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    input: Acceptance,
) -> AppResult<Issued> {
    let unusable =
        || AppError::bad_input("input.token", "the invitation is invalid, used or expired");
    let company = tokens::company(&input.token, tokens::Kind::Invitation).ok_or_else(unusable)?;
    let display_name = check_name("input.displayName", &input.display_name)?;
    let token_hash = tokens::hash(&input.token);
    let email = sql::pending_invitation(deps.db, company, &token_hash)
        .await?
        .ok_or_else(unusable)?;
    password::check_policy("input.password", &input.password, &email)?;
    let hash = deps.passwords.hash(input.password).await?;
    let user = Uuid::now_v7();
    // A taken e-mail address is `CONFLICT` on `email` (the constraint's mapping).
    let accepted =
        sql::accept_invitation(deps.db, company, &token_hash, user, &hash, &display_name)
            .await?
            .ok_or_else(unusable)?;
    start_session(
        deps,
        meta,
        accepted.user_id,
        accepted.company_id,
        stored_role(accepted.role)?,
    )
    .await
}

/// Input of [`accept_invite_link`].
#[derive(Debug, Clone)]
pub struct LinkSignUp {
    pub token: String,
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// Signs up with an invite link into its company, with its role (one use of the link, counted
/// atomically), sends the verification link and signs in. Rate-limited per address, as sign-up.
pub async fn accept_invite_link(
    deps: &AuthDeps<'_>,
    meta: &RequestMeta,
    input: LinkSignUp,
) -> AppResult<Issued> {
    let unusable = || {
        AppError::bad_input(
            "input.token",
            "the invite link is invalid, revoked, expired or used up",
        )
    };
    let email = check_email("input.email", &input.email)?;
    let display_name = check_name("input.displayName", &input.display_name)?;
    password::check_policy("input.password", &input.password, &email)?;
    limits::sign_up(deps.ratelimit, meta).await?;
    let company = tokens::company(&input.token, tokens::Kind::InviteLink).ok_or_else(unusable)?;
    let hash = deps.passwords.hash(input.password).await?;
    let user = Uuid::now_v7();
    // A taken e-mail address is `CONFLICT` on `email` (the constraint's mapping), and uses
    // nothing of the link.
    let accepted = sql::accept_invite_link(
        deps.db,
        company,
        &tokens::hash(&input.token),
        user,
        &email,
        &hash,
        &display_name,
    )
    .await?
    .ok_or_else(unusable)?;
    if let Err(error) = send_verification(deps, accepted.user_id, accepted.company_id).await {
        tracing::warn!(user = %user, error = ?error, "could not queue the verification e-mail of a new member");
    }
    start_session(
        deps,
        meta,
        accepted.user_id,
        accepted.company_id,
        stored_role(accepted.role)?,
    )
    .await
}

/// The URL an invite link is shared as.
pub fn invite_link_url(deps: &AuthDeps<'_>, token: &str) -> String {
    format!("{}/join?token={token}", public_url(deps))
}

/// The company of the user with this e-mail address, if there is one.
pub async fn email_company(deps: &AuthDeps<'_>, email: &str) -> AppResult<Option<Uuid>> {
    Ok(sql::login_lookup(deps.db, email)
        .await?
        .map(|found| found.company_id))
}

/// The link an invitation e-mail carries.
pub fn invitation_link(deps: &AuthDeps<'_>, token: &str) -> String {
    format!("{}/accept-invitation?token={token}", public_url(deps))
}
