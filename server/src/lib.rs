//! GraphQL API server with a Postgres-native authorization layer.
//!
//! The binary (`main.rs`) parses the command line and calls [`run`]; the tests use
//! [`start`] to run a server on a random port against databases of their own.

pub mod audience;
pub mod auth;
pub mod authz;
pub mod breaker;
pub mod caller;
pub mod chat;
pub mod config;
pub mod db;
pub mod error;
pub mod friends;
pub mod graphql;
pub mod http;
pub mod kv;
pub mod llm;
pub mod metrics;
pub mod paging;
pub mod private;
pub mod pubsub;
pub mod ratelimit;
pub mod seed;
pub mod services;
pub mod state;
pub mod telemetry;

mod startup;

pub use startup::{
    PrivateServices, RunningServer, ensure_database, grant_login, prepare_private, run, start,
};
