//! Long-lived subscriptions end with the caller's credentials: when the access token of the
//! connection expires, or when the session is revoked (announced on pub/sub by every
//! revocation, and re-checked periodically in case an announcement was lost).

use std::time::Duration;

use async_graphql::Context;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::{
    auth::{SessionCache, viewer::AccessExpiry},
    error::{AppError, AppResult},
    state::AppState,
};

/// How often a subscription re-checks its session, as a safety net.
const RECHECK: Duration = Duration::from_secs(30);

/// Wraps a subscription's stream so it ends when the caller's token expires or session is
/// revoked. Call it in every subscription resolver.
pub fn bounded<S>(ctx: &Context<'_>, stream: S) -> AppResult<impl Stream<Item = S::Item> + use<S>>
where
    S: Stream + Send + 'static,
{
    let principal = super::principal(ctx)?;
    let state = ctx
        .data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in context")))?;
    let expiry = ctx.data_opt::<AccessExpiry>().map(|e| e.0);
    Ok(stream.take_until(ended(state.clone(), principal.session_id, expiry)))
}

async fn ended(state: AppState, session: Uuid, expiry: Option<u64>) {
    let mut revoked = Box::pin(state.pubsub.subscribe(&SessionCache::topic(session)));
    let until_expiry = async {
        match expiry {
            Some(exp) => {
                let now = chrono::Utc::now().timestamp().max(0) as u64;
                tokio::time::sleep(Duration::from_secs(exp.saturating_sub(now))).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let recheck = async {
        loop {
            tokio::time::sleep(RECHECK).await;
            if !state.sessions.is_live(session).await {
                return;
            }
        }
    };
    tokio::select! {
        _ = revoked.next() => tracing::debug!(%session, "subscription ends: session revoked"),
        _ = until_expiry => tracing::debug!(%session, "subscription ends: access token expired"),
        _ = recheck => tracing::debug!(%session, "subscription ends: session no longer live"),
    }
}
