//! Event fan-out across server instances through Redis pub/sub.
//!
//! Every instance keeps one pub/sub connection subscribed to the pattern `{prefix}ev:*` and
//! dispatches what arrives to local subscribers of that topic (tokio broadcast channels), so
//! an event published on any instance reaches subscribers on all of them — its own included,
//! by the same path. When Redis is unavailable, `publish` delivers to this instance's
//! subscribers directly (others cannot be reached) and says so in the log; the listener
//! reconnects with backoff.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use redis::AsyncCommands as _;
use tokio::sync::{broadcast, watch};

/// Events buffered per topic for a slow subscriber before it starts missing some.
const CAPACITY: usize = 1024;
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);

/// Cheap to clone; the listener stops when the last clone is dropped.
#[derive(Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

struct Inner {
    redis: deadpool_redis::Pool,
    prefix: String,
    topics: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    _shutdown: watch::Sender<()>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PubSub")
    }
}

impl Inner {
    fn channel_prefix(&self) -> String {
        format!("{}ev:", self.prefix)
    }

    /// Hands a payload to this instance's subscribers of `topic`.
    fn dispatch(&self, topic: &str, payload: Arc<str>) {
        let Ok(mut topics) = self.topics.lock() else {
            return;
        };
        if let Some(sender) = topics.get(topic)
            && sender.send(payload).is_err()
        {
            // Nobody listens any more.
            topics.remove(topic);
        }
    }
}

impl PubSub {
    /// Starts the listener on `redis_url`; `redis` is the pool used for publishing.
    pub fn start(
        redis_url: &str,
        redis: deadpool_redis::Pool,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url)?;
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let inner = Arc::new(Inner {
            redis,
            prefix: prefix.to_owned(),
            topics: Mutex::new(HashMap::new()),
            _shutdown: shutdown_tx,
        });
        tokio::spawn(listen(client, Arc::downgrade(&inner), shutdown_rx));
        Ok(Self { inner })
    }

    /// Publishes `payload` (JSON) on `topic` to every instance.
    pub async fn publish(&self, topic: &str, payload: &impl serde::Serialize) {
        let payload = match serde_json::to_string(payload) {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(%error, topic, "event not serializable");
                return;
            }
        };
        let channel = format!("{}{topic}", self.inner.channel_prefix());
        let sent = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let mut conn = self.inner.redis.get().await.ok()?;
            conn.publish::<_, _, i64>(&channel, &payload).await.ok()
        })
        .await;
        if !matches!(sent, Ok(Some(_))) {
            crate::metrics::redis_error("pubsub");
            crate::metrics::redis_fallback("pubsub");
            tracing::warn!(
                topic,
                "redis unavailable: event delivered on this instance only"
            );
            self.inner.dispatch(topic, payload.into());
        }
    }

    /// A stream of the JSON payloads published on `topic` from now on.
    pub fn subscribe(&self, topic: &str) -> impl Stream<Item = Arc<str>> + Send + 'static + use<> {
        let receiver = match self.inner.topics.lock() {
            Ok(mut topics) => topics
                .entry(topic.to_owned())
                .or_insert_with(|| broadcast::channel(CAPACITY).0)
                .subscribe(),
            // A poisoned lock means a panic elsewhere; give an empty stream rather than panic.
            Err(_) => broadcast::channel(1).1,
        };
        let topic = topic.to_owned();
        futures_util::stream::unfold(receiver, move |mut receiver| {
            let topic = topic.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(payload) => return Some((payload, receiver)),
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(topic, missed, "slow subscriber missed events");
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        })
    }
}

async fn listen(
    client: redis::Client,
    inner: std::sync::Weak<Inner>,
    mut shutdown: watch::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(prefix) = inner.upgrade().map(|i| i.channel_prefix()) else {
            return;
        };
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{prefix}*")).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match connected {
            Ok(pubsub) => {
                backoff = Duration::from_millis(100);
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let Some(inner) = inner.upgrade() else { return };
                            let Some(topic) = message.get_channel_name().strip_prefix(&prefix) else { continue };
                            if let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) {
                                inner.dispatch(topic, payload.into());
                            }
                        }
                    }
                }
                crate::metrics::redis_error("pubsub");
                tracing::warn!("redis pub/sub connection lost; reconnecting");
            }
            Err(error) => {
                crate::metrics::redis_error("pubsub");
                tracing::warn!(%error, "redis pub/sub unavailable; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
