//! Start-up: migrations, the RLS safety check, and the HTTP server with graceful shutdown: a
//! drain of the replies streaming, then of the HTTP requests in flight. PostgreSQL and Redis
//! are given as URLs; this library starts no server of its own (`devservices` does, for
//! development).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use poem::IntoEndpoint as _;
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{JwtKeys, SessionCache},
    config::Config,
    db::{self, DatabaseConnection},
    graphql, http,
    ratelimit::RateLimiter,
    state::AppState,
};

/// How long HTTP requests in flight may take to finish once the listener closes.
const HTTP_GRACE: Duration = Duration::from_secs(10);
/// How long interrupted replies may take to store their text so far.
const STORE_GRACE: Duration = Duration::from_secs(10);

/// A server accepting requests; [`RunningServer::shutdown`] stops it gracefully. Dropped
/// without it, a server stops at once and cleans nothing up, as a killed process would: its
/// replies are left to the leases (another instance finalises them).
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` has a listener of its own (`METRICS_ADDR`), if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Begins the drain without waiting for it: `/ready` answers 503, `sendMessage`
    /// `UNAVAILABLE`, and [`AppState::draining`] is cancelled. Requests are still served.
    pub fn begin_drain(&self) {
        self.state.draining.cancel();
    }

    /// Stops gracefully, as on SIGTERM: begins the drain, lets the replies streaming finish
    /// within `SHUTDOWN_DRAIN_SECS` and stores the text so far of those still streaming then
    /// (`failed`, interrupted), stops accepting, lets HTTP requests in flight finish (up to
    /// 10 s), and waits.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown_with(std::future::pending()).await
    }

    /// Serves until the next SIGTERM or Ctrl-C, then stops gracefully
    /// ([`RunningServer::shutdown`]); a second signal cuts the drain short.
    pub async fn serve_until_signalled(self, signals: &mut Signals) -> anyhow::Result<()> {
        signals.next().await;
        tracing::info!("shutting down");
        self.shutdown_with(async {
            signals.next().await;
            tracing::warn!("second signal: stopping at once");
        })
        .await
    }

    /// [`RunningServer::shutdown`], cut short when `hurry` resolves (a second SIGTERM): the
    /// replies still streaming store their text so far at once and requests in flight are
    /// not waited for.
    pub async fn shutdown_with(mut self, hurry: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.begin_drain();
        let chat = self.state.chat.clone();
        let drain = Duration::from_secs(self.state.config.shutdown_drain_secs);
        tokio::pin!(hurry);
        let mut hurried = false;
        if chat.running_count() > 0 {
            tracing::info!(
                replies = chat.running_count(),
                drain_secs = drain.as_secs(),
                "draining: waiting for the replies streaming to finish"
            );
        }
        tokio::select! {
            () = chat.until_idle() => {}
            () = tokio::time::sleep(drain) => {}
            () = &mut hurry => hurried = true,
        }
        let left = chat.running_count();
        if left > 0 {
            tracing::warn!(
                replies = left,
                "replies still streaming: storing their text so far"
            );
            chat.interrupt_all();
            tokio::select! {
                () = chat.until_idle() => {}
                () = tokio::time::sleep(STORE_GRACE) => {
                    tracing::error!("interrupted replies not stored in time; the leases finalise them");
                }
            }
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = if hurried {
            None
        } else {
            tokio::select! {
                served = &mut self.task => Some(served),
                () = &mut hurry => None,
            }
        };
        self.task.abort();
        chat.abort();
        self.state.mail.abort();
        self.state.db.clone().close().await.ok();
        match served {
            Some(served) => served.context("server task")?.context("server"),
            None => {
                tracing::warn!("stopped at once: requests in flight were not waited for");
                Ok(())
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
        self.state.chat.abort();
        self.state.mail.abort();
    }
}

/// Connects to PostgreSQL and Redis as configured (URLs required), migrates if asked, checks
/// that the pool's role cannot bypass RLS and that the catalog is safe, and serves on
/// `config.bind_addr` (port 0 picks one).
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    let database_url = config
        .database_url
        .clone()
        .context("DATABASE_URL is not set")?;
    let redis_url = config.redis_url.clone().context("REDIS_URL is not set")?;
    // Early, so a bad key or a missing secret fails before anything else starts.
    let jwt = JwtKeys::from_config(&config)?;
    // A malformed SECRETS_KEYS fails start-up; none at all only refuses storing secrets.
    let secrets = crate::secrets::Secrets::from_config(&config)?;
    match secrets.current_key_id() {
        Some(key) => tracing::info!(key, keys = secrets.key_ids().len(), "secrets are sealed"),
        None => tracing::warn!(
            "SECRETS_KEYS is not set: storing secrets (a company's LLM API key) is refused"
        ),
    }
    crate::metrics::install(&config)?;
    if config.migrate_on_start {
        let admin = config
            .database_admin_url
            .as_deref()
            .unwrap_or(&database_url);
        db::migrate(admin).await?;
    }
    let pool = db::connect_request_pool(
        &database_url,
        config.db_max_connections,
        config.db_acquire_timeout(),
        db::SessionLimits::from_config(&config),
    )
    .await?;
    let shares = db::Shares::new(config.db_company_share(), config.db_acquire_timeout());
    let passwords = crate::auth::password::Passwords::from_config(&config);
    refuse_unsafe_database(&pool, config.allow_rls_bypass).await?;
    let redis = crate::kv::Redis::connect(
        &redis_url,
        config.db_max_connections as usize,
        crate::kv::RedisSettings::from_config(&config),
    )?;
    let revoked_ttl = Duration::from_secs(jwt.access_ttl().as_secs() + config.jwt_leeway_secs + 60);
    let pubsub = crate::pubsub::PubSub::start(&redis_url, redis.clone(), &config.redis_key_prefix)?;
    pubsub.fall_back_to_postgres(pool.clone(), &database_url);
    let sessions = SessionCache::new(
        redis.clone(),
        pool.clone(),
        &config.redis_key_prefix,
        revoked_ttl,
        pubsub.clone(),
    );
    // From the signing key, HS256 secret or private key: with only JWT_PRIVATE_KEY set there is
    // no JWT_SECRET, and a key derived from nothing would let anyone compute successors.
    let refresh_key = Arc::new(jwt.derive_secret(b"refresh-token-rotation-key").to_vec());
    let ratelimit = RateLimiter::from_config(redis.clone(), &config);
    let authz = crate::authz::Authz::load(config.policy_dir()).await?;
    crate::authz::spawn_reload_on_sighup(&authz)?;
    let draining = CancellationToken::new();
    let chat = crate::chat::Chat::start(
        &config,
        secrets.clone(),
        pool.clone(),
        redis.clone(),
        pubsub.clone(),
        draining.clone(),
    )?;
    let mail = crate::mail::Mailer::start(&config, pool.clone())?;
    let documents = Arc::new(crate::documents::Documents::load(
        &config,
        Some(redis.clone()),
    )?);
    let oidc = crate::oidc::Oidc::from_config(&config)?;
    let oidc_flows = crate::oidc::flow::Flows::new(redis.clone(), &config.redis_key_prefix);
    let state = AppState {
        secrets,
        chat,
        mail,
        documents,
        oidc,
        oidc_flows,
        draining,
        db: pool,
        shares,
        passwords,
        redis,
        jwt,
        authz,
        ratelimit,
        sessions,
        refresh_key,
        pubsub,
        config: Arc::new(config),
    };
    let schema = graphql::build_schema(state.clone());
    let app = http::app(state.clone(), schema);

    let listener = std::net::TcpListener::bind(state.config.bind_addr)
        .with_context(|| format!("listen on {}", state.config.bind_addr))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let metrics_listener = crate::http::metrics::Listener::start(&state)?;
    let metrics_addr = metrics_listener.as_ref().map(|m| m.addr);
    let timeouts = http::Timeouts {
        header: Duration::from_secs(state.config.http_header_timeout_secs.max(1)),
        request: Duration::from_secs(state.config.http_request_timeout_secs.max(1)),
        idle: Duration::from_secs(state.config.http_idle_timeout_secs.max(1)),
    };
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = http::serve(
            listener,
            app.into_endpoint(),
            timeouts,
            async {
                let _ = shutdown_rx.await;
            },
            HTTP_GRACE,
        )
        .await;
        drop(metrics_listener);
        served
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        shutdown: Some(shutdown_tx),
        task,
    })
}

/// Refuses a database the server must not serve from: a pool role that bypasses Row Level
/// Security (unless `allow_bypass`), or an unsafe catalog ([`db::safety::catalog_problems`]).
/// With a bypass allowed and present, what concerns the login role's own privileges is only
/// logged (a superuser or an owner holds them anyway); tenant tables and definer functions are
/// checked all the same.
async fn refuse_unsafe_database(
    pool: &DatabaseConnection,
    allow_bypass: bool,
) -> anyhow::Result<()> {
    let check = db::check_pool_role(pool).await?;
    let bypass = check.bypass_reason();
    if let Some(reason) = &bypass {
        if !allow_bypass {
            bail!(
                "{reason}, so Row Level Security would not protect tenant data. Point DATABASE_URL \
                 at a role without those powers (e.g. app_authenticator), or set \
                 ALLOW_RLS_BYPASS=1 if you really mean it"
            );
        }
        tracing::warn!("{reason}; Row Level Security is bypassed (ALLOW_RLS_BYPASS=1)");
    }
    let problems = db::safety::catalog_problems(pool, &migration::rls_tables()).await?;
    let (excused, refused): (Vec<_>, Vec<_>) = problems
        .into_iter()
        .partition(|p| bypass.is_some() && p.concerns_login_role());
    if !excused.is_empty() {
        tracing::warn!(
            problems = %list(&excused),
            "the pool's role has privileges of its own (ALLOW_RLS_BYPASS=1)"
        );
    }
    if !refused.is_empty() {
        bail!(
            "the database's authorization catalog is unsafe, so the server refuses to start:{}\n\
             Fix the migrations or the database (`server print-catalog` shows the whole catalog)",
            list(&refused)
        );
    }
    Ok(())
}

fn list(problems: &[db::safety::CatalogProblem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from start-up on, so that none is missed.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Listens for both from now on.
    pub fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate()).context("listen for SIGTERM")?,
                interrupt: signal(SignalKind::interrupt()).context("listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The next SIGTERM or Ctrl-C.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
