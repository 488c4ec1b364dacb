//! Logs, traces and metrics for every Hookline binary.
//!
//! [`init`] installs the tracing subscriber (JSON in production, readable in a terminal)
//! and, when an OTLP endpoint is configured, OpenTelemetry span export; the helpers
//! [`traceparent_of`] and [`set_remote_parent`] carry W3C trace context from the ingest
//! request through the AMQP message headers to the worker, so one webhook is one trace.
//! [`metrics_handle`] installs the Prometheus recorder once per process and returns the
//! handle the admin listeners render `/metrics` from. Metric names are declared in
//! [`names`] so producers and dashboards agree on them.

// Unit tests see the dev-dependencies too, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub mod names;
mod tracing_setup;

pub use shutdown::shutdown_signal;

/// The services' tokio runtime: half the cores (at least one) unless `TOKIO_WORKER_THREADS`
/// says otherwise. The other half is left to the HTTP workers, PostgreSQL and RabbitMQ on
/// a shared box; on two cores a second runtime thread only added cross-thread wake-ups
/// (measured: about 7 % more webhooks per second with one).
///
/// # Errors
/// If the runtime cannot be built.
pub fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
}

mod shutdown {
    /// Resolves on SIGTERM or SIGINT: the signal both services drain on (stop taking
    /// work, finish what is in flight, exit 0).
    pub async fn shutdown_signal() {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                let _ = ctrl_c.await;
                return;
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    }
}

pub use tracing_setup::{
    TelemetryGuard, init, init_with_provider, otlp_exporter, provider_with, set_remote_parent,
    trace_id_of, traceparent_of, tracing_enabled,
};

/// How often histogram samples are folded into their buckets (bounding what they hold).
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first call. Latency histograms get
/// buckets from 0.5 ms to 60 s.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Histogram samples wait in per-metric buckets until upkeep folds them in; a
            // recorder built without an exporter never runs it, so without this thread
            // every sample would be kept until the next scrape (the soak found ingest
            // growing ~8 MiB a minute when nothing scraped /metrics).
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            // Another recorder may already be installed (tests embedding several apps):
            // then metrics go there and this handle renders nothing, which is acceptable.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
