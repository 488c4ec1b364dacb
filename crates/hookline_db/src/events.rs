use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bytea, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_domain::Headers;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DbError;
use crate::prepared::prepared;
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
    /// The source's `dedup_horizon`: an earlier event with this key counts only if it was
    /// first received less than this long ago.
    pub dedup_horizon: Duration,
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
    /// True if an event with the same `(source, dedup_key)` was first received within the
    /// horizon (or came earlier in the same batch).
    pub duplicate: bool,
    /// How much longer the key stays a duplicate of `event_id`, counted from before the
    /// insert was sent (so never longer than the database will answer it): the horizon
    /// for a new event, what is left of it for a duplicate.
    pub expires_in: Duration,
}

#[derive(QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct LiveKey {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    dedup_key: String,
    #[diesel(sql_type = BigInt)]
    expires_in_ms: i64,
}

/// A key inside its horizon: the event it is a duplicate of, and for how much longer.
type Live = HashMap<(String, String), (Uuid, Duration)>;

/// A duration as whole milliseconds for SQL (saturating: a horizon is days, not aeons).
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The generation of dedup keys that was current `horizon` ago (0 if none was yet): no
/// earlier generation can hold a key first received within the horizon. Runtime
/// partition pruning on it keeps every key check to the generations that matter.
const LIVE_FROM: &str = "(SELECT coalesce(max(generation), 0) FROM dedup_generations \
     WHERE started_at <= now() - $H * interval '1 millisecond')";

/// [`store_new`]'s statement, built once: its text is the statement cache's key, and
/// formatting it per batch was work on ingest's hot path.
static STORE_NEW: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH input AS (\
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], \
                                $7::text[], $8::bytea[], $9::text[], $10::bigint[]) \
             AS i(id, source, dedup_key, resource_key, status, headers, query, body, traceparent, horizon_ms)), \
         current AS (SELECT max(generation) AS g FROM dedup_generations), \
         earlier AS (\
           SELECT i.id FROM input i JOIN dedup_keys k ON k.source = i.source AND k.dedup_key = i.dedup_key \
           WHERE k.generation >= {live_from} AND k.generation < (SELECT g FROM current) \
             AND k.received_at > now() - i.horizon_ms * interval '1 millisecond'), \
         keys AS (\
           INSERT INTO dedup_keys (generation, source, dedup_key, event_id, received_at) \
           SELECT (SELECT g FROM current), i.source, i.dedup_key, i.id, now() FROM input i \
           WHERE NOT EXISTS (SELECT 1 FROM earlier e WHERE e.id = i.id) \
           ORDER BY i.source, i.dedup_key \
           ON CONFLICT (source, dedup_key, generation) DO UPDATE \
             SET event_id = EXCLUDED.event_id, received_at = EXCLUDED.received_at, \
                 earlier_event_ids = array_append(dedup_keys.earlier_event_ids, dedup_keys.event_id) \
             WHERE dedup_keys.received_at <= EXCLUDED.received_at \
               - (SELECT i.horizon_ms FROM input i WHERE i.id = EXCLUDED.event_id) * interval '1 millisecond' \
           RETURNING event_id), \
         new AS (\
           INSERT INTO events (id, source, dedup_key, resource_key, status, traceparent) \
           SELECT i.id, i.source, i.dedup_key, i.resource_key, i.status, i.traceparent \
           FROM input i JOIN keys k ON k.event_id = i.id \
           RETURNING id, received_at), \
         payloads AS (\
           INSERT INTO event_payloads (id, headers, query, body) \
           SELECT i.id, i.headers, i.query, i.body FROM input i JOIN keys k ON k.event_id = i.id), \
         queued AS (\
           INSERT INTO outbox (id, received_at, event_ids) \
           SELECT (array_agg(id ORDER BY id))[1], min(received_at), array_agg(id ORDER BY id) FROM new \
           HAVING count(*) > 0) \
         SELECT id FROM new",
        live_from = LIVE_FROM.replace("$H", "$11"),
    )
});

/// [`live_keys`]' statement, built once (as [`STORE_NEW`]).
static LIVE_KEYS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT DISTINCT ON (k.source, k.dedup_key) k.event_id, k.source, k.dedup_key, \
           (extract(epoch FROM k.received_at + i.horizon_ms * interval '1 millisecond' - now()) * 1000)::bigint \
             AS expires_in_ms \
         FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(source, dedup_key, horizon_ms) \
         JOIN dedup_keys k ON k.source = i.source AND k.dedup_key = i.dedup_key \
         WHERE k.generation >= {live_from} \
           AND k.received_at > now() - i.horizon_ms * interval '1 millisecond' \
         ORDER BY k.source, k.dedup_key, k.received_at DESC",
        live_from = LIVE_FROM.replace("$H", "$4"),
    )
});

/// Stores a batch of events and returns, per input row in order, its event id and
/// whether it was a duplicate.
///
/// Idempotency: within each row's `dedup_horizon`, one event per `(source, dedup_key)`
/// is stored whatever runs concurrently; a key first received longer ago is stored again
/// as a new event. Three statements at most, each set-based:
/// 1. if `lookup_first` (the caller expects duplicates), look up the keys that are
///    committed and inside their horizon (only keys go over the wire, so a retry storm
///    costs index probes, not row construction);
/// 2. one statement for the rest, in key order (so concurrent batches sharing keys wait
///    on each other in one order, never deadlock): skip keys live in the one earlier
///    generation that can hold them, `INSERT … ON CONFLICT` the others into the current
///    generation of `dedup_keys` (a key past its horizon there is taken over), and insert
///    the event rows, payloads and outbox rows of the keys that went in. A conflicting key
///    another transaction is still inserting is waited for. The statement holds
///    `dedup_generations` in ACCESS SHARE mode from before its snapshot, so no generation
///    switch (ACCESS EXCLUSIVE) falls inside it: every insert running at once uses the
///    same current generation, and the earlier one it checks is complete;
/// 3. look up whatever was not stored in step 2, with a fresh snapshot that sees it.
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
    // The batch's first row of each key is the one that may be stored; the others are
    // its duplicates whatever happens to it.
    let mut first_of: HashMap<(&str, &str), &NewEvent> = HashMap::new();
    for event in batch {
        first_of
            .entry((event.source.as_str(), event.dedup_key.as_str()))
            .or_insert(event);
    }
    let firsts: Vec<&NewEvent> = batch
        .iter()
        .filter(|e| {
            first_of
                .get(&(e.source.as_str(), e.dedup_key.as_str()))
                .is_some_and(|f| f.id == e.id)
        })
        .collect();
    let mut found: Live = if lookup_first {
        live_keys(conn, &firsts).await?
    } else {
        HashMap::new()
    };
    let key = |e: &NewEvent| (e.source.clone(), e.dedup_key.clone());
    let mut order: Vec<&NewEvent> = firsts
        .into_iter()
        .filter(|e| !found.contains_key(&key(e)))
        .collect();
    let mut new_ids = HashSet::new();
    if !order.is_empty() {
        order.sort_by(|a, b| (&a.source, &a.dedup_key).cmp(&(&b.source, &b.dedup_key)));
        new_ids = store_new(conn, &order).await?;
        let conflicted: Vec<&NewEvent> = order
            .into_iter()
            .filter(|e| !new_ids.contains(&e.id))
            .collect();
        if !conflicted.is_empty() {
            found.extend(live_keys(conn, &conflicted).await?);
        }
    }
    batch
        .iter()
        .map(|event| {
            if new_ids.contains(&event.id) {
                return Ok(InsertResult {
                    event_id: event.id,
                    duplicate: false,
                    expires_in: event.dedup_horizon,
                });
            }
            if let Some((event_id, expires_in)) = found.get(&key(event)) {
                return Ok(InsertResult {
                    event_id: *event_id,
                    duplicate: true,
                    expires_in: *expires_in,
                });
            }
            // A later copy of a key the batch stored: a duplicate of its first.
            match first_of.get(&(event.source.as_str(), event.dedup_key.as_str())) {
                Some(first) if new_ids.contains(&first.id) => Ok(InsertResult {
                    event_id: first.id,
                    duplicate: true,
                    expires_in: first.dedup_horizon,
                }),
                // The conflicting key vanished between the statements (its generation
                // dropped, an operator purge): nothing is stored, so this must not be
                // acknowledged.
                _ => Err(DbError::Unavailable(
                    "conflicting event vanished; retry".into(),
                )),
            }
        })
        .collect()
}

/// Step 2 of [`insert_events`]: the keys of `order` (one row per key, in key order) that
/// are not live in the earlier generation go into the current one, with their event,
/// payload and outbox rows, in one statement. Returns the ids stored.
async fn store_new(
    conn: &mut AsyncPgConnection,
    order: &[&NewEvent],
) -> Result<HashSet<Uuid>, DbError> {
    let longest = order
        .iter()
        .map(|e| e.dedup_horizon)
        .max()
        .unwrap_or_default();
    let inserted: Vec<InsertedId> = prepared(&STORE_NEW)
        .bind::<Array<diesel::sql_types::Uuid>, _>(order.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(order.iter().map(|e| e.source.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            order
                .iter()
                .map(|e| e.dedup_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            order
                .iter()
                .map(|e| e.resource_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            order
                .iter()
                .map(|e| e.status.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Jsonb>, _>(order.iter().map(|e| &e.headers).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(order.iter().map(|e| e.query.as_str()).collect::<Vec<_>>())
        .bind::<Array<Bytea>, _>(order.iter().map(|e| e.body.as_slice()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            order
                .iter()
                .map(|e| e.traceparent.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<BigInt>, _>(
            order
                .iter()
                .map(|e| millis(e.dedup_horizon))
                .collect::<Vec<_>>(),
        )
        .bind::<BigInt, _>(millis(longest))
        .load(conn)
        .await?;
    Ok(inserted.into_iter().map(|r| r.id).collect())
}

/// The committed keys among `events`' that are inside their horizon, by key: the event
/// they are a duplicate of (the newest, if the key was received again after an earlier
/// horizon) and what is left of the horizon. Read-only, no locks.
async fn live_keys(conn: &mut AsyncPgConnection, events: &[&NewEvent]) -> Result<Live, DbError> {
    let longest = events
        .iter()
        .map(|e| e.dedup_horizon)
        .max()
        .unwrap_or_default();
    let rows: Vec<LiveKey> = prepared(&LIVE_KEYS)
        .bind::<Array<Text>, _>(events.iter().map(|e| e.source.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            events
                .iter()
                .map(|e| e.dedup_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<BigInt>, _>(
            events
                .iter()
                .map(|e| millis(e.dedup_horizon))
                .collect::<Vec<_>>(),
        )
        .bind::<BigInt, _>(millis(longest))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|k| {
            let left = Duration::from_millis(u64::try_from(k.expires_in_ms).unwrap_or(0));
            ((k.source, k.dedup_key), (k.event_id, left))
        })
        .collect())
}

/// The key of the outbox row a stored batch wrote: its smallest new event id (the
/// statement that stores a batch writes one outbox row for all the events it stored, and
/// keys it so that ingest knows it from the answer alone). `None` if nothing was stored.
pub fn outbox_key(results: &[InsertResult]) -> Option<Uuid> {
    results
        .iter()
        .filter(|r| !r.duplicate)
        .map(|r| r.event_id)
        .min()
}

/// Marks batches as confirmed by the broker: their outbox rows (by [`outbox_key`]) go,
/// so their events count as `published`. The events rows are not touched, so this never
/// waits on (or undoes) a worker that is already processing them; returns how many rows
/// were still waiting.
///
/// # Errors
/// [`DbError`].
pub async fn mark_published(
    conn: &mut AsyncPgConnection,
    batches: &[Uuid],
) -> Result<usize, DbError> {
    if batches.is_empty() {
        return Ok(0);
    }
    Ok(
        diesel::delete(outbox::table.filter(outbox::id.eq_any(batches)))
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

/// What [`claim_outbox`] claimed: outbox rows and the events they list.
#[derive(Debug, Clone, Default)]
pub struct OutboxClaim {
    /// The claimed rows' keys, for [`mark_published`] once the broker confirmed.
    pub batches: Vec<Uuid>,
    /// Their events, in id order.
    pub events: Vec<OutboxEntry>,
}

/// Claims up to `limit` outbox rows (group commits) written before `cutoff` and still
/// unconfirmed, oldest first, with `FOR UPDATE SKIP LOCKED`: call it inside a transaction
/// that publishes their events and then [`mark_published`]s the batches; concurrent
/// relays split the backlog instead of publishing it twice. A row none of whose events
/// exists any more (deleted by hand) is deleted here, not returned.
///
/// # Errors
/// [`DbError`].
pub async fn claim_outbox(
    conn: &mut AsyncPgConnection,
    cutoff: OffsetDateTime,
    limit: i64,
) -> Result<OutboxClaim, DbError> {
    // In id order (UUIDv7: arrival order) along the primary key; only outbox rows are
    // locked, never the events a worker may hold.
    let claimed: Vec<(Uuid, Vec<Option<Uuid>>)> = outbox::table
        .filter(outbox::received_at.lt(cutoff))
        .order(outbox::id)
        .limit(limit)
        .select((outbox::id, outbox::event_ids))
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    if claimed.is_empty() {
        return Ok(OutboxClaim::default());
    }
    let mut ids: Vec<Uuid> = claimed
        .iter()
        .flat_map(|(_, ids)| ids.iter().flatten().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    // The bounds prune the other partitions (`processing::id_bounds`).
    let (first, last) = crate::processing::id_bounds(ids.iter().copied()).unwrap_or_default();
    let events: Vec<OutboxEntry> = events::table
        .filter(events::id.eq_any(&ids))
        .filter(events::id.between(first, last))
        .order(events::id)
        .select((events::id, events::source, events::traceparent))
        .load(conn)
        .await?;
    let exists = |id: &Uuid| events.binary_search_by(|e| e.id.cmp(id)).is_ok();
    let (batches, orphans): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .partition(|(_, ids)| ids.iter().flatten().any(exists));
    // Rows whose events were all deleted by hand: nothing to publish, so they go now.
    let orphans: Vec<Uuid> = orphans.into_iter().map(|(batch, _)| batch).collect();
    mark_published(conn, &orphans).await?;
    Ok(OutboxClaim {
        batches: batches.into_iter().map(|(batch, _)| batch).collect(),
        events,
    })
}

/// Counts events committed but not yet confirmed by the broker (the outbox backlog).
/// Read-only; cheap, because the outbox table holds only those rows.
///
/// # Errors
/// [`DbError`].
pub async fn count_outbox(conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let waiting: Waiting = diesel::sql_query(
        "SELECT coalesce(sum(cardinality(event_ids)), 0)::bigint AS n FROM outbox",
    )
    .get_result(conn)
    .await?;
    Ok(waiting.n)
}
