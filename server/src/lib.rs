//! GraphQL API server with a Postgres-native authorization layer.
//!
//! [`start`] runs the server against the PostgreSQL and Redis its configuration names (the
//! binary, in the `server-cli` crate, and the tests give them; `devservices` starts private
//! ones for development) and [`RunningServer`] stops it gracefully. This library starts no
//! database or Redis server of its own.

pub mod activities;
pub mod audience;
pub mod auth;
pub mod authz;
pub mod breaker;
pub mod caller;
pub mod chat;
pub mod config;
pub mod db;
pub mod documents;
pub mod error;
pub mod friends;
pub mod graphql;
pub mod http;
pub mod kv;
pub mod llm;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod paging;
pub mod permissions;
pub mod pubsub;
pub mod ratelimit;
pub mod secrets;
pub mod services;
pub mod state;
pub mod telemetry;

mod startup;

pub use startup::{RunningServer, Signals, start};
