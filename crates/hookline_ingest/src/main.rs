//! `hookline-ingest`: config -> telemetry -> Application::build -> run until stopped.

use anyhow::Context;
use hookline_config::Config;
use hookline_ingest::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, sources) = Config::load().context("loading configuration")?;
    let _telemetry = hookline_telemetry::init(
        "hookline-ingest",
        &config.telemetry.log_format,
        &config.telemetry.log_level,
        config.telemetry.otlp_endpoint.as_deref(),
    );
    let app = Application::build(config, sources).await?;
    tracing::info!(
        port = app.port(),
        admin_port = app.admin_port(),
        "hookline-ingest listening"
    );
    app.run_until_stopped().await
}
