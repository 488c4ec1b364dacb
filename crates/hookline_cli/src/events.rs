//! `events list`, `events show`, `dead-letters list`.

use anyhow::{Context, anyhow};
use base64::Engine;
use hookline_db::{
    AsyncPgConnection, Event, EventFilter, EventSelection, count_selected, find_event, find_events,
};
use hookline_domain::EventState;
use serde_json::{Value, json};

use crate::args::{DeadListArgs, EventListArgs, EventShowArgs};
use crate::output::{self, Table, cell, opt_rfc3339, opt_time_cell, rfc3339, time_cell};

/// `events list`: events matching the filters, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    args: &EventListArgs,
    json: bool,
) -> anyhow::Result<()> {
    let filter = EventFilter {
        source: args.source.clone(),
        dedup_key: args.dedup_key.clone(),
        state: args.state,
        since: args.since,
        until: args.until,
        limit: args.limit,
    };
    let events = find_events(conn, &filter).await.context("listing events")?;
    if json {
        output::print_json(&Value::Array(events.iter().map(summary_json).collect()));
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "SOURCE",
        "STATE",
        "ATTEMPTS",
        "RECEIVED",
        "DEDUP KEY",
        "LAST ERROR",
    ]);
    for e in &events {
        table.push(vec![
            e.id.to_string(),
            e.source.clone(),
            e.state.to_string(),
            e.attempts.to_string(),
            time_cell(e.received_at),
            cell(Some(&e.dedup_key), 48),
            cell(e.last_error.as_deref(), 60),
        ]);
    }
    table.print();
    println!("{}", count_line(events.len(), args.limit, "event"));
    Ok(())
}

/// `events show`: one event with headers and body.
pub async fn show(
    conn: &mut AsyncPgConnection,
    args: &EventShowArgs,
    json: bool,
) -> anyhow::Result<()> {
    let event = match (&args.id, &args.source, &args.dedup_key) {
        (Some(id), _, _) => find_event(conn, *id)
            .await
            .context("reading the event")?
            .ok_or_else(|| anyhow!("no event {id}"))?,
        (None, Some(source), Some(dedup_key)) => {
            let filter = EventFilter {
                source: Some(source.clone()),
                dedup_key: Some(dedup_key.clone()),
                limit: 1,
                ..EventFilter::default()
            };
            find_events(conn, &filter)
                .await
                .context("reading the event")?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    anyhow!("no event with source {source:?} and dedup key {dedup_key:?}")
                })?
        }
        // clap requires an id or both --source and --dedup-key.
        _ => return Err(anyhow!("give an event id, or --source and --dedup-key")),
    };
    if json {
        output::print_json(&full_json(&event));
        return Ok(());
    }
    let mut fields = vec![
        ("id", event.id.to_string()),
        ("source", event.source.clone()),
        ("dedup key", event.dedup_key.clone()),
        ("resource key", opt(event.resource_key.as_deref())),
        ("status", opt(event.status.as_deref())),
        ("state", event.state.to_string()),
        ("attempts", event.attempts.to_string()),
        ("last error", opt(event.last_error.as_deref())),
        ("received at", time_cell(event.received_at)),
        ("processed at", opt_time_cell(event.processed_at)),
        ("traceparent", opt(event.traceparent.as_deref())),
        (
            "query",
            opt(Some(&event.query)
                .filter(|q| !q.is_empty())
                .map(String::as_str)),
        ),
    ];
    if event.payload_pruned {
        fields.push((
            "payload",
            "pruned by retention (retention.payload): body, headers and query are gone".into(),
        ));
    }
    output::print_fields(&fields);
    if event.payload_pruned {
        return Ok(());
    }
    println!("headers:");
    for header in event.headers.as_array().into_iter().flatten() {
        let name = header["name"].as_str().unwrap_or("?");
        match header["value"].as_str() {
            Some(value) => println!("  {name}: {value}"),
            None => println!(
                "  {name} (base64): {}",
                header["value_base64"].as_str().unwrap_or("")
            ),
        }
    }
    match std::str::from_utf8(&event.body) {
        Ok(text) => println!("body ({} bytes):\n{text}", event.body.len()),
        Err(_) => println!(
            "body ({} bytes, not UTF-8, base64):\n{}",
            event.body.len(),
            base64::engine::general_purpose::STANDARD.encode(&event.body)
        ),
    }
    Ok(())
}

/// `dead-letters list`: dead events from PostgreSQL, newest first.
pub async fn dead_letters(
    conn: &mut AsyncPgConnection,
    args: &DeadListArgs,
    json: bool,
) -> anyhow::Result<()> {
    let filter = EventFilter {
        source: args.source.clone(),
        state: Some(EventState::Dead),
        since: args.since,
        until: args.until,
        limit: args.limit,
        ..EventFilter::default()
    };
    let events = find_events(conn, &filter)
        .await
        .context("listing dead events")?;
    let total = count_selected(
        conn,
        &EventSelection {
            source: args.source.clone(),
            state: Some(EventState::Dead),
            since: args.since,
            until: args.until,
            ..EventSelection::default()
        },
    )
    .await
    .context("counting dead events")?;
    if json {
        output::print_json(&json!({
            "total": total,
            "events": events.iter().map(summary_json).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "SOURCE",
        "ATTEMPTS",
        "RECEIVED",
        "RESOURCE",
        "LAST ERROR",
    ]);
    for e in &events {
        table.push(vec![
            e.id.to_string(),
            e.source.clone(),
            e.attempts.to_string(),
            time_cell(e.received_at),
            cell(e.resource_key.as_deref(), 40),
            cell(e.last_error.as_deref(), 80),
        ]);
    }
    table.print();
    println!("{} of {total} dead events shown", events.len());
    if total > 0 {
        println!(
            "redrive with: hookline dead-letters redrive --id <ID> | --source <SOURCE> | --all"
        );
    }
    Ok(())
}

/// Everything but headers and body: what lists print.
fn summary_json(e: &Event) -> Value {
    json!({
        "id": e.id,
        "source": e.source,
        "dedup_key": e.dedup_key,
        "resource_key": e.resource_key,
        "status": e.status,
        "state": e.state,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "received_at": rfc3339(e.received_at),
        "processed_at": opt_rfc3339(e.processed_at),
        "payload_pruned": e.payload_pruned,
    })
}

/// The whole event; the body as text when it is UTF-8, else as `body_base64` (the same
/// convention as the stored headers).
fn full_json(e: &Event) -> Value {
    let mut value = summary_json(e);
    value["traceparent"] = json!(e.traceparent);
    if e.payload_pruned {
        // Nothing to show: retention pruned body, headers and query.
        value["query"] = Value::Null;
        value["headers"] = Value::Null;
        return value;
    }
    value["query"] = json!(e.query);
    value["headers"] = e.headers.clone();
    match std::str::from_utf8(&e.body) {
        Ok(text) => value["body"] = json!(text),
        Err(_) => {
            value["body_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&e.body));
        }
    }
    value
}

fn opt(text: Option<&str>) -> String {
    text.unwrap_or("-").to_string()
}

/// `3 events` or, when the limit cut the list, a hint to raise it.
fn count_line(shown: usize, limit: i64, noun: &str) -> String {
    let plural = if shown == 1 { "" } else { "s" };
    if i64::try_from(shown).is_ok_and(|n| n >= limit) {
        format!("{shown} {noun}{plural} (limit reached; raise --limit to see more)")
    } else {
        format!("{shown} {noun}{plural}")
    }
}
