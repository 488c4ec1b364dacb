//! End-to-end mode: wait for the workers, then read the figures out of PostgreSQL.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

/// How often the figures are read while waiting. Each read aggregates the whole run in
/// PostgreSQL (a heavy statement, competing with the pipeline it measures); the figures
/// come from PostgreSQL's timestamps, so reading less often changes none of them.
const POLL: Duration = Duration::from_secs(1);

/// Waits until `expected` events of run `run` are processed (or failed), then reports
/// processed events/s (first receipt to last processing) and received->processed latency.
pub async fn wait_processed(
    url: &str,
    source: &str,
    run: &str,
    expected: u64,
    started: SystemTime,
    wait_secs: f64,
) -> anyhow::Result<serde_json::Value> {
    let mut conn = hookline_db::connect(url).await?;
    let prefix = format!("{run}-");
    let deadline = Instant::now() + Duration::from_secs_f64(wait_secs);
    let waited_from = Instant::now();
    let mut figures;
    loop {
        figures = hookline_db::key_prefix_figures(&mut conn, source, &prefix).await?;
        if figures.decided as u64 >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let span = figures.span_s.unwrap_or(0.0);
    let _ = started;
    Ok(json!({
        "expected": expected,
        "stored": figures.stored,
        "processed": figures.decided,
        "complete": figures.decided as u64 >= expected,
        "waited_s": waited_from.elapsed().as_secs_f64(),
        "processed_per_s": if span > 0.0 { figures.decided as f64 / span } else { 0.0 },
        "lag_ms": {"p50": figures.p50_ms, "p90": figures.p90_ms, "p99": figures.p99_ms, "max": figures.max_ms},
    }))
}

/// Waits until every delivery intent of run `run` to `destination` is delivered (call it
/// once every event is decided, so the intents all exist), then reports delivered
/// events/s (first receipt to last 2xx) and received -> delivered latency.
pub async fn wait_delivered(
    url: &str,
    source: &str,
    run: &str,
    destination: &str,
    wait_secs: f64,
) -> anyhow::Result<serde_json::Value> {
    let mut conn = hookline_db::connect(url).await?;
    let prefix = format!("{run}-");
    let deadline = Instant::now() + Duration::from_secs_f64(wait_secs);
    let mut figures;
    loop {
        figures = hookline_db::key_prefix_delivery_figures(&mut conn, source, &prefix, destination)
            .await?;
        if figures.decided >= figures.stored || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let span = figures.span_s.unwrap_or(0.0);
    Ok(json!({
        "expected": figures.stored,
        "delivered": figures.decided,
        "complete": figures.decided >= figures.stored && figures.stored > 0,
        "delivered_per_s": if span > 0.0 { figures.decided as f64 / span } else { 0.0 },
        "lag_ms": {"p50": figures.p50_ms, "p90": figures.p90_ms, "p99": figures.p99_ms, "max": figures.max_ms},
    }))
}
