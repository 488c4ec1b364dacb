//! `hookline-worker`: config -> telemetry -> Worker::build -> run until stopped.

// A thin wrapper over the library: the package's dependencies are the library's, and
// the lint checks them there.
#![allow(unused_crate_dependencies)]

use anyhow::Context;
use hookline_config::Config;
use hookline_worker::Worker;

// As in hookline-ingest: glibc's allocator spent ~15 % of the worker's CPU with an HTTP
// destination (malloc, free, chunk consolidation across the runtime's threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    hookline_telemetry::runtime("hookline-worker")?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let (config, sources) = Config::load().context("loading configuration")?;
    let _telemetry = hookline_telemetry::init(
        "hookline-worker",
        &config.telemetry.log_format,
        &config.telemetry.log_level,
        config.telemetry.otlp_endpoint.as_deref(),
    );
    let worker = Worker::build(config, sources).await?;
    tracing::info!(admin_port = worker.admin_port(), "hookline-worker started");
    worker.run_until_stopped().await
}
