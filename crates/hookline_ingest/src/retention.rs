//! The maintenance runner: a pass soon after start-up, then one every
//! `retention.interval`. Every replica runs it; PostgreSQL's advisory lock lets one pass
//! run at a time, and the others skip (they still report table sizes in their metrics).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hookline_db::{MaintenanceOptions, retention_status, run_maintenance};
use hookline_domain::{RetentionPolicy, Secret};
use hookline_telemetry::names;
use tokio::sync::watch;

/// Runs maintenance passes until `stop` turns true. A pass that fails is logged and
/// counted; the next one continues where it stopped (every step is idempotent).
pub async fn run_maintenance_loop(
    database_url: Secret,
    policy: RetentionPolicy,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        pass(&database_url, &policy).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

async fn pass(database_url: &Secret, policy: &RetentionPolicy) {
    let started = Instant::now();
    let result = async {
        // A connection of its own: the advisory lock is the session's.
        let mut conn = hookline_db::connect(database_url.expose()).await?;
        let report = run_maintenance(&mut conn, policy, MaintenanceOptions::default()).await?;
        let status = retention_status(&mut conn, false).await?;
        Ok::<_, hookline_db::DbError>((report, status))
    }
    .await;
    let (report, status) = match result {
        Ok(done) => done,
        Err(e) => {
            metrics::counter!(names::RETENTION_RUNS, "result" => "error").increment(1);
            tracing::warn!(error = %e, "retention maintenance failed; the next pass continues");
            return;
        }
    };
    for table in &status.tables {
        let label = table.table.clone();
        metrics::gauge!(names::RETENTION_TABLE_ROWS, "table" => label.clone())
            .set(table.rows as f64);
        metrics::gauge!(names::RETENTION_TABLE_BYTES, "table" => label.clone())
            .set(table.bytes as f64);
        metrics::gauge!(names::RETENTION_TABLE_PARTITIONS, "table" => label)
            .set(table.partitions as f64);
    }
    if !report.ran {
        metrics::counter!(names::RETENTION_RUNS, "result" => "skipped").increment(1);
        tracing::debug!("retention maintenance skipped: another runner holds the lock");
        return;
    }
    metrics::counter!(names::RETENTION_RUNS, "result" => "ran").increment(1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(names::RETENTION_LAST_RUN).set(now);
    metrics::gauge!(names::RETENTION_LAST_RUN_DURATION).set(started.elapsed().as_secs_f64());
    metrics::counter!(names::RETENTION_DROPPED_PARTITIONS).increment(report.dropped.len() as u64);
    for (table, rows) in &report.pruned {
        metrics::counter!(names::RETENTION_PRUNED_ROWS, "table" => table.clone()).increment(*rows);
    }
    tracing::info!(
        created = report.created.len(),
        dropped = report.dropped.len(),
        generation = report.generation,
        pruned = report.pruned.values().sum::<u64>(),
        duration_ms = report.duration_ms,
        "retention maintenance ran"
    );
}
