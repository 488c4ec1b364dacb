//! `hookline-ingest`: config -> telemetry -> Application::build -> run until stopped.

// A thin wrapper over the library: the package's dependencies are the library's, and
// the lint checks them there.
#![allow(unused_crate_dependencies)]

use anyhow::Context;
use hookline_config::Config;
use hookline_ingest::Application;

// glibc's allocator cost ~13 % more CPU per webhook under load (chunk consolidation
// and cross-thread frees); mimalloc's thread-local pages do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    hookline_telemetry::runtime("hookline-ingest")?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
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
