//! How the deltas of the replies streaming on this instance reach the other instances: each
//! delta is handed to this instance's subscribers at once (by the generation), and queued here;
//! one task sends what is queued, from every reply, as one Redis pipeline (for each delta its
//! `RPUSH` onto the reply's list, then one `PUBLISH` of them all as a batch, which the other
//! instances' listeners take apart and this instance's own drops, see `crate::pubsub::Batch`)
//! once the previous pipeline answered and `LINGER` passed. So a delta costs this instance no
//! Redis round trip of its own, and each instance one pub/sub message per batch of deltas
//! instead of one per delta.
//!
//! Redis runs a pipeline's commands in order: every delta is stored before it is published,
//! as `live` requires. Should a pipeline fail (Redis down, or no answer within
//! `REDIS_TIMEOUT_MS`), every reply in it is *lost* to Redis: its deltas from then on are not
//! sent (a list with a gap would give a late subscriber the wrong text), but handed back to its
//! generation, which stores the text so far in PostgreSQL and publishes them the slow way (see
//! `generate`), until it writes the text so far back to Redis.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use tokio::sync::{Notify, watch};

use crate::{kv::Redis, pubsub::PubSub};

/// How long the task waits, after a delta was queued, for more deltas to send with it: a delta
/// reaches the other instances up to this much later, and the subscribers of this one at once.
pub const LINGER: Duration = Duration::from_millis(2);
/// Deltas sent in one pipeline at most.
const MAX_BATCH: usize = 2048;
/// The component of the relay's Redis calls in the metrics.
const LIVE: &str = "chat_live";

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these; should something, the state is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One streaming reply's side of the relay.
pub struct Relay {
    /// The Redis list of the reply's deltas, and the conversation's topic.
    deltas_key: String,
    topic: String,
    state: Mutex<RelayState>,
    /// Woken when deltas of this reply were handed back (see [`Relay::take_unsent`]).
    pub handed_back: Notify,
}

#[derive(Default)]
struct RelayState {
    /// A delta of this reply did not reach Redis: none is sent from then on.
    lost: bool,
    /// The next delta sent is the first of the list: it gives the list its lifetime.
    fresh: bool,
    /// The JSON of the deltas that were not sent, in order.
    unsent: Vec<String>,
    /// The number of the last delta queued.
    last_queued: u64,
}

impl Relay {
    pub fn new(deltas_key: String, topic: String) -> Arc<Self> {
        Arc::new(Self {
            deltas_key,
            topic,
            state: Mutex::new(RelayState {
                fresh: true,
                ..RelayState::default()
            }),
            handed_back: Notify::new(),
        })
    }

    /// Whether the reply's deltas go the slow way.
    pub fn is_lost(&self) -> bool {
        locked(&self.state).lost
    }

    /// The deltas handed back (their JSON, in order), once the queue holds none of this reply
    /// (see [`Outbox::settle`]).
    pub fn take_unsent(&self) -> Vec<String> {
        std::mem::take(&mut locked(&self.state).unsent)
    }

    /// Redis holds the text so far again (the list starts afresh): deltas are sent again.
    pub fn recovered(&self) {
        let mut state = locked(&self.state);
        state.lost = false;
        state.fresh = true;
    }

    fn hand_back(&self, entry: Entry) {
        let mut state = locked(&self.state);
        state.lost = true;
        state.unsent.push(entry.json);
        drop(state);
        self.handed_back.notify_one();
    }
}

/// A delta waiting to be sent.
struct Entry {
    relay: Arc<Relay>,
    number: u64,
    text: String,
    /// The delta's event.
    json: String,
    expire: bool,
}

/// The queue of this instance's deltas, and the task that sends them. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    pubsub: PubSub,
    queue: Mutex<Queue>,
    wake: Arc<Notify>,
    /// The number of the last delta sent (or handed back).
    sent: watch::Sender<u64>,
    /// How long the deltas of a streaming reply live without their generator renewing it.
    ttl: Duration,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    next: u64,
}

impl Outbox {
    /// The queue, and its task (which ends once the queue is gone).
    pub fn start(
        redis: Redis,
        pubsub: PubSub,
        ttl: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            redis,
            pubsub,
            queue: Mutex::new(Queue {
                entries: Vec::new(),
                next: 1,
            }),
            wake: Arc::clone(&wake),
            sent: watch::channel(0).0,
            ttl,
        });
        let task = tokio::spawn(send_batches(Arc::downgrade(&inner), wake));
        (Self { inner }, task)
    }

    /// Queues delta `text` of `relay`'s reply, `json` its event; gives `json` back (nothing
    /// queued) when the reply is lost to Redis.
    pub fn queue(&self, relay: &Arc<Relay>, text: &str, json: String) -> Result<(), String> {
        let mut state = locked(&relay.state);
        if state.lost {
            return Err(json);
        }
        let expire = std::mem::take(&mut state.fresh);
        let number = {
            let mut queue = locked(&self.inner.queue);
            let number = queue.next;
            queue.next += 1;
            queue.entries.push(Entry {
                relay: Arc::clone(relay),
                number,
                text: text.to_owned(),
                json,
                expire,
            });
            number
        };
        state.last_queued = number;
        drop(state);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Resolves once every delta `relay` queued was sent or handed back (bounded: the task's
    /// calls are bounded by `REDIS_TIMEOUT_MS`).
    pub async fn settle(&self, relay: &Relay) {
        let last = locked(&relay.state).last_queued;
        let mut sent = self.inner.sent.subscribe();
        let bound = self.inner.redis.timeout() * 4 + LINGER;
        let _ = tokio::time::timeout(bound, sent.wait_for(|sent| *sent >= last)).await;
    }
}

async fn send_batches(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(outbox) = inner.upgrade() else {
            return;
        };
        let waiting = locked(&outbox.queue).entries.is_empty();
        if waiting {
            drop(outbox);
            // Looks again now and then: the queue may be gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            continue;
        }
        tokio::time::sleep(LINGER).await;
        let entries = {
            let mut queue = locked(&outbox.queue);
            let take = queue.entries.len().min(MAX_BATCH);
            queue.entries.drain(..take).collect::<Vec<_>>()
        };
        let Some(last) = entries.last().map(|e| e.number) else {
            continue;
        };
        send(&outbox, entries).await;
        outbox.sent.send_replace(last);
    }
}

/// Sends `entries` as one pipeline, handing back those of lost replies, and all of them
/// should the pipeline fail.
async fn send(outbox: &Inner, entries: Vec<Entry>) {
    let ttl = outbox.ttl.as_millis() as i64;
    let mut pipe = redis::Pipeline::with_capacity(entries.len() + 1);
    let mut batch = outbox.pubsub.batch();
    let mut sent = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry.relay.is_lost() {
            let relay = Arc::clone(&entry.relay);
            relay.hand_back(entry);
            continue;
        }
        let relay = &entry.relay;
        let mut push = redis::Cmd::with_capacity(3, 5 + relay.deltas_key.len() + entry.text.len());
        push.arg("RPUSH").arg(&relay.deltas_key).arg(&entry.text);
        pipe.add_command(push);
        if entry.expire {
            pipe.pexpire(&relay.deltas_key, ttl);
        }
        if !batch.push(&relay.topic, &entry.json) {
            // Not for a batch (no delta is): on its own, unmarked; here it is a repeat.
            let mut publish = redis::Cmd::with_capacity(3, 64 + entry.json.len());
            publish
                .arg("PUBLISH")
                .arg(outbox.pubsub.redis_channel(&relay.topic))
                .arg(&entry.json);
            pipe.add_command(publish);
        }
        sent.push(entry);
    }
    if sent.is_empty() {
        return;
    }
    if !batch.is_empty() {
        let mut publish =
            redis::Cmd::with_capacity(3, 7 + batch.channel.len() + batch.payload.len());
        publish
            .arg("PUBLISH")
            .arg(&batch.channel)
            .arg(&batch.payload);
        pipe.add_command(publish);
    }
    if let Err(error) = outbox.redis.pipe::<()>(LIVE, &pipe).await {
        crate::metrics::redis_fallback(LIVE);
        tracing::warn!(%error, replies = sent.len(),
            "redis unavailable: these replies' deltas go through postgresql until redis answers again");
        for entry in sent {
            let relay = Arc::clone(&entry.relay);
            relay.hand_back(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(relay: &Arc<Relay>, number: u64, json: &str) -> Entry {
        Entry {
            relay: Arc::clone(relay),
            number,
            text: "t".into(),
            json: json.into(),
            expire: false,
        }
    }

    #[tokio::test]
    async fn without_redis_every_queued_delta_is_handed_back_in_order_and_no_more_is_queued() {
        let Ok(redis) = Redis::connect(
            "redis://127.0.0.1:1",
            4,
            crate::kv::RedisSettings::default(),
        ) else {
            panic!("the URL parses");
        };
        let Ok(pubsub) = PubSub::start("redis://127.0.0.1:1", redis.clone(), "t:") else {
            panic!("the URL parses");
        };
        let (outbox, _task) = Outbox::start(redis, pubsub, Duration::from_secs(60));
        let relay = Relay::new("k".into(), "c".into());
        let other = Relay::new("l".into(), "c".into());
        let deltas = [r#"{"index":0}"#, r#"{"index":1}"#];
        for json in deltas {
            assert!(outbox.queue(&relay, "t", json.into()).is_ok());
        }
        outbox.settle(&relay).await;
        assert!(relay.is_lost());
        assert!(!other.is_lost());
        assert_eq!(relay.take_unsent(), deltas.map(str::to_owned).to_vec());
        assert_eq!(outbox.queue(&relay, "t", "{}".into()), Err("{}".to_owned()));
        relay.recovered();
        assert!(outbox.queue(&relay, "t", r#"{"index":2}"#.into()).is_ok());
    }

    #[test]
    fn a_delta_handed_back_is_its_plain_json_and_the_reply_is_lost_until_it_recovers() {
        let relay = Relay::new("k".into(), "c".into());
        assert!(!relay.is_lost());
        relay.hand_back(entry(&relay, 1, r#"{"type":"delta","index":0}"#));
        relay.hand_back(entry(&relay, 2, r#"{"type":"delta","index":1}"#));
        assert!(relay.is_lost());
        assert_eq!(
            relay.take_unsent(),
            vec![
                r#"{"type":"delta","index":0}"#.to_owned(),
                r#"{"type":"delta","index":1}"#.to_owned()
            ]
        );
        assert!(relay.take_unsent().is_empty());
        relay.recovered();
        assert!(!relay.is_lost());
        assert!(locked(&relay.state).fresh);
    }
}
