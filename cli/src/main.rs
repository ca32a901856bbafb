//! `server`: serve (default), migrate, seed, or print the schema or the database catalog.
//! Without DATABASE_URL / REDIS_URL, private servers are started for it (`devservices`).

use clap::Parser;
use server::config::{Cli, Command};

/// mimalloc instead of the system allocator: a request allocates many small, short-lived
/// values (async-graphql boxes a future per field and hook), which glibc's malloc serves with
/// more instructions and more contention between the runtime's threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is fine; a malformed one is reported (logged, once logging is set up).
    let dotenv = dotenvy::dotenv().err().filter(|error| !error.not_found());
    let cli = Cli::parse();
    let report_dotenv = || {
        if let Some(error) = &dotenv {
            tracing::warn!(%error, ".env not loaded");
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::PrintSchema => {
            print!("{}", server::graphql::sdl());
            Ok(())
        }
        Command::PrintCatalog { fresh } => {
            // No log subscriber: stdout is the catalog.
            if let Some(error) = &dotenv {
                eprintln!("warning: .env not loaded: {error}");
            }
            print!(
                "{}",
                devservices::catalog::generate(&cli.config, fresh).await?
            );
            Ok(())
        }
        Command::Migrate => {
            server::telemetry::init(&cli.config.log_format, None);
            report_dotenv();
            let mut config = cli.config;
            let admin = config
                .database_admin_url
                .clone()
                .or_else(|| config.database_url.clone());
            match admin {
                Some(url) => server::db::migrate(&url).await,
                // Private mode: starting the cluster applies the migrations.
                None => {
                    let services = devservices::prepare_private(&mut config).await?;
                    drop(services);
                    Ok(())
                }
            }?;
            if server::telemetry::json() {
                tracing::info!("migrations applied");
            } else {
                println!("migrations applied");
            }
            Ok(())
        }
        Command::Seed {
            company,
            users,
            admin_password,
        } => {
            server::telemetry::init(&cli.config.log_format, None);
            report_dotenv();
            devservices::seed::run(cli.config, &company, users, admin_password).await
        }
        Command::Serve => {
            let telemetry = server::telemetry::init(
                &cli.config.log_format,
                cli.config.otel_exporter_otlp_endpoint.as_deref(),
            );
            report_dotenv();
            let served = devservices::serve(cli.config).await;
            telemetry.shutdown().await;
            served
        }
    }
}
