//! The processing step: one message in, one committed decision out.

use diesel_async::AsyncConnection;
use hookline_config::Sources;
use hookline_db::{
    AsyncPgConnection, DbError, EventHead, Pool, TransitionRecord, finish_event, lock_event,
    lock_resource, record_transition,
};
use hookline_domain::Lifecycle;
use hookline_queue::Envelope;
use time::OffsetDateTime;
use uuid::Uuid;

/// What the step needs: the pool and the configured sources (for their lifecycles).
#[derive(Clone)]
pub struct Deps {
    /// Connections for the step's transaction and the failure bookkeeping.
    pub pool: Pool,
    /// Sources by name, as configured.
    pub sources: Sources,
}

impl Deps {
    /// Bundles a pool and the sources.
    pub fn new(pool: Pool, sources: Sources) -> Self {
        Self { pool, sources }
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
        state: String,
    },
    /// The event can never be processed (unknown source, missing key or status, a status
    /// the lifecycle does not know). It is now `failed` with `reason` as its last error:
    /// visible to operators, never retried.
    Failed {
        /// Why, as stored in `last_error`.
        reason: String,
    },
    /// No such event in PostgreSQL (purged, or a message from another deployment).
    Missing,
}

impl Outcome {
    /// The `outcome` label of [`hookline_telemetry::names::WORKER_EVENTS`].
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Processed { .. } => "processed",
            Outcome::Redelivered { .. } => "redelivered",
            Outcome::Failed { .. } => "failed",
            Outcome::Missing => "missing",
        }
    }
}

/// Why the step could not reach a decision. Its transaction rolled back, so nothing of it
/// is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// Retrying later can succeed: database unreachable or restarting, pool exhausted,
    /// serialization failure, deadlock, connection lost, or the step panicked.
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

/// Processes the event `envelope` points to, in one transaction: lock the event, skip it
/// if it is already final, otherwise lock its resource, apply the lifecycle, log the
/// transition and mark the event finished; then commit.
///
/// Idempotent: a second call for the same event finds it final and changes nothing, and
/// the resource lock serialises concurrent calls for one resource across all workers, so
/// any number of deliveries, in any order, on any number of workers yields one transition
/// row per event and a status that only moves forward. The caller acknowledges the
/// message only after this returns `Ok` (the commit happened).
///
/// # Errors
/// [`ProcessError`] when no decision could be committed; nothing was changed.
pub async fn process(deps: &Deps, envelope: &Envelope) -> Result<Outcome, ProcessError> {
    let mut conn = deps.pool.get().await.map_err(DbError::from)?;
    let event_id = envelope.event_id;
    conn.transaction::<Outcome, ProcessError, _>(async |conn| {
        decide(conn, &deps.sources, event_id).await
    })
    .await
}

/// The body of [`process`]'s transaction.
async fn decide(
    conn: &mut AsyncPgConnection,
    sources: &Sources,
    event_id: Uuid,
) -> Result<Outcome, ProcessError> {
    let Some(event) = lock_event(conn, event_id).await? else {
        return Ok(Outcome::Missing);
    };
    if matches!(event.state.as_str(), "processed" | "failed" | "dead") {
        return Ok(Outcome::Redelivered { state: event.state });
    }
    match apply_status(conn, sources, &event).await? {
        Decision::Done(transition) => {
            finish_event(conn, event.id, None).await?;
            Ok(Outcome::Processed {
                transition,
                received_at: event.received_at,
            })
        }
        Decision::Fail(reason) => {
            finish_event(conn, event.id, Some(&reason)).await?;
            Ok(Outcome::Failed { reason })
        }
    }
}

/// What [`apply_status`] concluded about one event.
enum Decision {
    /// Handled; the transition it logged, if the source tracks resources.
    Done(Option<Transition>),
    /// Can never be handled, for this reason.
    Fail(String),
}

/// What an event asks for, decided from configuration alone (no IO): shared by the
/// single-event and the batch step so both apply exactly the same rules.
pub(crate) enum Plan<'a> {
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
pub(crate) fn plan<'a>(sources: &'a Sources, event: &'a EventHead) -> Plan<'a> {
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

/// Applies the event's status to its resource, holding the resource lock until commit.
async fn apply_status(
    conn: &mut AsyncPgConnection,
    sources: &Sources,
    event: &EventHead,
) -> Result<Decision, ProcessError> {
    let (lifecycle, resource_key, canonical) = match plan(sources, event) {
        Plan::Fail(reason) => return Ok(Decision::Fail(reason)),
        Plan::Untracked => return Ok(Decision::Done(None)),
        Plan::Track {
            lifecycle,
            resource_key,
            status,
        } => (lifecycle, resource_key, status),
    };
    let from = lock_resource(conn, &event.source, resource_key).await?;
    let outcome = match lifecycle.transition(from.as_deref(), canonical) {
        Ok(outcome) => outcome,
        Err(e) => return Ok(Decision::Fail(e.to_string())),
    };
    record_transition(
        conn,
        &TransitionRecord {
            source: &event.source,
            resource_key,
            event_id: Some(event.id),
            from: from.as_deref(),
            to: canonical,
            outcome,
            terminal: lifecycle.is_terminal(canonical),
            reason: None,
            actor: None,
        },
    )
    .await?;
    Ok(Decision::Done(Some(Transition {
        resource_key: resource_key.to_string(),
        from,
        to: canonical.to_string(),
        outcome,
    })))
}
