//! The worker's queries: deciding any number of events in one transaction (one event is a
//! batch of one). Each takes its rows in a fixed order (ids, then (source, key)), so two
//! transactions locking overlapping sets wait for each other instead of deadlocking.

use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_domain::{EventState, Headers, Outcome};
use uuid::Uuid;

use crate::columns::{OutcomeColumn, StateColumn};
use crate::prepared::prepared;
use crate::schema::{event_payloads, events};
use crate::{DbError, EventHead};

/// The smallest and the largest of `ids` (`None` for none), for a `BETWEEN` beside each
/// `id = ANY($ids)` on the id-partitioned event tables. PostgreSQL does not prune
/// partitions by an array parameter, so `id = ANY($1)` alone descends the primary key of
/// every partition (every day retention keeps, and the days created ahead) for every id,
/// and a prepared statement's generic plan keeps doing so; the bounds are plain
/// parameters, which it prunes by when the statement starts. A batch's ids (UUIDv7) come
/// from a few seconds, so one partition is left (two across midnight).
pub(crate) fn id_bounds(ids: impl IntoIterator<Item = Uuid>) -> Option<(Uuid, Uuid)> {
    ids.into_iter().fold(None, |bounds, id| match bounds {
        None => Some((id, id)),
        Some((first, last)) => Some((first.min(id), last.max(id))),
    })
}

/// Locks the events among `ids` that exist (`FOR UPDATE`), in id order, and returns them.
/// Holding these locks until commit is what makes any number of deliveries of one event
/// apply once.
///
/// # Errors
/// [`DbError`].
pub async fn lock_events(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<EventHead>, DbError> {
    let Some((first, last)) = id_bounds(ids.iter().copied()) else {
        return Ok(Vec::new());
    };
    Ok(events::table
        .filter(events::id.eq_any(ids))
        .filter(events::id.between(first, last))
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

/// Creates the missing resources among `keys` and locks them all, in (source, key) order
/// (`INSERT … ON CONFLICT DO UPDATE`, which takes the row locks in one round trip);
/// returns each one's current status. Holding these locks until commit serialises every
/// status change of one resource across all workers and operators. `keys` must not
/// repeat a pair (`ON CONFLICT DO UPDATE` may touch a row once per statement).
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
    let rows: Vec<LockedResource> = prepared(
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

/// A resource's status after a batch: the last applied (or forced) status wins.
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
    /// The event that set it (`None` when an operator forced it).
    pub event_id: Option<Uuid>,
}

/// One transition-log row of a batch.
#[derive(Debug, Clone)]
pub struct TransitionRow<'a> {
    /// Source name.
    pub source: &'a str,
    /// Resource key.
    pub resource_key: &'a str,
    /// The event behind it (`None` when an operator forced it).
    pub event_id: Option<Uuid>,
    /// Status before.
    pub from: Option<&'a str>,
    /// Status asked for.
    pub to: &'a str,
    /// The lifecycle's decision.
    pub outcome: Outcome,
    /// Why (required for forced changes).
    pub reason: Option<&'a str>,
    /// Who (the operator, for forced changes).
    pub actor: Option<&'a str>,
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
        prepared(
            "UPDATE resources r SET status = u.status, terminal = u.terminal, last_event_id = u.event_id, updated_at = now() \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::uuid[]) AS u(source, resource_key, status, terminal, event_id) \
             WHERE r.source = u.source AND r.resource_key = u.resource_key",
        )
        .bind::<Array<Text>, _>(updates.iter().map(|u| u.source).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(updates.iter().map(|u| u.resource_key).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(updates.iter().map(|u| u.status).collect::<Vec<_>>())
        .bind::<Array<Bool>, _>(updates.iter().map(|u| u.terminal).collect::<Vec<_>>())
        .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(updates.iter().map(|u| u.event_id).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    if !rows.is_empty() {
        prepared(
            "INSERT INTO transitions (source, resource_key, event_id, from_status, to_status, outcome, reason, actor) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])",
        )
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.source).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.resource_key).collect::<Vec<_>>())
        .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.from).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.to).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(rows.iter().map(|r| OutcomeColumn(r.outcome)).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.reason).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.actor).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Marks locked events finished: `processed` where the error is `None`, `failed` with
/// the (permanent) error otherwise. Call it in the transaction holding [`lock_events`]'
/// locks.
///
/// # Errors
/// [`DbError`].
pub async fn finish_events(
    conn: &mut AsyncPgConnection,
    done: &[(Uuid, Option<&str>)],
) -> Result<(), DbError> {
    let Some((first, last)) = id_bounds(done.iter().map(|d| d.0)) else {
        return Ok(());
    };
    let state = |error: Option<&str>| {
        StateColumn(if error.is_none() {
            EventState::Processed
        } else {
            EventState::Failed
        })
    };
    prepared(
        "UPDATE events e SET state = u.state, last_error = u.err, processed_at = now() \
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, state, err) \
         WHERE e.id = u.id AND e.id BETWEEN $4 AND $5",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(done.iter().map(|d| d.0).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(done.iter().map(|d| state(d.1)).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(done.iter().map(|d| d.1).collect::<Vec<_>>())
    .bind::<diesel::sql_types::Uuid, _>(first)
    .bind::<diesel::sql_types::Uuid, _>(last)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a transient processing failure: bumps `attempts`, keeps the error, and moves
/// the event to `dead` when `dead` is set. Final events (processed, failed) are left
/// alone. Returns the new attempt count, if the row changed. Runs on its own (no lock
/// held before): it only touches a row no committed decision finished.
///
/// # Errors
/// [`DbError`].
pub async fn record_attempt_failure(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &str,
    dead: bool,
) -> Result<Option<i32>, DbError> {
    let open = [
        EventState::Received,
        EventState::Published,
        EventState::Dead,
    ]
    .map(StateColumn);
    let target = events::table
        .filter(events::id.eq(id))
        .filter(events::state.eq_any(open));
    let query = diesel::update(target);
    let attempts = if dead {
        query
            .set((
                events::attempts.eq(events::attempts + 1),
                events::last_error.eq(error),
                events::state.eq(StateColumn(EventState::Dead)),
            ))
            .returning(events::attempts)
            .get_result(conn)
            .await
    } else {
        query
            .set((
                events::attempts.eq(events::attempts + 1),
                events::last_error.eq(error),
            ))
            .returning(events::attempts)
            .get_result(conn)
            .await
    };
    Ok(attempts.optional()?)
}

/// What an effect handler sees of an event beyond its head: the dedup key, the request
/// headers and the raw body, as ingest stored them.
#[derive(Debug, Clone)]
pub struct EventPayload {
    /// Event id.
    pub id: Uuid,
    /// The rendered deduplication key.
    pub dedup_key: String,
    /// The request headers, decoded from their stored shape (names lower-cased, values
    /// as raw bytes, arrival order kept).
    pub headers: Headers,
    /// The raw body bytes.
    pub body: Vec<u8>,
}

/// The payloads of the events among `ids` that exist and still have one (retention
/// prunes them), in id order. Takes no lock of its own: call it in the transaction that
/// holds [`lock_events`]' locks on these rows, so what it reads is what is being decided.
///
/// # Errors
/// [`DbError`].
pub async fn event_payloads(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<EventPayload>, DbError> {
    let Some((first, last)) = id_bounds(ids.iter().copied()) else {
        return Ok(Vec::new());
    };
    let rows: Vec<(Uuid, String, serde_json::Value, Vec<u8>)> = events::table
        .inner_join(event_payloads::table.on(event_payloads::id.eq(events::id)))
        .filter(events::id.eq_any(ids))
        .filter(events::id.between(first, last))
        .filter(event_payloads::id.between(first, last))
        .order(events::id)
        .select((
            events::id,
            events::dedup_key,
            event_payloads::headers,
            event_payloads::body,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, dedup_key, headers, body)| EventPayload {
            id,
            dedup_key,
            headers: decode_headers(&headers),
            body,
        })
        .collect())
}

/// The inverse of [`crate::NewEvent::headers_json`]. Entries that are not in the stored
/// shape (ingest never writes any) are skipped.
pub(crate) fn decode_headers(stored: &serde_json::Value) -> Headers {
    use base64::Engine;
    let entries = stored.as_array().map(Vec::as_slice).unwrap_or_default();
    Headers::new(entries.iter().filter_map(|entry| {
        let name = entry.get("name")?.as_str()?.to_string();
        let value = match (entry.get("value"), entry.get("value_base64")) {
            (Some(text), _) => text.as_str()?.as_bytes().to_vec(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded.as_str()?)
                .ok()?,
            (None, None) => return None,
        };
        Some((name, value))
    }))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::id_bounds;

    #[test]
    fn id_bounds_are_the_smallest_and_largest_id_in_any_order() {
        let ids: Vec<Uuid> = [7u128, 3, 9, 5].into_iter().map(Uuid::from_u128).collect();
        assert_eq!(
            id_bounds(ids.iter().copied()),
            Some((Uuid::from_u128(3), Uuid::from_u128(9)))
        );
        assert_eq!(
            id_bounds([Uuid::from_u128(4)]),
            Some((Uuid::from_u128(4), Uuid::from_u128(4)))
        );
        assert_eq!(id_bounds(std::iter::empty()), None);
    }
}
