//! Session state cached in Redis, so revocation is checked on every request without a
//! database round trip. PostgreSQL is the source of truth: a cache miss, or Redis being down,
//! falls back to it, so a revoked session never comes back to life because Redis was down or
//! flushed.

use std::time::Duration;

use uuid::Uuid;

use crate::{
    db::DatabaseConnection,
    error::{AppError, AppResult},
};

/// How long an "active" answer is trusted before PostgreSQL is asked again.
const ACTIVE_TTL: Duration = Duration::from_secs(30);
/// The component of this cache's Redis calls in the metrics.
const COMPONENT: &str = "session_cache";

/// See the module documentation.
#[derive(Clone)]
pub struct SessionCache {
    /// Bounded by `REDIS_TIMEOUT_MS`: a slow Redis must not slow requests down.
    redis: crate::kv::Redis,
    db: DatabaseConnection,
    prefix: String,
    /// How long a "revoked" answer is kept: as long as any access token of it may live.
    revoked_ttl: Duration,
    /// Tells live connections of a revoked session to end, on every instance.
    pubsub: crate::pubsub::PubSub,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCache")
    }
}

impl SessionCache {
    pub fn new(
        redis: crate::kv::Redis,
        db: DatabaseConnection,
        prefix: &str,
        revoked_ttl: Duration,
        pubsub: crate::pubsub::PubSub,
    ) -> Self {
        Self {
            redis,
            db,
            prefix: prefix.to_owned(),
            revoked_ttl,
            pubsub,
        }
    }

    /// The pub/sub topic on which a session's revocation is announced.
    pub fn topic(session: Uuid) -> String {
        format!("session:{session}")
    }

    /// The pub/sub topic on which a change to a user's access that every one of their access
    /// tokens misses (a new role) is announced: connections holding such a token end.
    pub fn access_topic(user: Uuid) -> String {
        format!("user:{user}:access")
    }

    fn key(&self, session: Uuid) -> String {
        format!("{}sess:{session}", self.prefix)
    }

    /// `Ok` when session `session` of `company` is live; `UNAUTHENTICATED` when revoked,
    /// expired or unknown (a session is looked up by its company, never by its id alone).
    pub async fn check(&self, company: Uuid, session: Uuid) -> AppResult<()> {
        let key = self.key(session);
        let cached = self
            .redis
            .cmd::<Option<String>>(COMPONENT, &redis::Cmd::get(&key))
            .await;
        let active = match cached.as_ref().map(Option::as_deref) {
            Ok(Some("1")) => true,
            Ok(Some("0")) => false,
            Ok(_) => {
                let active = self.state_from_db(company, session).await?;
                self.store(session, active).await;
                active
            }
            // Redis just failed: not asked again to store the answer.
            Err(_) => {
                crate::metrics::redis_fallback(COMPONENT);
                self.state_from_db(company, session).await?
            }
        };
        if active {
            Ok(())
        } else {
            Err(AppError::Unauthenticated(
                "the session has been revoked or has expired".into(),
            ))
        }
    }

    async fn state_from_db(&self, company: Uuid, session: Uuid) -> AppResult<bool> {
        let state = crate::db::functions::session_state(&self.db, company, session).await?;
        Ok(state == crate::db::functions::SessionState::Active)
    }

    async fn store(&self, session: Uuid, active: bool) {
        let (value, ttl) = if active {
            ("1", ACTIVE_TTL)
        } else {
            ("0", self.revoked_ttl)
        };
        let key = self.key(session);
        // Best effort: a failure is counted, and the next check asks PostgreSQL again.
        let _: Result<(), _> = self
            .redis
            .cmd(COMPONENT, &redis::Cmd::set_ex(&key, value, ttl.as_secs()))
            .await;
    }

    /// Records revocations (after they are committed to PostgreSQL). Best effort: when Redis
    /// is down, requests still meet the revocation in `app.begin_request`.
    pub async fn revoked(&self, sessions: &[Uuid]) {
        for session in sessions {
            self.store(*session, false).await;
            self.pubsub
                .publish(&Self::topic(*session), &"revoked")
                .await;
        }
    }

    /// Announces that the access tokens of `user` no longer match their membership (after
    /// the change is committed), so that long-lived connections holding one end at once.
    pub async fn access_changed(&self, user: Uuid) {
        self.pubsub
            .publish(&Self::access_topic(user), &"access_changed")
            .await;
    }

    /// Whether the session is live, for long-lived connections re-checking it.
    pub async fn is_live(&self, company: Uuid, session: Uuid) -> bool {
        self.check(company, session).await.is_ok()
    }
}
