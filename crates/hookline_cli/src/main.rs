//! `hookline`: the operator CLI. Reads the same `HOOKLINE_CONFIG` as the services.
//!
//! Tables for people, `--json` for scripts; every failure is one `error: …` line on
//! stderr naming the problem, and a non-zero exit status (1; 2 for usage errors).

// Its unit tests see the dev-dependencies too, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod args;
mod deliveries;
mod events;
mod output;
mod progress;
mod replay;
mod resources;
mod retention;
mod stats;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hookline_config::{Config, Sources};
use hookline_db::AsyncPgConnection;

use args::{
    Cli, Command, DeadLettersCommand, DeliveriesCommand, EventsCommand, ResourcesCommand,
    RetentionCommand,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (config, sources) = Config::load().context("loading configuration")?;
    let json = cli.json;
    match cli.command {
        Command::Migrate => migrate(&config, json).await,
        Command::CheckConfig => check_config(&config, &sources, json),
        Command::Events(EventsCommand::List(a)) => {
            events::list(&mut db(&config).await?, &a, json).await
        }
        Command::Events(EventsCommand::Show(a)) => {
            events::show(&mut db(&config).await?, &a, json).await
        }
        Command::Resources(ResourcesCommand::Show(a)) => {
            resources::show(&mut db(&config).await?, &a, json).await
        }
        Command::Resources(ResourcesCommand::ForceStatus(a)) => {
            resources::force(&mut db(&config).await?, &sources, a, json).await
        }
        Command::Stats(a) => stats::run(&mut db(&config).await?, &sources, &a, json).await,
        Command::Replay(a) => {
            let plan = replay::Plan::replay(&a)?;
            replay::run(&mut db(&config).await?, &config, &plan, json).await
        }
        Command::DeadLetters(DeadLettersCommand::List(a)) => {
            events::dead_letters(&mut db(&config).await?, &a, json).await
        }
        Command::DeadLetters(DeadLettersCommand::Redrive(a)) => {
            let plan = replay::Plan::redrive(&a)?;
            replay::run(&mut db(&config).await?, &config, &plan, json).await
        }
        Command::Deliveries(DeliveriesCommand::List(a)) => {
            deliveries::list(&mut db(&config).await?, &a, json).await
        }
        Command::Deliveries(DeliveriesCommand::Redrive(a)) => {
            let names: Vec<String> = config.destinations.keys().cloned().collect();
            deliveries::redrive(&mut db(&config).await?, &names, &a, json).await
        }
        Command::Retention(RetentionCommand::Run(a)) => {
            let policy = config.retention_policy(&sources);
            retention::run(&mut db(&config).await?, &policy, &a, json).await
        }
        Command::Retention(RetentionCommand::Status(a)) => {
            retention::status(&mut db(&config).await?, &a, json).await
        }
    }
}

/// One connection for the whole command: the CLI never needs a pool.
async fn db(config: &Config) -> anyhow::Result<AsyncPgConnection> {
    hookline_db::connect(config.database.url.expose())
        .await
        .context("connecting to PostgreSQL (database.url)")
}

async fn migrate(config: &Config, json: bool) -> anyhow::Result<()> {
    let applied = hookline_db::run_migrations(config.database.url.expose())
        .await
        .context("applying migrations")?;
    if json {
        output::print_json(&serde_json::json!({ "applied": applied }));
    } else if applied.is_empty() {
        println!("database is up to date");
    } else {
        for version in applied {
            println!("applied {version}");
        }
    }
    Ok(())
}

/// What every binary checks at start-up, ingest's secrets and verifiers included: the
/// one command that resolves source secrets, so a deploy can be checked before it runs.
fn check_config(config: &Config, sources: &Sources, json: bool) -> anyhow::Result<()> {
    config.validate_ingest()?;
    config.validate_worker()?;
    config.admin_token()?;
    hookline_providers::verifiers(sources)?;
    let destinations: Vec<String> = config
        .destinations(sources)?
        .into_iter()
        .map(|d| d.name)
        .collect();
    let names: Vec<&str> = sources.names().collect();
    if json {
        output::print_json(&serde_json::json!({
            "valid": true,
            "sources": names,
            "destinations": destinations,
        }));
    } else {
        println!("configuration is valid; sources: {}", names.join(", "));
        if !destinations.is_empty() {
            println!("destinations: {}", destinations.join(", "));
        }
    }
    Ok(())
}
