//! Group commit for the worker: the events that concurrently running message tasks want
//! processed are decided together, one transaction per batch ([`crate::process_batch`]).
//! A batch that fails for any reason is retried event by event, on the same path (a batch
//! of one each), so one bad event never drags the others into its retry schedule.

use std::collections::HashMap;
use std::sync::Arc;

use hookline_queue::Envelope;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::{Deps, Outcome, ProcessError, process, process_batch};

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
    pub fn start(deps: Arc<Deps>, max_batch: usize, executors: usize) -> Self {
        let (tx, rx) = mpsc::channel::<(Envelope, Reply)>(max_batch * executors * 2);
        let rx = Arc::new(Mutex::new(rx));
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

async fn run_batch(deps: &Arc<Deps>, batch: Vec<(Envelope, Reply)>) {
    let ids: Vec<Uuid> = batch.iter().map(|(e, _)| e.event_id).collect();
    // Its own task: a panic fails this batch (then retried one by one), not the executor.
    let attempt = {
        let deps = deps.clone();
        let ids = ids.clone();
        tokio::spawn(async move { process_batch(&deps, &ids).await }).await
    };
    match attempt {
        Ok(Ok(mut outcomes)) => {
            let mut settled: HashMap<Uuid, Outcome> = HashMap::new();
            for (envelope, reply) in batch {
                // Two deliveries of one event in one batch: the second is a redelivery.
                let outcome = match outcomes.remove(&envelope.event_id) {
                    Some(outcome) => {
                        settled.insert(envelope.event_id, outcome.seen_again());
                        outcome
                    }
                    None => settled
                        .get(&envelope.event_id)
                        .cloned()
                        .unwrap_or(Outcome::Missing),
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
