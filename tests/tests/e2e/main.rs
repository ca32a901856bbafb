//! End-to-end tests: the real server on a random port, real PostgreSQL and Redis, one fresh
//! database per test. One binary, so the servers are started once per run.

mod health;
mod http;
mod isolation;
mod limits;
mod schema;
mod startup;
mod tokens;
mod websocket;
