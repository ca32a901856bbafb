//! Redis state of replies while they stream: the deltas so far (for subscribers that join
//! late, on any instance), the lease of the instance generating each reply (see `sweep`), and
//! each company's running generations (for the concurrency limit across instances).
//!
//! The generator writes a delta here *before* publishing it; a subscriber subscribes *before*
//! reading here. So every delta with an index above the one read is published after the
//! subscription began and arrives live, and the ones at or below it are in the text read:
//! concatenating the catch-up and the live deltas gives exactly the reply.
//!
//! The deltas are a Redis list, so that the text and the index of its last delta (the list's
//! length less one) are one value, read at once: a delta costs `RPUSH` and `PUBLISH` in one
//! round trip, and the list's lifetime is renewed with the generator's lease rather than with
//! every delta.

use std::time::Duration;

use uuid::Uuid;

use crate::kv::Redis;

/// How long the deltas of a streaming reply live without their generator renewing its lease.
const STREAMING_TTL: Duration = Duration::from_secs(15 * 60);
/// How long the state of a finished reply stays (late readers of the last events).
const FINISHED_TTL: Duration = Duration::from_secs(60);
/// The components of the chat's Redis calls in the metrics: the live state and leases, and
/// the company's slots.
const LIVE: &str = "chat_live";
const SLOTS: &str = "chat_slots";
/// How long a generation's slot in the company's limit lasts unless renewed.
pub const SLOT_LEASE: Duration = Duration::from_secs(120);

/// Atomically: drop expired slots, refuse when `ARGV[2]` are running, else take one until
/// `ARGV[3]` (ms). Returns 1 when taken.
const ACQUIRE_LUA: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('ZSCORE', KEYS[1], ARGV[4]) == false
   and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// The chat's Redis keys. Every call is bounded by `REDIS_TIMEOUT_MS` and fails at once while
/// the Redis circuit breaker is open (see [`crate::kv`]).
#[derive(Clone)]
pub struct LiveStore {
    redis: Redis,
    prefix: String,
    acquire: redis::Script,
}

impl std::fmt::Debug for LiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveStore")
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl LiveStore {
    pub fn new(redis: Redis, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            acquire: redis::Script::new(ACQUIRE_LUA),
        }
    }

    /// The deltas of a reply.
    pub fn deltas_key(&self, message: Uuid) -> String {
        format!("{}chat:live:{message}:deltas", self.prefix)
    }

    /// Where an instance of an earlier version kept the text so far and its last index: read
    /// too, so a reply it streamed still has its catch-up while both versions run.
    fn text_key(&self, message: Uuid) -> String {
        format!("{}chat:live:{message}:text", self.prefix)
    }

    fn index_key(&self, message: Uuid) -> String {
        format!("{}chat:live:{message}:index", self.prefix)
    }

    fn lease_key(&self, message: Uuid) -> String {
        format!("{}chat:lease:{message}", self.prefix)
    }

    fn slots_key(&self, company: Uuid) -> String {
        format!("{}chat:slots:{company}", self.prefix)
    }

    /// Stores delta `index` of the reply whose deltas are at `deltas_key` and publishes
    /// `payload` on the pub/sub `channel`, in one round trip: Redis runs a connection's
    /// commands in order, so the delta is stored before the event goes out. The first delta
    /// gives the list its lifetime (renewed with the lease, see [`LiveStore::renew_lease`]).
    pub async fn append_and_publish(
        &self,
        deltas_key: &str,
        index: i64,
        text: &str,
        channel: &str,
        payload: &str,
    ) -> anyhow::Result<()> {
        // This runs for every token: the commands are sized up front, and their answers (all
        // read as `()`) need no list of the ones to ignore.
        let command = |name: &str, key: &str, value: &str| {
            let mut cmd = redis::Cmd::with_capacity(3, name.len() + key.len() + value.len());
            cmd.arg(name).arg(key).arg(value);
            cmd
        };
        let mut pipe = redis::Pipeline::with_capacity(3);
        pipe.add_command(command("RPUSH", deltas_key, text));
        if index == 0 {
            pipe.pexpire(deltas_key, STREAMING_TTL.as_millis() as i64);
        }
        pipe.add_command(command("PUBLISH", channel, payload));
        self.redis.pipe::<()>(LIVE, &pipe).await?;
        Ok(())
    }

    /// The text so far and the index of its last delta; `None` before the first delta.
    pub async fn read(&self, message: Uuid) -> anyhow::Result<Option<(String, i64)>> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .lrange(self.deltas_key(message), 0, -1)
            .get(self.text_key(message))
            .get(self.index_key(message));
        let (deltas, text, index): (Vec<String>, Option<String>, Option<i64>) =
            self.redis.pipe(LIVE, &pipe).await?;
        Ok(match (deltas.len(), text, index) {
            (0, Some(text), Some(index)) => Some((text, index)),
            (0, _, _) => None,
            (count, _, _) => Some((deltas.concat(), count as i64 - 1)),
        })
    }

    /// Keeps a finished reply's state for a short while only.
    pub async fn finish(&self, message: Uuid) -> anyhow::Result<()> {
        let ttl = FINISHED_TTL.as_millis() as i64;
        let mut pipe = redis::pipe();
        pipe.pexpire(self.deltas_key(message), ttl)
            .ignore()
            .pexpire(self.text_key(message), ttl)
            .ignore()
            .pexpire(self.index_key(message), ttl)
            .ignore();
        self.redis.pipe::<()>(LIVE, &pipe).await?;
        Ok(())
    }

    /// Takes or renews the lease of `holder` (an instance) on the generation of `message`, for
    /// `ttl`, and keeps the reply's deltas for `STREAMING_TTL` from now.
    pub async fn renew_lease(
        &self,
        message: Uuid,
        holder: Uuid,
        ttl: Duration,
    ) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        pipe.pset_ex(
            self.lease_key(message),
            holder.to_string(),
            ttl.as_millis() as u64,
        )
        .ignore()
        .pexpire(self.deltas_key(message), STREAMING_TTL.as_millis() as i64)
        .ignore();
        self.redis.pipe::<()>(LIVE, &pipe).await?;
        Ok(())
    }

    /// Takes the lease on `message` for `claimer` (finalising the reply) unless someone holds
    /// it: `false` when its generator's lease is still live or another instance claimed it.
    pub async fn claim_lease(
        &self,
        message: Uuid,
        claimer: Uuid,
        ttl: Duration,
    ) -> anyhow::Result<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.lease_key(message))
            .arg(format!("sweep:{claimer}"))
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64);
        let taken: Option<String> = self.redis.cmd(LIVE, &cmd).await?;
        Ok(taken.is_some())
    }

    /// Drops the lease on a reply that ended.
    pub async fn release_lease(&self, message: Uuid) -> anyhow::Result<()> {
        self.redis
            .cmd::<()>(LIVE, &redis::Cmd::del(self.lease_key(message)))
            .await?;
        Ok(())
    }

    /// Takes (or renews) a slot of the company's concurrency limit; `false` when full.
    pub async fn acquire_slot(
        &self,
        company: Uuid,
        message: Uuid,
        limit: u32,
    ) -> anyhow::Result<bool> {
        let now = now_ms();
        let lease = SLOT_LEASE.as_millis() as i64;
        let mut invocation = self.acquire.key(self.slots_key(company));
        invocation
            .arg(now)
            .arg(limit)
            .arg(now + lease)
            .arg(message.to_string())
            .arg(lease);
        let taken: i64 = self.redis.script(SLOTS, &invocation).await?;
        Ok(taken == 1)
    }

    /// Gives a slot back.
    pub async fn release_slot(&self, company: Uuid, message: Uuid) -> anyhow::Result<()> {
        let cmd = redis::Cmd::zrem(self.slots_key(company), message.to_string());
        self.redis.cmd::<()>(SLOTS, &cmd).await?;
        Ok(())
    }
}
