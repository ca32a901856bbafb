//! Memory stays bounded under login bursts. Passwords are hashed on a pool of exactly
//! PASSWORD_HASH_CONCURRENCY threads, each reusing one argon2 working area, so bursts of
//! concurrent logins (right and wrong passwords, unknown e-mails) leave the resident memory of
//! a real server process within its baseline plus one working area per hashing thread — not
//! one per thread of a growing pool that the allocator keeps.
//!
//! Logins are rate-limited per client address: every request here comes from an address of
//! its own on the loopback network (127.0.x.y), so the limits never answer instead of argon2.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use futures_util::future::join_all;
use serde_json::{Value, json};
use server::auth::password::MEMORY_COST_KIB;
use tests::{TestApp, TestUser, process::ServerProcess};

const PASSWORD: &str = "correct horse battery";
const BURST: usize = 16;
const BURSTS: usize = 3;
const MIB: u64 = 1024 * 1024;
/// What else may grow meanwhile: connections, buffers, allocator bookkeeping.
const SLACK: u64 = 64 * MIB;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_e2e_server")
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: i32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kib * 1024)
}

/// A loopback address not used before by this test binary.
fn next_client_address() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (250 * 250);
    let [_, _, _, third] = (n / 250 + 1).to_be_bytes();
    let [_, _, _, fourth] = (n % 250 + 1).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 2, third, fourth))
}

/// One login from an address of its own; the answer's JSON.
async fn login(server: &ServerProcess, email: &str, password: &str) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .local_address(next_client_address())
        .timeout(Duration::from_secs(120))
        .build()?;
    let body = client
        .post(server.url("/graphql"))
        .json(&json!({
            "query": "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            "variables": { "input": { "email": email, "password": password } },
        }))
        .send()
        .await?
        .json()
        .await?;
    Ok(body)
}

/// `size` logins at once: right passwords, wrong ones and unknown e-mails in turn. Each must
/// be answered as such, or `UNAVAILABLE` (every hashing slot stayed busy, as a loaded machine
/// may make it). The number answered after an argon2 run.
async fn burst(server: &ServerProcess, users: &[TestUser], size: usize) -> anyhow::Result<usize> {
    let answers = join_all((0..size).map(|i| async move {
        let user = &users[i % users.len()];
        let (email, password, right) = match i % 3 {
            0 => (user.email.clone(), PASSWORD, true),
            1 => (user.email.clone(), "wrong password!!", false),
            _ => (format!("nobody{i}@memory.example"), PASSWORD, false),
        };
        Ok::<_, anyhow::Error>((login(server, &email, password).await?, right))
    }))
    .await;
    let mut hashed = 0;
    for answer in answers {
        let (body, right) = answer?;
        let code = body["errors"][0]["extensions"]["code"].as_str();
        match code {
            Some("UNAVAILABLE") => continue,
            None if right => assert!(body["data"]["login"]["accessToken"].is_string(), "{body}"),
            Some("UNAUTHENTICATED") if !right => {}
            _ => panic!("unexpected answer (right password: {right}): {body}"),
        }
        hashed += 1;
    }
    Ok(hashed)
}

#[tokio::test]
async fn login_bursts_leave_memory_bounded_by_the_hashing_threads() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let hash = app
        .state()
        .passwords
        .hash(PASSWORD.into())
        .await
        .map_err(|e| anyhow::anyhow!("hash: {}", e.message()))?;
    let (_, _, users) = app.company_with_users("Memory", BURST).await?;
    app.sql(&format!(
        "UPDATE users SET password_hash = '{hash}' WHERE role = 'member'"
    ))
    .await?;

    // The process computes the same default as this one: the number of CPUs.
    let concurrency = app.config.password_hash_concurrency() as u64;
    let server = ServerProcess::spawn(binary(), &app.config).await?;
    let pid = server.pid()?.as_raw();

    // Warm-up: connections, the dummy hash, the hashing threads' working areas.
    let warm = burst(&server, &users, usize::try_from(concurrency)?.max(3)).await?;
    assert!(warm > 0, "no login of the warm-up was answered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss(pid)?;
    let bound = baseline + concurrency * u64::from(MEMORY_COST_KIB) * 1024 + SLACK;

    let mut hashed = 0;
    let mut after = Vec::new();
    for _ in 0..BURSTS {
        hashed += burst(&server, &users, BURST).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        after.push(rss(pid)? / MIB);
    }
    assert!(
        hashed >= BURST,
        "only {hashed} of {} logins were answered after hashing",
        BURST * BURSTS
    );
    let peak = after.iter().copied().max().unwrap_or_default() * MIB;
    assert!(
        peak <= bound,
        "resident memory grew past the bound: baseline {} MiB, after each burst {after:?} MiB, \
         bound {} MiB ({concurrency} hashing threads x {} KiB + {} MiB; log: {})",
        baseline / MIB,
        bound / MIB,
        MEMORY_COST_KIB,
        SLACK / MIB,
        server.log.display()
    );
    Ok(())
}
