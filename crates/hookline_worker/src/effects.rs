//! In-process effect handlers: your code, run inside the worker's decision transaction.
//!
//! A [`Handler`] is called after the lifecycle decided an event and before the decision
//! is written, on the transaction's own connection. Its writes therefore commit or roll
//! back with the decision: **a handler's effect commits exactly once, together with its
//! event's decision.** A handler may be *called* more than once for one event (a
//! transient error, a crash or a failed batch rolls the whole transaction back and the
//! event is decided again), but only one call's writes ever commit, and it is never
//! called for a redelivery of an event already final.
//!
//! Registration ([`Handlers`]) is per source. [`Handlers::on_source`] matches the
//! decisions that move a resource (`applied`) and every event of a source without a
//! lifecycle ("untracked": it has no outcome to filter on). [`Handlers::on`] names the
//! outcomes explicitly (untracked events still match). Handlers of one event run in
//! registration order inside one savepoint.
//!
//! Errors: [`HandlerError::Transient`] rolls the whole transaction back and the event
//! follows the retry schedule (then the dead-letter queue). [`HandlerError::Permanent`]
//! rolls back the savepoint (every handler's writes for that event) and fails the event
//! as a whole, exactly like any other permanent failure: `failed`, with
//! `handler <name>: <reason>` as its last error, **no transition logged and the resource
//! untouched**, so `hookline replay --reset` decides it again (and calls the handler
//! again) once the cause is fixed. Events after it in the same batch are decided as if it
//! had never arrived, which is what processing them one by one would do.
//!
//! Anything that calls out over the network does not belong here: a handler that waits on
//! a remote service holds its event's and resource's row locks for that long, and its call
//! cannot be rolled back. Record the intent in a table instead and deliver it after the
//! commit.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use hookline_db::AsyncPgConnection;
use hookline_domain::{Headers, Outcome};
use time::OffsetDateTime;
use uuid::Uuid;

/// Your code for decided events. Dyn-compatible: register it with [`Handlers`].
///
/// ```ignore
/// impl Handler for Conversions {
///     fn handle<'a>(&'a self, event: &'a EffectEvent, decision: &'a EffectDecision,
///                   conn: &'a mut AsyncPgConnection) -> BoxFuture<'a, Result<(), HandlerError>> {
///         Box::pin(async move { /* diesel_async queries on `conn` */ Ok(()) })
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The name in `last_error` and in logs (default: the type's name).
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Handles one decided event on the decision's transaction (inside a savepoint of
    /// it). Do not commit, roll back or open a new connection: what you write on `conn`
    /// commits with the decision.
    fn handle<'a>(
        &'a self,
        event: &'a EffectEvent,
        decision: &'a EffectDecision,
        conn: &'a mut AsyncPgConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// The event a handler is called for, as ingest stored it.
#[derive(Debug, Clone)]
pub struct EffectEvent {
    /// Hookline's id (UUIDv7). Unique: a natural idempotency key for your rows.
    pub id: Uuid,
    /// The source name.
    pub source: String,
    /// The rendered deduplication key.
    pub dedup_key: String,
    /// The rendered resource key, if the source has one.
    pub resource_key: Option<String>,
    /// The status the event reported, as rendered (before the lifecycle's spelling).
    pub status: Option<String>,
    /// The request headers (names lower-cased, raw values, arrival order).
    pub headers: Headers,
    /// The raw body bytes, exactly as received and verified.
    pub body: Vec<u8>,
    /// Failed attempts before this one.
    pub attempts: i32,
    /// When ingest committed it.
    pub received_at: OffsetDateTime,
}

impl EffectEvent {
    /// The body parsed as JSON into `T`.
    ///
    /// # Errors
    /// [`HandlerError::Permanent`] if it does not parse: the same bytes never will.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HandlerError::Permanent(format!("the body is not the expected JSON: {e}")))
    }
}

/// What the lifecycle decided for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectDecision {
    /// The lifecycle's outcome; `None` for a source without a lifecycle (untracked).
    pub outcome: Option<Outcome>,
    /// The resource's status before (`None`: first seen, or untracked).
    pub from: Option<String>,
    /// The status the event reported, in the lifecycle's spelling (`None`: untracked).
    pub to: Option<String>,
    /// Whether `to` is terminal in the lifecycle.
    pub terminal: bool,
}

/// Why a handler did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Retrying later can succeed: the whole transaction rolls back and the event follows
    /// the worker's retry schedule, then goes to the dead-letter queue.
    #[error("{0}")]
    Transient(String),
    /// Retrying the same event cannot succeed: the handlers' writes for it roll back and
    /// the event is `failed` with this reason (no transition logged).
    #[error("{0}")]
    Permanent(String),
}

/// A database error inside a handler: connection loss, serialization failures and
/// deadlocks are transient; constraint and data errors permanent (as for the worker's own
/// queries, [`hookline_db::is_retryable`]).
impl From<diesel::result::Error> for HandlerError {
    fn from(e: diesel::result::Error) -> Self {
        if hookline_db::is_retryable(&e) {
            HandlerError::Transient(e.to_string())
        } else {
            HandlerError::Permanent(e.to_string())
        }
    }
}

/// Which decisions of a source a handler gets.
#[derive(Clone)]
struct Route {
    source: String,
    /// Tracked outcomes that match; untracked events always match.
    outcomes: Vec<Outcome>,
    handler: Arc<dyn Handler>,
}

/// The registered handlers, by source. Empty by default: the worker then only decides.
#[derive(Clone, Default)]
pub struct Handlers {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.routes
                    .iter()
                    .map(|r| (&r.source, r.handler.name(), &r.outcomes)),
            )
            .finish()
    }
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `handler` for every event of `source` that moved its resource (`applied`),
    /// and for every event of a source without a lifecycle.
    #[must_use]
    pub fn on_source(self, source: impl Into<String>, handler: impl Handler) -> Self {
        self.on(source, &[Outcome::Applied], handler)
    }

    /// Calls `handler` for the events of `source` whose lifecycle outcome is one of
    /// `outcomes` (an event of a source without a lifecycle always matches).
    #[must_use]
    pub fn on(
        mut self,
        source: impl Into<String>,
        outcomes: &[Outcome],
        handler: impl Handler,
    ) -> Self {
        self.routes.push(Route {
            source: source.into(),
            outcomes: outcomes.to_vec(),
            handler: Arc::new(handler),
        });
        self
    }

    /// Whether no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The sources that have at least one handler, in registration order, without repeats.
    pub fn sources(&self) -> Vec<&str> {
        let mut sources: Vec<&str> = Vec::new();
        for route in &self.routes {
            if !sources.contains(&route.source.as_str()) {
                sources.push(&route.source);
            }
        }
        sources
    }

    /// Whether any handler is registered for `source`.
    pub fn handles_source(&self, source: &str) -> bool {
        self.routes.iter().any(|r| r.source == source)
    }

    /// The handlers `decision` of an event of `source` is delivered to, in registration
    /// order.
    pub fn matching<'a>(
        &'a self,
        source: &'a str,
        decision: &'a EffectDecision,
    ) -> impl Iterator<Item = &'a dyn Handler> + 'a {
        self.routes
            .iter()
            .filter(move |r| {
                r.source == source
                    && decision
                        .outcome
                        .is_none_or(|outcome| r.outcomes.contains(&outcome))
            })
            .map(|r| r.handler.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Noop(&'static str);

    impl Handler for Noop {
        fn name(&self) -> &str {
            self.0
        }

        fn handle<'a>(
            &'a self,
            _: &'a EffectEvent,
            _: &'a EffectDecision,
            _: &'a mut AsyncPgConnection,
        ) -> BoxFuture<'a, Result<(), HandlerError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn decision(outcome: Option<Outcome>) -> EffectDecision {
        EffectDecision {
            outcome,
            from: None,
            to: None,
            terminal: false,
        }
    }

    fn names(handlers: &Handlers, source: &str, outcome: Option<Outcome>) -> Vec<String> {
        let decision = decision(outcome);
        handlers
            .matching(source, &decision)
            .map(|h| h.name().to_string())
            .collect()
    }

    #[test]
    fn on_source_matches_applied_and_untracked_events_of_that_source_only() {
        let handlers = Handlers::new()
            .on_source("runs", Noop("a"))
            .on("runs", &[Outcome::Unchanged, Outcome::Applied], Noop("b"))
            .on_source("other", Noop("c"));
        assert_eq!(names(&handlers, "runs", Some(Outcome::Applied)), ["a", "b"]);
        assert_eq!(names(&handlers, "runs", Some(Outcome::Unchanged)), ["b"]);
        assert!(names(&handlers, "runs", Some(Outcome::RejectedDowngrade)).is_empty());
        assert!(names(&handlers, "runs", Some(Outcome::RejectedTerminal)).is_empty());
        assert_eq!(names(&handlers, "runs", None), ["a", "b"]);
        assert_eq!(names(&handlers, "other", None), ["c"]);
        assert!(names(&handlers, "nobody", None).is_empty());
        assert_eq!(handlers.sources(), ["runs", "other"]);
        assert!(Handlers::new().is_empty());
    }

    #[test]
    fn database_errors_are_classified_like_the_workers_own() {
        let unique = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate".to_string()),
        );
        assert!(matches!(
            HandlerError::from(unique),
            HandlerError::Permanent(_)
        ));
        let serialization = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::SerializationFailure,
            Box::new("conflict".to_string()),
        );
        assert!(matches!(
            HandlerError::from(serialization),
            HandlerError::Transient(_)
        ));
    }
}
