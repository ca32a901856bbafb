//! Session state cached in Redis, so revocation is checked on every request without a
//! database round trip. PostgreSQL is the source of truth: a cache miss, or Redis being down,
//! falls back to it, so a revoked session never comes back to life because Redis was down or
//! flushed.

use std::time::Duration;

use redis::AsyncCommands as _;
use sea_orm::{DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// How long an "active" answer is trusted before PostgreSQL is asked again.
const ACTIVE_TTL: Duration = Duration::from_secs(30);
/// Bound on every Redis call: a slow Redis must not slow requests down.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);

/// See the module documentation.
#[derive(Clone)]
pub struct SessionCache {
    redis: deadpool_redis::Pool,
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
        redis: deadpool_redis::Pool,
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

    /// `Ok` when the session is live; `UNAUTHENTICATED` when revoked, expired or unknown.
    pub async fn check(&self, session: Uuid) -> AppResult<()> {
        let key = self.key(session);
        let cached: Option<String> = match tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut conn = self.redis.get().await.ok()?;
            conn.get::<_, Option<String>>(&key).await.ok()
        })
        .await
        {
            Ok(Some(value)) => value,
            _ => {
                crate::metrics::redis_error("session_cache");
                crate::metrics::redis_fallback("session_cache");
                None
            }
        };
        let active = match cached.as_deref() {
            Some("1") => true,
            Some("0") => false,
            _ => {
                let active = self.state_from_db(session).await?;
                self.store(session, active).await;
                active
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

    async fn state_from_db(&self, session: Uuid) -> AppResult<bool> {
        let row = crate::db::query_one_as(
            &self.db,
            crate::db::SystemRole::Anonymous,
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app.session_state($1) AS state",
                [session.into()],
            ),
        )
        .await?;
        let state: String = match row {
            Some(row) => row.try_get("", "state")?,
            None => "missing".to_owned(),
        };
        Ok(state == "active")
    }

    async fn store(&self, session: Uuid, active: bool) {
        let (value, ttl) = if active {
            ("1", ACTIVE_TTL)
        } else {
            ("0", self.revoked_ttl)
        };
        let key = self.key(session);
        let stored = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut conn = self.redis.get().await.ok()?;
            conn.set_ex::<_, _, ()>(&key, value, ttl.as_secs())
                .await
                .ok()
        })
        .await;
        if !matches!(stored, Ok(Some(()))) {
            crate::metrics::redis_error("session_cache");
        }
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
    pub async fn is_live(&self, session: Uuid) -> bool {
        self.check(session).await.is_ok()
    }
}
