//! End-to-end mode: wait for the workers, then read the figures out of PostgreSQL.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

/// How often the figures are read while waiting. Each read aggregates the run in
/// PostgreSQL (a heavy statement, competing with the pipeline it measures); the figures
/// come from PostgreSQL's timestamps, so reading less often changes none of them.
const POLL: Duration = Duration::from_secs(1);

/// Waits until `expected` events of run `run` (all received from `since` on) are
/// processed (or failed), then reports processed events/s (first receipt to last
/// processing) and received->processed latency.
pub async fn wait_processed(
    url: &str,
    source: &str,
    run: &str,
    expected: u64,
    since: SystemTime,
    wait_secs: f64,
) -> anyhow::Result<serde_json::Value> {
    let mut conn = hookline_db::connect(url).await?;
    let prefix = format!("{run}-");
    let deadline = Instant::now() + Duration::from_secs_f64(wait_secs);
    let waited_from = Instant::now();
    let mut figures;
    loop {
        figures = hookline_db::key_prefix_figures(&mut conn, source, &prefix, since).await?;
        if figures.decided as u64 >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let span = figures.span_s.unwrap_or(0.0);
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
/// events/s (first receipt to last 2xx) and received -> delivered latency. Events
/// received before `since` are not looked at.
pub async fn wait_delivered(
    url: &str,
    source: &str,
    run: &str,
    destination: &str,
    since: SystemTime,
    wait_secs: f64,
) -> anyhow::Result<serde_json::Value> {
    let mut conn = hookline_db::connect(url).await?;
    let prefix = format!("{run}-");
    let deadline = Instant::now() + Duration::from_secs_f64(wait_secs);
    let mut figures;
    loop {
        figures = hookline_db::key_prefix_delivery_figures(
            &mut conn,
            source,
            &prefix,
            destination,
            since,
        )
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

/// `hookline-bench drain-wait` options.
#[derive(clap::Args)]
pub struct DrainArgs {
    /// PostgreSQL URL of Hookline's database.
    #[arg(long)]
    pub database_url: String,
    /// Source name.
    #[arg(long, default_value = "bench")]
    pub source: String,
    /// The run (event id prefix) that filled the queue (`load --run`).
    #[arg(long)]
    pub run: String,
    /// Events to wait for (the fill's accepted count).
    #[arg(long)]
    pub expected: u64,
    /// Unix time (seconds) before the fill's first event was received (`load`'s
    /// `since_unix`): older events are not scanned while polling.
    #[arg(long, default_value_t = 0.0)]
    pub since_unix: f64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub wait_secs: f64,
}

/// Drain-only mode: the events of `run` were queued while no worker ran; waits until
/// `expected` of them are decided, then reports decided events/s over first to last
/// decision (the workers' start-up is not counted).
pub async fn wait_drained(args: DrainArgs) -> anyhow::Result<()> {
    let mut conn = hookline_db::connect(&args.database_url).await?;
    let prefix = format!("{}-", args.run);
    let since = UNIX_EPOCH + Duration::from_secs_f64(args.since_unix.max(0.0));
    let deadline = Instant::now() + Duration::from_secs_f64(args.wait_secs);
    let waited_from = Instant::now();
    let mut figures;
    loop {
        figures = hookline_db::key_prefix_figures(&mut conn, &args.source, &prefix, since).await?;
        if figures.decided as u64 >= args.expected || Instant::now() > deadline {
            break;
        }
        // The rate comes from PostgreSQL's timestamps, not from this loop: polling
        // seldom keeps its cost out of the CPU figures of the drain.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let busy = figures.busy_span_s.unwrap_or(0.0);
    let report = json!({
        "expected": args.expected,
        "stored": figures.stored,
        "processed": figures.decided,
        "complete": figures.decided as u64 >= args.expected,
        "waited_s": waited_from.elapsed().as_secs_f64(),
        "busy_span_s": busy,
        "processed_per_s": if busy > 0.0 { figures.decided as f64 / busy } else { 0.0 },
    });
    println!("{report}");
    eprintln!(
        "drain: {}/{} decided, {:.0} events/s over {busy:.2} s",
        figures.decided,
        args.expected,
        report["processed_per_s"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat`; 0 where that cannot be read.
pub fn own_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesised command name: state is the first, utime
            // the 12th and stime the 13th, in clock ticks (USER_HZ, 100 on Linux).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}
