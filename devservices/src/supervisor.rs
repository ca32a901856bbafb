//! Child server processes we start and stop, each with a watchdog that stops it should this
//! process die, and the errors of doing so.

use std::{
    io::Write,
    net::TcpListener,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

/// Errors of starting or stopping private services; always fatal at start-up.
#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    #[error("{0}")]
    Setup(String),
    /// The private cluster's data directory is in use by a PostgreSQL that runs already,
    /// most likely under a `server serve` of the same DATA_DIR.
    #[error(
        "the private PostgreSQL cluster in {} is already running (pid {pid}{}{}): stop that \
         server first (Ctrl-C where it runs{}), then run this command again",
        data_dir.display(),
        port.map(|p| format!(", port {p}")).unwrap_or_default(),
        owner.as_ref().map(|(pid, cmd)| format!(", started by `{cmd}`, pid {pid}")).unwrap_or_default(),
        owner.as_ref().map(|(pid, _)| format!(", or `kill {pid}`")).unwrap_or_default(),
    )]
    ClusterRunning {
        data_dir: std::path::PathBuf,
        /// The postmaster's process id.
        pid: i32,
        port: Option<u16>,
        /// The process that started it, when it is still its parent: pid and command line.
        owner: Option<(i32, String)>,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl PrivateError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// Picks a free TCP port on loopback. The port is released before the caller binds it; the
/// window is tiny and the servers we start fail loudly if it was taken meanwhile.
pub fn free_port() -> Result<u16, PrivateError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(PrivateError::io("bind a free port"))?;
    let port = listener
        .local_addr()
        .map_err(PrivateError::io("read the free port"))?
        .port();
    Ok(port)
}

/// A child server process plus a watchdog that kills it when this process dies in any way
/// (even `kill -9`): the watchdog blocks reading a pipe whose only writer is us, and on
/// end-of-file stops the server and runs an optional clean-up command.
#[derive(Debug)]
pub(crate) struct Supervised {
    child: Child,
    watchdog: Option<(Child, ChildStdin)>,
    name: &'static str,
    stop_signal: nix::sys::signal::Signal,
}

impl Supervised {
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        stop_signal: nix::sys::signal::Signal,
        cleanup: Option<String>,
    ) -> Result<Self, PrivateError> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(PrivateError::io(format!("open {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(PrivateError::io("clone log handle"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(PrivateError::io(format!("start {name}")))?;
        let pid = child.id();
        let signal = stop_signal as i32;
        let script = format!(
            "read _ignored; kill -{signal} {pid} 2>/dev/null; \
             while kill -0 {pid} 2>/dev/null; do sleep 0.1; done; {}",
            cleanup.unwrap_or_default()
        );
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(PrivateError::io("start watchdog"))?;
        let stdin = watchdog
            .stdin
            .take()
            .ok_or_else(|| PrivateError::Setup("watchdog has no stdin".into()))?;
        Ok(Self {
            child,
            watchdog: Some((watchdog, stdin)),
            name,
            stop_signal,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited; reaps it if so.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the server and waits for it to exit (up to 30 s, then kills it).
    pub(crate) fn stop(&mut self) {
        if self.exited().is_none() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, self.stop_signal);
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.exited().is_none() {
                if Instant::now() > deadline {
                    tracing::warn!(server = self.name, "did not stop in time; killing it");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some((mut watchdog, mut stdin)) = self.watchdog.take() {
            // Closing the pipe lets the watchdog run its clean-up; the server is already gone.
            let _ = stdin.flush();
            drop(stdin);
            let _ = watchdog.wait();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `probe` until it succeeds or `timeout` passes; fails early if the process exited.
pub(crate) async fn wait_until<F, Fut>(
    what: &str,
    process: &mut Supervised,
    log: &Path,
    timeout: Duration,
    mut probe: F,
) -> Result<(), PrivateError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await {
            return Ok(());
        }
        if let Some(status) = process.exited() {
            return Err(PrivateError::Setup(format!(
                "{what} exited with {status} during start-up; see {}",
                log.display()
            )));
        }
        if Instant::now() > deadline {
            return Err(PrivateError::Setup(format!(
                "{what} did not become ready within {timeout:?}; see {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
