use std::sync::Arc;
use std::time::Instant;

use hookline_db::{InsertResult, NewEvent, Pool, insert_events};
use hookline_telemetry::names;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::outbox::{Committed, CommittedBatch};
use crate::seen::SeenKeys;

/// One request waiting for its row to commit.
struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<InsertResult, String>>,
}

/// Group commit: requests hand their row to [`Batcher::insert`], a few batcher tasks take
/// whatever is queued (up to `batch_max`), store it with one statement, and answer each
/// request only after that statement committed. Several tasks keep a batch in flight
/// while the next one fills, so throughput is not bound by one round trip.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
    seen: Arc<SeenKeys>,
}

impl Batcher {
    /// Starts `tasks` batcher tasks on `pool`; new events are announced on `committed`,
    /// and every committed key is remembered in `seen`.
    pub fn start(
        pool: Pool,
        batch_max: usize,
        tasks: usize,
        committed: mpsc::Sender<CommittedBatch>,
        seen: Arc<SeenKeys>,
    ) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel::<Pending>(batch_max * tasks * 4);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..tasks.max(1))
            .map(|_| {
                let rx = rx.clone();
                let pool = pool.clone();
                let committed = committed.clone();
                let seen = seen.clone();
                tokio::spawn(async move { run(rx, pool, batch_max, committed, seen).await })
            })
            .collect();
        (Self { tx, seen }, handles)
    }

    /// The first event's id if this key is known to be committed already: the answer the
    /// database would give, without asking it.
    pub fn committed_id(&self, source: &str, dedup_key: &str) -> Option<Uuid> {
        self.seen.get(source, dedup_key)
    }

    /// Stores `event` (or finds the existing one) and returns once committed.
    ///
    /// # Errors
    /// The database error text when the batch could not be stored; nothing was stored
    /// for this request then, so the caller must not acknowledge it.
    pub async fn insert(&self, event: NewEvent) -> Result<InsertResult, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { event, reply })
            .await
            .map_err(|_| "ingest is shutting down".to_string())?;
        rx.await.map_err(|_| "batcher stopped".to_string())?
    }
}

async fn run(
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    pool: Pool,
    batch_max: usize,
    committed: mpsc::Sender<CommittedBatch>,
    seen: Arc<SeenKeys>,
) {
    let mut batch = Vec::with_capacity(batch_max);
    // Moving average of the duplicate share: while duplicates are common (a retry storm),
    // committed keys are looked up before any row is built; otherwise rows go straight in.
    let mut duplicate_share = 0.0_f64;
    loop {
        {
            let mut rx = rx.lock().await;
            // recv_many waits for at least one, then takes what is already queued.
            if rx.recv_many(&mut batch, batch_max).await == 0 {
                return; // every sender dropped: shutting down, and the queue is drained
            }
        }
        // A request past its deadline was answered 503 and dropped its reply: storing
        // its row now would only slow the recovery after a stall (its retry comes anyway).
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let (rows, replies): (Vec<NewEvent>, Vec<_>) =
            batch.drain(..).map(|p| (p.event, p.reply)).unzip();
        let result = insert_with_retry(&pool, &rows, duplicate_share > 0.05).await;
        if let Ok(results) = &result {
            let share =
                results.iter().filter(|r| r.duplicate).count() as f64 / results.len().max(1) as f64;
            duplicate_share = 0.8 * duplicate_share + 0.2 * share;
        }
        metrics::histogram!(names::INGEST_BATCH_SIZE).record(rows.len() as f64);
        match result {
            Ok(results) => {
                // Horizons counted from before the insert went out: never past the
                // database's own. (Entries age out within minutes anyway; the cap keeps
                // the instant arithmetic far from overflow.)
                seen.insert_all(rows.iter().zip(&results).map(|(row, r)| {
                    (
                        row.source.as_str(),
                        row.dedup_key.as_str(),
                        r.event_id,
                        started + r.expires_in.min(crate::seen::MAX_AGE * 4),
                    )
                }));
                if let Some(outbox) = hookline_db::outbox_key(&results) {
                    let events = rows
                        .iter()
                        .zip(&results)
                        .filter(|(_, r)| !r.duplicate)
                        .map(|(row, r)| Committed {
                            event_id: r.event_id,
                            source: row.source.clone(),
                            traceparent: row.traceparent.clone(),
                        })
                        .collect();
                    // Full queue: the outbox relay publishes the batch a little later instead.
                    let _ = committed.try_send(CommittedBatch { outbox, events });
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
                tracing::trace!(
                    rows = rows.len(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "batch committed"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = rows.len(), "batch insert failed; answering 503");
                let text = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(text.clone()));
                }
            }
        }
    }
}

/// One group commit ([`insert_events`]); a deadlock or serialization failure (rare: batches insert in
/// key order) gets one immediate second try before the requests are answered 503.
async fn insert_with_retry(
    pool: &Pool,
    rows: &[NewEvent],
    lookup_first: bool,
) -> Result<Vec<InsertResult>, hookline_db::DbError> {
    let mut retried = false;
    loop {
        let result = async {
            let mut conn = pool.get().await?;
            insert_events(&mut conn, rows, lookup_first).await
        }
        .await;
        match result {
            Err(hookline_db::DbError::Query(e)) if !retried && hookline_db::is_retryable(&e) => {
                tracing::debug!(error = %e, "batch insert conflicted; retrying once");
                retried = true;
            }
            other => return other,
        }
    }
}

/// A fresh time-ordered event id.
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}
