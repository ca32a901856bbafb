//! Resolving the caller of a request ([`Viewer`], defined in [`crate::caller`]) once from its
//! credentials. Anonymous is a real value.

use super::{AccessClaims, JwtKeys, SessionCache};
pub use crate::caller::{Principal, Viewer};
use crate::{caller::NotSignedIn, error::AppError};

impl From<NotSignedIn> for AppError {
    fn from(error: NotSignedIn) -> Self {
        AppError::Unauthenticated(error.to_string())
    }
}

impl TryFrom<AccessClaims> for Principal {
    type Error = AppError;

    /// A signed token naming something that is not a role is refused, never defaulted.
    fn try_from(claims: AccessClaims) -> Result<Self, Self::Error> {
        let role = claims
            .role
            .parse()
            .map_err(|_| AppError::Unauthenticated("the token names an invalid role".into()))?;
        Ok(Self {
            user_id: claims.sub,
            company_id: claims.company,
            role,
            session_id: claims.sid,
        })
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

impl Viewer {
    /// Resolves the caller from an `Authorization` header value, if any. A header that is
    /// present but not a valid bearer token is an error, never a silent anonymous request.
    pub fn from_authorization(header: Option<&str>, keys: &JwtKeys) -> Result<Self, AppError> {
        let Some(value) = header else {
            return Ok(Self::Anonymous);
        };
        Ok(Self::User(keys.verify(bearer_token(value)?)?.try_into()?))
    }
}

/// Resolves the caller of a request: a bearer token wins; otherwise the access cookie. A bad
/// bearer token, or one whose session is revoked or expired, is an error; a stale cookie
/// (browsers keep sending them) makes the request anonymous, so the client can still refresh
/// or sign in again.
pub async fn resolve(
    keys: &JwtKeys,
    sessions: &SessionCache,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> Result<Viewer, AppError> {
    resolve_with_expiry(keys, sessions, bearer, cookie)
        .await
        .map(|(viewer, _)| viewer)
}

/// [`resolve`], also giving when the access token expires (Unix seconds), for connections
/// that must end then (subscriptions).
pub async fn resolve_with_expiry(
    keys: &JwtKeys,
    sessions: &SessionCache,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> Result<(Viewer, Option<u64>), AppError> {
    match (bearer, cookie) {
        (Some(header), _) => {
            let token = bearer_token(header)?;
            let claims = keys.verify(token)?;
            let expires = claims.exp;
            let principal = Principal::try_from(claims)?;
            sessions
                .check(principal.company_id, principal.session_id)
                .await?;
            Ok((Viewer::User(principal), Some(expires)))
        }
        // A stale or revoked cookie must not lock the browser out of signing in again.
        (None, Some(token)) => match keys.verify(token) {
            Ok(claims) => {
                let expires = claims.exp;
                let Ok(principal) = Principal::try_from(claims) else {
                    return Ok((Viewer::Anonymous, None));
                };
                match sessions
                    .check(principal.company_id, principal.session_id)
                    .await
                {
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
