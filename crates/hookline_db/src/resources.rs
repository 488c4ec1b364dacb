use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_domain::Outcome;
use uuid::Uuid;

use crate::DbError;
use crate::schema::{resources, transitions};

/// Creates the resource row if needed and locks it (`INSERT … ON CONFLICT DO UPDATE`,
/// which takes the row lock in one round trip). Returns its current status. Holding this
/// lock serialises every status change of one resource across all workers.
///
/// # Errors
/// [`DbError`].
pub async fn lock_resource(
    conn: &mut AsyncPgConnection,
    source: &str,
    resource_key: &str,
) -> Result<Option<String>, DbError> {
    Ok(diesel::insert_into(resources::table)
        .values((
            resources::source.eq(source),
            resources::resource_key.eq(resource_key),
        ))
        .on_conflict((resources::source, resources::resource_key))
        .do_update()
        // A no-op assignment: the point is the row lock `DO UPDATE` takes.
        .set(resources::updated_at.eq(resources::updated_at))
        .returning(resources::status)
        .get_result(conn)
        .await?)
}

/// One lifecycle decision about a resource, to be logged and (if it changes the status)
/// applied.
#[derive(Debug, Clone)]
pub struct TransitionRecord<'a> {
    /// Source name.
    pub source: &'a str,
    /// Resource key.
    pub resource_key: &'a str,
    /// The event that asked for it (`None` for an operator's forced change).
    pub event_id: Option<Uuid>,
    /// Status before.
    pub from: Option<&'a str>,
    /// Status asked for.
    pub to: &'a str,
    /// What the lifecycle decided.
    pub outcome: Outcome,
    /// Whether `to` is terminal in the lifecycle.
    pub terminal: bool,
    /// Why (required for forced changes).
    pub reason: Option<&'a str>,
    /// Who (the operator, for forced changes).
    pub actor: Option<&'a str>,
}

/// Writes a transition-log row and, when the outcome changes the status, the resource's
/// new status and last event. Call it while holding [`lock_resource`]'s lock.
///
/// # Errors
/// [`DbError`].
pub async fn record_transition(
    conn: &mut AsyncPgConnection,
    record: &TransitionRecord<'_>,
) -> Result<(), DbError> {
    if record.outcome.changes_status() {
        diesel::update(resources::table.find((record.source, record.resource_key)))
            .set((
                resources::status.eq(record.to),
                resources::terminal.eq(record.terminal),
                resources::last_event_id.eq(record.event_id),
                resources::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    diesel::insert_into(transitions::table)
        .values((
            transitions::source.eq(record.source),
            transitions::resource_key.eq(record.resource_key),
            transitions::event_id.eq(record.event_id),
            transitions::from_status.eq(record.from),
            transitions::to_status.eq(record.to),
            transitions::outcome.eq(record.outcome.as_str()),
            transitions::reason.eq(record.reason),
            transitions::actor.eq(record.actor),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
