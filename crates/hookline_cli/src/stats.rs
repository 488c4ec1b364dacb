//! `stats`: the monitoring queries as one command.

use anyhow::{Context, bail};
use hookline_config::Sources;
use hookline_db::{AsyncPgConnection, SourceStats, source_stats};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::args::StatsArgs;
use crate::output::{self, Table, millis_cell, rfc3339, time_cell};

/// Where duplicates are counted: ingest answers them without storing a row, so the
/// events table cannot know how many there were.
const DUPLICATES_METRIC: &str = "hookline_ingest_requests_total{outcome=\"duplicate\"}";

/// Per source over `[since, until)`: counts by current state and received -> processed
/// percentiles. Configured sources without events in the window show as zeros.
pub async fn run(
    conn: &mut AsyncPgConnection,
    sources: &Sources,
    args: &StatsArgs,
    json: bool,
) -> anyhow::Result<()> {
    let until = args.until.unwrap_or_else(OffsetDateTime::now_utc);
    if args.since >= until {
        bail!(
            "the window is empty: --since {} is not before --until {}",
            rfc3339(args.since),
            rfc3339(until)
        );
    }
    let mut rows = source_stats(conn, args.since, until)
        .await
        .context("computing statistics")?;
    for name in sources.names() {
        if !rows.iter().any(|r| r.source == name) {
            rows.push(SourceStats {
                source: name.to_string(),
                received: 0,
                pending: 0,
                processed: 0,
                failed: 0,
                dead_lettered: 0,
                p50_ms: None,
                p99_ms: None,
            });
        }
    }
    if let Some(source) = &args.source {
        rows.retain(|r| &r.source == source);
    }
    rows.sort_by(|a, b| a.source.cmp(&b.source));

    if json {
        let sources: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
                value["duplicates"] = Value::Null;
                value
            })
            .collect();
        output::print_json(&json!({
            "since": rfc3339(args.since),
            "until": rfc3339(until),
            "duplicates_metric": DUPLICATES_METRIC,
            "sources": sources,
        }));
        return Ok(());
    }
    println!(
        "events received {} .. {}",
        time_cell(args.since),
        time_cell(until)
    );
    let mut table = Table::new(&[
        "SOURCE",
        "RECEIVED",
        "DUPLICATES",
        "PENDING",
        "PROCESSED",
        "FAILED",
        "DEAD-LETTERED",
        "P50",
        "P99",
    ]);
    for r in &rows {
        table.push(vec![
            r.source.clone(),
            r.received.to_string(),
            "n/a".into(),
            r.pending.to_string(),
            r.processed.to_string(),
            r.failed.to_string(),
            r.dead_lettered.to_string(),
            millis_cell(r.p50_ms),
            millis_cell(r.p99_ms),
        ]);
    }
    table.print();
    println!(
        "counts are by current state; P50/P99: received -> processed, processed events only.\n\
         duplicates: n/a (not stored as rows; see {DUPLICATES_METRIC} on ingest's /metrics)"
    );
    Ok(())
}
