//! `replay` and `dead-letters redrive`: republish event ids to the work queue.
//!
//! Per batch, in one PostgreSQL transaction: reset the failed/dead events being re-run
//! (their rows stay locked), publish the envelopes with publisher confirms, mark
//! `received` events published, commit. A publish that fails rolls the reset back, so an
//! event is never left `published` without a message; a commit that fails after the
//! publish leaves messages for events that are still final, which workers acknowledge
//! without effect. Either way running the command again is safe: the worker locks each
//! event and skips final ones, so nothing is applied twice.

use anyhow::{Context, anyhow, bail};
use diesel_async::AsyncConnection;
use hookline_config::Config;
use hookline_db::{
    AsyncPgConnection, EventSelection, ReplayTarget, count_selected, find_event, mark_published,
    reset_for_replay, select_for_replay,
};
use hookline_domain::EventState;
use hookline_queue::{Broker, Envelope, Nodes, Publisher, Route, Topology};
use serde::Serialize;
use uuid::Uuid;

use crate::args::{Batching, RedriveArgs, ReplayArgs, Selection};
use crate::output;
use crate::progress::Progress;

/// What to republish and how.
#[derive(Debug)]
pub struct Plan {
    selection: EventSelection,
    reset: bool,
    dry_run: bool,
    batch_size: i64,
    purge_dead_queue: bool,
}

impl Plan {
    /// `replay`: the selection as given; failed and dead events only with `--reset`.
    ///
    /// # Errors
    /// When nothing narrows the selection and `--all` is not given.
    pub fn replay(args: &ReplayArgs) -> anyhow::Result<Self> {
        let mut selection = selection(&args.selection, args.state.is_some(), "replay")?;
        selection.state = args.state;
        Ok(Self::new(selection, args.reset, &args.batching, false))
    }

    /// `dead-letters redrive`: dead events only, always reset.
    ///
    /// # Errors
    /// When nothing narrows the selection and `--all` is not given.
    pub fn redrive(args: &RedriveArgs) -> anyhow::Result<Self> {
        let mut selection = selection(&args.selection, false, "dead-letters redrive")?;
        selection.state = Some(EventState::Dead);
        Ok(Self::new(selection, true, &args.batching, args.purge_queue))
    }

    fn new(
        selection: EventSelection,
        reset: bool,
        batching: &Batching,
        purge_dead_queue: bool,
    ) -> Self {
        Self {
            selection,
            reset,
            dry_run: batching.dry_run,
            batch_size: batching.batch_size,
            purge_dead_queue,
        }
    }

    /// Whether a worker would act on an event in `state` once republished.
    fn republishes(&self, state: EventState) -> bool {
        match state {
            EventState::Received | EventState::Published => true,
            EventState::Failed | EventState::Dead => self.reset,
            EventState::Processed => false,
        }
    }
}

/// Replaying everything is allowed, but only when asked for in so many words.
fn selection(args: &Selection, has_state: bool, command: &str) -> anyhow::Result<EventSelection> {
    let filtered = !args.ids.is_empty()
        || args.source.is_some()
        || args.since.is_some()
        || args.until.is_some()
        || has_state;
    if !filtered && !args.all {
        bail!(
            "{command} needs a filter (--id, --source, --since, --until{}) or --all",
            if command == "replay" { ", --state" } else { "" }
        );
    }
    Ok(EventSelection {
        ids: args.ids.clone(),
        source: args.source.clone(),
        state: None,
        since: args.since,
        until: args.until,
    })
}

/// What a replay did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Events the selection matched.
    selected: u64,
    /// Envelopes published to the work queue.
    published: u64,
    /// Failed/dead events reset to `published`.
    reset: u64,
    /// Events not republished because they are final (processed; failed or dead
    /// without `--reset`): a worker would only acknowledge them.
    skipped: u64,
    /// Events not republished because retention pruned their payload: they cannot be
    /// replayed (a worker or destination would get an empty body).
    pruned: u64,
    /// Messages purged from the dead-letter queue, when asked.
    purged: Option<u32>,
    /// Nothing was published or changed.
    dry_run: bool,
}

/// Runs `plan` in batches with a progress bar, then prints the summary.
///
/// # Errors
/// Unknown `--id`s, an unreachable database or broker, a publish that was not confirmed
/// (that batch is rolled back; earlier batches stay done).
pub async fn run(
    conn: &mut AsyncPgConnection,
    config: &Config,
    plan: &Plan,
    json: bool,
) -> anyhow::Result<()> {
    for id in &plan.selection.ids {
        let event = find_event(conn, *id)
            .await
            .context("reading the event")?
            .ok_or_else(|| anyhow!("no event {id}"))?;
        if event.payload_pruned {
            bail!(
                "event {id} cannot be replayed: retention pruned its payload (body, headers \
                 and query; retention.payload), and a worker or destination would get an empty \
                 body. Its keys, state and result remain: hookline events show {id}"
            );
        }
    }
    let publisher = if plan.dry_run {
        None
    } else {
        Some(connect_publisher(config).await?)
    };
    let total = count_selected(conn, &plan.selection)
        .await
        .context("counting the selected events")?;
    let progress = Progress::new(u64::try_from(total).unwrap_or(0), "events");
    let mut summary = Summary {
        dry_run: plan.dry_run,
        ..Summary::default()
    };
    let mut after: Option<Uuid> = None;
    loop {
        let batch = select_for_replay(conn, &plan.selection, after, plan.batch_size)
            .await
            .context("selecting events")?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        let (chosen, skipped): (Vec<&ReplayTarget>, Vec<&ReplayTarget>) =
            batch.iter().partition(|t| plan.republishes(t.state));
        let (pruned, chosen): (Vec<&ReplayTarget>, Vec<&ReplayTarget>) =
            chosen.into_iter().partition(|t| t.payload_pruned);
        summary.selected += batch.len() as u64;
        summary.skipped += skipped.len() as u64;
        summary.pruned += pruned.len() as u64;
        if !chosen.is_empty() {
            let ids: Vec<Uuid> = chosen.iter().map(|t| t.id).collect();
            let reset = match &publisher {
                Some(publisher) => {
                    let envelopes: Vec<Envelope> = chosen
                        .iter()
                        .map(|t| Envelope::new(t.id, t.source.clone(), t.traceparent.clone()))
                        .collect();
                    republish(conn, publisher, &ids, &envelopes, plan.reset).await?
                }
                None => chosen
                    .iter()
                    .filter(|t| matches!(t.state, EventState::Failed | EventState::Dead))
                    .count(),
            };
            summary.reset += reset as u64;
            summary.published += ids.len() as u64;
        }
        progress.set(summary.selected);
    }
    drop(progress);

    if plan.purge_dead_queue && !plan.dry_run {
        summary.purged = Some(purge_dead_queue(config).await?);
    }
    print_summary(plan, &summary, json);
    Ok(())
}

/// One batch in one transaction: reset (when re-running), publish with confirms, mark
/// `received` ones published, commit. Returns how many events were reset.
async fn republish(
    conn: &mut AsyncPgConnection,
    publisher: &Publisher,
    ids: &[Uuid],
    envelopes: &[Envelope],
    reset: bool,
) -> anyhow::Result<usize> {
    conn.transaction::<usize, anyhow::Error, _>(async |conn| {
        let reset = if reset {
            reset_for_replay(conn, ids)
                .await
                .context("resetting events")?
        } else {
            0
        };
        publisher
            .publish(envelopes, Route::Work, None)
            .await
            .context("publishing to RabbitMQ (the batch was rolled back; run the command again)")?;
        mark_published(conn, ids)
            .await
            .context("marking events published")?;
        Ok(reset)
    })
    .await
}

/// A confirming publisher declaring the exchange, work and dead queues as the services
/// do, so publishing works even on a broker the services have not touched yet (the
/// retry queues are the worker's to declare).
async fn connect_publisher(config: &Config) -> anyhow::Result<Publisher> {
    let publisher = Publisher::new(
        nodes(config)?,
        Topology::new(config.amqp.prefix.clone()),
        Vec::new(),
        "hookline-cli",
    );
    publisher
        .ensure_connected()
        .await
        .context("connecting to RabbitMQ (amqp.url)")?;
    Ok(publisher)
}

/// The broker's nodes as configured (`amqp.url`, `amqp.ca_file`): the first that answers
/// is used.
fn nodes(config: &Config) -> anyhow::Result<Nodes> {
    Nodes::new(config.amqp.url.expose(), config.amqp.ca_pem.clone()).context("amqp.url")
}

/// Empties `{prefix}.dead`. Its messages only point at events; PostgreSQL keeps every
/// dead event (`dead-letters list`), so nothing is lost, even for an event
/// dead-lettered while this runs.
async fn purge_dead_queue(config: &Config) -> anyhow::Result<u32> {
    let topology = Topology::new(config.amqp.prefix.clone());
    let broker = Broker::connect(nodes(config)?, "hookline-cli")
        .await
        .context("connecting to RabbitMQ (amqp.url)")?;
    let purged = broker
        .purge(&topology.dead_queue())
        .await
        .with_context(|| format!("purging {}", topology.dead_queue()))?;
    let _ = broker.close().await;
    Ok(purged)
}

fn print_summary(plan: &Plan, summary: &Summary, json: bool) {
    if json {
        output::print_json(&serde_json::to_value(summary).unwrap_or_default());
        return;
    }
    let (prefix, publish, reset, skip) = if plan.dry_run {
        ("dry run: ", "would publish", "would reset", "would skip")
    } else {
        ("", "published", "reset", "skipped")
    };
    println!(
        "{prefix}selected {}: {publish} {}, {reset} {} failed/dead to published, {skip} {} already final",
        events(summary.selected),
        summary.published,
        summary.reset,
        summary.skipped,
    );
    if summary.skipped > 0 && !plan.reset {
        println!("processed events are never re-run; re-run failed and dead ones with --reset");
    }
    if summary.pruned > 0 {
        println!(
            "{} not replayed: retention pruned their payload (retention.payload), so a worker \
             would get an empty body; their keys, states and results remain",
            events(summary.pruned)
        );
    }
    match summary.purged {
        Some(purged) => println!("purged {purged} messages from the dead-letter queue"),
        None if plan.purge_dead_queue => println!("would purge the dead-letter queue"),
        None => {}
    }
}

/// `1 event`, `2 events`.
fn events(n: u64) -> String {
    format!("{n} event{}", if n == 1 { "" } else { "s" })
}
