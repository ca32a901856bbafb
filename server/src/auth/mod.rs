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

pub use jwt::{AccessClaims, JwtKeys};
pub use meta::RequestMeta;
pub use session_cache::SessionCache;
pub use viewer::{Principal, Viewer};

use sha2::{Digest, Sha256};

/// The HMAC key refresh-token successors are derived with: derived from the token-signing
/// secret, so it needs no configuration of its own and changes when that secret does.
pub fn refresh_key(config: &crate::config::Config) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"refresh-token-rotation-key\0");
    hasher.update(config.jwt_secret.as_deref().unwrap_or_default().as_bytes());
    hasher.finalize().to_vec()
}
