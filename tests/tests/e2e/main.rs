//! End-to-end tests: the real server on a random port, real PostgreSQL and Redis, one fresh
//! database per test. One binary, so the servers are started once per run.

mod auth;
mod authz;
mod cookies;
mod health;
mod http;
mod isolation;
mod jwks;
mod limits;
mod pubsub;
mod ratelimit;
mod redis_down;
mod schema;
mod startup;
mod tokens;
mod users_admin;
mod websocket;
