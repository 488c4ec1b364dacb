//! `hookline-bench audit`: the cluster test's verdict. Waits until every event of a run
//! is processed (bounded), then checks PostgreSQL against the keys the load generator was
//! acknowledged for: none lost, none decided twice, all processed.

use std::time::{Duration, Instant};

use serde_json::json;

/// `hookline-bench audit` options.
#[derive(clap::Args, Clone)]
pub struct AuditArgs {
    /// The database the services write to.
    #[arg(long)]
    pub database_url: String,
    /// Source name of the run's events.
    #[arg(long, default_value = "bench")]
    pub source: String,
    /// The run's id (`load --run`): its dedup keys start with `{run}-`.
    #[arg(long)]
    pub run: String,
    /// The acknowledged keys, one per line (`load --acked-out`).
    #[arg(long)]
    pub acked: std::path::PathBuf,
    /// Give up waiting for the workers after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub wait_secs: f64,
}

/// Prints the figures as one JSON object (and a readable line on stderr); fails if an
/// acknowledged event is missing, an event was decided twice or one is left unprocessed.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let acked: Vec<String> = std::fs::read_to_string(&args.acked)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut conn = hookline_db::connect(&args.database_url).await?;
    let prefix = format!("{}-", args.run);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.wait_secs);
    let audit = loop {
        let audit = hookline_db::key_audit(&mut conn, &args.source, &prefix, &acked).await?;
        if audit.unprocessed == 0 || Instant::now() > deadline {
            break audit;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let ok = audit.missing == 0 && audit.decided_twice == 0 && audit.unprocessed == 0;
    println!(
        "{}",
        json!({
            "acked": audit.acked,
            "lost": audit.missing,
            "stored": audit.stored,
            "processed": audit.processed,
            "unprocessed": audit.unprocessed,
            "transitions": audit.transitions,
            "decided_twice": audit.decided_twice,
            "drain_wait_s": started.elapsed().as_secs_f64(),
            "ok": ok,
        })
    );
    eprintln!(
        "audit: {} acknowledged, {} lost, {} stored, {} processed, {} unprocessed, {} decided twice ({} transitions)",
        audit.acked,
        audit.missing,
        audit.stored,
        audit.processed,
        audit.unprocessed,
        audit.decided_twice,
        audit.transitions
    );
    anyhow::ensure!(
        ok,
        "violation: {} acknowledged events lost, {} decided twice, {} not processed",
        audit.missing,
        audit.decided_twice,
        audit.unprocessed
    );
    Ok(())
}
