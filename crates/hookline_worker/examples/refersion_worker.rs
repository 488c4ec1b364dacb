//! A user's own worker binary: Hookline's worker plus a Refersion conversion handler.
//! Run it with the same config as `hookline-worker` (`HOOKLINE_CONFIG`), with a
//! `[sources.refersion] preset = "refersion"` source.

// An example sees every dependency of the worker library and uses only a few.
#![allow(unused_crate_dependencies)]

#[path = "refersion/handler.rs"]
mod refersion;

use hookline_config::Config;
use hookline_worker::Worker;

fn main() -> anyhow::Result<()> {
    hookline_telemetry::runtime("refersion-worker")?.block_on(async {
        let (config, sources) = Config::load()?;
        let t = &config.telemetry;
        let _telemetry = hookline_telemetry::init(
            "refersion-worker",
            &t.log_format,
            &t.log_level,
            t.otlp_endpoint.as_deref(),
        );
        let mut conn = hookline_db::connect(config.database.url.expose()).await?;
        refersion::migrate(&mut conn).await?;
        Worker::builder(config, sources)
            .on_source("refersion", refersion::Conversions)
            .build()
            .await?
            .run_until_stopped()
            .await
    })
}
