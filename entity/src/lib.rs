//! sea-orm entities, one module per table.

pub mod companies;
pub mod users;
