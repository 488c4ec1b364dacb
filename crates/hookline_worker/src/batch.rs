//! Group commit for the worker: many events decided in one transaction.
//!
//! The per-event guarantees are those of [`crate::process`]: every event row is locked,
//! every resource row is locked (in a fixed order, so concurrent batches on other workers
//! wait rather than deadlock), the lifecycle decides, the decision is logged, and the
//! messages are acknowledged only after the commit. What changes is the cost: one
//! transaction and a handful of set-based statements per batch instead of per event.
//! A batch that fails for any reason is retried event by event with the single-event
//! step, so one bad event never drags the others into its retry schedule.

use std::collections::HashMap;

use diesel_async::AsyncConnection;
use hookline_config::Sources;
use hookline_db::{
    AsyncPgConnection, DbError, ResourceUpdate, TransitionRow, finish_events, lock_events,
    lock_resources, record_transitions,
};
use hookline_queue::Envelope;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::process::{Plan, plan};
use crate::{Deps, Outcome, ProcessError, Transition, process};

/// Processes the events `ids` point to in one transaction; returns each one's outcome.
/// Events are decided in id order (UUIDv7: the order ingest received them).
///
/// # Errors
/// [`ProcessError`] when the batch could not commit; nothing of it was stored.
pub async fn process_batch(
    deps: &Deps,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Outcome>, ProcessError> {
    let mut conn = deps.pool.get().await.map_err(DbError::from)?;
    conn.transaction::<_, ProcessError, _>(async |conn| {
        decide_batch(conn, &deps.sources, ids).await
    })
    .await
}

async fn decide_batch(
    conn: &mut AsyncPgConnection,
    sources: &Sources,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Outcome>, ProcessError> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let events = lock_events(conn, &sorted).await?;
    let mut outcomes: HashMap<Uuid, Outcome> =
        sorted.iter().map(|id| (*id, Outcome::Missing)).collect();

    let mut plans = Vec::with_capacity(events.len());
    for event in &events {
        if matches!(event.state.as_str(), "processed" | "failed" | "dead") {
            outcomes.insert(
                event.id,
                Outcome::Redelivered {
                    state: event.state.clone(),
                },
            );
        } else {
            plans.push((event, plan(sources, event)));
        }
    }

    let mut keys: Vec<(&str, &str)> = plans
        .iter()
        .filter_map(|(event, plan)| match plan {
            Plan::Track { resource_key, .. } => Some((event.source.as_str(), *resource_key)),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut current: HashMap<(String, String), Option<String>> = lock_resources(conn, &keys)
        .await?
        .into_iter()
        .map(|(source, key, status)| ((source, key), status))
        .collect();

    let mut rows = Vec::new();
    let mut updates: HashMap<(&str, &str), ResourceUpdate> = HashMap::new();
    let mut done: Vec<(Uuid, Option<String>)> = Vec::with_capacity(plans.len());
    for (event, plan) in &plans {
        let outcome = match plan {
            Plan::Fail(reason) => {
                done.push((event.id, Some(reason.clone())));
                Outcome::Failed {
                    reason: reason.clone(),
                }
            }
            Plan::Untracked => {
                done.push((event.id, None));
                Outcome::Processed {
                    transition: None,
                    received_at: event.received_at,
                }
            }
            Plan::Track {
                lifecycle,
                resource_key,
                status,
            } => {
                let slot = current
                    .entry((event.source.clone(), resource_key.to_string()))
                    .or_default();
                let from = slot.clone();
                match lifecycle.transition(from.as_deref(), status) {
                    Err(e) => {
                        done.push((event.id, Some(e.to_string())));
                        Outcome::Failed {
                            reason: e.to_string(),
                        }
                    }
                    Ok(decision) => {
                        if decision.changes_status() {
                            *slot = Some(status.to_string());
                            updates.insert(
                                (event.source.as_str(), resource_key),
                                ResourceUpdate {
                                    source: &event.source,
                                    resource_key,
                                    status,
                                    terminal: lifecycle.is_terminal(status),
                                    event_id: event.id,
                                },
                            );
                        }
                        rows.push((
                            event.id,
                            &event.source,
                            *resource_key,
                            from.clone(),
                            *status,
                            decision,
                        ));
                        done.push((event.id, None));
                        Outcome::Processed {
                            transition: Some(Transition {
                                resource_key: resource_key.to_string(),
                                from,
                                to: status.to_string(),
                                outcome: decision,
                            }),
                            received_at: event.received_at,
                        }
                    }
                }
            }
        };
        outcomes.insert(event.id, outcome);
    }
    let rows: Vec<TransitionRow> = rows
        .iter()
        .map(
            |(event_id, source, resource_key, from, to, outcome)| TransitionRow {
                source,
                resource_key,
                event_id: *event_id,
                from: from.as_deref(),
                to,
                outcome: *outcome,
            },
        )
        .collect();
    let updates: Vec<ResourceUpdate> = updates.into_values().collect();
    record_transitions(conn, &updates, &rows).await?;
    let done: Vec<(Uuid, Option<&str>)> = done.iter().map(|(id, e)| (*id, e.as_deref())).collect();
    finish_events(conn, &done).await?;
    Ok(outcomes)
}

/// The state an event is left in by `outcome`.
fn final_state(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Processed { .. } => "processed".into(),
        Outcome::Failed { .. } => "failed".into(),
        Outcome::Redelivered { state } => state.clone(),
        Outcome::Missing => "missing".into(),
    }
}

type Reply = oneshot::Sender<Result<Outcome, ProcessError>>;

/// Collects the events that concurrently running message tasks want processed and
/// decides them in batches: each [`Processor::process`] call returns once the batch
/// holding its event committed (or failed).
#[derive(Clone)]
pub struct Processor {
    tx: mpsc::Sender<(Envelope, Reply)>,
}

impl Processor {
    /// Starts `executors` batch tasks, each taking up to `max_batch` queued events.
    pub fn start(deps: std::sync::Arc<Deps>, max_batch: usize, executors: usize) -> Self {
        let (tx, rx) = mpsc::channel::<(Envelope, Reply)>(max_batch * executors * 2);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for _ in 0..executors.max(1) {
            let rx = rx.clone();
            let deps = deps.clone();
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(max_batch);
                loop {
                    if rx
                        .lock()
                        .await
                        .recv_many(&mut batch, max_batch.max(1))
                        .await
                        == 0
                    {
                        return;
                    }
                    run_batch(&deps, std::mem::take(&mut batch)).await;
                }
            });
        }
        Self { tx }
    }

    /// Processes the event `envelope` points to, batched with whatever else is waiting.
    ///
    /// # Errors
    /// [`ProcessError`] as [`crate::process`].
    pub async fn process(&self, envelope: Envelope) -> Result<Outcome, ProcessError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((envelope, reply))
            .await
            .map_err(|_| ProcessError::Transient("the processor stopped".into()))?;
        rx.await.unwrap_or_else(|_| {
            Err(ProcessError::Transient(
                "the processor dropped the event".into(),
            ))
        })
    }
}

async fn run_batch(deps: &std::sync::Arc<Deps>, batch: Vec<(Envelope, Reply)>) {
    let ids: Vec<Uuid> = batch.iter().map(|(e, _)| e.event_id).collect();
    // Its own task: a panic fails this batch (then retried one by one), not the executor.
    let attempt = {
        let deps = deps.clone();
        let ids = ids.clone();
        tokio::spawn(async move { process_batch(&deps, &ids).await }).await
    };
    match attempt {
        Ok(Ok(mut outcomes)) => {
            let mut settled: HashMap<Uuid, String> = HashMap::new();
            for (envelope, reply) in batch {
                // Two deliveries of one event in one batch: the second is a redelivery.
                let outcome = match outcomes.remove(&envelope.event_id) {
                    Some(outcome) => {
                        settled.insert(envelope.event_id, final_state(&outcome));
                        outcome
                    }
                    None => Outcome::Redelivered {
                        state: settled.get(&envelope.event_id).cloned().unwrap_or_default(),
                    },
                };
                let _ = reply.send(Ok(outcome));
            }
        }
        failed => {
            if batch.len() > 1 {
                tracing::debug!(events = batch.len(), error = ?failed.as_ref().err().map(ToString::to_string), "batch failed; processing its events one by one");
            }
            let singles = batch.into_iter().map(|(envelope, reply)| {
                let deps = deps.clone();
                async move {
                    let result =
                        crate::consume::isolate(async move { process(&deps, &envelope).await })
                            .await;
                    let _ = reply.send(result);
                }
            });
            futures_util::future::join_all(singles).await;
        }
    }
}
