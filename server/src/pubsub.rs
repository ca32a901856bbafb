//! Event fan-out across server instances through Redis pub/sub, with PostgreSQL
//! `LISTEN`/`NOTIFY` as the fallback.
//!
//! Every instance keeps one pub/sub connection subscribed to the pattern `{prefix}ev:*` and
//! dispatches what arrives to local subscribers of that topic (tokio broadcast channels), so
//! an event published on any instance reaches subscribers on all of them — its own included,
//! by the same path. Every instance also `LISTEN`s on one PostgreSQL channel
//! ([`notify_channel`]). When a Redis publish fails or times out, `publish` sends the event
//! with `pg_notify` instead (an event too large for a notification is replaced by its
//! [`Event::stand_in`]); only when PostgreSQL fails too is it delivered to this instance's
//! subscribers alone. Both listeners reconnect with backoff; the Redis one pings its
//! connection so that a frozen server is noticed, and [`PubSub::redis_connected`] says whether
//! it is connected.
//!
//! An event may arrive twice (a Redis publish that timed out may still be delivered, after its
//! notification): subscribers must take a repeat for what it is.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// Events buffered per topic for a slow subscriber before it starts missing some.
const CAPACITY: usize = 1024;
/// Bound on a notification sent through PostgreSQL.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// PostgreSQL refuses a notification payload of 8000 bytes or more.
pub const MAX_NOTIFY_BYTES: usize = 7999;
/// How often the Redis listener pings its connection, and how long it waits for the answer
/// (and for a connection).
const PING_EVERY: Duration = Duration::from_secs(3);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// PostgreSQL's longest identifier, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// What can be published: anything serializable, optionally with a smaller stand-in for a
/// transport that cannot carry the event itself (a PostgreSQL notification holds less than
/// 8000 bytes). Subscribers of a topic whose events have stand-ins must understand them.
pub trait Event: Serialize {
    /// The JSON to send instead when the event is too large; `None`: such an event is
    /// delivered on this instance only.
    fn stand_in(&self) -> Option<String> {
        None
    }
}

impl Event for str {}
impl Event for &str {}
impl Event for String {}
impl Event for serde_json::Value {}

/// A notification's payload: the topic and the event's JSON.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Envelope {
    topic: String,
    payload: String,
}

/// The notification carrying `payload` on `topic`, or else the one carrying `stand_in`;
/// `None` when neither fits.
fn envelope(topic: &str, payload: &str, stand_in: Option<&str>) -> Option<String> {
    let wrap = |payload: &str| {
        serde_json::to_string(&Envelope {
            topic: topic.to_owned(),
            payload: payload.to_owned(),
        })
        .ok()
        .filter(|e| e.len() <= MAX_NOTIFY_BYTES)
    };
    wrap(payload).or_else(|| stand_in.and_then(wrap))
}

/// The PostgreSQL channel of the instances sharing `prefix`: `{prefix}events` made a plain
/// lower-case identifier (other characters become `_`), shortened with a hash of the prefix
/// when too long.
pub fn notify_channel(prefix: &str) -> String {
    let plain: String = prefix
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    let name = format!("{plain}events");
    if name.len() <= MAX_IDENTIFIER {
        return name;
    }
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(prefix.as_bytes());
    let hash: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    // `plain` is ASCII: any byte index is a character boundary.
    format!("{}_{hash}_events", &plain[..40])
}

/// Cheap to clone; the listener stops when the last clone is dropped.
#[derive(Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

struct Inner {
    redis: crate::kv::Redis,
    prefix: String,
    topics: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    /// The fallback through PostgreSQL, once started.
    postgres: OnceLock<DatabaseConnection>,
    /// Whether the Redis listener is connected (and its server answers).
    redis_up: watch::Sender<bool>,
    shutdown: watch::Sender<()>,
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
    /// Starts the listener on `redis_url`; `redis` publishes (bounded, behind the breaker).
    pub fn start(redis_url: &str, redis: crate::kv::Redis, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url)?;
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let inner = Arc::new(Inner {
            redis,
            prefix: prefix.to_owned(),
            topics: Mutex::new(HashMap::new()),
            postgres: OnceLock::new(),
            redis_up: watch::channel(false).0,
            shutdown: shutdown_tx,
        });
        tokio::spawn(listen(client, Arc::downgrade(&inner), shutdown_rx));
        Ok(Self { inner })
    }

    /// Starts the fallback through PostgreSQL: listens on [`notify_channel`] with a
    /// connection of its own to `database_url`, and publishes there through `db` when Redis
    /// fails. Call it once, at start-up.
    pub fn fall_back_to_postgres(&self, db: DatabaseConnection, database_url: &str) {
        if self.inner.postgres.set(db).is_err() {
            return;
        }
        tokio::spawn(listen_postgres(
            database_url.to_owned(),
            notify_channel(&self.inner.prefix),
            Arc::downgrade(&self.inner),
            self.inner.shutdown.subscribe(),
        ));
    }

    /// Whether the listener is connected to Redis (and its server answers): while it is not,
    /// events reach this instance through PostgreSQL only, and callers that double-check what
    /// an event would have told them should do it more often.
    pub fn redis_connected(&self) -> watch::Receiver<bool> {
        self.inner.redis_up.subscribe()
    }

    /// Publishes `payload` (JSON) on `topic` to every instance: through Redis, else through
    /// PostgreSQL, else to this instance's subscribers only.
    pub async fn publish<E: Event + ?Sized>(&self, topic: &str, payload: &E) {
        let json = match serde_json::to_string(payload) {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(%error, topic, "event not serializable");
                return;
            }
        };
        if self.publish_redis(topic, &json).await {
            return;
        }
        crate::metrics::redis_fallback("pubsub");
        let stand_in = payload.stand_in();
        match self.notify(topic, &json, stand_in.as_deref()).await {
            Ok(()) => {
                tracing::debug!(topic, "redis unavailable: event sent through postgresql");
            }
            Err(error) => {
                tracing::warn!(
                    topic,
                    %error,
                    "redis and postgresql unavailable: event delivered on this instance only"
                );
                self.inner.dispatch(topic, json.into());
            }
        }
    }

    /// Publishes through Redis; whether Redis took it.
    async fn publish_redis(&self, topic: &str, payload: &str) -> bool {
        let channel = format!("{}{topic}", self.inner.channel_prefix());
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&channel).arg(payload);
        self.inner
            .redis
            .cmd::<i64>("pubsub", &publish)
            .await
            .is_ok()
    }

    /// Sends the event as a PostgreSQL notification (the stand-in when it is too large).
    async fn notify(
        &self,
        topic: &str,
        payload: &str,
        stand_in: Option<&str>,
    ) -> anyhow::Result<()> {
        let db = self
            .inner
            .postgres
            .get()
            .ok_or_else(|| anyhow::anyhow!("no fallback through postgresql"))?;
        let envelope = envelope(topic, payload, stand_in).ok_or_else(|| {
            anyhow::anyhow!("event too large for a notification, and without a stand-in")
        })?;
        // `pg_notify` is a `pg_catalog` function any role may call: the login role needs no
        // privilege of the application's for it.
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [notify_channel(&self.inner.prefix).into(), envelope.into()],
        );
        tokio::time::timeout(NOTIFY_TIMEOUT, db.execute_raw(statement)).await??;
        Ok(())
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
        let connected = tokio::time::timeout(PING_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{prefix}*")).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(100);
                // Redis answers again: let the publishing client's breaker know at once (its
                // PING counts for the breaker), so events go through Redis from now on.
                if let Some(inner) = inner.upgrade() {
                    let _ = inner.redis.ping().await;
                }
                set_redis_up(&inner, true);
                let (mut sink, mut messages) = pubsub.split();
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = ping.tick() => {
                            // A frozen server keeps the connection open and says nothing.
                            let answered = tokio::time::timeout(PING_TIMEOUT, sink.ping::<()>()).await;
                            if !matches!(answered, Ok(Ok(()))) {
                                break;
                            }
                        }
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
                set_redis_up(&inner, false);
                crate::metrics::redis_error("pubsub");
                tracing::warn!("redis pub/sub connection lost; reconnecting");
            }
            Ok(Err(error)) => {
                set_redis_up(&inner, false);
                crate::metrics::redis_error("pubsub");
                tracing::warn!(%error, "redis pub/sub unavailable; retrying");
            }
            Err(_) => {
                set_redis_up(&inner, false);
                crate::metrics::redis_error("pubsub");
                tracing::warn!("redis pub/sub did not answer; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn set_redis_up(inner: &std::sync::Weak<Inner>, up: bool) {
    if let Some(inner) = inner.upgrade() {
        inner
            .redis_up
            .send_if_modified(|was| std::mem::replace(was, up) != up);
    }
}

/// Listens on the PostgreSQL channel and dispatches what arrives like Redis messages;
/// reconnects by itself.
async fn listen_postgres(
    url: String,
    channel: String,
    inner: std::sync::Weak<Inner>,
    mut shutdown: watch::Receiver<()>,
) {
    use sea_orm::sqlx::postgres::PgListener;
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(&channel).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            _ = shutdown.changed() => return,
            connected = connected => connected,
        };
        match connected {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                tracing::debug!(channel, "listening for events on postgresql");
                loop {
                    let received = tokio::select! {
                        _ = shutdown.changed() => return,
                        received = listener.try_recv() => received,
                    };
                    match received {
                        Ok(Some(notification)) => {
                            let Some(inner) = inner.upgrade() else { return };
                            match serde_json::from_str::<Envelope>(notification.payload()) {
                                Ok(envelope) => {
                                    inner.dispatch(&envelope.topic, envelope.payload.into());
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "a notification that is no event");
                                }
                            }
                        }
                        // The connection was lost and made again: what was sent meanwhile is lost.
                        Ok(None) => {
                            tracing::warn!("postgresql event listener reconnected");
                        }
                        Err(error) => {
                            tracing::warn!(%error, "postgresql event listener lost; reconnecting");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "postgresql event listener unavailable; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_a_plain_identifier_of_the_prefix() {
        assert_eq!(notify_channel("t123_4:"), "t123_4_events");
        assert_eq!(notify_channel(""), "events");
        assert_eq!(notify_channel("My-App:"), "my_app_events");
        let long = "x".repeat(100);
        let channel = notify_channel(&long);
        assert!(channel.len() <= MAX_IDENTIFIER, "{channel}");
        assert!(channel.ends_with("_events"));
        assert_ne!(channel, notify_channel(&"x".repeat(101)));
        assert!(
            notify_channel("ünï:code")
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
    }

    #[test]
    fn an_event_too_large_for_a_notification_goes_as_its_stand_in() {
        let small = envelope("chat:x", r#"{"n":1}"#, None);
        let parsed: Option<Envelope> = small.as_deref().and_then(|s| serde_json::from_str(s).ok());
        assert_eq!(
            parsed,
            Some(Envelope {
                topic: "chat:x".into(),
                payload: r#"{"n":1}"#.into()
            })
        );
        let large = format!(r#"{{"text":"{}"}}"#, "a".repeat(MAX_NOTIFY_BYTES));
        assert_eq!(envelope("chat:x", &large, None), None);
        let stand_in = envelope("chat:x", &large, Some(r#"{"id":1}"#));
        assert!(
            stand_in
                .as_deref()
                .is_some_and(|s| s.contains(r#"{\"id\":1}"#))
        );
        // Escaping counts: quotes double in size inside the envelope.
        let quotes = format!(r#"["{}"]"#, "\\\"".repeat(MAX_NOTIFY_BYTES / 4));
        assert!(envelope("t", &quotes, None).is_none_or(|e| e.len() <= MAX_NOTIFY_BYTES));
    }
}
