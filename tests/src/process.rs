//! A server in a process of its own (the `e2e_server` binary: `server serve` configured by the
//! environment), so a test can kill it with SIGKILL — nothing of it runs any more, as when a
//! machine dies — or stop it with SIGTERM as an orchestrator does. Its log goes to a file of
//! the test cluster's directory, named in errors.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context as _;
use nix::{sys::signal::Signal, unistd::Pid};
use server::config::Config;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    process::{Child, Command},
    sync::oneshot,
};

/// A running server process; it is killed when dropped.
pub struct ServerProcess {
    pub addr: SocketAddr,
    child: Child,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `binary` (the `e2e_server` binary: `env!("CARGO_BIN_EXE_e2e_server")` in the
    /// tests) on `config`'s databases, Redis and options, on a fresh port, and waits until it
    /// serves.
    pub async fn spawn(binary: &str, config: &Config) -> anyhow::Result<Self> {
        let dir = crate::cluster().await?.dir().join("processes");
        tokio::fs::create_dir_all(&dir).await?;
        let log = dir.join(format!("server-{}.log", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("MIGRATE_ON_START", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file.try_clone()?))
            .kill_on_drop(true);
        for (name, value) in environment(config) {
            command.env(name, value);
        }
        let mut child = command.spawn().context("start the e2e_server binary")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (addr_tx, addr_rx) = oneshot::channel();
        // Copies its output to the log (the log is stdout), noting the address it announces.
        tokio::spawn(async move {
            let mut file = tokio::fs::File::from_std(file);
            let mut lines = BufReader::new(stdout).lines();
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line
                    .trim()
                    .strip_prefix("GraphiQL:")
                    .and_then(|rest| rest.trim().strip_prefix("http://"))
                    .and_then(|rest| rest.trim_end_matches('/').parse::<SocketAddr>().ok())
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
            let _ = file.flush().await;
        });
        let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the server did not start within 60 s (log: {})",
                    log.display()
                )
            })?
            .map_err(|_| {
                anyhow::anyhow!("the server exited at start-up (log: {})", log.display())
            })?;
        Ok(Self { addr, child, log })
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<Pid> {
        let pid = self.child.id().context("the server already exited")?;
        Ok(Pid::from_raw(i32::try_from(pid)?))
    }

    /// SIGKILL, and waits until the process is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        nix::sys::signal::kill(self.pid()?, Signal::SIGKILL)?;
        self.child.wait().await?;
        Ok(())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> anyhow::Result<()> {
        nix::sys::signal::kill(self.pid()?, Signal::SIGTERM)?;
        Ok(())
    }

    /// Waits for the process to exit, for at most `timeout`; its exit code.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the server did not exit within {timeout:?} (log: {})",
                    self.log.display()
                )
            })??;
        Ok(status.code())
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The environment that configures a server process like `config`.
fn environment(config: &Config) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("REDIS_KEY_PREFIX", config.redis_key_prefix.clone()),
        ("DB_MAX_CONNECTIONS", config.db_max_connections.to_string()),
        (
            "DB_ACQUIRE_TIMEOUT_MS",
            config.db_acquire_timeout_ms.to_string(),
        ),
        ("LLM_MAX_RETRIES", config.llm_max_retries.to_string()),
        (
            "LLM_FIRST_TOKEN_TIMEOUT_MS",
            config.llm_first_token_timeout_ms.to_string(),
        ),
        (
            "LLM_IDLE_TIMEOUT_MS",
            config.llm_idle_timeout_ms.to_string(),
        ),
        (
            "CHAT_MESSAGES_PER_MINUTE",
            config.chat_messages_per_minute.to_string(),
        ),
        (
            "CHAT_MAX_CONCURRENT_PER_COMPANY",
            config.chat_max_concurrent_per_company.to_string(),
        ),
        ("CHAT_LEASE_SECS", config.chat_lease_secs.to_string()),
        ("CHAT_SWEEP_SECS", config.chat_sweep_secs.to_string()),
        (
            "CHAT_PERSIST_INTERVAL_MS",
            config.chat_persist_interval_ms.to_string(),
        ),
        (
            "SHUTDOWN_DRAIN_SECS",
            config.shutdown_drain_secs.to_string(),
        ),
        ("POLICY_DIR", config.policy_dir().display().to_string()),
    ];
    for (name, value) in [
        ("DATABASE_URL", &config.database_url),
        ("DATABASE_ADMIN_URL", &config.database_admin_url),
        ("REDIS_URL", &config.redis_url),
        ("JWT_SECRET", &config.jwt_secret),
        ("LLM_BASE_URL", &config.llm_base_url),
    ] {
        if let Some(value) = value {
            env.push((name, value.clone()));
        }
    }
    env
}
