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
//! pipeline (sent with other deltas', see `relay`), and the list's lifetime is renewed with the
//! generator's lease rather than with every delta. After Redis missed deltas of a reply, its
//! generator writes the text so far back as a *base* (the text and the index of its last delta,
//! two keys) and starts the list afresh: the text so far is then the base followed by the
//! list. (An instance of an earlier version kept the text so far in the same two keys, without
//! a list.)

use std::time::Duration;

use uuid::Uuid;

use crate::kv::Redis;

/// How long the deltas of a streaming reply live without their generator renewing its lease.
pub const STREAMING_TTL: Duration = Duration::from_secs(15 * 60);
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

/// The text so far and the index of its last delta, from the deltas in the list after the base
/// (its text and index), if any; `None` before the first delta.
fn so_far(deltas: Vec<String>, base: Option<(String, i64)>) -> Option<(String, i64)> {
    let count = deltas.len() as i64;
    match base {
        Some((mut text, index)) if index + count >= 0 => {
            text.extend(deltas);
            Some((text, index + count))
        }
        _ if count == 0 => None,
        _ => Some((deltas.concat(), count - 1)),
    }
}

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

    /// The base of the text so far and the index of its last delta (see the module's
    /// documentation); where an instance of an earlier version kept the whole text so far.
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

    /// Writes `text`, the text so far made of the deltas up to `index`, as the reply's base and
    /// empties its list, in one transaction: the deltas after `index` are pushed onto the list.
    pub async fn rebase(&self, message: Uuid, text: &str, index: i64) -> anyhow::Result<()> {
        let ttl = STREAMING_TTL.as_millis() as u64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.deltas_key(message))
            .ignore()
            .pset_ex(self.text_key(message), text, ttl)
            .ignore()
            .pset_ex(self.index_key(message), index, ttl)
            .ignore();
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
        Ok(so_far(deltas, text.zip(index)))
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
    /// `ttl`, and keeps the reply's deltas (and base) for `STREAMING_TTL` from now.
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
        .ignore()
        .pexpire(self.text_key(message), STREAMING_TTL.as_millis() as i64)
        .ignore()
        .pexpire(self.index_key(message), STREAMING_TTL.as_millis() as i64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_so_far_is_the_base_then_the_list() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(so_far(list(&[]), None), None);
        assert_eq!(so_far(list(&["a", "b"]), None), Some(("ab".to_owned(), 1)));
        // An earlier version's text so far, or a base with nothing pushed after it yet.
        assert_eq!(
            so_far(list(&[]), Some(("abc".to_owned(), 2))),
            Some(("abc".to_owned(), 2))
        );
        assert_eq!(
            so_far(list(&["d", "e"]), Some(("abc".to_owned(), 2))),
            Some(("abcde".to_owned(), 4))
        );
        // A base before the first delta.
        assert_eq!(so_far(list(&[]), Some((String::new(), -1))), None);
        assert_eq!(
            so_far(list(&["a"]), Some((String::new(), -1))),
            Some(("a".to_owned(), 0))
        );
    }
}
