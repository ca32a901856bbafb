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
