//! End-to-end tests: the real server on a random port, real PostgreSQL and Redis, one fresh
//! database per test. One binary, so the servers are started once per run.

mod audience;
mod auth;
mod authz;
mod catalog;
mod chat;
mod chat_crud;
mod chat_failures;
mod chat_stranded;
mod chat_support;
mod cookies;
mod cost;
mod db_layer;
mod db_matrix;
mod friends;
mod friends_events;
mod friends_privacy;
mod health;
mod http;
mod http_edges;
mod isolation;
mod jwks;
mod limits;
mod managed_pg;
mod observability;
mod presets;
mod privacy_columns;
mod pubsub;
mod ratelimit;
mod redis_down;
mod schema;
mod startup;
mod tokens;
mod users_admin;
mod websocket;
mod websocket_edges;
