//! Development services, kept out of the `server` library: private PostgreSQL (one cluster, or
//! a Citus coordinator with two workers) and Redis servers started from the system's binaries
//! (for `make run` and for the tests: data under a directory of ours, their own loopback ports,
//! stopped with us), private-mode start-up of
//! `server serve` / `migrate` / `seed` / `print-catalog --fresh`, and demo data
//! (`server seed`).
//!
//! The `server` library takes URLs and secrets as configuration and starts nothing itself;
//! this crate fills them in when none are given.

pub mod catalog;
mod citus;
mod postgres;
mod private_mode;
mod redis;
mod secrets;
pub mod seed;
mod serve;
mod supervisor;

pub use citus::{PrivateCitus, REQUEST_ROLES};
pub use postgres::{PgExtra, PgMode, PrivatePostgres};
pub use private_mode::{PrivateServices, ensure_database, grant_login, prepare_private};
pub use redis::PrivateRedis;
pub use secrets::Secrets;
pub use serve::serve;
pub use supervisor::{PrivateError, free_port};
