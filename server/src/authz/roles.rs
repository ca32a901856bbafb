//! Custom roles are stored and checked by [`crate::services::roles`]; re-exported here for
//! the enforcer, which loads them from there.

pub use crate::services::roles::*;
