//! `make bench`, chat streaming: STREAMS conversations stream replies at once from the fake
//! provider at RATE tokens/s each, through a release server process of their own, to one
//! WebSocket subscriber each (in this process, apart from the server's). Prints the server's
//! CPU time per delta, the latency it adds per delta (the fake's send time, carried in the
//! token, to the subscriber's receive time: p50 / p99), the server's memory per open
//! subscription (resident memory with every subscriber connected over that before the first
//! one connected) and what is left of it once they closed, with the machine's CPUs and idle
//! share before the run.
//!
//! Usage: `bench_chat <server binary> [BENCHMARKS.md to update]`. Knobs (environment):
//! BENCH_CHAT_STREAMS (500), BENCH_CHAT_RATE (20), BENCH_CHAT_TOKENS (60),
//! BENCH_CHAT_LOCKSTEP (0: the streams' first tokens are spread over one token interval, as
//! independent streams are; 1: every stream sends its tokens at the same instants),
//! BENCH_CHAT_CALLGRIND (1: the server runs under `valgrind --tool=callgrind`, counting only
//! while the replies stream, see `scripts/bench-chat.sh`), BENCH_CHAT_PERF (a path: `perf
//! record` samples the server while the replies stream and writes its data there, which
//! `scripts/bench-chat.sh` renders as a flame graph).

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tests::{
    TestApp,
    fake_llm::{FakeLlm, Reply, StreamScript},
    ws::{WsClient, WsOutcome},
};

const EVENTS: &str = "subscription($id: ID!) { conversationEvents(conversationId: $id) {
  __typename ... on MessageDelta { index text } ... on MessageCompleted { message { status } }
  ... on MessageFailed { reason } } }";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The machine's CPUs and the share of their time idle over `over`, from /proc/stat.
async fn machine(over: Duration) -> (usize, f64) {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // idle + iowait, of all
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some((idle, fields.iter().sum()))
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let before = sample();
    tokio::time::sleep(over).await;
    let share = match (before, sample()) {
        (Some((idle0, all0)), Some((idle1, all1))) if all1 > all0 => {
            100.0 * (idle1 - idle0) as f64 / (all1 - all0) as f64
        }
        _ => f64::NAN,
    };
    (cpus, share)
}

/// The samples of metric `name` by the value of its label `label` (`component="x"`: `x`),
/// from the server's `/metrics`.
async fn metric_by(
    http: &reqwest::Client,
    url: &str,
    name: &str,
    label: &str,
) -> Vec<(String, f64)> {
    let Ok(response) = http.get(url).send().await else {
        return Vec::new();
    };
    let text = response.text().await.unwrap_or_default();
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (series, value) = rest.split_once("} ")?;
            let start = series.find(&key)? + key.len();
            let end = series[start..].find('"')? + start;
            Some((series[start..end].to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of metric `name` whose labels contain `labels`, from the server's
/// `/metrics`; `None` when it cannot be read or has no such metric.
async fn metric(http: &reqwest::Client, url: &str, name: &str, labels: &str) -> Option<f64> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (series, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once("} ") {
                Some((series, value)) => (series, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        if series.contains(labels)
            && let Ok(value) = value.trim().parse::<f64>()
        {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// (resident bytes, CPU seconds) of a process, from /proc.
fn usage(pid: u32) -> anyhow::Result<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .context("short /proc stat")?
        .iter()
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    Ok((rss_kib * 1024, ticks / 100.0))
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn graphql(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let body: Value = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(body["errors"].is_null(), "{body}");
    Ok(body["data"].clone())
}

/// One subscriber: waits for the reply to start, then records each delta's added latency.
async fn follow(mut ws: WsClient, latencies: Arc<Mutex<Vec<i64>>>) -> anyhow::Result<()> {
    loop {
        let message = ws.next_json().await?;
        anyhow::ensure!(message["type"] == "next", "{message}");
        let event = &message["payload"]["data"]["conversationEvents"];
        match event["__typename"].as_str() {
            Some("MessageDelta") => {
                let now = chrono::Utc::now().timestamp_micros();
                let stamps: Vec<i64> = event["text"]
                    .as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
                // A catch-up delta holds several tokens: only single ones are timed.
                if let [sent] = stamps[..]
                    && let Ok(mut all) = latencies.lock()
                {
                    all.push(now - sent);
                }
            }
            Some("MessageCompleted") => return Ok(()),
            Some("MessageFailed") => anyhow::bail!("a reply failed: {event}"),
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let server_bin = args
        .next()
        .context("usage: bench_chat <server binary> [BENCHMARKS.md]")?;
    let report = args.next();
    let streams = knob("BENCH_CHAT_STREAMS", 500).max(1);
    let rate = knob("BENCH_CHAT_RATE", 20).max(1);
    let tokens = knob("BENCH_CHAT_TOKENS", 60).max(1);
    let lockstep = knob("BENCH_CHAT_LOCKSTEP", 0) == 1;
    let callgrind = knob("BENCH_CHAT_CALLGRIND", 0) == 1;
    let perf_data = std::env::var("BENCH_CHAT_PERF")
        .ok()
        .filter(|p| !p.is_empty());
    let interval = Duration::from_micros(1_000_000 / rate as u64);

    // Databases, Redis and the fake provider; the in-process server only arranges data.
    let app = TestApp::spawn().await?;
    let script = StreamScript {
        stamp: true,
        ..StreamScript::tokens(vec!["x"; tokens])
            .delay(interval)
            .pause_after(0)
    };
    let fake = FakeLlm::start(Reply::Stream(script)).await?;
    let (_, _, members) = app.company_with_users("Bench", 1).await?;
    let token = app.token_for(&members[0]);

    let free_port = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (port, metrics_port) = (free_port()?, free_port()?);
    let config = &app.config;
    let mut command = if callgrind {
        let mut command = tokio::process::Command::new("valgrind");
        command
            .arg("--tool=callgrind")
            .arg("--instr-atstart=no")
            .arg("--callgrind-out-file=target/callgrind.chat.%p")
            .arg(&server_bin);
        command
    } else {
        tokio::process::Command::new(&server_bin)
    };
    // Everything runs many times slower under the profiler: Redis calls must not time out
    // (and send the replies down the PostgreSQL path, which is not what is measured).
    let slow: &[(&str, &str)] = if callgrind {
        &[
            ("REDIS_TIMEOUT_MS", "30000"),
            ("DB_ACQUIRE_TIMEOUT_MS", "60000"),
        ]
    } else {
        &[]
    };
    // The server's log (its warnings: a Redis call that timed out, say) is kept beside the
    // figures, in target/bench-chat-server.log.
    let server_log = std::fs::File::create("target/bench-chat-server.log")
        .context("create target/bench-chat-server.log")?;
    let mut child = command
        .env_clear()
        .envs(slow.iter().copied())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env(
            "DATABASE_URL",
            config.database_url.clone().unwrap_or_default(),
        )
        .env(
            "DATABASE_ADMIN_URL",
            config.database_admin_url.clone().unwrap_or_default(),
        )
        .env("REDIS_URL", config.redis_url.clone().unwrap_or_default())
        .env(
            "REDIS_KEY_PREFIX",
            format!("{}bench:", config.redis_key_prefix),
        )
        .env("JWT_SECRET", tests::TEST_JWT_SECRET)
        .env("MIGRATE_ON_START", "0")
        .env("LLM_BASE_URL", fake.base_url())
        .env("CHAT_MESSAGES_PER_MINUTE", "0")
        .env("CHAT_MAX_CONCURRENT_PER_COMPANY", "0")
        .env("WS_MAX_SOCKETS_PER_USER", "0")
        .env("RUST_LOG", "warn")
        .stdout(server_log)
        .kill_on_drop(true)
        .spawn()
        .context("start the server")?;
    let pid = child.id().context("server pid")?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let started_within = if callgrind { 600 } else { 60 };
    tests::eventually(
        Duration::from_secs(started_within),
        "the server to answer",
        || async {
            http.get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .await
                .is_ok()
        },
    )
    .await?;

    println!(
        "chat bench: {streams} streams x {tokens} tokens at {rate} tokens/s{}",
        if lockstep { ", in lockstep" } else { "" }
    );
    let conversations: Vec<String> = stream::iter(0..streams)
        .map(|_| {
            let (http, url, token) = (&http, &url, &token);
            async move {
                let data = graphql(
                    http,
                    url,
                    token,
                    "mutation { createConversation(input: {}) { id } }",
                    json!({}),
                )
                .await?;
                Ok::<_, anyhow::Error>(
                    data["createConversation"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    // The socket and subscription machinery warmed by one subscriber, gone again.
    {
        let payload = json!({ "authorization": format!("Bearer {token}") });
        let ws_url = format!("ws://127.0.0.1:{port}/graphql/ws");
        if let WsOutcome::Acked(mut ws) = WsClient::connect(&ws_url, None, payload).await? {
            ws.subscribe("1", EVENTS, json!({ "id": conversations[0] }))
                .await?;
            ws.close().await?;
        }
    }
    let subscriptions = || {
        metric(
            &http,
            &metrics,
            "graphql_subscriptions",
            "conversationEvents",
        )
    };
    let sockets_open = || metric(&http, &metrics, "websocket_connections", "");
    let settled = |want: f64| {
        let (subscriptions, sockets_open) = (&subscriptions, &sockets_open);
        async move {
            let result = tests::eventually(
                Duration::from_secs(60),
                "the server to count the subscriptions",
                || async move {
                    let subs = subscriptions().await;
                    let socks = sockets_open().await;
                    // A server without these metrics is waited for a moment only.
                    subs.is_none() || (subs == Some(want) && socks.is_none_or(|s| s == want))
                },
            )
            .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            result
        }
    };
    settled(0.0).await?;
    let (before_rss, _) = usage(pid)?;

    let ws_url = format!("ws://127.0.0.1:{port}/graphql/ws");
    let subscribe_all = || async {
        let mut sockets = Vec::with_capacity(streams);
        for conversation in &conversations {
            let payload = json!({ "authorization": format!("Bearer {token}") });
            let WsOutcome::Acked(mut ws) = WsClient::connect(&ws_url, None, payload).await? else {
                anyhow::bail!("socket not acknowledged");
            };
            ws.subscribe("1", EVENTS, json!({ "id": conversation }))
                .await?;
            sockets.push(*ws);
        }
        Ok::<_, anyhow::Error>(sockets)
    };
    let sockets = subscribe_all().await?;
    settled(streams as f64).await?;
    let (connected_rss, _) = usage(pid)?;
    let topics_open = metric(&http, &metrics, "pubsub_topics", "").await;

    // Every reply starts and is held by the fake before its first token.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let followers: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(follow(ws, latencies.clone())))
        .collect();
    stream::iter(&conversations)
        .map(|c| graphql(&http, &url, &token, "mutation($c: ID!) { sendMessage(conversationId: $c, content: \"go\") { assistantMessage { id } } }", json!({ "c": c })))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    fake.wait_for(Duration::from_secs(60), "every request", |f| {
        f.requests().len() >= streams
    })
    .await?;

    let (cpus, idle) = machine(Duration::from_secs(1)).await;
    if callgrind {
        callgrind_control(&["--instr=on"], pid).await?;
    }
    // The profiler samples the server from here to the last delta (cpu-clock, a software
    // event, as VMs have no hardware counters; DWARF call graphs, as the release build has no
    // frame pointers).
    let perf = match &perf_data {
        Some(path) => Some(
            tokio::process::Command::new("perf")
                .args(["record", "-e", "cpu-clock", "-F", "999", "-g"])
                .args(["--call-graph", "dwarf,65528", "-o", path, "-p"])
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("start perf record")?,
        ),
        None => None,
    };
    let (_, cpu_start) = usage(pid)?;
    let started = Instant::now();
    if lockstep {
        for _ in 0..streams {
            fake.release();
        }
    } else {
        // The first tokens spread evenly over one token interval, in 1 ms steps.
        let steps = (interval.as_millis() as usize).clamp(1, streams);
        for step in 0..steps {
            let due = started + interval * step as u32 / steps as u32;
            tokio::time::sleep_until(due.into()).await;
            for _ in (streams * step / steps)..(streams * (step + 1) / steps) {
                fake.release();
            }
        }
    }
    for follower in followers {
        follower.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (_, cpu_end) = usage(pid)?;
    if let Some(mut perf) = perf {
        // perf writes its data out when interrupted.
        if let Some(perf_pid) = perf.id() {
            tokio::process::Command::new("kill")
                .args(["-INT", &perf_pid.to_string()])
                .status()
                .await?;
        }
        tokio::time::timeout(Duration::from_secs(120), perf.wait())
            .await
            .context("perf record did not stop")??;
    }
    if callgrind {
        callgrind_control(&["--dump", "--instr=off"], pid).await?;
    }

    // Anything that went without Redis meanwhile (a call that failed or timed out sends a
    // reply's deltas through PostgreSQL from then on): the run did not measure the usual path.
    let fallbacks = metric_by(&http, &metrics, "redis_fallbacks_total", "component").await;
    let redis_errors = metric_by(&http, &metrics, "redis_errors_total", "component").await;

    // The subscribers are gone (their sockets dropped): what the server still holds.
    settled(0.0).await?;
    let (closed_rss, _) = usage(pid)?;
    let topics_closed = metric(&http, &metrics, "pubsub_topics", "").await;
    // As many subscribers again, then gone again: what the first ones freed is used again (the
    // allocator keeps freed memory for the process rather than give it back at once), so the
    // resident memory stays where it was.
    drop(subscribe_all().await?);
    settled(0.0).await?;
    let (again_rss, _) = usage(pid)?;
    let _ = child.kill().await;

    let mut all = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    all.sort_unstable();
    let kib = |bytes: u64| bytes as f64 / 1024.0;
    let per_subscription = kib(connected_rss.saturating_sub(before_rss)) / streams as f64;
    let left_per_subscription = kib(closed_rss.saturating_sub(before_rss)) / streams as f64;
    let cpu = cpu_end - cpu_start;
    let topics = match (topics_open, topics_closed) {
        (Some(open), Some(closed)) => {
            format!("; pub/sub topics held: {open:.0} open, {closed:.0} after")
        }
        _ => String::new(),
    };
    let listed = |samples: &[(String, f64)]| {
        samples
            .iter()
            .filter(|(_, n)| *n > 0.0)
            .map(|(component, n)| format!("{n:.0} {component}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let degraded = match (listed(&fallbacks), listed(&redis_errors)) {
        (f, e) if f.is_empty() && e.is_empty() => String::new(),
        (f, e) => format!(" — degraded: decisions without Redis: {f}; failed Redis calls: {e}"),
    };
    let lines = [
        format!(
            "- machine before the run: {cpus} CPUs, {idle:.0} % idle; streams: {streams} at once{}, {tokens} tokens each at {rate} tokens/s ({} deltas in {elapsed:.1} s)",
            if lockstep {
                " in lockstep"
            } else {
                ", first tokens spread over one interval"
            },
            all.len()
        ),
        format!(
            "- server CPU per delta: {:.1} µs ({cpu:.2} s over {elapsed:.1} s, {:.0} % of one core){degraded}",
            1e6 * cpu / all.len().max(1) as f64,
            100.0 * cpu / elapsed,
        ),
        format!(
            "- added latency per delta (provider send to subscriber receive): p50 {:.2} ms, p99 {:.2} ms",
            percentile(&all, 50.0),
            percentile(&all, 99.0)
        ),
        format!(
            "- server memory per open subscription: {per_subscription:.1} KiB (RSS {:.1} MiB with every subscriber connected, {:.1} MiB before); after they closed: {left_per_subscription:.1} KiB each left in RSS ({:.1} MiB; {:.1} MiB after as many subscribers again, gone again){topics}",
            kib(connected_rss) / 1024.0,
            kib(before_rss) / 1024.0,
            kib(closed_rss) / 1024.0,
            kib(again_rss) / 1024.0,
        ),
    ];
    println!("\n{}", lines.join("\n"));
    if let Some(path) = report {
        write_report(&path, &lines)?;
    }
    Ok(())
}

async fn callgrind_control(actions: &[&str], pid: u32) -> anyhow::Result<()> {
    for action in actions {
        let status = tokio::process::Command::new("callgrind_control")
            .arg(action)
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "callgrind_control {action} failed");
    }
    Ok(())
}

/// Replaces (or appends) the figures of the "Chat streaming" section of BENCHMARKS.md,
/// between its markers: this run's, and the previous run's beside them. What the section says
/// around the markers is left as it is.
fn write_report(path: &str, lines: &[String]) -> anyhow::Result<()> {
    const BEGIN: &str = "<!-- chat:begin -->";
    const END: &str = "<!-- chat:end -->";
    const THIS_RUN: &str = "This run";
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let old = match (text.find(BEGIN), text.find(END)) {
        (Some(start), Some(end)) if end > start => Some((start, end)),
        _ => None,
    };
    // The previous run: its heading line and figures, from the section being replaced.
    let previous = old
        .map(|(start, end)| {
            let section = &text[start..end];
            let heading = section
                .lines()
                .find(|l| l.starts_with(THIS_RUN))
                .map(|l| l.replacen(THIS_RUN, "Previous run", 1))
                .unwrap_or_else(|| "Previous run:".to_owned());
            let figures: Vec<&str> = section
                .lines()
                .skip_while(|l| !l.starts_with(THIS_RUN))
                .skip(1)
                .take_while(|l| !l.starts_with("Previous run"))
                .filter(|l| l.starts_with("- "))
                .collect();
            (heading, figures)
        })
        .filter(|(_, figures)| !figures.is_empty())
        .map(|(heading, figures)| format!("\n\n{heading}\n\n{}", figures.join("\n")))
        .unwrap_or_default();
    let section = format!(
        "{BEGIN}\n{THIS_RUN} ({} UTC, load average before it {}):\n\n{}{previous}\n{END}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        lines.join("\n")
    );
    let updated = match old {
        Some((start, end)) => {
            format!("{}{section}{}", &text[..start], &text[end + END.len()..])
        }
        None => format!("{}\n\n## Chat streaming\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}
