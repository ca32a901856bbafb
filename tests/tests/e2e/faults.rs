//! Fault drills against the real servers: the test's own PostgreSQL restarted under a steady
//! load of reads and writes, its own Redis stopped and started again under two server
//! instances, and the request pool held to exhaustion by a lock. What a client sees is
//! checked on every answer (`UNAVAILABLE` as HTTP 503 with `Retry-After`, nothing else), and
//! recovery happens without restarting the server. Every wait is on a condition, bounded by a
//! generous timeout that only detects a hang.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait as _, DbBackend, Statement, TransactionTrait as _};
use serde_json::{Value, json};
use tests::{
    GqlResponse, TestApp, TestUser, eventually,
    restartable::{RestartablePostgres, RestartableRedis},
};

/// Longest any awaited condition may take before the test fails as hung.
const WAIT: Duration = Duration::from_secs(60);

const READ: &str = "{ me { id } users(first: 5) { totalCount edges { node { id } } } }";
const WRITE: &str =
    "mutation($input: CreatePresetInput!) { createPreset(input: $input) { id name } }";

/// The `extensions.code` of every error of a response.
fn codes(response: &GqlResponse) -> Vec<String> {
    response.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("(none)")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How an answer looked to a client.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    /// HTTP 503 with `Retry-After`, and only `UNAVAILABLE` errors.
    Unavailable,
    /// Anything else, described.
    Other(String),
}

fn classify(response: &GqlResponse) -> Answer {
    let codes = codes(response);
    if response.status == 200 && codes.is_empty() {
        return Answer::Ok;
    }
    let retry_after = response
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if response.status == 503
        && retry_after.is_some_and(|s| s >= 1)
        && !codes.is_empty()
        && codes.iter().all(|c| c == "UNAVAILABLE")
    {
        return Answer::Unavailable;
    }
    Answer::Other(format!(
        "HTTP {} (Retry-After {retry_after:?}): {}",
        response.status, response.body
    ))
}

/// What the load saw.
#[derive(Debug, Default)]
struct Seen {
    reads_ok: usize,
    writes_ok: usize,
    unavailable: usize,
    /// Names of the presets whose creation was acknowledged.
    acknowledged: BTreeSet<String>,
    /// Every answer that was neither a success nor a proper `UNAVAILABLE`.
    unexpected: Vec<String>,
}

/// A few clients reading and writing in a loop until told to stop.
struct Load {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, token: &str, clients: usize) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let (seen, stop) = (seen.clone(), stop.clone());
                let (http, url, token) = (app.client.clone(), app.url("/graphql"), token.to_owned());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let name = format!("load-{client}-{n}");
                        let write = n.is_multiple_of(2);
                        let body = if write {
                            json!({ "query": WRITE, "variables": { "input": {
                                "name": name,
                                "filter": {"include": {"all": [{"field": "plan", "op": "eq", "value": "pro"}]}},
                            } } })
                        } else {
                            json!({ "query": READ })
                        };
                        let answer = match http.post(&url).bearer_auth(&token).json(&body).send().await {
                            Ok(response) => match GqlResponse::from_reqwest(response).await {
                                Ok(response) => classify(&response),
                                Err(e) => Answer::Other(format!("unreadable answer: {e:#}")),
                            },
                            Err(e) => Answer::Other(format!("no answer: {e}")),
                        };
                        if let Ok(mut seen) = seen.lock() {
                            match answer {
                                Answer::Ok if write => {
                                    seen.writes_ok += 1;
                                    seen.acknowledged.insert(name);
                                }
                                Answer::Ok => seen.reads_ok += 1,
                                Answer::Unavailable => seen.unavailable += 1,
                                Answer::Other(what) => seen.unexpected.push(what),
                            }
                        }
                        // Pacing, so clients that get fast failures do not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Self { seen, stop, tasks }
    }

    /// Reads what the load saw so far with `f`.
    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits until `condition` holds on what the load saw.
    async fn until(&self, what: &str, condition: impl Fn(&Seen) -> bool) -> anyhow::Result<()> {
        let result = eventually(WAIT, what, || {
            let holds = self.with(&condition);
            async move { holds }
        })
        .await;
        result.map_err(|e| e.context(self.with(|s| format!("{s:?}"))))
    }

    /// Stops the clients and returns what they saw.
    async fn finish(self) -> anyhow::Result<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await?;
        }
        Ok(std::mem::take(
            &mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// `/ready`'s status code and body.
async fn ready(client: &reqwest::Client, base: &str) -> Option<(u16, Value)> {
    let response = client.get(format!("{base}/ready")).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// Waits until `/ready` of the server at `base` says `word` with `status`.
async fn ready_says(
    client: &reqwest::Client,
    base: &str,
    status: u16,
    word: &str,
) -> anyhow::Result<()> {
    eventually(
        WAIT,
        &format!("/ready of {base} to say {status} {word}"),
        || async {
            ready(client, base)
                .await
                .is_some_and(|(s, body)| s == status && body["status"] == word)
        },
    )
    .await
}

/// A member of a new company of `app`'s database, with the audience field presets filter on.
async fn member(app: &TestApp) -> anyhow::Result<(TestUser, String)> {
    let (company, _, members) = app.company_with_users("Acme", 1).await?;
    app.sql(&format!(
        "INSERT INTO audience_fields (company_id, name, type) VALUES ('{company}', 'plan', 'string')"
    ))
    .await?;
    let user = members[0].clone();
    let token = app.token_for(&user);
    Ok((user, token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_under_load_is_unavailable_then_recovers_losing_no_write()
-> anyhow::Result<()> {
    let mut postgres = RestartablePostgres::start().await?;
    let (app_url, admin_url) = (postgres.app_url(), postgres.admin_url());
    let app = TestApp::spawn_with(|c| {
        c.database_url = Some(app_url);
        c.database_admin_url = Some(admin_url.clone());
        c.db_max_connections = 4;
        // While PostgreSQL is down a request waits this long for a connection, then is
        // UNAVAILABLE; long enough for the server to start on a loaded machine.
        c.db_acquire_timeout_ms = 3_000;
    })
    .await?;
    let (user, token) = member(&app).await?;
    let base = app.url("");
    ready_says(&app.client, &base, 200, "ready").await?;

    let load = Load::start(&app, &token, 4);
    load.until("writes before the restart", |s| {
        s.writes_ok >= 8 && s.reads_ok >= 8
    })
    .await?;

    postgres.stop().await?;
    load.until("an UNAVAILABLE answer while PostgreSQL is down", |s| {
        s.unavailable >= 1
    })
    .await?;
    // Not ready while PostgreSQL is down: the load balancer takes the instance out.
    let (status, body) = ready(&app.client, &base)
        .await
        .ok_or_else(|| anyhow::anyhow!("/ready did not answer"))?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["postgres"]["status"], "unavailable", "{body}");
    // A short, stable reason, never the driver's text.
    assert!(
        [
            "connection refused",
            "connection lost",
            "connection failed",
            "shutting down",
            "timeout"
        ]
        .iter()
        .any(|reason| body["postgres"]["error"] == *reason),
        "{body}"
    );

    postgres.start_again().await?;
    let (reads, writes) = load.with(|s| (s.reads_ok, s.writes_ok));
    // The same pool, the same server: no restart of it.
    load.until("reads and writes to succeed again", |s| {
        s.reads_ok >= reads + 4 && s.writes_ok >= writes + 4
    })
    .await?;
    ready_says(&app.client, &base, 200, "ready").await?;
    let seen = load.finish().await?;

    assert!(
        seen.unexpected.is_empty(),
        "answers other than a success or UNAVAILABLE (503, Retry-After): {:#?}",
        seen.unexpected
    );
    // Every acknowledged write is there, read on a connection of after the restart.
    let admin = server::db::connect_pool(&postgres.admin_url(), 1, WAIT).await?;
    let rows = admin
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT name FROM presets WHERE owner_id = $1",
            [user.id.into()],
        ))
        .await?;
    let stored: BTreeSet<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name"))
        .collect::<Result<_, _>>()?;
    let missing: Vec<&String> = seen.acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    assert!(seen.acknowledged.len() >= 12, "{seen:?}");
    let _ = admin.close().await;
    app.shutdown().await?;
    Ok(())
}

/// POSTs an operation to the server at `addr`, with a bearer token when given.
async fn post(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> anyhow::Result<GqlResponse> {
    let mut request = client
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    GqlResponse::from_reqwest(request.send().await?).await
}

const LOGIN: &str =
    "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken } }";
const REFRESH: &str =
    "mutation($t: String) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";

async fn login(
    client: &reqwest::Client,
    addr: SocketAddr,
    email: &str,
    password: &str,
) -> anyhow::Result<GqlResponse> {
    post(
        client,
        addr,
        None,
        LOGIN,
        json!({ "input": { "email": email, "password": password } }),
    )
    .await
}

/// Whether `token` is served `me` by the server at `addr`: `Ok(true)` when it is, `Ok(false)`
/// when refused as `UNAUTHENTICATED` with HTTP 401; anything else is an error.
async fn signed_in(
    client: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
) -> anyhow::Result<bool> {
    let response = post(client, addr, Some(token), "{ me { id } }", json!({})).await?;
    match (response.status, codes(&response).as_slice()) {
        (200, []) => Ok(true),
        (401, [code]) if code == "UNAUTHENTICATED" => Ok(false),
        _ => anyhow::bail!(
            "unexpected answer to me: {} {}",
            response.status,
            response.body
        ),
    }
}

/// How many failed logins for `email` (a fresh address) the servers at `addrs` accept, in
/// turn, before the first is `RATE_LIMITED`; at most `limit + 1` are tried.
async fn logins_until_limited(
    client: &reqwest::Client,
    addrs: &[SocketAddr],
    email: &str,
    limit: usize,
) -> anyhow::Result<usize> {
    for attempt in 0..=limit {
        let addr = addrs[attempt % addrs.len()];
        let response = login(client, addr, email, "not the password at all").await?;
        match codes(&response).as_slice() {
            [code] if code == "RATE_LIMITED" => return Ok(attempt),
            [code] if code == "UNAUTHENTICATED" => {}
            _ => anyhow::bail!(
                "unexpected answer to login: {} {}",
                response.status,
                response.body
            ),
        }
    }
    Ok(limit + 1)
}

/// How many rate-limit keys are in Redis under `prefix`.
async fn limits_in_redis(url: &str, prefix: &str) -> anyhow::Result<usize> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}rl:*"))
        .query_async(&mut conn)
        .await?;
    Ok(keys.len())
}

/// Waits until the rate limiter of the server at `addr` keeps its counts in Redis again (it
/// decides in process for a moment after Redis failed).
async fn limits_shared_again(
    client: &reqwest::Client,
    addr: SocketAddr,
    redis_url: &str,
    prefix: &str,
) -> anyhow::Result<()> {
    let probe = std::sync::atomic::AtomicUsize::new(0);
    eventually(WAIT, "the rate limiter to use Redis again", || async {
        let n = probe.fetch_add(1, Ordering::SeqCst);
        let Ok(before) = limits_in_redis(redis_url, prefix).await else {
            return false;
        };
        let email = format!("probe-{}-{n}@nowhere.example", addr.port());
        if login(client, addr, &email, "not the password at all")
            .await
            .is_err()
        {
            return false;
        }
        limits_in_redis(redis_url, prefix)
            .await
            .is_ok_and(|after| after > before)
    })
    .await
}

const LIMIT: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopping_keeps_sessions_and_revocation_correct_limits_per_instance_and_recovers()
-> anyhow::Result<()> {
    let mut redis = RestartableRedis::start().await?;
    let redis_url = redis.url();
    let app = TestApp::spawn_with(|c| {
        c.redis_url = Some(redis_url.clone());
        // Only the per-address-and-client login limit applies, so it alone is observed.
        c.rate_limit_login_per_ip = 0;
        c.rate_limit_login_per_email_and_ip = LIMIT as u32;
    })
    .await?;
    let peer = app.spawn_peer().await?;
    let (a, b) = (app.addr, peer.addr);
    let both = [a, b];
    let client = &app.client;
    let prefix = app.config.redis_key_prefix.clone();
    let (email, password) = ("ann@acme.example", "correct horse battery");

    // Redis up: sessions checked (and cached) through it, limits shared by the instances.
    let signed_up = app.sign_up("Acme", email, password).await?;
    let first = signed_up["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for addr in both {
        assert!(signed_in(client, addr, &first).await?);
    }
    assert_eq!(
        logins_until_limited(client, &both, "up@nowhere.example", LIMIT).await?,
        LIMIT,
        "one limit over both instances"
    );

    redis.stop().await?;
    for addr in both {
        ready_says(client, &format!("http://{addr}"), 200, "degraded").await?;
    }
    // Sign-in, refresh and authenticated requests go through PostgreSQL.
    let logged_in = login(client, b, email, password).await?;
    let refresh = logged_in.data()?["login"]["refreshToken"].clone();
    let refreshed = post(client, a, None, REFRESH, json!({ "t": refresh })).await?;
    let second = refreshed.data()?["refreshToken"]["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for addr in both {
        assert!(signed_in(client, addr, &first).await?);
        assert!(signed_in(client, addr, &second).await?);
    }
    // A logout on one instance is effective on both, though the other cached the session as
    // active in the Redis that is gone.
    let logout = post(client, a, Some(&first), "mutation { logout }", json!({})).await?;
    assert_eq!(logout.data()?["logout"], true);
    for addr in both {
        assert!(
            !signed_in(client, addr, &first).await?,
            "revoked session served by {addr}"
        );
        assert!(signed_in(client, addr, &second).await?);
    }
    // Each instance limits on its own.
    for addr in both {
        assert_eq!(
            logins_until_limited(client, &[addr], "down@nowhere.example", LIMIT).await?,
            LIMIT,
            "the limit of {addr} alone"
        );
    }

    // Redis back, with what it held before it stopped (the session cached as active).
    redis.start_again().await?;
    for addr in both {
        ready_says(client, &format!("http://{addr}"), 200, "ready").await?;
    }
    for addr in both {
        assert!(
            !signed_in(client, addr, &first).await?,
            "revoked session served by {addr}"
        );
        assert!(signed_in(client, addr, &second).await?);
    }
    for addr in both {
        limits_shared_again(client, addr, &redis.url(), &prefix).await?;
    }
    assert_eq!(
        logins_until_limited(client, &both, "up-again@nowhere.example", LIMIT).await?,
        LIMIT,
        "one limit over both instances again"
    );
    assert!(login(client, a, email, password).await?.data().is_ok());
    let logout = post(client, b, Some(&second), "mutation { logout }", json!({})).await?;
    assert_eq!(logout.data()?["logout"], true);
    for addr in both {
        assert!(!signed_in(client, addr, &second).await?);
    }
    peer.shutdown().await?;
    app.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn an_exhausted_pool_answers_unavailable_after_the_acquire_timeout_and_recovers()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| {
        c.db_max_connections = 2;
        // Long enough for the server to start on a loaded machine, short for the test.
        c.db_acquire_timeout_ms = 3_000;
        // One company may take the whole pool, and its requests wait for a lock as long as
        // it is held: the lock below holds every connection.
        c.db_company_share_percent = 100;
        c.db_lock_timeout_ms = 0;
        c.db_statement_timeout_ms = 0;
    })
    .await?;
    let (_, token) = member(&app).await?;
    let client = &app.client;
    // The session is checked, and cached, before the pool is held.
    assert!(signed_in(client, app.addr, &token).await?);

    let admin_url = app.config.database_admin_url.clone().unwrap_or_default();
    let locker = server::db::connect_pool(&admin_url, 1, WAIT).await?;
    let lock = locker.begin().await?;
    lock.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await?;
    // Two requests take both connections and wait on the lock (each opening reads `users`).
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let (client, addr, token) = (client.clone(), app.addr, token.clone());
            tokio::spawn(async move { post(&client, addr, Some(&token), READ, json!({})).await })
        })
        .collect();
    eventually(
        WAIT,
        "both pooled connections to wait on the lock",
        || async {
            app.admin
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT count(*)::int AS waiting FROM pg_locks \
                 WHERE NOT granted AND relation = 'users'::regclass",
                ))
                .await
                .ok()
                .flatten()
                .and_then(|row| row.try_get::<i32>("", "waiting").ok())
                .is_some_and(|waiting| waiting >= 2)
        },
    )
    .await?;

    // Anything else waits the acquire timeout, then is UNAVAILABLE.
    for query in [READ, "{ presets(first: 1) { totalCount } }"] {
        let response = post(client, app.addr, Some(&token), query, json!({})).await?;
        assert_eq!(
            classify(&response),
            Answer::Unavailable,
            "{}",
            response.body
        );
    }
    let (status, body) = ready(client, &app.url(""))
        .await
        .ok_or_else(|| anyhow::anyhow!("/ready did not answer"))?;
    assert_eq!(
        (status, &body["postgres"]["status"]),
        (200, &json!("busy")),
        "{body}"
    );

    // The load goes: the waiting requests finish, and new ones are served.
    lock.rollback().await?;
    for holder in holders {
        let response = holder.await??;
        assert_eq!(classify(&response), Answer::Ok, "{}", response.body);
    }
    let response = post(client, app.addr, Some(&token), READ, json!({})).await?;
    assert_eq!(classify(&response), Answer::Ok, "{}", response.body);
    ready_says(client, &app.url(""), 200, "ready").await?;
    let _ = locker.close().await;
    app.shutdown().await?;
    Ok(())
}
