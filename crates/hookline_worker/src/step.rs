//! The processing step: events in, one committed decision per event out.
//!
//! There is one decision path. [`process_batch`] decides any number of events in one
//! transaction; [`process`] is a batch of one. In that transaction every event row is
//! locked (in id order), every resource row it names is locked (in (source, key) order,
//! so concurrent batches on other workers wait rather than deadlock), the lifecycle
//! decides each event in arrival order, the decisions are logged and the events marked
//! finished. The caller acknowledges the messages only after the commit.
//!
//! Effect handlers ([`crate::Handlers`]) run in that same transaction, after the decision
//! and before it is written, each event's in a savepoint (see [`crate::effects`]).

use std::collections::HashMap;
use std::sync::Arc;

use diesel_async::AsyncConnection;
use hookline_config::Sources;
use hookline_db::{
    AsyncPgConnection, DbError, EventHead, EventPayload, LeasedDelivery, Pool, ResourceUpdate,
    TransitionRow, enqueue_deliveries, event_payloads, finish_events, lock_events, lock_resources,
    record_transitions,
};
use hookline_domain::{EventState, Lifecycle};
use hookline_queue::Envelope;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::deliver::Routes;
use crate::effects::{EffectDecision, EffectEvent, Handler, HandlerError, Handlers};

/// What the step needs: the pool, the configured sources (for their lifecycles) and the
/// effect handlers.
#[derive(Clone)]
pub struct Deps {
    /// Connections for the step's transaction and the failure bookkeeping.
    pub pool: Pool,
    /// Sources by name, as configured.
    pub sources: Sources,
    /// Effect handlers, called in the decision transaction (none by default).
    pub handlers: Arc<Handlers>,
    /// HTTP destinations: their delivery intents commit with the decision (none by
    /// default).
    pub routes: Arc<Routes>,
}

impl Deps {
    /// Bundles a pool and the sources, with no effect handlers.
    pub fn new(pool: Pool, sources: Sources) -> Self {
        Self {
            pool,
            sources,
            handlers: Arc::default(),
            routes: Arc::default(),
        }
    }

    /// The same, committing delivery intents for `routes` with each decision.
    #[must_use]
    pub fn with_routes(self, routes: Arc<Routes>) -> Self {
        Self { routes, ..self }
    }

    /// The same, calling `handlers` for decided events.
    #[must_use]
    pub fn with_handlers(self, handlers: Handlers) -> Self {
        Self {
            handlers: Arc::new(handlers),
            ..self
        }
    }
}

/// One lifecycle decision the step made and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The resource it is about.
    pub resource_key: String,
    /// Its status before (`None` for a resource seen for the first time).
    pub from: Option<String>,
    /// The status the event reported, in the lifecycle's spelling.
    pub to: String,
    /// What the lifecycle decided.
    pub outcome: hookline_domain::Outcome,
    /// Whether `to` is terminal in the lifecycle.
    pub terminal: bool,
}

/// What processing one message did. Every variant is final for the message: the caller
/// acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event is now `processed`; `transition` is `None` for a source without a
    /// lifecycle (nothing to track).
    Processed {
        /// The decision logged for the event's resource.
        transition: Option<Transition>,
        /// When ingest committed the event (for the processing-lag metric).
        received_at: OffsetDateTime,
    },
    /// The event was already final (`state`): a redelivery or a duplicate message.
    Redelivered {
        /// The state found.
        state: EventState,
    },
    /// The event can never be processed (unknown source, missing key or status, a status
    /// the lifecycle does not know, an effect handler's permanent error). It is now
    /// `failed` with `reason` as its last error: visible to operators, never retried.
    Failed {
        /// Why, as stored in `last_error`.
        reason: String,
    },
    /// No such event in PostgreSQL (purged, or a message from another deployment).
    Missing,
}

impl Outcome {
    /// What a second delivery of the same event gets, once this outcome committed: a
    /// decided event is final ([`Outcome::Redelivered`]); a missing one is still missing.
    pub fn seen_again(&self) -> Outcome {
        let state = match self {
            Outcome::Processed { .. } => EventState::Processed,
            Outcome::Failed { .. } => EventState::Failed,
            Outcome::Redelivered { state } => *state,
            Outcome::Missing => return Outcome::Missing,
        };
        Outcome::Redelivered { state }
    }

    /// The `outcome` label of [`hookline_telemetry::names::WORKER_EVENTS`].
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Processed { .. } => EventState::Processed.as_str(),
            Outcome::Redelivered { .. } => "redelivered",
            Outcome::Failed { .. } => EventState::Failed.as_str(),
            Outcome::Missing => "missing",
        }
    }
}

/// Why the step could not reach a decision. Its transaction rolled back, so nothing of it
/// is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// Retrying later can succeed: database unreachable or restarting, pool exhausted,
    /// serialization failure, deadlock, connection lost, the step panicked, or an effect
    /// handler said so.
    #[error("{0}")]
    Transient(String),
    /// Retrying the same work cannot succeed (a constraint or data error from the
    /// database): the message goes straight to the dead-letter queue.
    #[error("{0}")]
    Permanent(String),
}

impl ProcessError {
    /// Whether a delayed retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProcessError::Transient(_))
    }
}

impl From<DbError> for ProcessError {
    fn from(e: DbError) -> Self {
        if e.is_retryable() {
            ProcessError::Transient(e.to_string())
        } else {
            ProcessError::Permanent(e.to_string())
        }
    }
}

impl From<diesel::result::Error> for ProcessError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::Query(e).into()
    }
}

/// Processes the event `envelope` points to: a batch of one ([`process_batch`]).
///
/// # Errors
/// [`ProcessError`] when no decision could be committed; nothing was changed.
pub async fn process(deps: &Deps, envelope: &Envelope) -> Result<Outcome, ProcessError> {
    let mut outcomes = process_batch(deps, &[envelope.event_id]).await?;
    Ok(outcomes
        .remove(&envelope.event_id)
        .unwrap_or(Outcome::Missing))
}

/// Decides the events `ids` point to in one transaction and returns each one's outcome
/// (an id repeated in `ids` is decided once). Events are decided in id order (UUIDv7:
/// the order ingest received them).
///
/// Idempotent: an event found final is left alone ([`Outcome::Redelivered`]), and the
/// resource locks serialise concurrent calls for one resource across all workers, so any
/// number of deliveries, in any order, on any number of workers yields one transition row
/// per event and a status that only moves forward. The caller acknowledges the messages
/// only after this returns `Ok` (the commit happened).
///
/// # Errors
/// [`ProcessError`] when the transaction could not commit; nothing of it was stored.
pub async fn process_batch(
    deps: &Deps,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Outcome>, ProcessError> {
    let mut conn = deps.pool.get().await.map_err(DbError::from)?;
    let (outcomes, committed) = conn
        .transaction::<_, ProcessError, _>(async |conn| {
            decide(conn, &deps.sources, &deps.handlers, &deps.routes, ids).await
        })
        .await?;
    deps.routes.wake(&committed.woken);
    deps.routes.hand_off(committed.leased);
    Ok(outcomes)
}

/// The delivery intents a decision transaction committed, for after the commit.
#[derive(Default)]
struct Committed {
    /// The destinations to wake: they got intents due at once.
    woken: Vec<usize>,
    /// The intents leased to this process, to hand to their destinations' loops.
    leased: Vec<LeasedDelivery>,
}

/// The body of [`process_batch`]'s transaction: the outcomes, and the delivery intents it
/// committed.
async fn decide(
    conn: &mut AsyncPgConnection,
    sources: &Sources,
    handlers: &Handlers,
    routes: &Routes,
    ids: &[Uuid],
) -> Result<(HashMap<Uuid, Outcome>, Committed), ProcessError> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let events = lock_events(conn, &sorted).await?;
    let mut outcomes: HashMap<Uuid, Outcome> =
        sorted.iter().map(|id| (*id, Outcome::Missing)).collect();

    let mut open = Vec::with_capacity(events.len());
    for event in &events {
        if event.state.is_final() {
            outcomes.insert(event.id, Outcome::Redelivered { state: event.state });
        } else {
            open.push((event, plan(sources, event)));
        }
    }

    let mut keys: Vec<(&str, &str)> = open
        .iter()
        .filter_map(|(event, plan)| match plan {
            Plan::Track { resource_key, .. } => Some((event.source.as_str(), *resource_key)),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let current = lock_resources(conn, &keys)
        .await?
        .into_iter()
        .map(|(source, key, status)| ((source, key), status))
        .collect();

    let decided = decide_with_effects(conn, handlers, open, current).await?;
    let (updates, rows) = writes(&decided);
    record_transitions(conn, &updates, &rows).await?;
    let finished: Vec<(Uuid, Option<&str>)> = decided
        .iter()
        .map(|d| match &d.verdict {
            Verdict::Fail(reason) => (d.event.id, Some(reason.as_str())),
            _ => (d.event.id, None),
        })
        .collect();
    finish_events(conn, &finished).await?;
    let mut committed = Committed::default();
    if !routes.is_empty() {
        let mut woken = Vec::new();
        let mut intents = Vec::new();
        for d in &decided {
            match &d.verdict {
                Verdict::Fail(_) => {}
                Verdict::Untracked => routes.intents(d.event, None, &mut woken, &mut intents),
                Verdict::Tracked { outcome, .. } => {
                    routes.intents(d.event, Some(*outcome), &mut woken, &mut intents);
                }
            }
        }
        committed.leased = enqueue_deliveries(conn, &intents).await?;
        woken.sort_unstable();
        woken.dedup();
        committed.woken = woken;
    }
    outcomes.extend(decided.into_iter().map(|d| (d.event.id, d.into_outcome())));
    Ok((outcomes, committed))
}

/// Decides the open events ([`decide_locked`]) and calls the matching effect handlers of
/// each decided one, in order. A handler's permanent error fails its event: the event is
/// then decided again as a failure, and so are the events after it (their decisions no
/// longer see its status); the handlers of the events before it already ran and their
/// decisions do not change (each decision depends only on the earlier ones).
async fn decide_with_effects<'a>(
    conn: &mut AsyncPgConnection,
    handlers: &Handlers,
    open: Vec<(&'a EventHead, Plan<'a>)>,
    current: HashMap<(String, String), Option<String>>,
) -> Result<Vec<Decided<'a>>, ProcessError> {
    if handlers.is_empty() {
        return Ok(decide_locked(open, current));
    }
    let wanted: Vec<Uuid> = open
        .iter()
        .filter(|(event, plan)| {
            !matches!(plan, Plan::Fail(_)) && handlers.handles_source(&event.source)
        })
        .map(|(event, _)| event.id)
        .collect();
    let payloads: HashMap<Uuid, EventPayload> = event_payloads(conn, &wanted)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let mut failed: HashMap<Uuid, String> = HashMap::new();
    let mut done = 0;
    loop {
        let plans = open
            .iter()
            .map(|(event, plan)| match failed.get(&event.id) {
                Some(reason) => (*event, Plan::Fail(reason.clone())),
                None => (*event, plan.clone()),
            })
            .collect();
        let decided = decide_locked(plans, current.clone());
        match run_effects(conn, handlers, &payloads, &decided[done..]).await? {
            None => return Ok(decided),
            Some((index, reason)) => {
                failed.insert(decided[done + index].event.id, reason);
                done += index + 1;
            }
        }
    }
}

/// Why an event whose handlers need its payload fails once retention pruned it.
const PAYLOAD_PRUNED: &str =
    "payload pruned by retention (retention.payload): its handlers need the body";

/// Calls the handlers of every decided event in `decided`, each event's in one savepoint.
/// Returns the index and reason of the first event whose handler failed permanently (its
/// savepoint rolled back; the later events' handlers were not called).
///
/// # Errors
/// [`ProcessError::Transient`] when a handler failed transiently (the caller's whole
/// transaction rolls back), or whatever the savepoint itself hit.
async fn run_effects(
    conn: &mut AsyncPgConnection,
    handlers: &Handlers,
    payloads: &HashMap<Uuid, EventPayload>,
    decided: &[Decided<'_>],
) -> Result<Option<(usize, String)>, ProcessError> {
    for (index, d) in decided.iter().enumerate() {
        let Some(decision) = d.effect_decision() else {
            continue;
        };
        let chosen: Vec<&dyn Handler> = handlers.matching(&d.event.source, &decision).collect();
        if chosen.is_empty() {
            continue;
        }
        // The event row is locked, so a missing payload is one retention pruned: the
        // handlers cannot run, now or on any retry.
        let Some(payload) = payloads.get(&d.event.id) else {
            return Ok(Some((index, PAYLOAD_PRUNED.to_string())));
        };
        let event = EffectEvent {
            id: d.event.id,
            source: d.event.source.clone(),
            dedup_key: payload.dedup_key.clone(),
            resource_key: d.event.resource_key.clone(),
            status: d.event.status.clone(),
            headers: payload.headers.clone(),
            body: payload.body.clone(),
            attempts: d.event.attempts,
            received_at: d.event.received_at,
        };
        let ran = conn
            .transaction::<_, EffectFailure, _>(async |conn| {
                for handler in &chosen {
                    handler
                        .handle(&event, &decision, conn)
                        .await
                        .map_err(|error| EffectFailure::Handler {
                            name: handler.name().to_string(),
                            error,
                        })?;
                }
                Ok(())
            })
            .await;
        match ran {
            Ok(()) => {}
            Err(EffectFailure::Handler {
                name,
                error: HandlerError::Permanent(reason),
            }) => return Ok(Some((index, format!("handler {name}: {reason}")))),
            Err(EffectFailure::Handler {
                name,
                error: HandlerError::Transient(reason),
            }) => return Err(ProcessError::Transient(format!("handler {name}: {reason}"))),
            Err(EffectFailure::Savepoint(e)) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Why an event's effect savepoint did not commit.
#[derive(Debug, thiserror::Error)]
enum EffectFailure {
    /// A handler returned an error (its savepoint rolled back).
    #[error("handler {name}: {error}")]
    Handler {
        /// The handler's name.
        name: String,
        /// What it returned.
        error: HandlerError,
    },
    /// Opening, releasing or rolling back the savepoint failed.
    #[error(transparent)]
    Savepoint(#[from] diesel::result::Error),
}

/// One event's decision, made while its rows are locked and not yet written.
struct Decided<'a> {
    event: &'a EventHead,
    verdict: Verdict<'a>,
}

/// What was decided for one event.
enum Verdict<'a> {
    /// The source tracks no resources: the event is just processed.
    Untracked,
    /// The lifecycle's decision for the event's resource.
    Tracked {
        resource_key: &'a str,
        from: Option<String>,
        to: &'a str,
        outcome: hookline_domain::Outcome,
        terminal: bool,
    },
    /// The event can never be processed, for this reason.
    Fail(String),
}

impl Decided<'_> {
    /// What a handler is told about the decision; `None` for a failed event (handlers
    /// are called only for decided events).
    fn effect_decision(&self) -> Option<EffectDecision> {
        match &self.verdict {
            Verdict::Fail(_) => None,
            Verdict::Untracked => Some(EffectDecision {
                outcome: None,
                from: None,
                to: None,
                terminal: false,
            }),
            Verdict::Tracked {
                from,
                to,
                outcome,
                terminal,
                ..
            } => Some(EffectDecision {
                outcome: Some(*outcome),
                from: from.clone(),
                to: Some((*to).to_string()),
                terminal: *terminal,
            }),
        }
    }

    fn into_outcome(self) -> Outcome {
        match self.verdict {
            Verdict::Fail(reason) => Outcome::Failed { reason },
            Verdict::Untracked => Outcome::Processed {
                transition: None,
                received_at: self.event.received_at,
            },
            Verdict::Tracked {
                resource_key,
                from,
                to,
                outcome,
                terminal,
            } => Outcome::Processed {
                transition: Some(Transition {
                    resource_key: resource_key.to_string(),
                    from,
                    to: to.to_string(),
                    outcome,
                    terminal,
                }),
                received_at: self.event.received_at,
            },
        }
    }
}

/// Decides every open event against the locked resources' `current` statuses, in the
/// order given (id order), each decision seeing the statuses the earlier ones left. No
/// IO: the rules in one place, whatever the batch size.
fn decide_locked<'a>(
    open: Vec<(&'a EventHead, Plan<'a>)>,
    mut current: HashMap<(String, String), Option<String>>,
) -> Vec<Decided<'a>> {
    open.into_iter()
        .map(|(event, plan)| {
            let verdict = match plan {
                Plan::Fail(reason) => Verdict::Fail(reason),
                Plan::Untracked => Verdict::Untracked,
                Plan::Track {
                    lifecycle,
                    resource_key,
                    status,
                } => {
                    let slot = current
                        .entry((event.source.clone(), resource_key.to_string()))
                        .or_default();
                    match lifecycle.transition(slot.as_deref(), status) {
                        Err(e) => Verdict::Fail(e.to_string()),
                        Ok(outcome) => {
                            let from = if outcome.changes_status() {
                                slot.replace(status.to_string())
                            } else {
                                slot.clone()
                            };
                            Verdict::Tracked {
                                resource_key,
                                from,
                                to: status,
                                outcome,
                                terminal: lifecycle.is_terminal(status),
                            }
                        }
                    }
                }
            };
            Decided { event, verdict }
        })
        .collect()
}

/// The rows `decided` writes: each changed resource's final status (the last applied
/// one wins) and one transition-log row per tracked event.
fn writes<'a>(decided: &'a [Decided<'a>]) -> (Vec<ResourceUpdate<'a>>, Vec<TransitionRow<'a>>) {
    let mut updates: HashMap<(&str, &str), ResourceUpdate<'a>> = HashMap::new();
    let mut rows = Vec::with_capacity(decided.len());
    for d in decided {
        let Verdict::Tracked {
            resource_key,
            from,
            to,
            outcome,
            terminal,
        } = &d.verdict
        else {
            continue;
        };
        if outcome.changes_status() {
            updates.insert(
                (d.event.source.as_str(), resource_key),
                ResourceUpdate {
                    source: &d.event.source,
                    resource_key,
                    status: to,
                    terminal: *terminal,
                    event_id: Some(d.event.id),
                },
            );
        }
        rows.push(TransitionRow {
            source: &d.event.source,
            resource_key,
            event_id: Some(d.event.id),
            from: from.as_deref(),
            to,
            outcome: *outcome,
            reason: None,
            actor: None,
        });
    }
    (updates.into_values().collect(), rows)
}

/// What an event asks for, decided from configuration alone (no IO).
#[derive(Clone)]
enum Plan<'a> {
    /// Can never be processed, for this reason (permanent).
    Fail(String),
    /// The source tracks no resources: just mark it processed.
    Untracked,
    /// Apply `status` (the lifecycle's spelling) to `resource_key`.
    Track {
        lifecycle: &'a Lifecycle,
        resource_key: &'a str,
        status: &'a str,
    },
}

/// Classifies `event` against the configured sources and their lifecycles.
fn plan<'a>(sources: &'a Sources, event: &'a EventHead) -> Plan<'a> {
    let Some(source) = sources.get(&event.source) else {
        return Plan::Fail(format!(
            "source {:?} is not configured on this worker",
            event.source
        ));
    };
    let Some(lifecycle) = source.lifecycle.as_deref() else {
        return Plan::Untracked;
    };
    let Some(resource_key) = event.resource_key.as_deref() else {
        return Plan::Fail("the event has no resource key".into());
    };
    let Some(status) = event.status.as_deref() else {
        return Plan::Fail("the event has no status".into());
    };
    match lifecycle.canonical(status) {
        Some(status) => Plan::Track {
            lifecycle,
            resource_key,
            status,
        },
        None => Plan::Fail(format!(
            "status {status:?} is not part of lifecycle {:?}",
            lifecycle.name()
        )),
    }
}
