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
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthenticated(
                    "the Authorization header must be `Bearer <token>`".into(),
                )
            })?;
        Ok(Self::User(keys.verify(token)?.into()))
    }

    /// The signed-in user, or `UNAUTHENTICATED`.
    pub fn principal(&self) -> Result<&Principal, AppError> {
        match self {
            Self::User(principal) => Ok(principal),
            Self::Anonymous => Err(AppError::Unauthenticated("sign in first".into())),
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
    match (bearer, cookie) {
        (Some(header), _) => {
            let viewer = Viewer::from_authorization(Some(header), &state.jwt)?;
            if let Viewer::User(principal) = &viewer {
                state.sessions.check(principal.session_id).await?;
            }
            Ok(viewer)
        }
        // A stale or revoked cookie must not lock the browser out of signing in again.
        (None, Some(token)) => match state.jwt.verify(token) {
            Ok(claims) => {
                let principal: Principal = claims.into();
                match state.sessions.check(principal.session_id).await {
                    Ok(()) => Ok(Viewer::User(principal)),
                    Err(AppError::Unauthenticated(_)) => Ok(Viewer::Anonymous),
                    Err(other) => Err(other),
                }
            }
            Err(_) => Ok(Viewer::Anonymous),
        },
        (None, None) => Ok(Viewer::Anonymous),
    }
}
