//! `hookline-ingest`: config -> telemetry -> Application::build -> run until stopped.

use anyhow::Context;
use hookline_config::Config;
use hookline_ingest::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, sources) = Config::load().context("loading configuration")?;
    hookline_telemetry::init_logging(&config.telemetry.log_format, &config.telemetry.log_level);
    let app = Application::build(config, sources).await?;
    tracing::info!(
        port = app.port(),
        admin_port = app.admin_port(),
        "hookline-ingest listening"
    );
    app.run_until_stopped().await
}
