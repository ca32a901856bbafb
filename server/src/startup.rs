//! Start-up: private services when no URLs are given, migrations, the RLS safety check, and
//! the HTTP server with graceful shutdown: a drain of the replies streaming, then of the HTTP
//! requests in flight.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use poem::IntoEndpoint as _;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{JwtKeys, SessionCache},
    config::Config,
    db, graphql, http,
    private::{PgMode, PrivatePostgres, PrivateRedis, Secrets},
    ratelimit::RateLimiter,
    state::AppState,
};

/// Name of the database in a private cluster.
const PRIVATE_DB: &str = "app";

/// The private servers started for this process, if any; they stop when this is dropped.
#[derive(Debug, Default)]
pub struct PrivateServices {
    pub postgres: Option<PrivatePostgres>,
    pub redis: Option<PrivateRedis>,
}

/// Starts private PostgreSQL / Redis for whichever of DATABASE_URL / REDIS_URL is unset, and
/// fills the configuration in with their URLs (and the JWT secret kept in DATA_DIR).
pub async fn prepare_private(config: &mut Config) -> anyhow::Result<PrivateServices> {
    let mut services = PrivateServices::default();
    if config.database_url.is_some() && config.redis_url.is_some() {
        if config.jwt_secret.is_none() && config.jwt_private_key.is_none() {
            bail!(
                "JWT_SECRET (or JWT_PRIVATE_KEY) is required when DATABASE_URL and REDIS_URL are set"
            );
        }
        return Ok(services);
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("create DATA_DIR {}", config.data_dir.display()))?;
    let secrets = Secrets::load_or_create(&config.data_dir)?;
    if config.database_url.is_none() {
        let pg = PrivatePostgres::start(
            &config.data_dir.join("postgres"),
            config.pg_bin_dir.as_deref(),
            &secrets.postgres_superuser_password,
            PgMode::Persistent,
        )
        .await?;
        ensure_database(&pg.admin_url("postgres"), PRIVATE_DB).await?;
        let admin_url = pg.admin_url(PRIVATE_DB);
        db::migrate(&admin_url).await?;
        grant_login(&admin_url, &secrets.postgres_app_password).await?;
        config.database_admin_url = Some(admin_url);
        config.database_url = Some(pg.url(
            "app_authenticator",
            &secrets.postgres_app_password,
            PRIVATE_DB,
        ));
        services.postgres = Some(pg);
        config.private_mode = true;
    }
    if config.redis_url.is_none() {
        let redis = PrivateRedis::start(
            &config.data_dir.join("redis"),
            &secrets.redis_password,
            true,
        )
        .await?;
        config.redis_url = Some(redis.url());
        services.redis = Some(redis);
        config.private_mode = true;
    }
    if config.jwt_secret.is_none() {
        config.jwt_secret = Some(secrets.jwt_secret.clone());
    }
    Ok(services)
}

/// Creates database `name` unless it exists (connected as a superuser to another database).
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let conn = db::connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    let exists = conn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if !exists {
        conn.execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await?;
    }
    let _ = conn.close().await;
    Ok(())
}

/// Lets the pool's role log in with `password` (private mode; deployments do this themselves).
pub async fn grant_login(admin_url: &str, password: &str) -> anyhow::Result<()> {
    let conn = db::connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    conn.execute_unprepared(&format!(
        "ALTER ROLE app_authenticator WITH LOGIN PASSWORD {}",
        quote_literal(password)
    ))
    .await
    .context("let app_authenticator log in")?;
    let _ = conn.close().await;
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

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
        pool.clone(),
        redis.clone(),
        pubsub.clone(),
        draining.clone(),
    )?;
    let state = AppState {
        chat,
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
    let metrics_listener = crate::metrics::Listener::start(&state)?;
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
    let problems = db::safety::catalog_problems(pool, migration::TENANT_TABLES).await?;
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

/// `server serve`: private services if needed, then serve until Ctrl-C or SIGTERM, drain (see
/// [`RunningServer::shutdown`]; a second signal cuts it short) and stop the private services.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let data_dir = config.data_dir.clone();
    let starting = async {
        let services = prepare_private(&mut config).await?;
        let demo = seed_demo_if_fresh(&config, &services).await?;
        let server = start(config).await?;
        anyhow::Ok((services, demo, server))
    };
    // A signal during start-up stops it (and whatever private service it started) at once.
    let (services, demo, server) = tokio::select! {
        started = starting => started?,
        () = signals.next() => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    announce(&server, &services, &data_dir);
    if let Some(demo) = &demo
        && crate::telemetry::json()
    {
        tracing::info!(
            users = demo.users,
            admin = %demo.admin_email,
            password = crate::seed::DEMO_PASSWORD,
            "demo company \"Demo\" seeded on first start"
        );
    } else if let Some(demo) = demo {
        println!(
            "  Demo:       company \"Demo\" with {} users seeded on first start",
            demo.users
        );
        println!(
            "              admin {}  password {}",
            demo.admin_email,
            crate::seed::DEMO_PASSWORD
        );
    }
    signals.next().await;
    tracing::info!("shutting down");
    let stopped = server
        .shutdown_with(async {
            signals.next().await;
            tracing::warn!("second signal: stopping at once");
        })
        .await;
    drop(services);
    stopped
}

/// On the first start of a private cluster (no company yet), a small demo company.
async fn seed_demo_if_fresh(
    config: &Config,
    services: &PrivateServices,
) -> anyhow::Result<Option<crate::seed::Seeded>> {
    let Some(url) = config.database_admin_url.as_deref() else {
        return Ok(None);
    };
    if services.postgres.is_none() || !crate::seed::is_empty(url).await? {
        return Ok(None);
    }
    let seeded = crate::seed::seed(url, "Demo", 1000, crate::seed::DEMO_PASSWORD).await?;
    Ok(Some(seeded))
}

fn announce(server: &RunningServer, services: &PrivateServices, data_dir: &Path) {
    let addr = server.addr;
    if crate::telemetry::json() {
        // One JSON object per line from the first: the banner is a log event.
        let private = services.postgres.is_some() || services.redis.is_some();
        tracing::info!(
            addr = %addr,
            graphql = %format_args!("http://{addr}/graphql"),
            websocket = %format_args!("ws://{addr}/graphql/ws"),
            metrics = server.metrics_addr.map(|a| format!("http://{a}/metrics")),
            postgres_port = services.postgres.as_ref().map(|pg| pg.port()),
            redis_port = services.redis.as_ref().map(|r| r.port()),
            data_dir = private.then(|| data_dir.display().to_string()),
            "GraphQL server ready"
        );
        return;
    }
    println!("GraphQL server ready");
    println!("  GraphiQL:   http://{addr}/");
    println!("  GraphQL:    http://{addr}/graphql  (WebSocket: ws://{addr}/graphql/ws)");
    if let Some(metrics) = server.metrics_addr {
        println!("  Metrics:    http://{metrics}/metrics");
    }
    if let Some(pg) = &services.postgres {
        println!(
            "  PostgreSQL: private cluster on 127.0.0.1:{} (data {})",
            pg.port(),
            pg.data_dir().display()
        );
    }
    if let Some(redis) = &services.redis {
        println!(
            "  Redis:      private redis-server on 127.0.0.1:{}",
            redis.port()
        );
    }
    if services.postgres.is_some() || services.redis.is_some() {
        println!(
            "  Data dir:   {} (secrets in secrets.json)",
            data_dir.display()
        );
    }
}

/// SIGTERM and Ctrl-C (SIGINT), listened for from start-up on, so that none is missed.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
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
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
