//! Authentication's building blocks: passwords, access tokens, opaque tokens, cookie mode, the
//! session revocation cache, and resolving the typed caller (`Viewer`) of a request from its
//! credentials. The flows that use them (sign-up, login, refresh, reset, their rate limits) are
//! `crate::services::auth`; nothing here reaches the server's state.

pub mod cookies;
pub mod jwt;
pub mod meta;
pub mod password;
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
pub fn csrf_key(keys: &JwtKeys) -> [u8; 32] {
    keys.derive_secret(b"csrf-token-key")
}
