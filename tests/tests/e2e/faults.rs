//! Fault drills against the real servers: the test's own PostgreSQL restarted under a steady
//! load of reads and writes, its own Redis stopped and started again under two server
//! instances, and the request pool held to exhaustion by a lock. What a client sees is
//! checked on every answer (`UNAVAILABLE` as HTTP 503 with `Retry-After`, nothing else), and
//! recovery happens without restarting the server. Every wait is on a condition, bounded by a
//! generous timeout that only detects a hang.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde_json::{Value, json};
use tests::{GqlResponse, TestApp, TestUser, eventually, restartable::RestartablePostgres};

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
        // UNAVAILABLE.
        c.db_acquire_timeout_ms = 2_000;
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
