use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookline_db::{InsertResult, NewEvent, Pool, insert_events};
use hookline_telemetry::names;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
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
/// request only after that statement committed.
///
/// A statement costs PostgreSQL ~0.6 ms whatever its size and ~40 µs per row, so the
/// batches should be as full as the load allows. While one statement is in flight, the
/// next batch keeps filling until that statement is done ([`InFlight`]); only a batch that
/// has reached a quarter of `batch_max`, or has waited [`SECOND_STATEMENT_AFTER`], goes
/// out beside it. So a steady load is committed one full batch at a time (measured: a
/// fifth less PostgreSQL CPU per event than two half-full statements at once, at the
/// same throughput), and a slow statement (a key another transaction holds, a stalled
/// disk) still has others going past it, up to `batchers` at once.
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
        let in_flight = Arc::new(InFlight::default());
        let handles = (0..tasks.max(1))
            .map(|_| {
                let rx = rx.clone();
                let pool = pool.clone();
                let committed = committed.clone();
                let seen = seen.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    run(rx, pool, batch_max, committed, seen, in_flight).await;
                })
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

/// How long a batch waits for the statement in flight before it goes out beside it
/// anyway: far above a statement's usual few milliseconds, far below a request's timeout.
const SECOND_STATEMENT_AFTER: Duration = Duration::from_millis(20);

/// The group-commit statements in flight, and a signal each time one ends.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    ended: Notify,
}

impl InFlight {
    /// Marks a statement in flight until the guard drops.
    fn start(&self) -> InFlightGuard<'_> {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self)
    }
}

struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

/// Fills `batch` from `rx` (at least one request, at most `batch_max`): while another
/// statement is in flight, goes on receiving until it ends, the batch holds a quarter of
/// `batch_max`, or `wait_at_most` passed. Returns false once every sender is gone and
/// nothing was received.
async fn fill_batch(
    rx: &mut mpsc::Receiver<Pending>,
    batch: &mut Vec<Pending>,
    batch_max: usize,
    in_flight: &InFlight,
    wait_at_most: Duration,
) -> bool {
    // recv_many waits for at least one, then takes what is already queued.
    if rx.recv_many(batch, batch_max).await == 0 {
        return false;
    }
    let fill = (batch_max / 4).max(1);
    let deadline = tokio::time::sleep(wait_at_most);
    tokio::pin!(deadline);
    while batch.len() < fill {
        // Registered before the count is read, so an end in between is not missed.
        let ended = in_flight.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if in_flight.count.load(Ordering::Acquire) == 0 {
            break;
        }
        tokio::select! {
            () = &mut ended => break,
            () = &mut deadline => break,
            n = rx.recv_many(batch, batch_max - batch.len()) => {
                if n == 0 {
                    break; // shutting down: store what there is
                }
            }
        }
    }
    true
}

async fn run(
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    pool: Pool,
    batch_max: usize,
    committed: mpsc::Sender<CommittedBatch>,
    seen: Arc<SeenKeys>,
    in_flight: Arc<InFlight>,
) {
    let mut batch = Vec::with_capacity(batch_max);
    // Moving average of the duplicate share: while duplicates are common (a retry storm),
    // committed keys are looked up before any row is built; otherwise rows go straight in.
    let mut duplicate_share = 0.0_f64;
    loop {
        {
            let mut rx = rx.lock().await;
            let filled = fill_batch(
                &mut rx,
                &mut batch,
                batch_max,
                &in_flight,
                SECOND_STATEMENT_AFTER,
            )
            .await;
            if !filled {
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
        let statement = in_flight.start();
        let result = insert_with_retry(&pool, &rows, duplicate_share > 0.05).await;
        drop(statement);
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

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);
    const PATIENCE: Duration = Duration::from_secs(10);

    fn pending() -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            event: NewEvent {
                id: new_event_id(),
                source: "s".into(),
                dedup_key: "k".into(),
                resource_key: None,
                status: None,
                headers: serde_json::json!([]),
                query: String::new(),
                body: Vec::new(),
                traceparent: None,
                dedup_horizon: Duration::from_secs(60),
            },
            reply,
        }
    }

    type Filled = (usize, mpsc::Receiver<Pending>);

    /// Runs [`fill_batch`] in a task of its own (8 at most per batch, so a quarter is 2).
    fn spawn_fill(
        rx: mpsc::Receiver<Pending>,
        in_flight: &Arc<InFlight>,
        wait_at_most: Duration,
    ) -> tokio::task::JoinHandle<Filled> {
        spawn_fill_max(rx, in_flight, 8, wait_at_most)
    }

    fn spawn_fill_max(
        mut rx: mpsc::Receiver<Pending>,
        in_flight: &Arc<InFlight>,
        batch_max: usize,
        wait_at_most: Duration,
    ) -> tokio::task::JoinHandle<Filled> {
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            assert!(fill_batch(&mut rx, &mut batch, batch_max, &in_flight, wait_at_most).await);
            (batch.len(), rx)
        })
    }

    async fn finished(handle: tokio::task::JoinHandle<Filled>) -> Filled {
        tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("fill_batch returned")
            .expect("no panic")
    }

    #[tokio::test]
    async fn with_no_statement_in_flight_a_batch_goes_out_with_what_is_queued() {
        let (tx, rx) = mpsc::channel(16);
        let in_flight = Arc::new(InFlight::default());
        tx.send(pending()).await.unwrap();
        let (n, _) = finished(spawn_fill(rx, &in_flight, LONG)).await;
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn while_a_statement_is_in_flight_the_next_batch_fills_until_it_ends() {
        // batch_max 64: a quarter (16) is never reached here, so only the end releases it.
        let (tx, rx) = mpsc::channel(128);
        let in_flight = Arc::new(InFlight::default());
        let statement = in_flight.start();
        tx.send(pending()).await.unwrap();
        let waiting = spawn_fill_max(rx, &in_flight, 64, LONG);
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(pending()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the batch went out beside the statement"
        );
        drop(statement);
        let (n, _) = finished(waiting).await;
        assert_eq!(n, 5, "everything that arrived meanwhile");
    }

    #[tokio::test]
    async fn a_batch_that_reached_a_quarter_of_batch_max_goes_out_beside_the_statement() {
        let (tx, rx) = mpsc::channel(16);
        let in_flight = Arc::new(InFlight::default());
        let _statement = in_flight.start();
        tx.send(pending()).await.unwrap();
        let waiting = spawn_fill(rx, &in_flight, LONG);
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(pending()).await.unwrap();
        let (n, _) = finished(waiting).await;
        assert_eq!(n, 2);
    }

    #[tokio::test]
    async fn a_batch_waits_for_a_stuck_statement_only_so_long() {
        let (tx, rx) = mpsc::channel(16);
        let in_flight = Arc::new(InFlight::default());
        let _stuck = in_flight.start();
        tx.send(pending()).await.unwrap();
        let (n, _) = finished(spawn_fill(rx, &in_flight, Duration::from_millis(10))).await;
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_closed_queue_ends_the_batcher() {
        let (tx, rx) = mpsc::channel::<Pending>(16);
        drop(tx);
        let mut rx = rx;
        let in_flight = InFlight::default();
        let mut batch = Vec::new();
        assert!(!fill_batch(&mut rx, &mut batch, 8, &in_flight, LONG).await);
    }
}
