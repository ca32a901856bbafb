//! A private redis-server on a loopback port of its own.

use std::{path::Path, process::Command, time::Duration};

use nix::sys::signal::Signal;

use crate::supervisor::{PrivateError, Supervised, free_port, wait_until};

/// A running private redis-server; stopped when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    process: Supervised,
    port: u16,
    password: String,
}

impl PrivateRedis {
    /// Starts redis-server with its data in `dir`. `persistent` keeps RDB snapshots there;
    /// otherwise nothing is written to disk.
    pub async fn start(dir: &Path, password: &str, persistent: bool) -> Result<Self, PrivateError> {
        Self::start_on_port(dir, password, persistent, free_port()?).await
    }

    /// As [`PrivateRedis::start`], on `port` (to start a server again where it was).
    pub async fn start_on_port(
        dir: &Path,
        password: &str,
        persistent: bool,
        port: u16,
    ) -> Result<Self, PrivateError> {
        std::fs::create_dir_all(dir)
            .map_err(PrivateError::io(format!("create {}", dir.display())))?;
        let mut command = Command::new(redis_binary()?);
        command
            .arg("--port")
            .arg(port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .args(["--requirepass", password]);
        if persistent {
            command.args(["--save", "300 1 60 1000", "--dbfilename", "dump.rdb"]);
        } else {
            command.args(["--save", "", "--appendonly", "no"]);
        }
        let log = dir.join("redis.log");
        // A throw-away server leaves nothing behind.
        let cleanup = (!persistent).then(|| format!("rm -rf '{}'", dir.display()));
        let mut process =
            Supervised::spawn("redis-server", command, &log, Signal::SIGTERM, cleanup)?;
        let url = redis_url(port, password);
        wait_until(
            "redis-server",
            &mut process,
            &log,
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move { ping(&url).await }
            },
        )
        .await?;
        Ok(Self {
            process,
            port,
            password: password.to_owned(),
        })
    }

    /// The URL to reach it.
    pub fn url(&self) -> String {
        redis_url(self.port, &self.password)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of redis-server.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the server now (it is also stopped when dropped).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn redis_url(port: u16, password: &str) -> String {
    format!("redis://:{password}@127.0.0.1:{port}/0")
}

async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

fn redis_binary() -> Result<std::path::PathBuf, PrivateError> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
    {
        let candidate = Path::new(dir).join("redis-server");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(PrivateError::Setup(
        "redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server) \
         or set REDIS_URL"
            .into(),
    ))
}
