//! sea-orm entities, one module per table.

pub mod activities;
pub mod activity_kinds;
pub mod audience_fields;
pub mod audience_users;
pub mod companies;
pub mod conversations;
pub mod friendships;
pub mod invitations;
pub mod knowledge;
pub mod messages;
pub mod presets;
pub mod roles;
pub mod sessions;
pub mod user_profiles;
pub mod users;
