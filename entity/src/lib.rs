//! sea-orm entities, one module per table.

pub mod companies;
pub mod invitations;
pub mod roles;
pub mod sessions;
pub mod users;
