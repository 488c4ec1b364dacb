use base64::Engine;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_domain::Headers;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DbError;
use crate::schema::{events, outbox};

/// An event as ingest is about to store it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Pre-generated id (UUIDv7): it becomes the event's id if this row wins the insert.
    pub id: Uuid,
    /// Source name.
    pub source: String,
    /// Rendered dedup key.
    pub dedup_key: String,
    /// Rendered resource key.
    pub resource_key: Option<String>,
    /// Rendered status.
    pub status: Option<String>,
    /// Headers in storage form ([`NewEvent::headers_json`]).
    pub headers: serde_json::Value,
    /// Raw query string.
    pub query: String,
    /// Raw body.
    pub body: Vec<u8>,
    /// W3C traceparent of the ingest request.
    pub traceparent: Option<String>,
}

impl NewEvent {
    /// Headers in their stored shape: `[{"name","value"}]` in arrival order, with
    /// `value_base64` instead of `value` for values that are not UTF-8, so every byte
    /// is kept.
    pub fn headers_json(headers: &Headers) -> serde_json::Value {
        headers
            .iter()
            .map(|(name, value)| match std::str::from_utf8(value) {
                Ok(text) => serde_json::json!({ "name": name, "value": text }),
                Err(_) => serde_json::json!({
                    "name": name,
                    "value_base64": base64::engine::general_purpose::STANDARD.encode(value),
                }),
            })
            .collect()
    }
}

/// What happened to one [`NewEvent`] of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertResult {
    /// The stored event's id: this row's own id if it was new, the first one's otherwise.
    pub event_id: Uuid,
    /// True if an event with the same `(source, dedup_key)` already existed (or came
    /// earlier in the same batch).
    pub duplicate: bool,
}

#[derive(QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct ExistingKey {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    dedup_key: String,
}

/// Stores a batch of events and returns, per input row in order, its event id and
/// whether it was a duplicate.
///
/// Idempotency: exactly one row per `(source, dedup_key)` exists afterwards, whatever
/// runs concurrently. Three statements at most, each set-based:
/// 1. if `lookup_first` (the caller expects duplicates), look up the keys that are
///    already committed (only keys go over the wire, so a retry storm costs index
///    probes, not row construction);
/// 2. `INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING` the rest, in key order (so
///    concurrent batches sharing keys wait on each other in one order, never deadlock);
///    a conflicting row another transaction is still inserting is waited for;
/// 3. look up whatever conflicted in step 2, with a fresh snapshot that sees it.
///
/// A duplicate is therefore answered only once the original is committed. Run it
/// outside an explicit transaction: each statement commits on its own.
///
/// # Errors
/// [`DbError`]; retryable when the database is unreachable.
pub async fn insert_events(
    conn: &mut AsyncPgConnection,
    batch: &[NewEvent],
    lookup_first: bool,
) -> Result<Vec<InsertResult>, DbError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = if lookup_first {
        existing_ids(conn, batch.iter()).await?
    } else {
        std::collections::HashMap::new()
    };
    let missing: Vec<&NewEvent> = batch
        .iter()
        .filter(|e| !found.contains_key(&(e.source.clone(), e.dedup_key.clone())))
        .collect();
    let mut new_ids = std::collections::HashSet::new();
    if !missing.is_empty() {
        let mut order = missing;
        // Stable: of several rows with one key, the batch's first is the one inserted.
        order.sort_by(|a, b| (&a.source, &a.dedup_key).cmp(&(&b.source, &b.dedup_key)));
        // New rows and their outbox rows in one statement (so in one commit).
        let inserted: Vec<InsertedId> = diesel::sql_query(
            "WITH new AS (\
               INSERT INTO events (id, source, dedup_key, resource_key, status, headers, query, body, traceparent) \
               SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::bytea[], $9::text[]) \
               ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id, received_at), \
             queued AS (INSERT INTO outbox (event_id, received_at) SELECT id, received_at FROM new) \
             SELECT id FROM new",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(order.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(order.iter().map(|e| e.source.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(order.iter().map(|e| e.dedup_key.as_str()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(order.iter().map(|e| e.resource_key.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(order.iter().map(|e| e.status.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(order.iter().map(|e| &e.headers).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(order.iter().map(|e| e.query.as_str()).collect::<Vec<_>>())
        .bind::<Array<Bytea>, _>(order.iter().map(|e| e.body.as_slice()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(order.iter().map(|e| e.traceparent.as_deref()).collect::<Vec<_>>())
        .load(conn)
        .await?;
        new_ids = inserted.into_iter().map(|r| r.id).collect();
        let conflicted = order.into_iter().filter(|e| {
            !new_ids.contains(&e.id)
                && !found.contains_key(&(e.source.clone(), e.dedup_key.clone()))
        });
        let conflicted: Vec<&NewEvent> = conflicted.collect();
        if !conflicted.is_empty() {
            found.extend(existing_ids(conn, conflicted.into_iter()).await?);
        }
    }
    batch
        .iter()
        .map(|event| {
            if new_ids.contains(&event.id) {
                return Ok(InsertResult {
                    event_id: event.id,
                    duplicate: false,
                });
            }
            // A row inserted earlier in this same batch counts as the first one.
            match found.get(&(event.source.clone(), event.dedup_key.clone())) {
                Some(id) => Ok(InsertResult {
                    event_id: *id,
                    duplicate: true,
                }),
                None => batch
                    .iter()
                    .find(|e| {
                        new_ids.contains(&e.id)
                            && e.source == event.source
                            && e.dedup_key == event.dedup_key
                    })
                    .map(|first| InsertResult {
                        event_id: first.id,
                        duplicate: true,
                    })
                    // The conflicting row vanished between the statements (an operator
                    // purge): nothing is stored, so this must not be acknowledged.
                    .ok_or_else(|| {
                        DbError::Unavailable("conflicting event vanished; retry".into())
                    }),
            }
        })
        .collect()
}

/// The ids of the committed events among `events`' keys, by key.
async fn existing_ids<'a>(
    conn: &mut AsyncPgConnection,
    events: impl Iterator<Item = &'a NewEvent>,
) -> Result<std::collections::HashMap<(String, String), Uuid>, DbError> {
    let (sources, keys): (Vec<&str>, Vec<&str>) = events
        .map(|e| (e.source.as_str(), e.dedup_key.as_str()))
        .unzip();
    let existing: Vec<ExistingKey> = diesel::sql_query(
        "SELECT e.id, e.source, e.dedup_key FROM events e \
         JOIN unnest($1::text[], $2::text[]) AS k(source, dedup_key) USING (source, dedup_key)",
    )
    .bind::<Array<Text>, _>(sources)
    .bind::<Array<Text>, _>(keys)
    .load(conn)
    .await?;
    Ok(existing
        .into_iter()
        .map(|k| ((k.source, k.dedup_key), k.id))
        .collect())
}

/// Marks events as confirmed by the broker: their outbox rows go, so they count as
/// `published`. The events rows are not touched, so this never waits on (or undoes) a
/// worker that is already processing them; returns how many were still waiting.
///
/// # Errors
/// [`DbError`].
pub async fn mark_published(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(
        diesel::delete(outbox::table.filter(outbox::event_id.eq_any(ids)))
            .execute(conn)
            .await?,
    )
}

/// An event the outbox relay must (re)publish.
#[derive(Debug, Clone, Queryable)]
pub struct OutboxEntry {
    /// Event id.
    pub id: Uuid,
    /// Source name.
    pub source: String,
    /// Trace context to carry on.
    pub traceparent: Option<String>,
}

/// Claims up to `limit` events committed before `cutoff` and still unconfirmed, oldest
/// first, with `FOR UPDATE SKIP LOCKED`: call it inside a transaction that publishes them
/// and then [`mark_published`]s them; concurrent relays split the backlog instead of
/// publishing it twice.
///
/// # Errors
/// [`DbError`].
pub async fn claim_outbox(
    conn: &mut AsyncPgConnection,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<Vec<OutboxEntry>, DbError> {
    // In id order (UUIDv7: arrival order) along the primary key; only outbox rows are
    // locked, never the events a worker may hold.
    let claimed: Vec<Uuid> = outbox::table
        .filter(outbox::received_at.lt(cutoff))
        .order(outbox::event_id)
        .limit(limit)
        .select(outbox::event_id)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<OutboxEntry> = events::table
        .filter(events::id.eq_any(&claimed))
        .order(events::id)
        .select((events::id, events::source, events::traceparent))
        .load(conn)
        .await?;
    if entries.len() < claimed.len() {
        // Rows deleted by hand: nothing to publish, so their outbox rows go too.
        let orphans: Vec<Uuid> = claimed
            .into_iter()
            .filter(|id| entries.binary_search_by(|e| e.id.cmp(id)).is_err())
            .collect();
        mark_published(conn, &orphans).await?;
    }
    Ok(entries)
}

/// Counts events committed but not yet confirmed by the broker (the outbox backlog).
/// Read-only; cheap, because the outbox table holds only those rows.
///
/// # Errors
/// [`DbError`].
pub async fn count_outbox(conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
    Ok(outbox::table.count().get_result(conn).await?)
}
