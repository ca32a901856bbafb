//! Authentication operations: sign-up, login, refresh, logout, sessions, password change and
//! reset, invitations, verifying and changing one's e-mail address.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use uuid::Uuid;

use super::{connection::parse_id, principal, scope, users::User};
use crate::{
    auth::{Principal, RequestMeta, cookies, password, tokens},
    authz::{Action, Object as Obj, public, requires},
    error::{AppError, AppResult},
    services::{
        auth::{
            self as auth_service, AuthDeps, Issued, NewInvitation, OwnSessions, SignedUp, limits,
        },
        roles as role_service,
    },
    state::AppState,
};

/// Credentials of a signed-in session. In cookie mode both token fields are empty: the tokens
/// are in `HttpOnly` cookies, out of reach of scripts.
#[derive(Debug, Clone, SimpleObject)]
pub struct AuthPayload {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque, single-use token for `refreshToken`; every refresh returns a new one.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: User,
}

/// A signed-in device of the caller.
#[derive(Debug, Clone, SimpleObject)]
pub struct Session {
    pub id: ID,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// When the session ends unless refreshed (never later than its absolute lifetime).
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the current request.
    pub current: bool,
}

/// An invitation to join the caller's company.
#[derive(Debug, Clone, SimpleObject)]
pub struct Invitation {
    pub id: ID,
    pub email: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    /// Always null: the one-time token reaches only the invitee's address (the e-mail), so
    /// that accepting an invitation proves the address is theirs.
    #[graphql(deprecation = "the token is sent only to the invited address")]
    pub token: Option<String>,
    /// Always null, for the same reason: the link is in the invitation e-mail only.
    #[graphql(deprecation = "the link is sent only to the invited address")]
    pub link: Option<String>,
}

/// A new company and its first admin; or, with `joinCompany`, a member of the company that
/// verified the address's domain.
#[derive(Debug, InputObject)]
pub struct SignUpInput {
    pub company_name: String,
    pub email: String,
    pub password: String,
    pub display_name: String,
    /// Join the company that verified the address's e-mail domain, if one did: the account is
    /// then a member of it, active once the link sent to the address is followed, and the
    /// payload's tokens are empty (nobody is signed in yet). Otherwise, and by default, a new
    /// company is created with the caller as its admin.
    #[graphql(default = false)]
    pub join_company: bool,
}

/// E-mail and password.
#[derive(Debug, InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
    /// Browser apps: put the tokens in `HttpOnly` cookies (with a CSRF cookie) instead of the
    /// response body.
    #[graphql(default = false)]
    pub cookie: bool,
}

/// Whom to invite, with which role.
#[derive(Debug, InputObject)]
pub struct InviteUserInput {
    pub email: String,
    pub role: String,
}

/// Accepting an invitation creates the account.
#[derive(Debug, InputObject)]
pub struct AcceptInvitationInput {
    pub token: String,
    pub password: String,
    pub display_name: String,
}

pub(super) fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in context")))
}

/// What the authentication flows reach of the server's state.
pub(super) fn deps(state: &AppState) -> AuthDeps<'_> {
    state.auth_deps()
}

pub(super) fn meta<'a>(ctx: &Context<'a>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

/// [`deps`], for the other authentication modules.
pub(super) fn auth_deps(state: &AppState) -> AuthDeps<'_> {
    deps(state)
}

/// [`meta`], for the other authentication modules.
pub(super) fn request_meta(ctx: &Context<'_>) -> RequestMeta {
    meta(ctx)
}

/// The payload of credentials issued in bearer mode, for the other authentication modules.
pub(super) async fn auth_payload(ctx: &Context<'_>, issued: Issued) -> AppResult<AuthPayload> {
    payload(ctx, issued, false).await
}

/// Checks the caller's `current_password` (`BAD_USER_INPUT` on `currentPassword` when wrong)
/// and answers their e-mail address. The request's read transaction ends before the hash is
/// verified, so no connection is held while hashing.
async fn verify_current_password(
    ctx: &Context<'_>,
    principal: &Principal,
    current_password: String,
) -> AppResult<String> {
    let (hash, email) = scope(ctx)?
        .read({
            let principal = principal.clone();
            move |tx| {
                Box::pin(async move { auth_service::own_credentials(tx.conn(), &principal).await })
            }
        })
        .await?;
    scope(ctx)?.finish().await?;
    if !state(ctx)?.passwords.verify(current_password, hash).await? {
        return Err(AppError::bad_input(
            "currentPassword",
            "the current password is wrong",
        ));
    }
    Ok(email)
}

fn cookie_secure(state: &AppState) -> bool {
    state.config.cookies_secure()
}

/// Turns issued credentials into the payload, setting cookies in cookie mode.
pub(super) async fn payload(
    ctx: &Context<'_>,
    issued: Issued,
    cookie_mode: bool,
) -> AppResult<AuthPayload> {
    let state = state(ctx)?;
    let user = auth_service::signed_in_profile(&deps(state), &issued.principal)
        .await?
        .into();
    if cookie_mode {
        // A fresh token bound to this session: never one the browser brought along.
        let csrf = cookies::csrf_token(
            &crate::auth::csrf_key(&state.jwt),
            issued.principal.session_id,
        );
        let access_ttl = (issued.access_expires_at - Utc::now()).num_seconds().max(0);
        let refresh_ttl = (issued.refresh_expires_at - Utc::now())
            .num_seconds()
            .max(0);
        for value in cookies::set_session(
            &issued.access_token,
            access_ttl,
            &issued.refresh_token,
            refresh_ttl,
            &csrf,
            cookie_secure(state),
        ) {
            ctx.append_http_header("set-cookie", value);
        }
        return Ok(AuthPayload {
            access_token: String::new(),
            refresh_token: String::new(),
            expires_at: issued.access_expires_at,
            user,
        });
    }
    Ok(AuthPayload {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        expires_at: issued.access_expires_at,
        user,
    })
}

/// Revokes the caller's sessions that `which` names, returning the revoked ids; their
/// cached state ends once the revocation is committed.
async fn revoke_own(
    ctx: &Context<'_>,
    which: OwnSessions,
    reason: &'static str,
) -> AppResult<Vec<Uuid>> {
    let principal = principal(ctx)?.clone();
    let ids = scope(ctx)?
        .write(move |tx| {
            Box::pin(
                async move { auth_service::revoke_own(tx.conn(), &principal, which, reason).await },
            )
        })
        .await?;
    state(ctx)?.sessions.revoked(&ids).await;
    Ok(ids)
}

/// Queries about the caller's sessions.
#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The caller's live sessions (signed-in devices), newest first.
    #[graphql(directive = requires::apply(Obj::Session, Action::Read))]
    async fn sessions(&self, ctx: &Context<'_>) -> AppResult<Vec<Session>> {
        let principal = principal(ctx)?;
        let sessions = scope(ctx)?
            .read({
                let principal = principal.clone();
                move |tx| {
                    Box::pin(
                        async move { auth_service::live_sessions(tx.conn(), &principal).await },
                    )
                }
            })
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| Session {
                id: ID(s.id.to_string()),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
                current: s.id == principal.session_id,
            })
            .collect())
    }
}

/// Sign-up, login, sessions, passwords and invitations.
#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates a company with the caller as its admin, and signs in. With `joinCompany: true`
    /// and an address in a domain a company verified, creates an inactive member of that
    /// company instead: its payload has empty tokens and `user.isActive` false until the link
    /// sent to the address is followed (`verifyEmail`), then `login` works.
    #[graphql(directive = public::apply())]
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> AppResult<AuthPayload> {
        let signed_up = auth_service::sign_up(
            &deps(state(ctx)?),
            &meta(ctx),
            auth_service::SignUp {
                company_name: input.company_name,
                email: input.email,
                password: input.password,
                display_name: input.display_name,
                join_company: input.join_company,
            },
        )
        .await?;
        match signed_up {
            SignedUp::Company(issued) => payload(ctx, issued, false).await,
            SignedUp::Member(profile) => Ok(AuthPayload {
                access_token: String::new(),
                refresh_token: String::new(),
                expires_at: Utc::now(),
                user: profile.into(),
            }),
        }
    }

    /// Signs in with e-mail and password.
    #[graphql(directive = public::apply())]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> AppResult<AuthPayload> {
        let issued =
            auth_service::login(&deps(state(ctx)?), &meta(ctx), &input.email, input.password)
                .await?;
        payload(ctx, issued, input.cookie).await
    }

    /// Exchanges a refresh token for new credentials (the old token stops working). In cookie
    /// mode the argument may be left out: the refresh cookie is used, and new cookies are set.
    #[graphql(directive = public::apply())]
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: Option<String>,
    ) -> AppResult<AuthPayload> {
        let meta = meta(ctx);
        let (token, cookie_mode) = match (refresh_token, &meta.refresh_cookie) {
            (Some(token), _) => (token, false),
            (None, Some(cookie)) => (cookie.clone(), true),
            (None, None) => {
                return Err(AppError::bad_input(
                    "refreshToken",
                    "give the refresh token (or send the refresh cookie)",
                ));
            }
        };
        let issued = auth_service::refresh(&deps(state(ctx)?), &meta, &token).await?;
        // A refresh riding on the refresh cookie must carry the CSRF token of the session it
        // rotates (the HTTP layer verified the token's signature).
        if cookie_mode
            && ctx.data_opt::<crate::auth::CsrfSession>().map(|s| s.0)
                != Some(issued.principal.session_id)
        {
            return Err(AppError::Forbidden(
                "the CSRF token belongs to another session".into(),
            ));
        }
        payload(ctx, issued, cookie_mode).await
    }

    /// Revokes the current session (and clears the auth cookies).
    #[graphql(directive = requires::apply(Obj::Session, Action::Delete))]
    async fn logout(&self, ctx: &Context<'_>) -> AppResult<bool> {
        revoke_own(ctx, OwnSessions::Current, "logout").await?;
        let state = state(ctx)?;
        if meta(ctx).access_cookie.is_some() || meta(ctx).refresh_cookie.is_some() {
            for value in cookies::clear(cookie_secure(state)) {
                ctx.append_http_header("set-cookie", value);
            }
        }
        Ok(true)
    }

    /// Revokes every session of the caller, this one included; returns how many.
    #[graphql(directive = requires::apply(Obj::Session, Action::Delete))]
    async fn logout_all(&self, ctx: &Context<'_>) -> AppResult<i32> {
        let revoked = revoke_own(ctx, OwnSessions::All, "logout_all").await?;
        Ok(revoked.len() as i32)
    }

    /// Revokes one of the caller's sessions.
    #[graphql(directive = requires::apply(Obj::Session, Action::Delete))]
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let id = parse_id("id", &id)?;
        let revoked = revoke_own(ctx, OwnSessions::One(id), "revoked").await?;
        if revoked.is_empty() {
            return Err(AppError::NotFound("no such live session".into()));
        }
        Ok(true)
    }

    /// Changes the caller's password; every other session of the caller is revoked.
    #[graphql(directive = requires::apply(Obj::Session, Action::Update))]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> AppResult<bool> {
        let principal = principal(ctx)?;
        let state = state(ctx)?;
        // Every call is a guess of the current password: they are counted per user.
        limits::change_password(&state.ratelimit, principal.user_id).await?;
        let email = verify_current_password(ctx, principal, current_password).await?;
        password::check_policy("newPassword", &new_password, &email)?;
        let hash = state.passwords.hash(new_password).await?;
        scope(ctx)?
            .write({
                let principal = principal.clone();
                move |tx| {
                    Box::pin(async move {
                        auth_service::set_own_password(tx.conn(), &principal, hash).await
                    })
                }
            })
            .await?;
        revoke_own(ctx, OwnSessions::Others, "password_changed").await?;
        Ok(true)
    }

    /// Sends a password-reset link to the address if it belongs to an account. Always true:
    /// the answer does not tell whether the address exists.
    #[graphql(directive = public::apply())]
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> AppResult<bool> {
        auth_service::request_password_reset(&deps(state(ctx)?), &meta(ctx), &email).await?;
        Ok(true)
    }

    /// Sets a new password with a reset token (usable once); every session of that user is
    /// revoked.
    #[graphql(directive = public::apply())]
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> AppResult<bool> {
        auth_service::reset_password(&deps(state(ctx)?), &token, new_password).await?;
        Ok(true)
    }

    /// Verifies an e-mail address with the token of the link sent to it (usable once, until it
    /// expires).
    #[graphql(directive = public::apply())]
    async fn verify_email(&self, ctx: &Context<'_>, token: String) -> AppResult<bool> {
        auth_service::verify_email(&deps(state(ctx)?), &token).await?;
        Ok(true)
    }

    /// Sends a new verification link to the caller's address (earlier links stop working);
    /// false when the address is verified already. Rate-limited per user.
    #[graphql(directive = requires::apply(Obj::Session, Action::Update))]
    async fn resend_verification(&self, ctx: &Context<'_>) -> AppResult<bool> {
        let principal = principal(ctx)?;
        auth_service::resend_verification(&deps(state(ctx)?), principal).await
    }

    /// Sends a new verification link to `email` if it is the address of an account that is
    /// not verified yet, without signing in (a member who joined by a verified domain signs in
    /// only once verified). Always true: the answer does not tell whether the address exists.
    /// Rate-limited per client and per address.
    #[graphql(directive = public::apply())]
    async fn request_verification_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> AppResult<bool> {
        auth_service::request_verification_email(&deps(state(ctx)?), &meta(ctx), &email).await?;
        Ok(true)
    }

    /// Changes the caller's e-mail address, proven by their current password: the new address
    /// is unverified until the link sent to it is followed, and pending password resets stop
    /// working.
    #[graphql(directive = requires::apply(Obj::Session, Action::Update))]
    async fn change_email(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_email: String,
    ) -> AppResult<User> {
        let principal = principal(ctx)?;
        let state = state(ctx)?;
        // Every call is a guess of the current password, as `changePassword`'s.
        limits::change_password(&state.ratelimit, principal.user_id).await?;
        auth_service::check_email("newEmail", &new_email)?;
        verify_current_password(ctx, principal, current_password).await?;
        auth_service::change_email(&deps(state), principal, &new_email).await?;
        Ok(auth_service::signed_in_profile(&deps(state), principal)
            .await?
            .into())
    }

    /// Invites someone to the caller's company (admins). The token is in this response only.
    #[graphql(directive = requires::apply(Obj::Invitation, Action::Create))]
    async fn invite_user(
        &self,
        ctx: &Context<'_>,
        input: InviteUserInput,
    ) -> AppResult<Invitation> {
        let principal = principal(ctx)?;
        let state = state(ctx)?;
        let email = auth_service::check_email("input.email", &input.email)?;
        let role = input.role.trim().to_owned();
        limits::invite(&state.ratelimit, principal.company_id).await?;
        let role = scope(ctx)?
            .read({
                let (company, role) = (principal.company_id, role.clone());
                move |tx| {
                    Box::pin(
                        async move { role_service::check_exists(tx.conn(), company, &role).await },
                    )
                }
            })
            .await?;
        // A colleague already: the admin sees their people anyway. An address of another
        // company is answered like an unknown one (the invitee, who owns the address, learns
        // on accepting that it has an account): inviting reveals nothing about other companies.
        if auth_service::email_company(&deps(state), &email).await? == Some(principal.company_id) {
            return Err(AppError::Conflict(
                "a user of your company already has this e-mail address".into(),
            ));
        }
        let token = tokens::generate(tokens::Kind::Invitation, principal.company_id);
        let link = auth_service::invitation_link(&deps(state), &token);
        let id = Uuid::now_v7();
        let expires_at =
            Utc::now() + ChronoDuration::seconds(state.config.invitation_ttl_secs as i64);
        let days = state.config.invitation_ttl_secs / 86_400;
        let body = format!(
            "You are invited to join your team as {role}.\n\nAccept within {days} days:\n{link}\n"
        );
        let invitation = NewInvitation {
            id,
            email: email.clone(),
            role: role.clone(),
            token_hash: tokens::hash(&token),
            expires_at,
            body,
        };
        scope(ctx)?
            .write({
                let principal = principal.clone();
                move |tx| {
                    Box::pin(async move {
                        auth_service::create_invitation(tx.conn(), &principal, invitation).await
                    })
                }
            })
            .await?;
        if state.config.private_mode && state.config.smtp_url.is_none() {
            tracing::info!(%link, "invitation link (private mode without SMTP_URL: the e-mail stays in outbound_emails)");
        }
        Ok(Invitation {
            id: ID(id.to_string()),
            email,
            role: role.to_string(),
            expires_at,
            token: None,
            link: None,
        })
    }

    /// Accepts an invitation: creates the account and signs in.
    #[graphql(directive = public::apply())]
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        input: AcceptInvitationInput,
    ) -> AppResult<AuthPayload> {
        let issued = auth_service::accept_invitation(
            &deps(state(ctx)?),
            &meta(ctx),
            auth_service::Acceptance {
                token: input.token,
                password: input.password,
                display_name: input.display_name,
            },
        )
        .await?;
        payload(ctx, issued, false).await
    }
}
