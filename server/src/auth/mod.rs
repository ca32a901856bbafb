//! Authentication: access tokens and the typed caller (`Viewer`) every request resolves to.

pub mod jwt;
pub mod viewer;

pub use jwt::{AccessClaims, JwtKeys};
pub use viewer::{Principal, Viewer};
