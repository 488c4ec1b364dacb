//! End-to-end mode: wait for the workers, then read the figures out of PostgreSQL.

use std::time::{Duration, Instant, SystemTime};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel_async::RunQueryDsl;
use serde_json::json;

#[derive(QueryableByName)]
struct Progress {
    #[diesel(sql_type = BigInt)]
    done: i64,
    #[diesel(sql_type = BigInt)]
    total: i64,
}

#[derive(QueryableByName)]
struct Figures {
    #[diesel(sql_type = Nullable<Double>)]
    span_s: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p50: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p90: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p99: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    max: Option<f64>,
}

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
    let pattern = format!("{run}-%");
    let deadline = Instant::now() + Duration::from_secs_f64(wait_secs);
    let waited_from = Instant::now();
    let mut progress;
    loop {
        progress = diesel::sql_query(
            "SELECT count(*) FILTER (WHERE state IN ('processed', 'failed')) AS done, count(*) AS total \
             FROM events WHERE source = $1 AND dedup_key LIKE $2",
        )
        .bind::<Text, _>(source)
        .bind::<Text, _>(&pattern)
        .get_result::<Progress>(&mut conn)
        .await?;
        if progress.done as u64 >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let figures: Figures = diesel::sql_query(
        "SELECT extract(epoch FROM max(processed_at) - min(received_at))::float8 AS span_s, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8 * 1000 AS p50, \
           percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8 * 1000 AS p90, \
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8 * 1000 AS p99, \
           max(extract(epoch FROM processed_at - received_at))::float8 * 1000 AS max \
         FROM events WHERE source = $1 AND dedup_key LIKE $2 AND processed_at IS NOT NULL",
    )
    .bind::<Text, _>(source)
    .bind::<Text, _>(&pattern)
    .get_result(&mut conn)
    .await?;
    let span = figures.span_s.unwrap_or(0.0);
    let _ = started;
    Ok(json!({
        "expected": expected,
        "stored": progress.total,
        "processed": progress.done,
        "complete": progress.done as u64 >= expected,
        "waited_s": waited_from.elapsed().as_secs_f64(),
        "processed_per_s": if span > 0.0 { progress.done as f64 / span } else { 0.0 },
        "lag_ms": {"p50": figures.p50, "p90": figures.p90, "p99": figures.p99, "max": figures.max},
    }))
}
