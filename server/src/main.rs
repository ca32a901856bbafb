//! `server`: serve (default), migrate, seed, or print the schema or the database catalog.

use clap::Parser;
use server::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is fine; a malformed one is reported.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("warning: .env not loaded: {error}");
    }
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::PrintSchema => {
            print!("{}", server::graphql::sdl());
            Ok(())
        }
        Command::PrintCatalog { fresh } => {
            // No log subscriber: stdout is the catalog.
            print!(
                "{}",
                server::db::catalog::generate(&cli.config, fresh).await?
            );
            Ok(())
        }
        Command::Migrate => {
            server::telemetry::init(&cli.config.log_format);
            let mut config = cli.config;
            let admin = config
                .database_admin_url
                .clone()
                .or_else(|| config.database_url.clone());
            match admin {
                Some(url) => server::db::migrate(&url).await,
                // Private mode: starting the cluster applies the migrations.
                None => {
                    let services = server::prepare_private(&mut config).await?;
                    drop(services);
                    Ok(())
                }
            }?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed {
            company,
            users,
            admin_password,
        } => {
            server::telemetry::init(&cli.config.log_format);
            server::seed::run(cli.config, &company, users, admin_password).await
        }
        Command::Serve => {
            server::telemetry::init(&cli.config.log_format);
            server::run(cli.config).await
        }
    }
}
