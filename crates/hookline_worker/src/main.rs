//! `hookline-worker`: config -> telemetry -> Worker::build -> run until stopped.

use anyhow::Context;
use hookline_config::Config;
use hookline_worker::Worker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, sources) = Config::load().context("loading configuration")?;
    hookline_telemetry::init_logging(&config.telemetry.log_format, &config.telemetry.log_level);
    let worker = Worker::build(config, sources).await?;
    tracing::info!(admin_port = worker.admin_port(), "hookline-worker started");
    worker.run_until_stopped().await
}
