//! Long-lived connections and subscriptions end with the caller's credentials: when the access
//! token expires (a WebSocket closes after the JWT leeway too), when the session is revoked
//! (announced on pub/sub by every revocation, and re-checked periodically in case an
//! announcement was lost: every few seconds while pub/sub is not connected to Redis), or when the user's role changes (announced on pub/sub: every token
//! of the user carries the old role).

use std::{future::Future, pin::Pin, time::Duration};

use async_graphql::Context;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    auth::{Principal, SessionCache, viewer::AccessExpiry},
    error::{AppError, AppResult},
    state::AppState,
};

/// How often a live connection re-checks its session, as a safety net.
const RECHECK: Duration = Duration::from_secs(30);
/// How often while the pub/sub listener is not connected to Redis (announcements then come
/// through PostgreSQL alone), plus up to [`RECHECK_JITTER`] so that connections spread their
/// checks.
const RECHECK_WITHOUT_REDIS: Duration = Duration::from_secs(3);
const RECHECK_JITTER: Duration = Duration::from_secs(2);

/// Why a connection's credentials ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Expired,
    Revoked,
    AccessChanged,
}

impl Ended {
    /// For clients: what happened and what to do.
    pub fn message(self) -> &'static str {
        match self {
            Self::Expired => "the access token has expired; reconnect with a fresh one",
            Self::Revoked => "the session has been revoked; sign in again",
            Self::AccessChanged => "the user's role has changed; reconnect with a fresh token",
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// The token claim `exp` (Unix seconds) in Unix milliseconds: from then on, operations of a
/// connection holding the token are refused and its subscriptions end.
pub fn expiry_ms(exp: u64) -> u64 {
    exp.saturating_mul(1000)
}

/// When a connection holding a token that expires at `exp` (Unix seconds) is closed, in Unix
/// milliseconds: after the JWT leeway too, the clock skew token verification tolerates.
pub fn close_deadline_ms(state: &AppState, exp: u64) -> u64 {
    exp.saturating_add(state.config.jwt_leeway_secs)
        .saturating_mul(1000)
}

type Announcements = crate::pubsub::Subscription;

/// Watches what ends a caller's credentials, from the moment it is started: a revocation or
/// role change announced after [`CredentialWatch::start`] is never missed.
pub struct CredentialWatch {
    state: AppState,
    company: Uuid,
    session: Uuid,
    deadline_ms: Option<u64>,
    revoked: Announcements,
    access: Announcements,
}

impl CredentialWatch {
    /// Starts listening for `principal`'s revocation and role change; the credentials also
    /// end at `deadline_ms` (Unix milliseconds), if any.
    pub fn start(state: &AppState, principal: &Principal, deadline_ms: Option<u64>) -> Self {
        Self {
            state: state.clone(),
            company: principal.company_id,
            session: principal.session_id,
            deadline_ms,
            revoked: state
                .pubsub
                .subscribe(&SessionCache::topic(principal.session_id)),
            access: state
                .pubsub
                .subscribe(&SessionCache::access_topic(principal.user_id)),
        }
    }

    /// Resolves when the credentials end, and says why.
    pub async fn ended(self) -> Ended {
        let Self {
            state,
            company,
            session,
            deadline_ms,
            mut revoked,
            mut access,
        } = self;
        let until_expiry = until_ms(deadline_ms);
        let mut redis = state.pubsub.redis_connected();
        let recheck = async move {
            loop {
                let connected = *redis.borrow_and_update();
                let wait = if connected {
                    RECHECK
                } else {
                    RECHECK_WITHOUT_REDIS + RECHECK_JITTER.mul_f64(rand::random::<f64>())
                };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    // Redis was lost meanwhile: wait the shorter time from now.
                    Ok(()) = redis.changed(), if connected => continue,
                }
                // Only a definite answer ends the connection, not Redis and PostgreSQL being
                // briefly unavailable.
                if let Err(AppError::Unauthenticated(_)) =
                    state.sessions.check(company, session).await
                {
                    return;
                }
            }
        };
        let ended = tokio::select! {
            () = until_expiry => Ended::Expired,
            Some(_) = revoked.next() => Ended::Revoked,
            Some(_) = access.next() => Ended::AccessChanged,
            () = recheck => Ended::Revoked,
        };
        tracing::debug!(%session, ?ended, "credentials of a live connection ended");
        ended
    }
}

/// Cancelled when the credentials of the connection an operation runs on end (revoked, role
/// changed, found no longer live), by the transport that watches them for the whole connection
/// (a WebSocket, with a [`CredentialWatch`] of its own): each of its subscriptions then ends
/// with it, rather than watching the same announcements again.
#[derive(Debug, Clone, Default)]
pub struct ConnectionWatched(pub CancellationToken);

/// Wraps a subscription's stream so it ends when the caller's credentials do: at the access
/// token's expiry, or when its session is revoked or the user's role changes. Call it in every
/// subscription resolver. (The WebSocket closes itself then too; this holds for any transport.)
pub fn bounded<S>(ctx: &Context<'_>, stream: S) -> AppResult<impl Stream<Item = S::Item> + use<S>>
where
    S: Stream + Send + 'static,
{
    let principal = super::principal(ctx)?;
    let state = ctx
        .data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in context")))?;
    let deadline = ctx.data_opt::<AccessExpiry>().map(|e| expiry_ms(e.0));
    let ended: Pin<Box<dyn Future<Output = ()> + Send>> = match ctx.data_opt::<ConnectionWatched>()
    {
        // The connection's watch holds the expiry only after the JWT leeway: the
        // subscription ends at the expiry itself.
        Some(ConnectionWatched(connection)) => {
            let connection = connection.clone();
            Box::pin(async move {
                tokio::select! {
                    () = connection.cancelled() => {}
                    () = until_ms(deadline) => {}
                }
            })
        }
        None => {
            let watch = CredentialWatch::start(state, principal, deadline);
            Box::pin(async move {
                watch.ended().await;
            })
        }
    };
    Ok(stream.take_until(ended))
}

/// Resolves at `deadline` (Unix milliseconds); never without one.
async fn until_ms(deadline: Option<u64>) {
    match deadline {
        Some(deadline) => {
            let left = deadline.saturating_sub(now_ms());
            tokio::time::sleep(Duration::from_millis(left)).await;
        }
        None => std::future::pending::<()>().await,
    }
}
