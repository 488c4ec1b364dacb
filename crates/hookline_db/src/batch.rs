//! Set-based forms of the worker's queries, for processing many events in one
//! transaction. Each takes its rows in a fixed order (ids, then (source, key)), so two
//! transactions locking overlapping sets wait for each other instead of deadlocking.

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_domain::Outcome;
use uuid::Uuid;

use crate::schema::events;
use crate::{DbError, EventHead};

/// Locks the events among `ids` that exist (`FOR UPDATE`), in id order, and returns them.
/// The batch form of [`crate::lock_event`]: holding these locks until commit is what
/// makes any number of deliveries of one event apply once.
///
/// # Errors
/// [`DbError`].
pub async fn lock_events(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<EventHead>, DbError> {
    Ok(events::table
        .filter(events::id.eq_any(ids))
        .order(events::id)
        .select(EventHead::as_select())
        .for_update()
        .load(conn)
        .await?)
}

#[derive(QueryableByName)]
struct LockedResource {
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    resource_key: String,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
}

/// Creates the missing resources among `keys` and locks them all, in (source, key) order;
/// returns each one's current status. The batch form of [`crate::lock_resource`]. `keys`
/// must not repeat a pair (`ON CONFLICT DO UPDATE` may touch a row once per statement).
///
/// # Errors
/// [`DbError`].
pub async fn lock_resources(
    conn: &mut AsyncPgConnection,
    keys: &[(&str, &str)],
) -> Result<Vec<(String, String, Option<String>)>, DbError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<LockedResource> = diesel::sql_query(
        "INSERT INTO resources (source, resource_key) \
         SELECT s, k FROM unnest($1::text[], $2::text[]) AS u(s, k) ORDER BY s, k \
         ON CONFLICT (source, resource_key) DO UPDATE SET updated_at = resources.updated_at \
         RETURNING source, resource_key, status",
    )
    .bind::<Array<Text>, _>(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.source, r.resource_key, r.status))
        .collect())
}

/// A resource's status after a batch: the last applied status wins.
#[derive(Debug, Clone)]
pub struct ResourceUpdate<'a> {
    /// Source name.
    pub source: &'a str,
    /// Resource key.
    pub resource_key: &'a str,
    /// New status.
    pub status: &'a str,
    /// Whether it is terminal.
    pub terminal: bool,
    /// The event that set it.
    pub event_id: Uuid,
}

/// One transition-log row of a batch.
#[derive(Debug, Clone)]
pub struct TransitionRow<'a> {
    /// Source name.
    pub source: &'a str,
    /// Resource key.
    pub resource_key: &'a str,
    /// The event behind it.
    pub event_id: Uuid,
    /// Status before.
    pub from: Option<&'a str>,
    /// Status asked for.
    pub to: &'a str,
    /// The lifecycle's decision.
    pub outcome: Outcome,
}

/// Writes a batch's decisions: each changed resource's new status (one row per resource)
/// and every transition-log row. Call it while holding [`lock_resources`]' locks.
///
/// # Errors
/// [`DbError`].
pub async fn record_transitions(
    conn: &mut AsyncPgConnection,
    updates: &[ResourceUpdate<'_>],
    rows: &[TransitionRow<'_>],
) -> Result<(), DbError> {
    if !updates.is_empty() {
        diesel::sql_query(
            "UPDATE resources r SET status = u.status, terminal = u.terminal, last_event_id = u.event_id, updated_at = now() \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::uuid[]) AS u(source, resource_key, status, terminal, event_id) \
             WHERE r.source = u.source AND r.resource_key = u.resource_key",
        )
        .bind::<Array<Text>, _>(updates.iter().map(|u| u.source).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(updates.iter().map(|u| u.resource_key).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(updates.iter().map(|u| u.status).collect::<Vec<_>>())
        .bind::<Array<Bool>, _>(updates.iter().map(|u| u.terminal).collect::<Vec<_>>())
        .bind::<Array<diesel::sql_types::Uuid>, _>(updates.iter().map(|u| u.event_id).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    if !rows.is_empty() {
        diesel::sql_query(
            "INSERT INTO transitions (source, resource_key, event_id, from_status, to_status, outcome) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[])",
        )
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.source).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.resource_key).collect::<Vec<_>>())
        .bind::<Array<diesel::sql_types::Uuid>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.from).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.to).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Marks a batch of locked events finished: `processed` where the error is `None`,
/// `failed` with the error otherwise. The batch form of [`crate::finish_event`].
///
/// # Errors
/// [`DbError`].
pub async fn finish_events(
    conn: &mut AsyncPgConnection,
    done: &[(Uuid, Option<&str>)],
) -> Result<(), DbError> {
    if done.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "UPDATE events e SET state = CASE WHEN u.err IS NULL THEN 'processed' ELSE 'failed' END, \
         last_error = u.err, processed_at = now() \
         FROM unnest($1::uuid[], $2::text[]) AS u(id, err) WHERE e.id = u.id",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(done.iter().map(|d| d.0).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(done.iter().map(|d| d.1).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}
