//! The caller of a request, resolved once from its credentials. Anonymous is a real value.

use uuid::Uuid;

use super::{AccessClaims, JwtKeys};
use crate::error::AppError;

/// A signed-in user, as proven by a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub role: String,
    pub session_id: Uuid,
}

impl From<AccessClaims> for Principal {
    fn from(claims: AccessClaims) -> Self {
        Self {
            user_id: claims.sub,
            company_id: claims.company,
            role: claims.role,
            session_id: claims.sid,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer_token(value: &str) -> Result<&str, AppError> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
        })
}

/// When the access token of a connection expires (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessExpiry(pub u64);

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Anonymous,
    User(Principal),
}

impl Viewer {
    /// Resolves the caller from an `Authorization` header value, if any. A header that is
    /// present but not a valid bearer token is an error, never a silent anonymous request.
    pub fn from_authorization(header: Option<&str>, keys: &JwtKeys) -> Result<Self, AppError> {
        let Some(value) = header else {
            return Ok(Self::Anonymous);
        };
        Ok(Self::User(keys.verify(bearer_token(value)?)?.into()))
    }

    /// The signed-in user, or `UNAUTHENTICATED`.
    pub fn principal(&self) -> Result<&Principal, AppError> {
        match self {
            Self::User(principal) => Ok(principal),
            Self::Anonymous => Err(AppError::Unauthenticated("sign in first".into())),
        }
    }

    /// The caller's company; `None` when anonymous.
    pub fn company_id(&self) -> Option<Uuid> {
        match self {
            Self::User(principal) => Some(principal.company_id),
            Self::Anonymous => None,
        }
    }
}

/// Resolves the caller of a request: a bearer token wins; otherwise the access cookie. A bad
/// bearer token, or one whose session is revoked or expired, is an error; a stale cookie
/// (browsers keep sending them) makes the request anonymous, so the client can still refresh
/// or sign in again.
pub async fn resolve(
    state: &crate::state::AppState,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> Result<Viewer, AppError> {
    resolve_with_expiry(state, bearer, cookie)
        .await
        .map(|(viewer, _)| viewer)
}

/// [`resolve`], also giving when the access token expires (Unix seconds), for connections
/// that must end then (subscriptions).
pub async fn resolve_with_expiry(
    state: &crate::state::AppState,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> Result<(Viewer, Option<u64>), AppError> {
    match (bearer, cookie) {
        (Some(header), _) => {
            let token = bearer_token(header)?;
            let claims = state.jwt.verify(token)?;
            let expires = claims.exp;
            let principal: Principal = claims.into();
            state.sessions.check(principal.session_id).await?;
            Ok((Viewer::User(principal), Some(expires)))
        }
        // A stale or revoked cookie must not lock the browser out of signing in again.
        (None, Some(token)) => match state.jwt.verify(token) {
            Ok(claims) => {
                let expires = claims.exp;
                let principal: Principal = claims.into();
                match state.sessions.check(principal.session_id).await {
                    Ok(()) => Ok((Viewer::User(principal), Some(expires))),
                    Err(AppError::Unauthenticated(_)) => Ok((Viewer::Anonymous, None)),
                    Err(other) => Err(other),
                }
            }
            Err(_) => Ok((Viewer::Anonymous, None)),
        },
        (None, None) => Ok((Viewer::Anonymous, None)),
    }
}
