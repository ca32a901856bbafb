//! A private PostgreSQL cluster: `initdb` once, then `postgres` on a loopback port of its own.
//!
//! PostgreSQL refuses to run as root; when we are root, `initdb` and `postgres` run as the
//! unprivileged `postgres` system user that the OS package creates, which then owns the data.

use std::{
    fs,
    os::unix::fs::{PermissionsExt, chown},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use nix::sys::signal::Signal;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};

use crate::supervisor::{PrivateError, Supervised, free_port, wait_until};

/// How a private cluster is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgMode {
    /// Durable: kept across restarts (`make run`).
    Persistent,
    /// Throw-away: no fsync, and the data directory is removed when the cluster stops (tests).
    Ephemeral,
}

/// What a private cluster is given beyond the defaults (a Citus node's library and settings,
/// its client authentication).
#[derive(Debug, Clone, Default)]
pub struct PgExtra {
    /// `-c name=value` settings on the command line (they win over `postgresql.auto.conf`, so
    /// an `ALTER SYSTEM` of an extension cannot turn them around).
    pub settings: Vec<(String, String)>,
    /// Lines put first into `pg_hba.conf` (the first line that matches a connection decides).
    pub hba_first: Vec<String>,
}

/// A running private PostgreSQL cluster; stopped when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    process: Supervised,
    port: u16,
    superuser_password: String,
    data_dir: PathBuf,
}

/// The unprivileged account PostgreSQL runs as when we are root.
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, PrivateError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .map_err(|e| PrivateError::Setup(format!("look up the postgres user: {e}")))?
        .ok_or_else(|| {
            PrivateError::Setup(
                "running as root, and PostgreSQL refuses to: create an unprivileged `postgres` \
                 user (the OS package does) or run as another user"
                    .into(),
            )
        })?;
    Ok(Some(RunAs {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

fn command_as(program: PathBuf, user: &Option<RunAs>, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd);
    if let Some(user) = user {
        use std::os::unix::process::CommandExt;
        command.uid(user.uid).gid(user.gid);
    }
    command
}

/// Finds the directory of `initdb` and `postgres`: the given one, the newest
/// `/usr/lib/postgresql/<version>/bin`, or PATH.
pub fn find_bin_dir(given: Option<&Path>) -> Result<PathBuf, PrivateError> {
    if let Some(dir) = given {
        return Ok(dir.to_owned());
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let dir = Path::new(dir);
        if dir.join("postgres").is_file() && dir.join("initdb").is_file() {
            return Ok(dir.to_owned());
        }
    }
    Err(PrivateError::Setup(
        "PostgreSQL server binaries not found: install them (Debian/Ubuntu: apt-get install \
         postgresql) or set PG_BIN_DIR or DATABASE_URL"
            .into(),
    ))
}

impl PrivatePostgres {
    /// Starts the cluster in `data_dir`, creating it with `initdb` on first use.
    pub async fn start(
        data_dir: &Path,
        bin_dir: Option<&Path>,
        superuser_password: &str,
        mode: PgMode,
    ) -> Result<Self, PrivateError> {
        Self::start_on_port(data_dir, bin_dir, superuser_password, mode, free_port()?).await
    }

    /// The same on `port`: a cluster stopped and started again there keeps its URLs, as a
    /// restarted database server does. With [`PgMode::Ephemeral`] the data goes when it stops,
    /// so a cluster to start again is [`PgMode::Persistent`].
    pub async fn start_on_port(
        data_dir: &Path,
        bin_dir: Option<&Path>,
        superuser_password: &str,
        mode: PgMode,
        port: u16,
    ) -> Result<Self, PrivateError> {
        Self::start_with(
            data_dir,
            bin_dir,
            superuser_password,
            mode,
            port,
            &PgExtra::default(),
        )
        .await
    }

    /// The same with `extra` settings and client-authentication lines.
    pub async fn start_with(
        data_dir: &Path,
        bin_dir: Option<&Path>,
        superuser_password: &str,
        mode: PgMode,
        port: u16,
        extra: &PgExtra,
    ) -> Result<Self, PrivateError> {
        let bin = find_bin_dir(bin_dir)?;
        let user = run_as()?;
        let parent = data_dir
            .parent()
            .ok_or_else(|| PrivateError::Setup("data directory has no parent".into()))?;
        fs::create_dir_all(parent)
            .map_err(PrivateError::io(format!("create {}", parent.display())))?;
        let data_dir = std::path::absolute(data_dir)
            .map_err(PrivateError::io("resolve the data directory"))?;
        if !data_dir.join("PG_VERSION").exists() {
            init_cluster(&bin, &user, &data_dir, superuser_password)?;
        }
        if let Some(running) = running_postmaster(&data_dir) {
            return Err(running);
        }
        write_hba_first(&data_dir, &extra.hba_first)?;
        let mut command = command_as(bin.join("postgres"), &user, &data_dir);
        command
            .arg("-D")
            .arg(&data_dir)
            .args(["-c", &format!("port={port}")])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .args(["-c", "max_connections=300", "-c", "logging_collector=off"]);
        for (name, value) in &extra.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let mut cleanup = None;
        if mode == PgMode::Ephemeral {
            command.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            command.args(["-c", "full_page_writes=off"]);
            cleanup = Some(format!("rm -rf '{}'", data_dir.display()));
        }
        let log = parent.join(format!(
            "{}.log",
            data_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("postgres")
        ));
        let mut process = Supervised::spawn("postgres", command, &log, Signal::SIGINT, cleanup)?;
        let this_url = url(port, "postgres", superuser_password, "postgres");
        wait_until(
            "postgres",
            &mut process,
            &log,
            Duration::from_secs(60),
            || {
                let url = this_url.clone();
                async move { can_connect(&url).await }
            },
        )
        .await?;
        Ok(Self {
            process,
            port,
            superuser_password: superuser_password.to_owned(),
            data_dir,
        })
    }

    /// URL of the superuser `postgres` on database `db`.
    pub fn admin_url(&self, db: &str) -> String {
        url(self.port, "postgres", &self.superuser_password, db)
    }

    /// URL of `user` with `password` on database `db`.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        url(self.port, user, password, db)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the cluster now (fast shutdown); it is also stopped when dropped.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

fn url(port: u16, user: &str, password: &str, db: &str) -> String {
    format!("postgres://{user}:{password}@127.0.0.1:{port}/{db}")
}

fn init_cluster(
    bin: &Path,
    user: &Option<RunAs>,
    data_dir: &Path,
    superuser_password: &str,
) -> Result<(), PrivateError> {
    fs::create_dir_all(data_dir)
        .map_err(PrivateError::io(format!("create {}", data_dir.display())))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .map_err(PrivateError::io("restrict the data directory"))?;
    let pwfile = data_dir.with_extension("pwfile");
    fs::write(&pwfile, superuser_password).map_err(PrivateError::io("write the password file"))?;
    fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
        .map_err(PrivateError::io("restrict the password file"))?;
    if let Some(user) = user {
        for path in [data_dir, pwfile.as_path()] {
            chown(path, Some(user.uid), Some(user.gid))
                .map_err(PrivateError::io(format!("chown {}", path.display())))?;
        }
    }
    let cwd = data_dir.parent().unwrap_or(Path::new("/"));
    let output = command_as(bin.join("initdb"), user, cwd)
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ])
        .args(["--auth-host=scram-sha-256", "--auth-local=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .map_err(PrivateError::io("run initdb"));
    let _ = fs::remove_file(&pwfile);
    let output = output?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(data_dir);
        return Err(PrivateError::Setup(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

/// Where the lines of [`PgExtra::hba_first`] begin and end in `pg_hba.conf`.
const HBA_BEGIN: &str = "# devservices: first lines (rewritten at every start)";
const HBA_END: &str = "# devservices: end of the first lines";

/// Puts `lines` first into the cluster's `pg_hba.conf`, replacing what an earlier start put
/// there (the file stays the owner's: PostgreSQL only reads it).
fn write_hba_first(data_dir: &Path, lines: &[String]) -> Result<(), PrivateError> {
    let path = data_dir.join("pg_hba.conf");
    let text = fs::read_to_string(&path).map_err(PrivateError::io("read pg_hba.conf"))?;
    let rest = match (text.find(HBA_BEGIN), text.find(HBA_END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!(
                "{}{}",
                &text[..begin],
                &text[end + HBA_END.len()..].trim_start_matches('\n')
            )
        }
        _ => text,
    };
    if lines.is_empty() {
        return fs::write(&path, rest).map_err(PrivateError::io("write pg_hba.conf"));
    }
    let mut first = format!("{HBA_BEGIN}\n");
    for line in lines {
        first.push_str(line);
        first.push('\n');
    }
    first.push_str(HBA_END);
    first.push('\n');
    fs::write(&path, first + rest.as_str()).map_err(PrivateError::io("write pg_hba.conf"))
}

/// The PostgreSQL already running in `data_dir`, if its `postmaster.pid` names a live process
/// (a stale file of a crashed cluster is PostgreSQL's own business: it replaces it).
fn running_postmaster(data_dir: &Path) -> Option<PrivateError> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    // Line 4 is the port.
    let port = lines.nth(2).and_then(|line| line.trim().parse().ok());
    let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno == nix::errno::Errno::EPERM,
    };
    if !alive {
        return None;
    }
    Some(PrivateError::ClusterRunning {
        data_dir: data_dir.to_owned(),
        pid,
        port,
        owner: parent_of(pid),
    })
}

/// The parent of `pid` (the process that started the cluster) and its command line, unless
/// that is init (the starter is gone).
fn parent_of(pid: i32) -> Option<(i32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ppid: i32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    if ppid <= 1 {
        return None;
    }
    let cmdline = fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
    let command = cmdline
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    (!command.is_empty()).then_some((ppid, command))
}

async fn can_connect(url: &str) -> bool {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(2))
        .sqlx_logging(false);
    match Database::connect(options).await {
        Ok(db) => {
            let ok = db.execute_unprepared("SELECT 1").await.is_ok();
            let _ = db.close().await;
            ok
        }
        Err(_) => false,
    }
}
