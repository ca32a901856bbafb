//! Authorization: "may this role do this kind of thing?" — Casbin RBAC with company domains,
//! declared on every root field by one guard directive. Row Level Security decides the rows.
//!
//! - [`Authz`]: the enforcer, loaded from `POLICY_DIR` (`model.conf`, `policy.csv`) plus each
//!   company's custom roles from the `roles` table, reloadable without a restart.
//! - [`requires`] / [`public`]: the directives every field of Query / Mutation / Subscription
//!   carries; [`Guard`] enforces them before any resolver runs.

mod enforcer;
mod guard;
mod policy;
mod reload;
pub mod roles;
mod table;

/// What a permission is about and what may be done to it (defined below the services, which
/// check custom roles' grants against them).
pub use crate::permissions::{Action, Object, Permission};
pub use enforcer::{Authz, CUSTOM_ROLE_TTL};
pub use guard::{
    FieldGuard, Guard, Guarded, SubscriptionStarted, declared_guards, public, requires,
};
pub use policy::{BUILT_IN_ROLES, PolicyRule};
pub use reload::spawn_reload_on_sighup;
pub use table::permissions_table;
