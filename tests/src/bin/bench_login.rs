//! Password hashing memory: bursts of concurrent logins (half with the right password, half
//! with a wrong one) against a server process of its own, printing the process's resident
//! memory (VmRSS) before and after each burst.
//!
//! Usage: `bench_login <server binary>`. Knobs (environment): BENCH_LOGIN_BURSTS (sizes,
//! comma-separated: 8,16,32,32,32), PASSWORD_HASH_CONCURRENCY (passed on; default the
//! server's own, the number of CPUs).

use std::{process::Stdio, time::Duration};

use anyhow::Context as _;
use futures_util::future::join_all;
use serde_json::{Value, json};
use tests::TestApp;

const PASSWORD: &str = "correct horse battery";

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server_bin = std::env::args()
        .nth(1)
        .context("usage: bench_login <server binary>")?;
    let bursts: Vec<usize> = std::env::var("BENCH_LOGIN_BURSTS")
        .unwrap_or_else(|_| "8,16,32,32,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let largest = bursts.iter().copied().max().unwrap_or(1);

    // Databases and Redis; one user per concurrent login, all with the same password.
    let app = TestApp::spawn().await?;
    let hash = server::auth::password::Passwords::new(1, Duration::from_secs(60))
        .hash(PASSWORD.into())
        .await
        .map_err(|e| anyhow::anyhow!("hash: {}", e.message()))?;
    let (_, _, members) = app.company_with_users("Bench", largest).await?;
    app.sql(&format!(
        "UPDATE users SET password_hash = '{hash}' WHERE role = 'member'"
    ))
    .await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = &app.config;
    let mut command = tokio::process::Command::new(&server_bin);
    command
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
        .env("RATE_LIMIT_LOGIN_PER_IP", "0")
        .env("RATE_LIMIT_LOGIN_PER_EMAIL", "0")
        .env("RATE_LIMIT_LOGIN_PER_EMAIL_AND_IP", "0")
        .env("PASSWORD_HASH_MAX_WAIT_MS", "60000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Ok(n) = std::env::var("PASSWORD_HASH_CONCURRENCY") {
        command.env("PASSWORD_HASH_CONCURRENCY", n);
    }
    let mut child = command.spawn().context("start the server")?;
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
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "login bench: bursts {bursts:?}, PASSWORD_HASH_CONCURRENCY {}",
        std::env::var("PASSWORD_HASH_CONCURRENCY").unwrap_or_else(|_| "(CPUs)".into())
    );
    println!("| burst | RSS before | RSS after | logged in | wrong password | unavailable |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &burst in &bursts {
        let before = rss(pid)?;
        let answers = join_all(members.iter().take(burst).enumerate().map(|(i, user)| {
            let (http, url) = (&http, &url);
            let password = if i % 2 == 0 { PASSWORD } else { "wrong password!!" };
            async move {
                let body: Value = http
                    .post(url)
                    .json(&json!({
                        "query": "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
                        "variables": { "input": { "email": user.email, "password": password } },
                    }))
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok::<_, anyhow::Error>(body)
            }
        }))
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
        let ok = answers
            .iter()
            .filter(|a| a["data"]["login"]["accessToken"].is_string())
            .count();
        let code = |code: &str| {
            answers
                .iter()
                .filter(|a| a["errors"][0]["extensions"]["code"] == code)
                .count()
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss(pid)?;
        println!(
            "| {burst} | {:.0} MiB | {:.0} MiB | {ok} | {} | {} |",
            mib(before),
            mib(after),
            code("UNAUTHENTICATED"),
            code("UNAVAILABLE")
        );
    }
    let _ = child.kill().await;
    Ok(())
}
