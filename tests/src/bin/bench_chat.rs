//! `make bench`, chat streaming: STREAMS conversations stream replies at once from the fake
//! provider at RATE tokens/s each, through a release server process of their own, to one
//! WebSocket subscriber each. Prints the latency the server adds per delta (the fake's send
//! time, carried in the token, to the subscriber's receive time: p50 / p99), the server's
//! memory per open stream (peak RSS over the idle RSS with every subscriber connected) and
//! its CPU.
//!
//! Usage: `bench_chat <server binary> [BENCHMARKS.md to update]`. Knobs (environment):
//! BENCH_CHAT_STREAMS (500), BENCH_CHAT_RATE (20), BENCH_CHAT_TOKENS (60).

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
    let streams = knob("BENCH_CHAT_STREAMS", 500);
    let rate = knob("BENCH_CHAT_RATE", 20).max(1);
    let tokens = knob("BENCH_CHAT_TOKENS", 60).max(1);

    // Databases, Redis and the fake provider; the in-process server only arranges data.
    let app = TestApp::spawn().await?;
    let script = StreamScript {
        stamp: true,
        ..StreamScript::tokens(vec!["x"; tokens])
            .delay(Duration::from_micros(1_000_000 / rate as u64))
            .pause_after(0)
    };
    let fake = FakeLlm::start(Reply::Stream(script)).await?;
    let (_, _, members) = app.company_with_users("Bench", 1).await?;
    let token = app.token_for(&members[0]);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = &app.config;
    let mut child = tokio::process::Command::new(&server_bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
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
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start the server")?;
    let pid = child.id().context("server pid")?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/graphql");
    tests::eventually(Duration::from_secs(60), "the server to answer", || async {
        http.get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
    })
    .await?;

    println!("chat bench: {streams} streams x {tokens} tokens at {rate} tokens/s");
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
    let ws_url = format!("ws://127.0.0.1:{port}/graphql/ws");
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = usage(pid)?;

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

    let peak = Arc::new(Mutex::new(idle_rss));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let (Ok((rss, _)), Ok(mut p)) = (usage(pid), peak.lock()) {
                    *p = (*p).max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let (_, cpu_start) = usage(pid)?;
    let started = Instant::now();
    for _ in 0..streams {
        fake.release();
    }
    for follower in followers {
        follower.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (_, cpu_end) = usage(pid)?;
    sampler.abort();
    let _ = child.kill().await;

    let mut all = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    all.sort_unstable();
    let peak = peak.lock().map(|p| *p).unwrap_or(idle_rss);
    let per_stream_kib = peak.saturating_sub(idle_rss) as f64 / 1024.0 / streams as f64;
    let cpu = cpu_end - cpu_start;
    let lines = [
        format!(
            "- streams: {streams} at once, {tokens} tokens each at {rate} tokens/s ({} deltas in {elapsed:.1} s)",
            all.len()
        ),
        format!(
            "- added latency per delta (provider send to subscriber receive): p50 {:.2} ms, p99 {:.2} ms",
            percentile(&all, 50.0),
            percentile(&all, 99.0)
        ),
        format!(
            "- server memory per open stream: {per_stream_kib:.1} KiB (peak RSS {:.0} MiB over {:.0} MiB idle with every subscriber connected)",
            peak as f64 / 1048576.0,
            idle_rss as f64 / 1048576.0
        ),
        format!(
            "- server CPU: {cpu:.2} s over {elapsed:.1} s ({:.0} % of one core; {:.1} ms per 1000 deltas)",
            100.0 * cpu / elapsed,
            1e6 * cpu / all.len().max(1) as f64
        ),
    ];
    println!("\n{}", lines.join("\n"));
    if let Some(path) = report {
        write_report(&path, &lines)?;
    }
    Ok(())
}

/// Replaces (or appends) the "Chat streaming" section of BENCHMARKS.md, between its markers.
fn write_report(path: &str, lines: &[String]) -> anyhow::Result<()> {
    const BEGIN: &str = "<!-- chat:begin -->";
    const END: &str = "<!-- chat:end -->";
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let section = format!(
        "{BEGIN}\n## Chat streaming\n\n`scripts/bench-chat.sh` (part of `make bench`, \
         tests/src/bin/bench_chat.rs), {} UTC, load average before the run {}: conversations \
         stream replies at once from the fake provider on loopback, through a release server \
         process, each to one `graphql-transport-ws` subscriber in the bench process (which also \
         runs the fake). Latency is from the fake writing a token (the token is its timestamp) to \
         the subscriber parsing it: the provider hop, the Redis write and publish (one round \
         trip), the fan-out and the WebSocket. Aims: p99 under 5 ms, under 100 KiB per \
         stream.\n\n{}\n{END}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        lines.join("\n")
    );
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(start), Some(end)) if end > start => {
            format!("{}{section}{}", &text[..start], &text[end + END.len()..])
        }
        _ => format!("{}\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}
