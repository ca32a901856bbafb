//! Shared state of a running server.

use std::sync::Arc;

use crate::{
    auth::{JwtKeys, SessionCache},
    config::Config,
    db::DatabaseConnection,
    ratelimit::RateLimiter,
};

impl AppState {
    /// What the authentication flows reach of the state (password and OpenID sign-in alike).
    pub fn auth_deps(&self) -> crate::services::auth::AuthDeps<'_> {
        crate::services::auth::AuthDeps {
            db: &self.db,
            shares: &self.shares,
            passwords: &self.passwords,
            jwt: &self.jwt,
            sessions: &self.sessions,
            refresh_key: &self.refresh_key,
            ratelimit: &self.ratelimit,
            config: &self.config,
        }
    }
}

/// What every request may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Each company's (and the anonymous requests') share of the request pool.
    pub shares: crate::db::Shares,
    /// Password hashing, under its concurrency bound.
    pub passwords: crate::auth::password::Passwords,
    /// Redis, every call bounded by `REDIS_TIMEOUT_MS` and guarded by a circuit breaker.
    pub redis: crate::kv::Redis,
    pub jwt: JwtKeys,
    /// The Casbin enforcer (built-in and custom roles), reloadable at run time.
    pub authz: crate::authz::Authz,
    /// Rate limits (Redis, with an in-process fallback).
    pub ratelimit: RateLimiter,
    /// Session revocation state, cached in Redis over PostgreSQL.
    pub sessions: SessionCache,
    /// Key refresh-token successors are derived with (see `auth::tokens::successor`).
    pub refresh_key: Arc<Vec<u8>>,
    /// Event fan-out to subscribers on every instance.
    pub pubsub: crate::pubsub::PubSub,
    /// The keys secrets are sealed with before they are stored (see `crate::secrets`).
    pub secrets: crate::secrets::Secrets,
    /// Chat: the LLM provider, background generations and their cancel registry.
    pub chat: crate::chat::Chat,
    /// Delivery of the outbox over SMTP (idle without `SMTP_URL`).
    pub mail: crate::mail::Mailer,
    /// Persisted queries (in Redis) and the trusted documents' manifest.
    pub documents: Arc<crate::documents::Documents>,
    /// The OpenID providers people sign in with, and their flows' state in Redis.
    pub oidc: crate::oidc::Oidc,
    pub oidc_flows: crate::oidc::flow::Flows,
    /// Cancelled when the server begins to drain (SIGTERM, [`crate::RunningServer::shutdown`]):
    /// `/ready` answers 503 and `sendMessage` `UNAVAILABLE` from then on. Long-lived
    /// connections watch it to go away (WebSockets close with 1001), so that clients reconnect
    /// to another instance and catch up.
    pub draining: tokio_util::sync::CancellationToken,
    pub config: Arc<Config>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}
