//! Authentication: passwords, access tokens, sessions with rotating refresh tokens, cookie
//! mode, and the typed caller (`Viewer`) every request resolves to.

pub mod cookies;
pub mod jwt;
pub mod limits;
pub mod meta;
pub mod password;
pub mod service;
pub mod session_cache;
pub mod tokens;
pub mod viewer;

pub use crate::caller::{BuiltInRole, Principal, RoleName, Viewer};
pub use jwt::{AccessClaims, JwtKeys};
pub use meta::{ClientIp, RequestMeta};
pub use session_cache::SessionCache;

/// The session a cookie request's CSRF token was signed for, when its access cookie did not
/// already name one (a refresh with the refresh cookie alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsrfSession(pub uuid::Uuid);

/// The key CSRF tokens are signed with, derived from the token-signing key.
pub fn csrf_key(state: &crate::state::AppState) -> [u8; 32] {
    state.jwt.derive_secret(b"csrf-token-key")
}
