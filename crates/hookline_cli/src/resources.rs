//! `resources show` and `resources force-status`.

use anyhow::{Context, anyhow, bail};
use hookline_config::Sources;
use hookline_db::{AsyncPgConnection, find_resource, force_status};
use hookline_domain::Outcome;
use serde_json::json;

use crate::args::{ForceStatusArgs, ResourceArgs};
use crate::output::{self, Table, cell, time_cell};

/// `resources show`: status, terminal flag and the transition log, oldest first.
pub async fn show(
    conn: &mut AsyncPgConnection,
    args: &ResourceArgs,
    json: bool,
) -> anyhow::Result<()> {
    let resource = find_resource(conn, &args.source, &args.key)
        .await
        .context("reading the resource")?
        .ok_or_else(|| anyhow!("no resource {}/{}", args.source, args.key))?;
    if json {
        output::print_json(&serde_json::to_value(&resource)?);
        return Ok(());
    }
    output::print_fields(&[
        (
            "resource",
            format!("{}/{}", resource.source, resource.resource_key),
        ),
        (
            "status",
            resource.status.clone().unwrap_or_else(|| "-".into()),
        ),
        ("terminal", resource.terminal.to_string()),
        (
            "last event",
            resource
                .last_event_id
                .map_or_else(|| "-".into(), |id| id.to_string()),
        ),
        ("updated at", time_cell(resource.updated_at)),
    ]);
    println!();
    let mut table = Table::new(&["AT", "OUTCOME", "FROM", "TO", "EVENT", "ACTOR", "REASON"]);
    for t in &resource.transitions {
        table.push(vec![
            time_cell(t.at),
            t.outcome.to_string(),
            cell(t.from.as_deref(), 24),
            cell(Some(&t.to), 24),
            t.event_id.map_or_else(|| "-".into(), |id| id.to_string()),
            cell(t.actor.as_deref(), 24),
            cell(t.reason.as_deref(), 80),
        ]);
    }
    table.print();
    Ok(())
}

/// `resources force-status`: the operator's decision, audited as a `forced` transition.
pub async fn force(
    conn: &mut AsyncPgConnection,
    sources: &Sources,
    args: ForceStatusArgs,
    json: bool,
) -> anyhow::Result<()> {
    let reason = args.reason.trim();
    if reason.is_empty() {
        bail!(
            "--reason must not be empty: say why the status is forced (it is kept in the transition log)"
        );
    }
    let actor = args
        .actor
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| anyhow!("no actor: pass --actor <name> ($USER is not set)"))?;
    if find_resource(conn, &args.source, &args.key)
        .await
        .context("reading the resource")?
        .is_none()
    {
        bail!(
            "no resource {}/{} (only resources some event named can be forced)",
            args.source,
            args.key
        );
    }
    let lifecycle = sources.get(&args.source).and_then(|s| s.lifecycle.clone());
    let (status, terminal) = match &lifecycle {
        Some(lifecycle) => {
            let canonical = lifecycle.canonical(&args.status).ok_or_else(|| {
                anyhow!(
                    "status {:?} is not part of lifecycle {:?} (source {})",
                    args.status,
                    lifecycle.name(),
                    args.source
                )
            })?;
            (canonical.to_string(), lifecycle.is_terminal(canonical))
        }
        None => {
            eprintln!(
                "note: source {} has no lifecycle in this configuration; {:?} is stored as not terminal",
                args.source, args.status
            );
            (args.status.clone(), false)
        }
    };
    let from = force_status(
        conn,
        &args.source,
        &args.key,
        &status,
        terminal,
        reason,
        actor,
    )
    .await
    .context("forcing the status")?;
    if json {
        output::print_json(&json!({
            "source": args.source,
            "resource_key": args.key,
            "from": from,
            "to": status,
            "terminal": terminal,
            "outcome": Outcome::Forced,
            "actor": actor,
            "reason": reason,
        }));
    } else {
        println!(
            "{}/{}: {} -> {status}{} (forced by {actor}: {reason})",
            args.source,
            args.key,
            from.as_deref().unwrap_or("-"),
            if terminal { ", terminal" } else { "" },
        );
    }
    Ok(())
}
