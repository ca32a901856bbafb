//! Event fan-out across server instances through Redis pub/sub, with PostgreSQL
//! `LISTEN`/`NOTIFY` as the fallback.
//!
//! Every instance keeps one pub/sub connection subscribed to the pattern `{prefix}ev:*` and
//! dispatches what arrives to local subscribers of that topic (each has a queue of its own,
//! which holds memory only for the events it has not taken yet, and leaves the topic when
//! dropped), so an event published on any instance reaches subscribers on all of them — its
//! own included, by the same path. Every instance also `LISTEN`s on one PostgreSQL channel
//! ([`notify_channel`]). When a Redis publish fails or times out, `publish` sends the event
//! with `pg_notify` instead (an event too large for a notification is replaced by its
//! [`Event::stand_in`]); only when PostgreSQL fails too is it delivered to this instance's
//! subscribers alone. Both listeners reconnect with backoff; the Redis one pings its
//! connection so that a frozen server is noticed, and [`PubSub::redis_connected`] says whether
//! it is connected.
//!
//! An event may arrive twice (a Redis publish that timed out may still be delivered, after its
//! notification): subscribers must take a repeat for what it is.
//!
//! An event can also be handed to this instance's subscribers at once and sent to the others
//! through Redis marked with this instance's origin ([`PubSub::mark`]): the listener drops what
//! carries its own mark, so the local subscribers get it once, without the round trip through
//! Redis. The mark is one more field at the end of the event's JSON object, which every reader
//! ignores.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::db::DatabaseConnection;

/// Events queued for a slow subscriber before it starts missing some. The queue grows with
/// what it holds (in blocks of a few dozen events), not to this bound at once.
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

/// How an event went out (see [`PubSub::publish_json`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Redis,
    Postgres,
    /// To this instance's subscribers only.
    Here,
}

/// `json` with the field of `origin` (`,"origin":"…"}`) last; `None` when `json` is no object
/// with fields.
fn marked(json: &str, origin: &str) -> Option<String> {
    let body = json.trim_end().strip_suffix('}')?;
    if !body.starts_with('{') || body[1..].trim().is_empty() {
        return None;
    }
    let mut marked = String::with_capacity(body.len() + origin.len());
    marked.push_str(body);
    marked.push_str(origin);
    Some(marked)
}

fn to_json<E: Event + ?Sized>(topic: &str, payload: &E) -> Option<String> {
    match serde_json::to_string(payload) {
        Ok(json) => Some(json),
        Err(error) => {
            tracing::error!(%error, topic, "event not serializable");
            None
        }
    }
}

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
    /// `,"origin":"<this instance>"}`: how the JSON object of an event this instance sent
    /// through Redis, after handing it to its own subscribers, ends.
    origin: String,
    local: Arc<Local>,
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

/// This instance's subscribers, by topic. A topic is held only while someone subscribes to it.
#[derive(Default)]
struct Topics {
    by_name: HashMap<String, Vec<Subscriber>>,
    /// Subscriptions held, over all topics.
    subscribers: usize,
    next_id: u64,
}

/// One subscription's end of its queue.
struct Subscriber {
    id: u64,
    queue: mpsc::Sender<Arc<str>>,
    /// Events dropped because the queue was full, until the subscription notices.
    missed: Arc<AtomicU64>,
}

impl Inner {
    fn channel_prefix(&self) -> String {
        format!("{}ev:", self.prefix)
    }

    fn dispatch(&self, topic: &str, payload: &str) {
        self.local.dispatch(topic, payload);
    }
}

/// The subscriptions of this instance. Only [`Inner`] holds it: once the [`PubSub`] is gone,
/// their queues close and their streams end.
#[derive(Default)]
struct Local {
    topics: Mutex<Topics>,
}

impl Local {
    fn topics(&self) -> MutexGuard<'_, Topics> {
        // Nothing panics while holding it; should something, the map is still consistent.
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a payload to this instance's subscribers of `topic`: one allocation shared by all
    /// of them, none when nobody here subscribes.
    fn dispatch(&self, topic: &str, payload: &str) {
        let mut topics = self.topics();
        let Some(subscribers) = topics.by_name.get_mut(topic) else {
            return;
        };
        let payload: Arc<str> = payload.into();
        let before = subscribers.len();
        subscribers.retain(
            |subscriber| match subscriber.queue.try_send(payload.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.missed.fetch_add(1, Ordering::Relaxed);
                    true
                }
                // Dropped without leaving (it cannot be, but a queue nobody reads is not kept).
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        );
        let gone = before - subscribers.len();
        if subscribers.is_empty() {
            topics.by_name.remove(topic);
        }
        topics.subscribers -= gone;
    }

    /// A subscription to `topic` from now on.
    fn join(self: &Arc<Self>, topic: &str) -> Subscription {
        let (queue, receiver) = mpsc::channel(CAPACITY);
        let missed = Arc::new(AtomicU64::new(0));
        let mut topics = self.topics();
        let id = topics.next_id;
        topics.next_id += 1;
        topics.subscribers += 1;
        topics
            .by_name
            .entry(topic.to_owned())
            .or_default()
            .push(Subscriber {
                id,
                queue,
                missed: missed.clone(),
            });
        Subscription {
            receiver,
            missed,
            left: Left {
                local: Arc::downgrade(self),
                topic: topic.to_owned(),
                id,
            },
        }
    }

    /// Subscription `id` of `topic` ended: the topic goes once nobody here subscribes to it.
    fn leave(&self, topic: &str, id: u64) {
        let mut topics = self.topics();
        let Some(subscribers) = topics.by_name.get_mut(topic) else {
            return;
        };
        let before = subscribers.len();
        subscribers.retain(|subscriber| subscriber.id != id);
        let gone = before - subscribers.len();
        if subscribers.is_empty() {
            topics.by_name.remove(topic);
        }
        topics.subscribers -= gone;
    }
}

/// The payloads published on one topic from the moment it was made; leaves the topic when
/// dropped. Ends when the [`PubSub`] is gone.
pub struct Subscription {
    receiver: mpsc::Receiver<Arc<str>>,
    missed: Arc<AtomicU64>,
    left: Left,
}

/// Takes a subscription off its topic when dropped.
struct Left {
    local: Weak<Local>,
    topic: String,
    id: u64,
}

impl Drop for Left {
    fn drop(&mut self) {
        if let Some(local) = self.local.upgrade() {
            local.leave(&self.topic, self.id);
        }
    }
}

impl Stream for Subscription {
    type Item = Arc<str>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Arc<str>>> {
        let missed = self.missed.swap(0, Ordering::Relaxed);
        if missed > 0 {
            tracing::warn!(
                topic = self.left.topic,
                missed,
                "slow subscriber missed events"
            );
        }
        self.receiver.poll_recv(cx)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.left.topic)
            .finish_non_exhaustive()
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
            origin: format!(r#","origin":"{}"}}"#, uuid::Uuid::new_v4().simple()),
            local: Arc::default(),
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
        let Some(json) = to_json(topic, payload) else {
            return;
        };
        let stand_in = payload.stand_in();
        self.publish_json(topic, &json, stand_in.as_deref()).await;
    }

    /// Hands `payload` to this instance's subscribers of `topic` at once, then sends it to the
    /// other instances: through Redis with this instance's mark (its own listener drops it),
    /// else through PostgreSQL (which brings it back here too: a repeat). So this instance's
    /// subscribers get it in the order of the calls, ahead of the deltas that follow it.
    pub async fn publish_here_first<E: Event + ?Sized>(&self, topic: &str, payload: &E) {
        let Some(json) = to_json(topic, payload) else {
            return;
        };
        let Some(marked) = self.mark(&json) else {
            self.publish(topic, payload).await;
            return;
        };
        self.dispatch_here(topic, &json);
        if self.publish_redis(topic, &marked).await {
            return;
        }
        crate::metrics::redis_fallback("pubsub");
        let stand_in = payload.stand_in();
        if let Err(error) = self.notify(topic, &json, stand_in.as_deref()).await {
            tracing::warn!(topic, %error,
                "redis and postgresql unavailable: event delivered on this instance only");
        }
    }

    /// Publishes the JSON `json` on `topic` to every instance, as [`PubSub::publish`]; which
    /// way it went.
    pub async fn publish_json(&self, topic: &str, json: &str, stand_in: Option<&str>) -> Route {
        if self.publish_redis(topic, json).await {
            return Route::Redis;
        }
        crate::metrics::redis_fallback("pubsub");
        match self.notify(topic, json, stand_in).await {
            Ok(()) => {
                tracing::debug!(topic, "redis unavailable: event sent through postgresql");
                Route::Postgres
            }
            Err(error) => {
                tracing::warn!(
                    topic,
                    %error,
                    "redis and postgresql unavailable: event delivered on this instance only"
                );
                self.inner.dispatch(topic, json);
                Route::Here
            }
        }
    }

    /// `json` (an event's JSON object) with this instance's mark, to be published on Redis
    /// after [`PubSub::dispatch_here`] handed it to this instance's subscribers; `None` when
    /// `json` is no object with fields.
    pub fn mark(&self, json: &str) -> Option<String> {
        marked(json, &self.inner.origin)
    }

    /// Hands `json` to this instance's subscribers of `topic` only.
    pub fn dispatch_here(&self, topic: &str, json: &str) {
        self.inner.dispatch(topic, json);
    }

    /// The Redis channel of `topic`.
    pub fn redis_channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.inner.channel_prefix())
    }

    /// Publishes through Redis; whether Redis took it.
    async fn publish_redis(&self, topic: &str, payload: &str) -> bool {
        let channel = self.redis_channel(topic);
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
        let channel = notify_channel(&self.inner.prefix);
        tokio::time::timeout(NOTIFY_TIMEOUT, crate::db::notify(db, &channel, &envelope)).await??;
        Ok(())
    }

    /// A stream of the JSON payloads published on `topic` from now on; it leaves the topic
    /// when dropped.
    pub fn subscribe(&self, topic: &str) -> Subscription {
        self.inner.local.join(topic)
    }

    /// Subscriptions held on this instance (over all topics), and the topics they are on.
    pub fn held(&self) -> (usize, usize) {
        let topics = self.inner.local.topics();
        (topics.subscribers, topics.by_name.len())
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
                            if let Ok(payload) = std::str::from_utf8(message.get_payload_bytes())
                                // Handed to this instance's subscribers when it was sent.
                                && !payload.ends_with(&inner.origin)
                            {
                                inner.dispatch(topic, payload);
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
                                    inner.dispatch(&envelope.topic, &envelope.payload);
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

    #[tokio::test]
    async fn a_topic_is_held_while_someone_subscribes_and_each_subscriber_gets_every_event() {
        let local = Arc::new(Local::default());
        let mut first = local.join("t");
        let mut second = local.join("t");
        let other = local.join("u");
        local.dispatch("t", "one");
        local.dispatch("nobody", "lost");
        assert_eq!(first.next().await.as_deref(), Some("one"));
        assert_eq!(second.next().await.as_deref(), Some("one"));
        {
            let topics = local.topics();
            assert_eq!((topics.subscribers, topics.by_name.len()), (3, 2));
        }
        drop(second);
        drop(other);
        local.dispatch("t", "two");
        assert_eq!(first.next().await.as_deref(), Some("two"));
        {
            let topics = local.topics();
            assert_eq!((topics.subscribers, topics.by_name.len()), (1, 1));
        }
        drop(first);
        let topics = local.topics();
        assert_eq!((topics.subscribers, topics.by_name.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_misses_events_and_goes_on() {
        let local = Arc::new(Local::default());
        let mut slow = local.join("t");
        for n in 0..CAPACITY + 3 {
            local.dispatch("t", &n.to_string());
        }
        assert_eq!(slow.missed.load(Ordering::Relaxed), 3);
        assert_eq!(slow.next().await.as_deref(), Some("0"));
        assert_eq!(slow.missed.load(Ordering::Relaxed), 0);
        local.dispatch("t", "later");
        let mut last = None;
        for _ in 0..CAPACITY {
            last = slow.next().await;
        }
        assert_eq!(last.as_deref(), Some("later"));
    }

    #[tokio::test]
    async fn subscriptions_end_when_the_pubsub_is_gone() {
        let local = Arc::new(Local::default());
        let mut subscription = local.join("t");
        drop(local);
        assert_eq!(subscription.next().await, None);
    }

    #[test]
    fn a_marked_event_is_the_same_object_with_its_origin_last() {
        let origin = r#","origin":"abc"}"#;
        let json = r#"{"type":"delta","text":"}"}"#;
        let marked = marked(json, origin).unwrap_or_default();
        assert!(marked.ends_with(origin));
        let plain: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let mut with: serde_json::Value = serde_json::from_str(&marked).unwrap_or_default();
        assert_eq!(with["origin"], "abc");
        if let Some(object) = with.as_object_mut() {
            object.remove("origin");
        }
        assert_eq!(with, plain);
        // No object with fields: nothing to mark.
        assert_eq!(super::marked("{}", origin), None);
        assert_eq!(super::marked(r#""revoked""#, origin), None);
        assert_eq!(super::marked("[1]", origin), None);
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
