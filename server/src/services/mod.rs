//! The services: one module per domain, between the GraphQL resolvers and the database.
//!
//! A service function takes a connection (`&impl ConnectionTrait`: the request's transaction,
//! lent by `RequestScope::read` / `RequestScope::write`) and the caller, does the domain's
//! reads and writes with sea-orm and `entity`, and answers domain values. This is the only
//! layer that uses `entity` and sea-orm queries: GraphQL modules hold types and thin resolvers
//! (authorize, call a service, convert), and PostgreSQL's row security applies to every
//! statement, since the connection is the caller's transaction.

pub mod activities;
pub mod audience;
pub mod auth;
pub mod chat;
pub mod company_oidc;
pub mod domains;
pub mod friends;
pub mod identities;
pub mod invite_links;
pub mod keyset;
pub mod llm_provider;
pub mod presets;
pub mod roles;
pub mod training;
pub mod users;
