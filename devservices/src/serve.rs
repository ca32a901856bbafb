//! `server serve`: private services when no URLs are given (and the demo company: seeded on
//! their first start, its admin's login printed on every start), the server, the start-up
//! banner, and the stop on Ctrl-C or SIGTERM.

use std::path::Path;

use server::{RunningServer, Signals, config::Config};

use crate::{PrivateServices, prepare_private, seed};

/// `server serve`: private services if needed, then serve until Ctrl-C or SIGTERM, drain (see
/// [`RunningServer::shutdown`]; a second signal cuts it short) and stop the private services.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let data_dir = config.data_dir.clone();
    let starting = async {
        let services = prepare_private(&mut config).await?;
        let demo = demo_company(&config, &services).await?;
        let server = server::start(config).await?;
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
    if let Some(demo) = &demo {
        announce_demo(demo);
    }
    let stopped = server.serve_until_signalled(&mut signals).await;
    drop(services);
    stopped
}

/// The demo company of a private cluster: seeded on its first start (no company yet), and
/// found again on every later start, so its admin's login is printed each time.
async fn demo_company(
    config: &Config,
    services: &PrivateServices,
) -> anyhow::Result<Option<seed::Demo>> {
    let Some(url) = config.database_admin_url.as_deref() else {
        return Ok(None);
    };
    if services.postgres.is_none() {
        return Ok(None);
    }
    if seed::is_empty(url).await? {
        let seeded = seed::seed(url, "Demo", 1000, seed::DEMO_PASSWORD).await?;
        return Ok(Some(seed::Demo {
            admin_email: seeded.admin_email,
            users: seeded.users,
            seeded_now: true,
            password_unchanged: true,
        }));
    }
    seed::find_demo(url).await
}

fn announce_demo(demo: &seed::Demo) {
    let when = if demo.seeded_now {
        "seeded on this first start"
    } else {
        "seeded on the first start"
    };
    let password = if demo.password_unchanged {
        seed::DEMO_PASSWORD
    } else {
        "(changed since it was seeded)"
    };
    if server::telemetry::json() {
        tracing::info!(
            users = demo.users,
            admin = %demo.admin_email,
            password,
            "demo company \"Demo\" {when}"
        );
    } else {
        println!(
            "  Demo:       company \"Demo\" with {} users, {when}",
            demo.users
        );
        println!(
            "              admin {}  password {password}",
            demo.admin_email
        );
    }
}

fn announce(server: &RunningServer, services: &PrivateServices, data_dir: &Path) {
    let addr = server.addr;
    if server::telemetry::json() {
        // One JSON object per line from the first: the banner is a log event.
        tracing::info!(
            addr = %addr,
            graphql = %format_args!("http://{addr}/graphql"),
            websocket = %format_args!("ws://{addr}/graphql/ws"),
            metrics = server.metrics_addr.map(|a| format!("http://{a}/metrics")),
            postgres_port = services.postgres.as_ref().map(|pg| pg.port()),
            redis_port = services.redis.as_ref().map(|r| r.port()),
            data_dir = services.any().then(|| data_dir.display().to_string()),
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
    if services.any() {
        println!(
            "  Data dir:   {} (secrets in secrets.json)",
            data_dir.display()
        );
    }
}
