//! `hookline`: the operator CLI. Reads the same `HOOKLINE_CONFIG` as the services.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookline_config::Config;

/// Operate a Hookline deployment.
#[derive(Parser)]
#[command(name = "hookline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations (under an advisory lock; safe to run anywhere).
    Migrate,
    /// Load and validate the configuration, then print the configured sources.
    CheckConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (config, sources) = Config::load().context("loading configuration")?;
    match cli.command {
        Command::Migrate => {
            let applied = hookline_db::run_migrations(&config.database.url)
                .await
                .context("applying migrations")?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                for version in applied {
                    println!("applied {version}");
                }
            }
        }
        Command::CheckConfig => {
            println!(
                "configuration is valid; sources: {}",
                sources.names().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}
