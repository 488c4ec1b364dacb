use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use hookline_domain::{EventState, Outcome};

use crate::columns::{OutcomeColumn, StateColumn, is_derived, reported_state};
use crate::schema::{events, resources, transitions};
use crate::{DbError, Event, ResourceUpdate, TransitionRow, lock_resources, record_transitions};

/// One event by id.
///
/// # Errors
/// [`DbError`].
pub async fn find_event(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<Event>, DbError> {
    Ok(events::table
        .find(id)
        .select(Event::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Restricts `query` to events in the reported `state` ([`reported_state`]).
pub(crate) fn in_state<'a, ST: 'a>(
    query: events::BoxedQuery<'a, Pg, ST>,
    state: EventState,
) -> events::BoxedQuery<'a, Pg, ST> {
    if is_derived(state) {
        query.filter(reported_state().eq(state.as_str()))
    } else {
        // Reported and stored agree for every other state: use the column (and its index).
        query.filter(events::state.eq(StateColumn(state)))
    }
}

/// Which events to list; unset fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact source.
    pub source: Option<String>,
    /// Exact dedup key.
    pub dedup_key: Option<String>,
    /// Reported state.
    pub state: Option<EventState>,
    /// Received at or after.
    pub since: Option<OffsetDateTime>,
    /// Received before.
    pub until: Option<OffsetDateTime>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// Events matching `filter`, newest first. Read-only, no locks.
///
/// # Errors
/// [`DbError`].
pub async fn find_events(
    conn: &mut AsyncPgConnection,
    filter: &EventFilter,
) -> Result<Vec<Event>, DbError> {
    let mut query = events::table.select(Event::as_select()).into_boxed();
    if let Some(source) = &filter.source {
        query = query.filter(events::source.eq(source));
    }
    if let Some(key) = &filter.dedup_key {
        query = query.filter(events::dedup_key.eq(key));
        if let Some(source) = &filter.source {
            // Events have no index on their key: the key table points at them (every
            // receipt of the key, also those after an earlier horizon).
            query = query.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "events.id IN (SELECT unnest(array_append(k.earlier_event_ids, k.event_id)) \
                     FROM dedup_keys k WHERE k.source = ",
                )
                .bind::<diesel::sql_types::Text, _>(source)
                .sql(" AND k.dedup_key = ")
                .bind::<diesel::sql_types::Text, _>(key)
                .sql(")"),
            );
        }
    }
    if let Some(state) = &filter.state {
        query = in_state(query, *state);
    }
    if let Some(since) = filter.since {
        query = query.filter(events::received_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(events::received_at.lt(until));
    }
    Ok(query
        .order(events::received_at.desc())
        .limit(filter.limit.clamp(1, 10_000))
        .load(conn)
        .await?)
}

/// A resource with its transition log, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceView {
    /// Source name.
    pub source: String,
    /// Resource key.
    pub resource_key: String,
    /// Current status (`None` until a first status applies).
    pub status: Option<String>,
    /// Whether the current status is terminal.
    pub terminal: bool,
    /// The event that set the current status.
    pub last_event_id: Option<Uuid>,
    /// When the status last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Every decision about this resource, oldest first.
    pub transitions: Vec<TransitionView>,
}

/// One row of a resource's transition log.
#[derive(Debug, Clone, Serialize, Queryable)]
pub struct TransitionView {
    /// The event behind it (`None` when forced by an operator).
    pub event_id: Option<Uuid>,
    /// Status before.
    pub from: Option<String>,
    /// Status asked for.
    pub to: String,
    /// What the lifecycle (or an operator) decided.
    #[diesel(deserialize_as = OutcomeColumn)]
    pub outcome: Outcome,
    /// Operator's reason (forced changes).
    pub reason: Option<String>,
    /// Operator (forced changes).
    pub actor: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A resource and its full transition log; `None` if no event ever named it. Read-only.
///
/// # Errors
/// [`DbError`].
pub async fn find_resource(
    conn: &mut AsyncPgConnection,
    source: &str,
    resource_key: &str,
) -> Result<Option<ResourceView>, DbError> {
    let row: Option<(Option<String>, bool, Option<Uuid>, OffsetDateTime)> = resources::table
        .find((source, resource_key))
        .select((
            resources::status,
            resources::terminal,
            resources::last_event_id,
            resources::updated_at,
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((status, terminal, last_event_id, updated_at)) = row else {
        return Ok(None);
    };
    let transitions = transitions::table
        .filter(transitions::source.eq(source))
        .filter(transitions::resource_key.eq(resource_key))
        .order(transitions::id)
        .select((
            transitions::event_id,
            transitions::from_status,
            transitions::to_status,
            transitions::outcome,
            transitions::reason,
            transitions::actor,
            transitions::at,
        ))
        .load(conn)
        .await?;
    Ok(Some(ResourceView {
        source: source.to_string(),
        resource_key: resource_key.to_string(),
        status,
        terminal,
        last_event_id,
        updated_at,
        transitions,
    }))
}

/// Sets a resource's status by operator decision, bypassing the lifecycle, and logs it as
/// `forced` with the reason and actor. Runs in its own transaction holding the resource
/// lock, so it cannot interleave with a worker's transition.
///
/// # Errors
/// [`DbError`].
pub async fn force_status(
    conn: &mut AsyncPgConnection,
    source: &str,
    resource_key: &str,
    status: &str,
    terminal: bool,
    reason: &str,
    actor: &str,
) -> Result<Option<String>, DbError> {
    use diesel_async::AsyncConnection;
    conn.transaction::<_, DbError, _>(async |conn| {
        let locked = lock_resources(conn, &[(source, resource_key)]).await?;
        let from = locked.into_iter().next().and_then(|(_, _, status)| status);
        record_transitions(
            conn,
            &[ResourceUpdate {
                source,
                resource_key,
                status,
                terminal,
                event_id: None,
            }],
            &[TransitionRow {
                source,
                resource_key,
                event_id: None,
                from: from.as_deref(),
                to: status,
                outcome: Outcome::Forced,
                reason: Some(reason),
                actor: Some(actor),
            }],
        )
        .await?;
        Ok(from)
    })
    .await
}
