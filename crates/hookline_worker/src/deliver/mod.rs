//! HTTP destinations: each decided event's result, POSTed to the user's endpoints.
//!
//! The intent is committed in the event's decision transaction ([`Routes::intents`],
//! called by the step), so a decision and its deliveries exist together or not at all,
//! and no HTTP call ever runs inside a database transaction. The first attempt usually
//! goes from the deciding worker itself: the intents are one lease per batch and
//! destination, handed to the destination's loop in memory after the commit, and each
//! delivery's row is written once, with that attempt's result. Everything else is a
//! `deliveries` row: one loop per destination per worker process leases due rows
//! ([`hookline_db::claim_deliveries`]), sends each one signed per Standard Webhooks
//! ([`attempt`]), and records the result. Each destination has its own concurrency
//! limit, rate limit, connection pool and circuit breaker, and none of it touches the
//! consumer: a slow or dead destination holds up only its own deliveries.
//!
//! At least once: a lease that runs out (a worker killed mid-attempt, a result that could
//! not be written) makes the delivery due again for any worker (an expired batch lease is
//! expanded into due rows, [`hookline_db::expand_expired_leases`]), and every attempt carries the
//! same `webhook-id` (the event id), which receivers deduplicate on.

mod attempt;
mod circuit;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hookline_config::Destination;
use hookline_db::{
    ClaimedDelivery, DeliveryResult, LeasedDelivery, NewDelivery, Pool, claim_deliveries,
    expand_expired_leases, leased_deliveries, pause_destination, paused_destinations,
    pending_deliveries, settle_deliveries,
};
use hookline_domain::{DeliveryState, Outcome};
use hookline_providers::Signer;
use hookline_telemetry::names;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use self::attempt::{Answer, Sender};
use self::circuit::{Admit, Circuit};

/// How often an idle destination loop looks for due rows that no wake-up announced
/// (retries coming due, rows other workers committed).
const POLL: Duration = Duration::from_millis(500);
/// Most rows one claim leases.
const CLAIM_MAX: usize = 128;
/// How long a lane with attempts in flight waits for more free permits before it claims
/// (see [`run_lane`]).
const BATCH_WINDOW: Duration = Duration::from_millis(2);
/// A lease outlives the attempt's timeout by this much before the row is due again.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// How often paused destinations and the backlog gauges are re-read, and leases that ran
/// out are expanded into due rows.
const MONITOR_EVERY: Duration = Duration::from_secs(1);
/// Most leases one expansion takes.
const EXPAND_MAX: i64 = 64;
/// How long a stopping worker waits for attempts in flight.
const DRAIN: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How many committed deliveries one destination's loop holds in memory before the step
/// stops handing them over (the rest are sent once their lease runs out, by a claim).
const HANDOFF_CAPACITY: usize = 1024;

/// One destination as the decision step sees it: what it wants, who to wake, and where
/// to hand the deliveries it leased.
#[derive(Debug)]
struct Route {
    destination: Destination,
    wake: Arc<Wake>,
    handoff: mpsc::Sender<Handoff>,
    /// The receiving end, taken by [`start`].
    inbox: Mutex<Option<mpsc::Receiver<Handoff>>>,
}

/// A destination loop's doorbell: the step rings it after committing rows that are due at
/// once. `due` is what the loop checks between sends (a busy loop never waits on
/// `notify`); `notify` wakes an idle one.
#[derive(Debug, Default)]
struct Wake {
    due: AtomicBool,
    notify: Notify,
}

impl Wake {
    fn ring(&self) {
        self.due.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether it rang since the last call.
    fn rang(&self) -> bool {
        self.due.swap(false, Ordering::AcqRel)
    }
}

/// A delivery the step committed leased to this process ([`NewDelivery::leased`]), on
/// its way to the destination's loop.
#[derive(Debug)]
struct Handoff {
    delivery: LeasedDelivery,
    at: Instant,
}

/// Every configured destination, shared by the step (which commits the intents) and the
/// delivery loops (which the step wakes after its commit).
#[derive(Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Routes to `destinations`.
    pub fn new(destinations: Vec<Destination>) -> Self {
        Self {
            routes: destinations
                .into_iter()
                .map(|destination| {
                    let (handoff, inbox) = mpsc::channel(HANDOFF_CAPACITY);
                    Route {
                        destination,
                        wake: Arc::default(),
                        handoff,
                        inbox: Mutex::new(Some(inbox)),
                    }
                })
                .collect(),
        }
    }

    /// Whether no destination is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The delivery intents for one decided event, and the routes to wake once they
    /// committed (indices, for [`Routes::wake`]). `outcome` is `None` for a source
    /// without a lifecycle.
    ///
    /// An intent for an unordered destination whose loop keeps up starts leased to this
    /// process for its first attempt: after the commit the step hands it to the
    /// destination's loop ([`Routes::hand_off`]), which sends it without claiming it
    /// first (one statement less per delivery, and no wait for a wake-up). An ordered
    /// destination's intent, or one for a loop that is behind, is committed due and
    /// claimed like any due row (for an ordered one: only the oldest per resource).
    pub(crate) fn intents<'a>(
        &'a self,
        event: &'a hookline_db::EventHead,
        outcome: Option<Outcome>,
        woken: &mut Vec<usize>,
        out: &mut Vec<NewDelivery<'a>>,
    ) {
        for (index, route) in self.routes.iter().enumerate() {
            let destination = &route.destination;
            if destination.wants(&event.source, outcome) {
                // Handed over only while the loop keeps up (its inbox under half full):
                // behind, the rows are committed due and claimed in order, in full
                // batches, rather than waiting in memory until their leases run out.
                let keeps_up = route.handoff.capacity() > HANDOFF_CAPACITY / 2;
                let leased =
                    (!destination.ordered && keeps_up).then(|| destination.timeout + LEASE_MARGIN);
                out.push(NewDelivery {
                    event_id: event.id,
                    destination: &destination.name,
                    source: &event.source,
                    resource_key: event.resource_key.as_deref(),
                    status: event.status.as_deref(),
                    outcome: outcome.map(Outcome::as_str),
                    leased,
                });
                if leased.is_none() {
                    woken.push(index);
                }
            }
        }
    }

    /// Wakes the delivery loops of `indices` (after the commit that made their rows).
    pub(crate) fn wake(&self, indices: &[usize]) {
        for &index in indices {
            if let Some(route) = self.routes.get(index) {
                route.wake.ring();
            }
        }
    }

    /// Hands the deliveries the step committed leased to this process to their
    /// destinations' loops (after the commit). A loop that holds
    /// [`HANDOFF_CAPACITY`] already, or is not running, does not get it: the delivery is
    /// then sent once its lease runs out and is expanded into a due row, like a killed
    /// worker's.
    pub(crate) fn hand_off(&self, leased: Vec<LeasedDelivery>) {
        let at = Instant::now();
        for delivery in leased {
            let Some(route) = self
                .routes
                .iter()
                .find(|r| r.destination.name == delivery.destination)
            else {
                continue;
            };
            if route.handoff.try_send(Handoff { delivery, at }).is_err() {
                metrics::counter!(names::DELIVERY_HANDOFFS_SKIPPED, "destination" => route.destination.name.clone())
                    .increment(1);
            }
        }
    }
}

/// What every destination loop of this process shares.
struct Shared {
    pool: Pool,
    settle: mpsc::UnboundedSender<Settle>,
    paused: Mutex<HashSet<String>>,
}

/// A write for the settle task.
enum Settle {
    Result(DeliveryResult),
    Pause { destination: String, reason: String },
}

/// One destination's loop state.
struct Lane {
    sender: Sender,
    ordered: bool,
    wake: Arc<Wake>,
    permits: Arc<Semaphore>,
    circuit: Mutex<Circuit>,
    shared: Arc<Shared>,
}

impl Lane {
    fn name(&self) -> &str {
        &self.sender.destination.name
    }

    fn is_paused(&self) -> bool {
        self.shared
            .paused
            .lock()
            .is_ok_and(|paused| paused.contains(self.name()))
    }

    fn admit(&self) -> Admit {
        let mut circuit = self.circuit.lock().unwrap_or_else(|e| e.into_inner());
        let admit = circuit.admit(Instant::now());
        self.gauge(circuit.gauge());
        admit
    }

    fn record(&self, works: bool) {
        let mut circuit = self.circuit.lock().unwrap_or_else(|e| e.into_inner());
        circuit.record(Instant::now(), works);
        self.gauge(circuit.gauge());
    }

    fn cancel_probe(&self) {
        let mut circuit = self.circuit.lock().unwrap_or_else(|e| e.into_inner());
        circuit.cancel_probe();
    }

    fn gauge(&self, value: f64) {
        metrics::gauge!(names::DELIVERY_CIRCUIT, "destination" => self.name().to_string())
            .set(value);
    }
}

/// Builds the sender of each destination (client, signer, headers).
///
/// # Errors
/// A destination whose secret, URL or header cannot be used (config validation catches
/// these first; this names the key again).
fn sender(destination: &Destination) -> anyhow::Result<Sender> {
    let name = &destination.name;
    let signer = Signer::new(destination.secret.expose())
        .map_err(|e| anyhow::anyhow!("invalid config key destinations.{name}.secret: {e}"))?;
    let uri: hyper::Uri = destination
        .url
        .as_str()
        .parse()
        .with_context(|| format!("invalid config key destinations.{name}.url"))?;
    let mut extra_headers = Vec::with_capacity(destination.headers.len());
    for (header, value) in &destination.headers {
        let key = || format!("invalid config key destinations.{name}.headers.{header}");
        let header_name = HeaderName::from_bytes(header.as_bytes()).with_context(key)?;
        let mut header_value = HeaderValue::from_str(value.expose()).with_context(key)?;
        header_value.set_sensitive(true);
        extra_headers.push((header_name, header_value));
    }
    Ok(Sender {
        client: attempt::client(destination),
        destination: destination.clone(),
        uri,
        signer,
        extra_headers,
    })
}

/// Starts the delivery path for every route: one loop per destination, the task that
/// writes attempt results, and the monitor (pauses, backlog gauges). Returns a handle
/// that resolves once `stop` turned true and in-flight attempts settled (at most 30 s).
///
/// # Errors
/// A destination that cannot be set up (see [`sender`]).
pub(crate) fn start(
    pool: Pool,
    routes: &Routes,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (settle_tx, settle_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        pool: pool.clone(),
        settle: settle_tx,
        paused: Mutex::default(),
    });
    let mut lanes = Vec::with_capacity(routes.routes.len());
    for route in &routes.routes {
        let destination = &route.destination;
        let inbox = route
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .with_context(|| format!("the delivery path of {} started twice", destination.name))?;
        lanes.push((
            Arc::new(Lane {
                sender: sender(destination)?,
                ordered: destination.ordered,
                wake: route.wake.clone(),
                permits: Arc::new(Semaphore::new(destination.concurrency)),
                circuit: Mutex::new(Circuit::new(
                    destination.circuit_failures,
                    destination.circuit_cooldown,
                )),
                shared: shared.clone(),
            }),
            inbox,
        ));
    }
    let watched: Vec<(String, Arc<Wake>)> = lanes
        .iter()
        .map(|(l, _)| (l.name().to_string(), l.wake.clone()))
        .collect();
    Ok(tokio::spawn(async move {
        let writer = tokio::spawn(settle_loop(pool, settle_rx));
        let monitor = tokio::spawn(monitor_loop(shared.clone(), watched, stop.clone()));
        let mut loops = JoinSet::new();
        for (lane, inbox) in lanes {
            loops.spawn(run_lane(lane, inbox, stop.clone()));
        }
        while loops.join_next().await.is_some() {}
        monitor.abort();
        // Every lane is done, so this is the last sender: the writer flushes and ends.
        drop(shared);
        let _ = writer.await;
    }))
}

/// One destination's loop. What it sends, as far as its free concurrency and its circuit
/// allow: first the deliveries this process's step committed leased to it (handed over
/// in memory, [`Routes::hand_off`]), then what is due in the table that no hand-off
/// announced (retries, expired leases, ordered destinations, other workers' leftovers),
/// claimed when woken or every [`POLL`]. Each delivery goes out in its own task.
async fn run_lane(
    lane: Arc<Lane>,
    mut inbox: mpsc::Receiver<Handoff>,
    mut stop: watch::Receiver<bool>,
) {
    let mut in_flight = JoinSet::new();
    let pace = (lane.sender.destination.rate_limit > 0)
        .then(|| Duration::from_secs(1) / lane.sender.destination.rate_limit);
    let mut next_send = tokio::time::Instant::now();
    let lease = lane.sender.destination.timeout + LEASE_MARGIN;
    let concurrency = lane.sender.destination.concurrency;
    let mut held: Option<Handoff> = None;
    let mut claim_due = true;
    let mut last_claim = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        while in_flight.try_join_next().is_some() {}
        if lane.is_paused() {
            lane.gauge(3.0);
            if wait(&lane, &mut stop, POLL).await {
                break;
            }
            continue;
        }
        let max = match lane.admit() {
            Admit::All => CLAIM_MAX,
            Admit::Probe => 1,
            Admit::Wait(until) => {
                let wait_for = until.saturating_duration_since(Instant::now());
                if sleep_or_stop(&mut stop, wait_for).await {
                    break;
                }
                // The cooldown may have outlived the hand-offs' leases; what is due
                // now is in the table.
                claim_due = true;
                continue;
            }
        };
        let probing = max == 1;
        let first = tokio::select! {
            permit = lane.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let mut permits = vec![first];
        while permits.len() < max {
            match lane.permits.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        // A statement costs a round trip whatever its size. While attempts are in flight
        // (they free permits soon), wait a moment for a quarter of the concurrency, so
        // one read serves many sends instead of one read per finished attempt.
        let want = (concurrency / 4).clamp(1, max);
        if permits.len() < want && lane.permits.available_permits() + permits.len() < concurrency {
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            while permits.len() < want {
                tokio::select! {
                    permit = lane.permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permits.push(permit),
                        Err(_) => break,
                    },
                    () = &mut window => break,
                }
            }
        }

        let mut handed = Vec::new();
        while handed.len() < permits.len() {
            let Some(handoff) = held.take().or_else(|| inbox.try_recv().ok()) else {
                break;
            };
            // Its lease must outlast the attempt: one that waited too long is left to
            // the claim that finds it due.
            if handoff.at.elapsed() < LEASE_MARGIN / 2 {
                handed.push(handoff.delivery);
            }
        }
        let mut ready = Vec::with_capacity(permits.len());
        if !handed.is_empty() {
            match with_payloads(&lane, handed).await {
                Ok(deliveries) => ready = deliveries,
                Err(e) => {
                    // Their leases run out and the claim below (or any worker's) sends them.
                    tracing::warn!(destination = %lane.name(), error = %e, "reading delivery payloads failed; they are retried once their lease runs out");
                }
            }
        }
        claim_due |= lane.wake.rang();
        if ready.len() < permits.len() && (claim_due || last_claim.elapsed() >= POLL) {
            last_claim = Instant::now();
            let limit = permits.len() - ready.len();
            match claim(&lane, limit, lease).await {
                Ok(claimed) => {
                    // A full claim: more may be due (a backlog); claim again at once.
                    claim_due = claimed.len() == limit;
                    ready.extend(claimed);
                }
                Err(e) => {
                    tracing::warn!(destination = %lane.name(), error = %e, "claiming deliveries failed; retrying");
                    claim_due = true;
                    if ready.is_empty() {
                        if probing {
                            lane.cancel_probe();
                        }
                        if sleep_or_stop(&mut stop, Duration::from_secs(1)).await {
                            break;
                        }
                        continue;
                    }
                }
            }
        }
        if ready.is_empty() && probing {
            lane.cancel_probe();
        }
        let idle = ready.is_empty();
        for (delivery, permit) in ready.into_iter().zip(permits.drain(..)) {
            if let Some(pace) = pace {
                tokio::time::sleep_until(next_send).await;
                next_send = tokio::time::Instant::now().max(next_send) + pace;
            }
            in_flight.spawn(send(lane.clone(), delivery, permit));
        }
        drop(permits);
        if idle {
            // Nothing to send: wait for a hand-off, a wake-up (rows committed due), or
            // the poll (retries coming due, leases running out).
            let poll = POLL.saturating_sub(last_claim.elapsed());
            tokio::select! {
                handoff = inbox.recv(), if held.is_none() => held = handoff,
                _ = lane.wake.notify.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
    // Stopping: let the attempts in flight finish and hand in their results; any still
    // out after the drain keep their lease and are retried by whichever worker is next.
    let _ = tokio::time::timeout(DRAIN, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
}

/// The handed-over deliveries, with their payloads read.
async fn with_payloads(
    lane: &Lane,
    handed: Vec<LeasedDelivery>,
) -> Result<Vec<ClaimedDelivery>, hookline_db::DbError> {
    let mut conn = lane.shared.pool.get().await?;
    leased_deliveries(&mut conn, handed).await
}

async fn claim(
    lane: &Lane,
    limit: usize,
    lease: Duration,
) -> Result<Vec<ClaimedDelivery>, hookline_db::DbError> {
    let mut conn = lane.shared.pool.get().await?;
    claim_deliveries(
        &mut conn,
        lane.name(),
        lane.ordered,
        i64::try_from(limit).unwrap_or(i64::MAX),
        lease,
    )
    .await
}

/// Waits for a wake-up, `poll`, or the stop; returns whether it was the stop.
async fn wait(lane: &Lane, stop: &mut watch::Receiver<bool>, poll: Duration) -> bool {
    tokio::select! {
        _ = lane.wake.notify.notified() => false,
        _ = tokio::time::sleep(poll) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Sleeps for `duration` unless stopped first; returns whether it was the stop.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// One attempt: POST, feed the circuit, count, hand the result to the settle task.
async fn send(lane: Arc<Lane>, delivery: ClaimedDelivery, _permit: OwnedSemaphorePermit) {
    let destination = &lane.sender.destination;
    let span = tracing::info_span!(
        "hookline.deliver",
        otel.kind = "client",
        destination = %destination.name,
        event_id = %delivery.event_id,
        attempt = delivery.attempt,
    );
    let stored_trace = delivery
        .payload
        .as_ref()
        .and_then(|p| p.traceparent.as_deref());
    hookline_telemetry::set_remote_parent(&span, stored_trace);
    // With tracing export on, the request continues the event's trace as a child span;
    // without it, the stored context is passed on as it is (same trace id).
    let traceparent =
        hookline_telemetry::traceparent_of(&span).or_else(|| stored_trace.map(str::to_string));
    let started = Instant::now();
    let answer = lane
        .sender
        .attempt(&delivery, traceparent.as_deref())
        .instrument(span)
        .await;
    let latency = started.elapsed();
    lane.record(answer.destination_works());
    let (state, retry_in) = next_state(destination, delivery.attempt, &answer);
    let label = match state {
        DeliveryState::Pending => "retry",
        other => other.as_str(),
    };
    let name = destination.name.clone();
    metrics::counter!(names::DELIVERY_ATTEMPTS, "destination" => name.clone(), "result" => label)
        .increment(1);
    metrics::histogram!(names::DELIVERY_LATENCY, "destination" => name.clone())
        .record(latency.as_secs_f64());
    if state == DeliveryState::Delivered
        && let Some(payload) = &delivery.payload
    {
        let lag = time::OffsetDateTime::now_utc() - payload.received_at;
        metrics::histogram!(names::DELIVERY_LAG, "destination" => name.clone())
            .record(lag.as_seconds_f64().max(0.0));
    }
    let (last_status, last_error) = match &answer {
        Answer::Delivered { status } => (Some(i32::from(*status)), None),
        Answer::Transient { status, error, .. } => (status.map(i32::from), Some(error.clone())),
        Answer::Refused { status, error, .. } => (Some(i32::from(*status)), Some(error.clone())),
        Answer::Unsendable { error } => (None, Some(error.clone())),
    };
    if state != DeliveryState::Delivered {
        tracing::info!(
            destination = %name,
            event_id = %delivery.event_id,
            attempt = delivery.attempt,
            state = %state,
            error = last_error.as_deref().unwrap_or_default(),
            "delivery attempt failed"
        );
    }
    if let Answer::Refused { gone: true, .. } = &answer {
        tracing::warn!(
            destination = %name,
            "destination answered 410 Gone: paused until `hookline deliveries redrive --destination {name}`"
        );
        if let Ok(mut paused) = lane.shared.paused.lock() {
            paused.insert(name.clone());
        }
        let _ = lane.shared.settle.send(Settle::Pause {
            destination: name.clone(),
            reason: "410 Gone".into(),
        });
    }
    let _ = lane.shared.settle.send(Settle::Result(DeliveryResult {
        event_id: delivery.event_id,
        destination: name,
        lease: delivery.lease,
        source: delivery.source,
        resource_key: delivery.resource_key,
        status: delivery.status,
        outcome: delivery.outcome,
        attempt: delivery.attempt,
        state,
        last_status,
        last_error,
        latency_ms: i32::try_from(latency.as_millis()).unwrap_or(i32::MAX),
        retry_in,
    }));
}

/// What an attempt's answer makes of the delivery: its new state and, for a retry, the
/// wait (the destination's `Retry-After` if it sent one, else the jittered schedule).
fn next_state(
    destination: &Destination,
    attempt: i32,
    answer: &Answer,
) -> (DeliveryState, Option<Duration>) {
    match answer {
        Answer::Delivered { .. } => (DeliveryState::Delivered, None),
        Answer::Refused { .. } | Answer::Unsendable { .. } => (DeliveryState::Failed, None),
        Answer::Transient { retry_after, .. } => {
            let attempt = u32::try_from(attempt.max(1)).unwrap_or(u32::MAX);
            if attempt >= destination.max_attempts {
                return (DeliveryState::Dead, None);
            }
            let delay = match retry_after {
                Some(after) => (*after).min(MAX_RETRY_AFTER),
                None => jitter(scheduled(&destination.retry, attempt)),
            };
            (DeliveryState::Pending, Some(delay))
        }
    }
}

/// The schedule's delay after attempt `attempt` (1-based); the last one repeats.
fn scheduled(retry: &[Duration], attempt: u32) -> Duration {
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    retry
        .get(index)
        .or(retry.last())
        .copied()
        .unwrap_or(Duration::from_secs(5))
}

/// `delay` ±20 %, so deliveries that failed together do not all come back at once.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.8 + fastrand::f64() * 0.4)
}

/// Writes attempt results and pauses, many per statement. A write that fails is
/// retried for a while; results that still cannot be written are dropped, which is safe:
/// their rows' leases run out and the deliveries are attempted again (at least once).
async fn settle_loop(pool: Pool, mut rx: mpsc::UnboundedReceiver<Settle>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut results = Vec::with_capacity(batch.len());
        for item in batch {
            match item {
                Settle::Result(result) => results.push(result),
                Settle::Pause {
                    destination,
                    reason,
                } => {
                    let write = Write::Pause {
                        destination: &destination,
                        reason: &reason,
                    };
                    if let Err(e) = with_retries(&pool, &write).await {
                        tracing::error!(destination = %destination, error = %e, "could not record the pause");
                    }
                }
            }
        }
        if let Err(e) = with_retries(&pool, &Write::Results(&results)).await {
            tracing::error!(
                error = %e,
                results = results.len(),
                "could not record delivery results; their leases will expire and they will be attempted again"
            );
        }
    }
}

/// One write of the settle task.
enum Write<'a> {
    Results(&'a [DeliveryResult]),
    Pause {
        destination: &'a str,
        reason: &'a str,
    },
}

/// Runs `write` on a pooled connection, retrying transient failures for about 30 s.
async fn with_retries(pool: &Pool, write: &Write<'_>) -> Result<(), hookline_db::DbError> {
    let mut delay = Duration::from_millis(100);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut conn = pool.get().await?;
            match write {
                Write::Results(results) => settle_deliveries(&mut conn, results).await.map(drop),
                Write::Pause {
                    destination,
                    reason,
                } => pause_destination(&mut conn, destination, reason).await,
            }
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Keeps the paused set and the backlog gauges current, and expands leases that ran out
/// (any worker's) into due rows, waking the lanes when it did.
async fn monitor_loop(
    shared: Arc<Shared>,
    lanes: Vec<(String, Arc<Wake>)>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Ok(mut conn) = shared.pool.get().await {
            if let Ok(paused) = paused_destinations(&mut conn).await
                && let Ok(mut set) = shared.paused.lock()
            {
                *set = paused.into_iter().map(|(name, _)| name).collect();
            }
            match expand_expired_leases(&mut conn, EXPAND_MAX).await {
                Ok(0) => {}
                Ok(expanded) => {
                    tracing::info!(
                        deliveries = expanded,
                        "leases ran out before their first attempts were recorded; those deliveries are due again"
                    );
                    for (_, wake) in &lanes {
                        wake.ring();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "expanding expired delivery leases failed; retrying")
                }
            }
            if let Ok(backlog) = pending_deliveries(&mut conn).await {
                for (name, _) in &lanes {
                    let pending = backlog
                        .iter()
                        .find(|(d, _)| d == name)
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!(names::DELIVERY_PENDING, "destination" => name.clone())
                        .set(pending as f64);
                }
            }
        }
        if sleep_or_stop(&mut stop, MONITOR_EVERY).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use hookline_config::Config;

    use super::*;

    fn destination(max_attempts: u32) -> Destination {
        let (config, sources) = Config::from_toml(&format!(
            "[destinations.d]\nurl = \"http://127.0.0.1:9/\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
             max_attempts = {max_attempts}\nretry = [\"10s\", \"1m\"]"
        ))
        .unwrap();
        config.destinations(&sources).unwrap().remove(0)
    }

    fn transient(retry_after: Option<Duration>) -> Answer {
        Answer::Transient {
            status: Some(503),
            error: "HTTP 503".into(),
            retry_after,
        }
    }

    #[test]
    fn transient_failures_retry_on_the_jittered_schedule_then_go_dead() {
        let d = destination(4);
        for (attempt, base) in [(1, 10), (2, 60), (3, 60)] {
            let (state, delay) = next_state(&d, attempt, &transient(None));
            assert_eq!(state, DeliveryState::Pending);
            let delay = delay.unwrap().as_secs_f64();
            let base = f64::from(base);
            assert!(
                delay >= base * 0.8 && delay <= base * 1.2,
                "{attempt}: {delay}"
            );
        }
        assert_eq!(
            next_state(&d, 4, &transient(None)),
            (DeliveryState::Dead, None)
        );
    }

    #[test]
    fn retry_after_replaces_the_schedule_and_permanent_answers_fail_at_once() {
        let d = destination(12);
        assert_eq!(
            next_state(&d, 1, &transient(Some(Duration::from_secs(2)))),
            (DeliveryState::Pending, Some(Duration::from_secs(2)))
        );
        assert_eq!(
            next_state(&d, 1, &transient(Some(Duration::from_secs(10 * 86_400)))).1,
            Some(MAX_RETRY_AFTER)
        );
        let refused = Answer::Refused {
            status: 404,
            error: "HTTP 404".into(),
            gone: false,
        };
        assert_eq!(next_state(&d, 1, &refused), (DeliveryState::Failed, None));
        assert_eq!(
            next_state(&d, 1, &Answer::Delivered { status: 204 }),
            (DeliveryState::Delivered, None)
        );
    }
}
