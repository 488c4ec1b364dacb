use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncConnection;
use hookline_db::{DbError, Pool, claim_outbox, count_outbox, mark_published};
use hookline_queue::{Envelope, Publisher, QueueError, Route, Topology};
use hookline_telemetry::names;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// A row that just committed and should be published.
#[derive(Debug, Clone)]
pub struct Committed {
    pub event_id: Uuid,
    pub source: String,
    pub traceparent: Option<String>,
}

/// The new events of one group commit, and the key of the outbox row it wrote for them
/// ([`hookline_db::outbox_key`]): the row goes once the broker confirmed them all.
#[derive(Debug, Clone)]
pub struct CommittedBatch {
    pub outbox: Uuid,
    pub events: Vec<Committed>,
}

/// Group commits published together, with one wait for their confirms.
const PUBLISH_BATCHES: usize = 16;

/// Event pointers carried by one AMQP message (the worker decides them in one
/// transaction). One message per group commit rather than per event: the broker's
/// per-message cost is what bounds a small machine.
const POINTERS_PER_MESSAGE: usize = 64;

/// Publishes freshly committed batches as they arrive, with confirms, then marks them
/// published. A failed publish is simply dropped: the batches' outbox rows stay and the
/// relay republishes them.
pub async fn run_publisher(
    mut rx: mpsc::Receiver<CommittedBatch>,
    publisher: Arc<Publisher>,
    pool: Pool,
) {
    let mut batches = Vec::with_capacity(PUBLISH_BATCHES);
    while rx.recv_many(&mut batches, PUBLISH_BATCHES).await > 0 {
        let outbox: Vec<Uuid> = batches.iter().map(|b| b.outbox).collect();
        let envelopes: Vec<Envelope> = batches
            .drain(..)
            .flat_map(|b| b.events)
            .map(|c| Envelope::new(c.event_id, c.source, c.traceparent))
            .collect();
        if let Err(e) = publish_and_mark(&publisher, &pool, &envelopes, &outbox).await {
            tracing::warn!(error = %e, events = envelopes.len(), "publish failed; the outbox relay will retry");
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for PublishError {
    fn from(e: diesel::result::Error) -> Self {
        PublishError::Db(DbError::Query(e))
    }
}

async fn publish_and_mark(
    publisher: &Publisher,
    pool: &Pool,
    envelopes: &[Envelope],
    outbox: &[Uuid],
) -> Result<(), PublishError> {
    publish_counted(publisher, envelopes).await?;
    let mut conn = pool.get().await.map_err(DbError::from)?;
    mark_published(&mut conn, outbox).await?;
    Ok(())
}

async fn publish_counted(publisher: &Publisher, envelopes: &[Envelope]) -> Result<(), QueueError> {
    let (spans, traced) = publish_spans(publisher, envelopes);
    let envelopes = traced.as_deref().unwrap_or(envelopes);
    let result = publisher
        .publish_batched(envelopes, Route::Work, POINTERS_PER_MESSAGE)
        .await;
    drop(spans); // the producer spans end once the broker confirmed
    let label = if result.is_ok() { "ack" } else { "error" };
    metrics::counter!(names::PUBLISH_CONFIRMS, "result" => label).increment(envelopes.len() as u64);
    result
}

/// One producer span per message (messaging semantic conventions), child of the ingest
/// request's span; each envelope then carries its producer span's context, so the
/// worker's consumer span hangs below it. Nothing happens when traces are not exported.
fn publish_spans(
    publisher: &Publisher,
    envelopes: &[Envelope],
) -> (Vec<tracing::Span>, Option<Vec<Envelope>>) {
    if !hookline_telemetry::tracing_enabled() {
        return (Vec::new(), None);
    }
    let exchange = publisher.topology().exchange();
    let routing_key = Topology::routing_key(Route::Work);
    let mut traced = envelopes.to_vec();
    let spans = traced
        .iter_mut()
        .map(|envelope| {
            let span = tracing::info_span!(
                "publish",
                otel.name = %format_args!("publish {exchange}"),
                otel.kind = "producer",
                messaging.system = "rabbitmq",
                messaging.destination.name = %exchange,
                messaging.rabbitmq.destination.routing_key = %routing_key,
                messaging.operation.type = "send",
                messaging.operation.name = "publish",
                messaging.message.id = %envelope.event_id,
                webhook.source = %envelope.source,
                event.id = %envelope.event_id,
            );
            hookline_telemetry::set_remote_parent(&span, envelope.traceparent.as_deref());
            if let Some(tp) = hookline_telemetry::traceparent_of(&span) {
                envelope.traceparent = Some(tp);
            }
            span
        })
        .collect();
    (spans, Some(traced))
}

/// The outbox relay: every `interval`, republishes events committed more than `after` ago
/// and still not confirmed (broker was down, the process died between commit and
/// publish). Rows are claimed with `SKIP LOCKED` inside a transaction that holds them
/// until the broker confirmed and they are marked, so concurrent relays (several ingest
/// replicas) split the work. Stops when `stop` turns true.
pub async fn run_relay(
    publisher: Arc<Publisher>,
    pool: Pool,
    after: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        loop {
            match relay_once(&publisher, &pool, after).await {
                Ok(n) if n == RELAY_BATCHES as usize => continue, // more backlog: go again now
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay pass failed; will retry");
                    break;
                }
            }
        }
    }
}

/// Outbox rows (group commits, up to `ingest.batch_max` events each) per relay pass.
const RELAY_BATCHES: i64 = 16;

/// One relay pass; returns how many outbox rows it claimed.
async fn relay_once(
    publisher: &Publisher,
    pool: &Pool,
    after: Duration,
) -> Result<usize, PublishError> {
    let mut conn = pool.get().await.map_err(DbError::from)?;
    let cutoff = OffsetDateTime::now_utc() - after;
    let backlog = count_outbox(&mut conn).await?;
    metrics::gauge!(names::OUTBOX_BACKLOG).set(backlog as f64);
    conn.transaction::<usize, PublishError, _>(async |conn| {
        let claimed = claim_outbox(conn, cutoff, RELAY_BATCHES).await?;
        if claimed.batches.is_empty() {
            return Ok(0);
        }
        let envelopes: Vec<Envelope> = claimed
            .events
            .into_iter()
            .map(|e| Envelope::new(e.id, e.source, e.traceparent))
            .collect();
        publish_counted(publisher, &envelopes).await?;
        mark_published(conn, &claimed.batches).await?;
        metrics::counter!(names::OUTBOX_REPUBLISHED).increment(envelopes.len() as u64);
        tracing::info!(events = envelopes.len(), "outbox relay republished events");
        Ok(claimed.batches.len())
    })
    .await
}
