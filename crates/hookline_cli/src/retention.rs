//! `retention run` and `retention status`.

use anyhow::{Context, bail};
use hookline_db::{AsyncPgConnection, MaintenanceOptions, retention_status, run_maintenance};
use hookline_domain::RetentionPolicy;

use crate::args::{RetentionRunArgs, RetentionStatusArgs};
use crate::output::{self, Table, time_cell};

/// `retention run`: one maintenance pass (or, with `--dry-run`, what it would do).
///
/// # Errors
/// An unreachable database, a failed step (the next pass continues from there), or
/// another runner holding the maintenance lock.
pub async fn run(
    conn: &mut AsyncPgConnection,
    policy: &RetentionPolicy,
    args: &RetentionRunArgs,
    json: bool,
) -> anyhow::Result<()> {
    let options = MaintenanceOptions {
        dry_run: args.dry_run,
        batch_size: args.batch_size,
        pause_ratio: args.pause_ratio,
        ..MaintenanceOptions::default()
    };
    let report = run_maintenance(conn, policy, options)
        .await
        .context("running the maintenance pass (a rerun continues where it stopped)")?;
    if !report.ran {
        bail!(
            "another maintenance runner holds the lock (a hookline-ingest replica or another \
             `hookline retention run`); nothing was done, try again in a moment"
        );
    }
    if json {
        output::print_json(&serde_json::to_value(&report).unwrap_or_default());
        return Ok(());
    }
    let (prefix, create, drop, switch, prune) = if report.dry_run {
        (
            "dry run: ",
            "would create",
            "would drop",
            "would switch",
            "would prune",
        )
    } else {
        ("", "created", "dropped", "switched", "pruned")
    };
    println!(
        "{prefix}{create} {} partitions, {drop} {}, {}",
        report.created.len(),
        report.dropped.len(),
        match report.generation {
            Some(generation) => format!("{switch} the dedup key generation to {generation}"),
            None => "dedup key generation unchanged".into(),
        }
    );
    for (label, names) in [(create, &report.created), (drop, &report.dropped)] {
        if !names.is_empty() {
            println!("  {label}: {}", names.join(", "));
        }
    }
    if report.pruned.is_empty() {
        println!("  {prune} no rows in batches");
    }
    for (table, rows) in &report.pruned {
        println!(
            "  {prune} {rows} rows of {table} in batches of up to {}",
            args.batch_size
        );
    }
    println!("took {} ms", report.duration_ms);
    Ok(())
}

/// `retention status`: per table, partitions, rows, bytes and the oldest row.
///
/// # Errors
/// An unreachable database.
pub async fn status(
    conn: &mut AsyncPgConnection,
    args: &RetentionStatusArgs,
    json: bool,
) -> anyhow::Result<()> {
    let status = retention_status(conn, args.exact)
        .await
        .context("reading table sizes")?;
    if json {
        output::print_json(&serde_json::to_value(&status).unwrap_or_default());
        return Ok(());
    }
    let mut table = Table::new(&["TABLE", "PARTITIONS", "ROWS", "SIZE", "OLDEST"]);
    for t in &status.tables {
        table.push(vec![
            t.table.clone(),
            if t.partitions == 0 {
                "-".into()
            } else {
                t.partitions.to_string()
            },
            t.rows.to_string(),
            bytes_cell(t.bytes),
            t.oldest.map_or_else(|| "-".into(), time_cell),
        ]);
    }
    table.print();
    println!(
        "dedup key generation {} is current since {}; dedup_keys' OLDEST is its oldest generation's start.",
        status.generation,
        time_cell(status.generation_started_at)
    );
    if !args.exact {
        println!("rows are PostgreSQL's estimates (--exact counts them)");
    }
    Ok(())
}

/// `512 B`, `3.4 KiB`, `1.2 GiB`.
fn bytes_cell(bytes: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes_cell(512), "512 B");
        assert_eq!(bytes_cell(3_481), "3.4 KiB");
        assert_eq!(bytes_cell(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
