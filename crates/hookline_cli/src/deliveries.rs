//! `deliveries list` and `deliveries redrive`: HTTP deliveries as operators see and fix
//! them.

use anyhow::Context;
use hookline_db::{
    AsyncPgConnection, DeliveryFilter, count_redrivable, list_deliveries, paused_destinations,
    redrive_deliveries, resume_destination,
};
use hookline_domain::DeliveryState;
use serde_json::json;

use crate::args::{DeliveryListArgs, DeliveryRedriveArgs};
use crate::output::{self, Table, cell, opt_rfc3339, opt_time_cell, rfc3339, time_cell};
use crate::progress::Progress;

/// `deliveries list`: newest first, filtered.
pub async fn list(
    conn: &mut AsyncPgConnection,
    args: &DeliveryListArgs,
    json: bool,
) -> anyhow::Result<()> {
    let filter = DeliveryFilter {
        destination: args.destination.clone(),
        states: args.state.into_iter().collect(),
        since: args.since,
    };
    let rows = list_deliveries(conn, &filter, args.limit)
        .await
        .context("listing deliveries")?;
    let paused = paused_destinations(conn)
        .await
        .context("reading paused destinations")?;
    if json {
        output::print_json(&json!({
            "deliveries": rows.iter().map(|d| json!({
                "event_id": d.event_id,
                "destination": d.destination,
                "source": d.source,
                "state": d.state,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "latency_ms": d.latency_ms,
                "next_attempt_at": rfc3339(d.next_attempt_at),
                "created_at": rfc3339(d.created_at),
                "delivered_at": opt_rfc3339(d.delivered_at),
            })).collect::<Vec<_>>(),
            "paused": paused.iter().map(|(d, reason)| json!({"destination": d, "reason": reason})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "EVENT",
        "DESTINATION",
        "STATE",
        "ATTEMPTS",
        "STATUS",
        "CREATED",
        "DELIVERED",
        "LAST ERROR",
    ]);
    for d in &rows {
        table.push(vec![
            d.event_id.to_string(),
            d.destination.clone(),
            d.state.to_string(),
            d.attempts.to_string(),
            d.last_status.map_or_else(|| "-".into(), |s| s.to_string()),
            time_cell(d.created_at),
            opt_time_cell(d.delivered_at),
            cell(d.last_error.as_deref(), 60),
        ]);
    }
    table.print();
    println!(
        "{} deliver{}{}",
        rows.len(),
        if rows.len() == 1 { "y" } else { "ies" },
        if rows.len() as i64 == args.limit {
            " (limit reached; narrow the filters or raise --limit)"
        } else {
            ""
        }
    );
    for (destination, reason) in paused {
        println!(
            "destination {destination} is paused ({reason}): `hookline deliveries redrive --destination {destination}` resumes it"
        );
    }
    Ok(())
}

/// `deliveries redrive`: settled deliveries of one destination become pending again (in
/// batches), and a pause on it is lifted. Idempotent: a second run finds nothing left.
pub async fn redrive(
    conn: &mut AsyncPgConnection,
    destinations: &[String],
    args: &DeliveryRedriveArgs,
    json: bool,
) -> anyhow::Result<()> {
    let name = &args.destination;
    if !destinations.iter().any(|d| d == name) {
        anyhow::bail!(
            "destination {name:?} is not configured (configured: {})",
            if destinations.is_empty() {
                "none".to_string()
            } else {
                destinations.join(", ")
            }
        );
    }
    let states: Vec<DeliveryState> = match args.state {
        Some(state) => vec![state],
        None => vec![DeliveryState::Dead, DeliveryState::Failed],
    };
    let total = count_redrivable(conn, name, &states, args.since)
        .await
        .context("counting deliveries")?;
    let paused = paused_destinations(conn)
        .await
        .context("reading paused destinations")?
        .into_iter()
        .any(|(d, _)| &d == name);
    if args.dry_run {
        if json {
            output::print_json(&json!({"dry_run": true, "would_redrive": total, "paused": paused}));
        } else {
            println!(
                "would redrive {total} deliveries to {name}{}",
                if paused {
                    " and resume it (paused)"
                } else {
                    ""
                }
            );
        }
        return Ok(());
    }
    let progress = Progress::new(u64::try_from(total).unwrap_or(0), "redriven");
    let mut done: u64 = 0;
    loop {
        let n = redrive_deliveries(conn, name, &states, args.since, args.batch_size)
            .await
            .context("redriving deliveries")?;
        if n == 0 {
            break;
        }
        done += n as u64;
        progress.set(done);
    }
    drop(progress);
    let resumed = resume_destination(conn, name)
        .await
        .context("resuming the destination")?;
    if json {
        output::print_json(&json!({"redriven": done, "resumed": resumed}));
    } else {
        println!(
            "redrove {done} deliveries to {name}{}",
            if resumed {
                "; resumed it (it was paused)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
