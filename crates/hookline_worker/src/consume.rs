//! The consume loop: takes deliveries off the work queue, runs the step for each in its
//! own task, then acknowledges, schedules a retry or dead-letters.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use hookline_db::{DbError, Pool, record_attempt_failure};
use hookline_queue::{Consumer, Delivery, Envelope, Nodes, Publisher, Route, Topology, decode};
use hookline_telemetry::names;
use hookline_telemetry::{set_remote_parent, trace_id_of};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::processor::Processor;
use crate::schedule::{NextStep, RetryPolicy};
use crate::{Deps, Outcome, ProcessError};

/// How long a message whose retry could not be published waits before going back to the
/// queue: without it a broker that refuses publishes would spin the message in a hot loop.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);
/// Upper bound on the best-effort failure bookkeeping, so a hung database cannot hold a
/// message (and its concurrency slot) forever.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// What every message task shares.
pub(crate) struct Shared {
    pub deps: Arc<Deps>,
    pub processor: Processor,
    pub publisher: Arc<Publisher>,
    pub policy: RetryPolicy,
}

/// Where and how to consume.
pub(crate) struct ConsumerSettings {
    /// The broker's nodes (failover in order).
    pub nodes: Nodes,
    pub topology: Topology,
    pub concurrency: usize,
    pub tag: String,
    pub drain_timeout: Duration,
}

/// Consumes until `stop` turns true, reconnecting with jittered exponential backoff
/// whenever the connection or channel is lost. Messages whose channel died before they
/// were acknowledged are redelivered by the broker; the step is idempotent, so that is
/// safe. On stop: cancels the consumer, waits (bounded) for in-flight messages to commit
/// and be acknowledged, then closes the connection.
pub(crate) async fn run(
    shared: Arc<Shared>,
    settings: ConsumerSettings,
    connected: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let concurrency = settings.concurrency.max(1);
    // Prefetch already bounds one channel; the semaphore also bounds tasks left over from
    // a channel that died (still finishing their transactions) plus the new channel's.
    let slots = Arc::new(Semaphore::new(concurrency));
    // Prefetch = concurrency: the broker never hands this process more messages than it
    // can work on at once, so the rest stay in the queue for other replicas.
    let prefetch = u16::try_from(concurrency).unwrap_or(u16::MAX);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = reconnect_backoff();

    loop {
        if *stop.borrow() {
            break;
        }
        let opened = tokio::select! {
            opened = Consumer::open(
                &settings.nodes,
                &settings.topology,
                shared.policy.delays(),
                prefetch,
                &settings.tag,
            ) => opened,
            _ = stop.wait_for(|s| *s) => break,
        };
        let mut consumer = match opened {
            Ok(session) => session,
            Err(e) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot consume from the broker; will reconnect");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        backoff = reconnect_backoff();
        connected.store(true, Ordering::SeqCst);
        tracing::info!(
            queue = %settings.topology.work_queue(),
            prefetch,
            "consuming the work queue"
        );

        let stopping = loop {
            reap(&mut tasks);
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                _ = stop.wait_for(|s| *s) => break true,
            };
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = stop.wait_for(|s| *s) => break true,
            };
            match next {
                Some(Ok(delivery)) => {
                    let shared = shared.clone();
                    tasks.spawn(async move {
                        handle(&shared, delivery).await;
                        drop(slot);
                    });
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "lost the broker connection; reconnecting");
                    break false;
                }
                None => {
                    tracing::warn!("the broker cancelled the consumer; reconnecting");
                    break false;
                }
            }
        };
        connected.store(false, Ordering::SeqCst);

        if stopping {
            // Stop taking work first; messages already prefetched but never
            // started stay unacknowledged and return to the queue when the channel closes.
            if let Err(e) = consumer.cancel().await {
                tracing::warn!(error = %e, "could not cancel the consumer");
            }
            // The channel must stay open while in-flight messages finish: their acks go
            // through it.
            drain(&mut tasks, settings.drain_timeout).await;
            // Bounded inside: a broker that is gone does not hold up the shutdown.
            let _ = consumer.close("worker stopping").await;
            tracing::info!("consumer stopped");
            return;
        }
        let _ = consumer.close("reconnecting").await;
        let delay = backoff.next().unwrap_or(Duration::from_secs(10));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Stopped while disconnected: tasks of a dead channel can still commit; their
    // messages are redelivered and found final.
    drain(&mut tasks, settings.drain_timeout).await;
    tracing::info!("consumer stopped");
}

fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        // Capped low: the jitter below adds up to the delay again, so a worker is back
        // within ~6 s of the broker (the chaos runs saw ~19 s with a 10 s cap).
        .with_max_delay(Duration::from_secs(3))
        // Jitter: replicas that lost the same broker do not reconnect in lockstep.
        .with_jitter()
        .without_max_times()
        .build()
}

/// Collects finished message tasks. `handle` isolates the step, so a panic here is a bug
/// in the bookkeeping around it; its message stays unacknowledged until the channel
/// closes, and is then redelivered.
fn reap(tasks: &mut JoinSet<()>) {
    while let Some(finished) = tasks.try_join_next() {
        if let Err(e) = finished
            && e.is_panic()
        {
            tracing::error!(error = %e, "a message task panicked outside the step");
        }
    }
}

/// Waits for in-flight messages, at most `timeout`; whatever is still running then is
/// aborted (its message is unacknowledged, so the broker redelivers it).
async fn drain(tasks: &mut JoinSet<()>, timeout: Duration) {
    reap(tasks);
    if tasks.is_empty() {
        return;
    }
    tracing::info!(in_flight = tasks.len(), "waiting for in-flight messages");
    let finished = tokio::time::timeout(timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            in_flight = tasks.len(),
            timeout_secs = timeout.as_secs(),
            "in-flight messages did not finish in time; they will be redelivered"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Everything that happens to one delivery (one event, or the pointers of a batch that
/// ingest committed together). Never panics out: every event is decided (batched with
/// others by the processor), each failure is settled on its own (a retry or a dead letter
/// for that event alone), and only then is the message acknowledged; if a failure cannot
/// be settled, the whole message returns to the queue (the decided events are final and
/// a redelivery skips them).
async fn handle(shared: &Shared, delivery: Delivery) {
    let envelopes = match decode(delivery.body()) {
        Ok(envelopes) => envelopes,
        Err(e) => {
            // A poison message names no event we can read, so there is nothing to retry or
            // record, and requeueing it would loop forever. It goes to the dead-letter queue
            // as it came (an operator can inspect it); if even that fails, it is requeued.
            tracing::warn!(error = %e, bytes = delivery.body().len(), "dead-lettering a message that is not a Hookline envelope");
            metrics::counter!(names::WORKER_EVENTS, "source" => "unknown", "outcome" => "poison")
                .increment(1);
            if let Err(e) = shared
                .publisher
                .publish_raw(delivery.body(), Route::Dead)
                .await
            {
                tracing::warn!(error = %e, "could not dead-letter a poison message; requeueing it");
                tokio::time::sleep(Duration::from_secs(1)).await;
                nack_requeue(delivery, None).await;
                return;
            }
            ack(delivery, None).await;
            return;
        }
    };
    // A single-event message carries its trace context in the `traceparent` header; a
    // batch carries each event's in the body.
    let header = (envelopes.len() == 1)
        .then(|| delivery.traceparent())
        .flatten();
    let results = futures_util::future::join_all(envelopes.iter().map(|envelope| {
        let traceparent = header.clone().or_else(|| envelope.traceparent.clone());
        let span = consumer_span(shared, envelope, traceparent.as_deref());
        async move {
            let result = shared.processor.process(envelope.clone()).await;
            if let Ok(outcome) = &result {
                observe(envelope, outcome);
            }
            result
        }
        .instrument(span)
    }))
    .await;
    let mut settled = true;
    for (envelope, result) in envelopes.iter().zip(results) {
        if let Err(error) = result {
            settled &= settle_failure(shared, envelope, error).await;
        }
    }
    if settled {
        ack(delivery, envelopes.first()).await;
    } else {
        tokio::time::sleep(REQUEUE_PAUSE).await;
        nack_requeue(delivery, envelopes.first()).await;
    }
}

/// The consumer span of one event (messaging semantic conventions). It continues the
/// trace ingest started: its parent is the producer span named by `traceparent`.
fn consumer_span(shared: &Shared, envelope: &Envelope, traceparent: Option<&str>) -> tracing::Span {
    let queue = shared.publisher.topology().work_queue();
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("process {queue}"),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.destination.name = %queue,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.message.id = %envelope.event_id,
        webhook.source = %envelope.source,
        event.id = %envelope.event_id,
        attempt = envelope.attempt,
        trace_id = trace_id_of(traceparent).unwrap_or_default(),
    );
    set_remote_parent(&span, traceparent);
    span
}

/// Runs `step` in its own task so a panic fails one message (as a transient error, which
/// is retried and eventually dead-lettered) instead of the worker.
pub(crate) async fn isolate<F>(step: F) -> Result<Outcome, ProcessError>
where
    F: Future<Output = Result<Outcome, ProcessError>> + Send + 'static,
{
    match tokio::spawn(step).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(ProcessError::Transient(format!(
            "processing panicked: {}",
            panic_message(e.into_panic())
        ))),
        Err(_) => Err(ProcessError::Transient("processing was cancelled".into())),
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "unknown panic".to_string(), |s| (*s).to_string()),
    }
}

/// Metrics and logs for a committed decision.
fn observe(envelope: &Envelope, outcome: &Outcome) {
    let source = envelope.source.clone();
    metrics::counter!(names::WORKER_EVENTS, "source" => source.clone(), "outcome" => outcome.label())
        .increment(1);
    match outcome {
        Outcome::Processed {
            transition,
            received_at,
        } => {
            let lag = (time::OffsetDateTime::now_utc() - *received_at).as_seconds_f64();
            metrics::histogram!(names::WORKER_LAG, "source" => source.clone()).record(lag.max(0.0));
            match transition {
                Some(t) => {
                    metrics::counter!(names::WORKER_TRANSITIONS, "source" => source, "outcome" => t.outcome.as_str())
                        .increment(1);
                    tracing::info!(
                        webhook.source = %envelope.source,
                        event.id = %envelope.event_id,
                        attempt = envelope.attempt,
                        resource.key = %t.resource_key,
                        transition.from = t.from.as_deref().unwrap_or(""),
                        transition.to = %t.to,
                        transition.outcome = t.outcome.as_str(),
                        "event processed: {}",
                        t.outcome.as_str()
                    );
                }
                None => tracing::info!(
                    webhook.source = %envelope.source,
                    event.id = %envelope.event_id,
                    attempt = envelope.attempt,
                    "event processed (source tracks no resources)"
                ),
            }
        }
        Outcome::Redelivered { state } => tracing::info!(
            webhook.source = %envelope.source,
            event.id = %envelope.event_id,
            attempt = envelope.attempt,
            event.state = %state,
            "event already final; acknowledging the redelivery"
        ),
        Outcome::Failed { reason } => tracing::warn!(
            webhook.source = %envelope.source,
            event.id = %envelope.event_id,
            attempt = envelope.attempt,
            error = %reason,
            "event failed permanently; not retrying"
        ),
        Outcome::Missing => tracing::warn!(
            webhook.source = %envelope.source,
            event.id = %envelope.event_id,
            attempt = envelope.attempt,
            "no such event in the database; acknowledging"
        ),
    }
}

/// A failed attempt: publish the message to its retry delay (or the dead-letter queue)
/// with confirms, note the failure on the event, then ack the original. If the publish is
/// not confirmed the original goes back to the queue instead: it is never lost.
async fn settle_failure(shared: &Shared, envelope: &Envelope, error: ProcessError) -> bool {
    let next = shared.policy.after_failure(envelope.attempt, &error);
    let published = match next {
        NextStep::Retry { delay, expiration } => {
            let retry = Envelope {
                attempt: envelope.attempt.saturating_add(1),
                ..envelope.clone()
            };
            shared
                .publisher
                .publish(&[retry], Route::Retry(delay), Some(expiration))
                .await
        }
        NextStep::Dead => {
            shared
                .publisher
                .publish(std::slice::from_ref(envelope), Route::Dead, None)
                .await
        }
    };
    if let Err(e) = published {
        tracing::warn!(
            webhook.source = %envelope.source,
            event.id = %envelope.event_id,
            attempt = envelope.attempt,
            error = %error,
            publish_error = %e,
            "could not schedule the retry; returning the message to the queue"
        );
        return false;
    }
    let source = envelope.source.clone();
    match next {
        NextStep::Retry { delay, .. } => {
            metrics::counter!(names::WORKER_EVENTS, "source" => source.clone(), "outcome" => "retried")
                .increment(1);
            metrics::counter!(names::WORKER_RETRIES, "source" => source).increment(1);
            tracing::warn!(
                webhook.source = %envelope.source,
                event.id = %envelope.event_id,
                attempt = envelope.attempt,
                error = %error,
                retry_in_ms = delay.as_millis() as u64,
                "processing failed; retry scheduled"
            );
        }
        NextStep::Dead => {
            metrics::counter!(names::WORKER_EVENTS, "source" => source.clone(), "outcome" => hookline_domain::EventState::Dead.as_str())
                .increment(1);
            metrics::counter!(names::WORKER_DEAD, "source" => source).increment(1);
            tracing::error!(
                webhook.source = %envelope.source,
                event.id = %envelope.event_id,
                attempt = envelope.attempt,
                error = %error,
                "processing failed for good; message dead-lettered"
            );
        }
    }
    record_failure(&shared.deps.pool, envelope, &error, next == NextStep::Dead).await;
    true
}

/// Best effort: the broker already holds the retry, so a database that is still down
/// only costs the bookkeeping (`attempts`, `last_error`), not the event.
async fn record_failure(pool: &Pool, envelope: &Envelope, error: &ProcessError, dead: bool) {
    let record = async {
        let mut conn = pool.get().await.map_err(DbError::from)?;
        record_attempt_failure(&mut conn, envelope.event_id, &error.to_string(), dead).await
    };
    let result = tokio::time::timeout(RECORD_TIMEOUT, record).await;
    let failure = match result {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("timed out after {RECORD_TIMEOUT:?}"),
    };
    tracing::warn!(
        webhook.source = %envelope.source,
        event.id = %envelope.event_id,
        attempt = envelope.attempt,
        error = %failure,
        "could not record the failed attempt on the event"
    );
}

async fn ack(delivery: Delivery, envelope: Option<&Envelope>) {
    // A failed ack means the channel died: the broker redelivers and the step, finding
    // the event final, acknowledges it then.
    if let Err(e) = delivery.ack().await {
        tracing::warn!(
            webhook.source = envelope.map_or("unknown", |e| e.source.as_str()),
            event.id = %envelope.map(|e| e.event_id.to_string()).unwrap_or_default(),
            attempt = envelope.map_or(0, |e| e.attempt),
            error = %e,
            "could not acknowledge; the message will be redelivered"
        );
    }
}

async fn nack_requeue(delivery: Delivery, envelope: Option<&Envelope>) {
    // Back to the work queue, never dropped.
    if let Err(e) = delivery.nack_requeue().await {
        tracing::warn!(
            webhook.source = envelope.map_or("unknown", |e| e.source.as_str()),
            event.id = %envelope.map(|e| e.event_id.to_string()).unwrap_or_default(),
            attempt = envelope.map_or(0, |e| e.attempt),
            error = %e,
            "could not return the message; the broker redelivers it when the channel closes"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_step_is_a_transient_failure_not_a_crash() {
        let result = isolate(async { panic!("boom") }).await;
        assert_eq!(
            result,
            Err(ProcessError::Transient("processing panicked: boom".into()))
        );
        let result = isolate(async { Ok(Outcome::Missing) }).await;
        assert_eq!(result, Ok(Outcome::Missing));
    }
}
