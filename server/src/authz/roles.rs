//! Custom roles are stored and checked by [`crate::services::roles`]; re-exported here for
//! the callers of the old path.

pub use crate::services::roles::*;

/// The role RLS policies give administrative powers to.
pub const ADMIN: &str = crate::caller::BuiltInRole::Admin.as_str();
