//! HTTP deliveries of decided events: the intent, committed with the decision
//! ([`enqueue_deliveries`]), either as a due `deliveries` row or as an entry of a lease
//! that hands the first attempt to the deciding worker; the claim that leases due rows to
//! one worker ([`claim_deliveries`]); the expansion of leases whose worker died
//! ([`expand_expired_leases`]); the result ([`settle_deliveries`]); and what operators
//! read and redrive (leased entries read as pending deliveries).

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_domain::{DeliveryState, Headers};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DbError;
use crate::prepared::prepared;
use crate::processing::decode_headers;

/// The intent to deliver one decided event to one destination.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// The event.
    pub event_id: Uuid,
    /// The destination's name.
    pub destination: &'a str,
    /// The event's source.
    pub source: &'a str,
    /// Its resource key, if any (ordered destinations serialise on it).
    pub resource_key: Option<&'a str>,
    /// The status the event reported, if any (`hookline-status`).
    pub status: Option<&'a str>,
    /// The lifecycle outcome, if the source has a lifecycle (`hookline-outcome`).
    pub outcome: Option<&'a str>,
    /// `Some(lease)`: the row starts leased to the caller for its first attempt
    /// (`attempts` = 1, due again only once `lease` has passed), so the caller sends it
    /// straight after the commit, without a claim. `None`: the row is due at once, for
    /// whichever worker claims it ([`claim_deliveries`]).
    pub leased: Option<Duration>,
}

/// Where a first attempt handed to the deciding worker is recorded: entry `index`
/// (1-based) of lease `lease` (`delivery_leases`), until [`settle_deliveries`] writes its
/// `deliveries` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSlot {
    /// The lease row's id.
    pub lease: i64,
    /// The entry's position in the lease's arrays (1-based, as SQL arrays are).
    pub index: i32,
}

/// A delivery intent that was new, and is leased to the caller for its first attempt
/// ([`NewDelivery::leased`]). It becomes a [`ClaimedDelivery`] once its payload is read
/// ([`leased_deliveries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedDelivery {
    /// Where its result goes.
    pub slot: LeaseSlot,
    /// The event (`webhook-id`).
    pub event_id: Uuid,
    /// The destination's name.
    pub destination: String,
    /// The event's source.
    pub source: String,
    /// Its resource key.
    pub resource_key: Option<String>,
    /// The status it reported.
    pub status: Option<String>,
    /// The lifecycle outcome.
    pub outcome: Option<String>,
}

/// Commits the delivery intents, one per (event, destination), in the caller's decision
/// transaction. An intent due at once ([`NewDelivery::leased`] `None`) is a pending
/// `deliveries` row; the leased ones of each destination become one `delivery_leases` row
/// (their `deliveries` rows are written once, by [`settle_deliveries`], with the first
/// attempt's result). An intent whose (event, destination) already has a delivery (a
/// replayed event) is left out: redrive is how a settled delivery is sent again (the check
/// is a scalar subquery, one index probe per intent, whatever the statistics: as
/// `NOT EXISTS` PostgreSQL may plan an anti-join that reads every delivery, and a plan made
/// on an empty table is kept by the prepared statement as the table grows). Returns
/// the leased intents, to send after the commit. Rows are inserted in the order given, so
/// for one resource the ids follow the decision order (what `ordered = true` delivers by).
///
/// # Errors
/// [`DbError`].
pub async fn enqueue_deliveries(
    conn: &mut AsyncPgConnection,
    rows: &[NewDelivery<'_>],
) -> Result<Vec<LeasedDelivery>, DbError> {
    let due: Vec<&NewDelivery<'_>> = rows.iter().filter(|r| r.leased.is_none()).collect();
    if !due.is_empty() {
        prepared(
            "INSERT INTO deliveries (event_id, destination, source, resource_key, status, outcome) \
             SELECT e, d, s, r, st, o \
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
                    WITH ORDINALITY AS u(e, d, s, r, st, o, n) ORDER BY n \
             ON CONFLICT (event_id, destination) DO NOTHING",
        )
        .bind::<Array<SqlUuid>, _>(due.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(due.iter().map(|r| r.destination).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(due.iter().map(|r| r.source).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(due.iter().map(|r| r.resource_key).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(due.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(due.iter().map(|r| r.outcome).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    let mut leased = Vec::new();
    let mut groups: Vec<(&str, Duration, Vec<&NewDelivery<'_>>)> = Vec::new();
    for row in rows {
        let Some(lease) = row.leased else { continue };
        match groups
            .iter_mut()
            .find(|(d, l, _)| *d == row.destination && *l == lease)
        {
            Some((_, _, group)) => group.push(row),
            None => groups.push((row.destination, lease, vec![row])),
        }
    }
    for (destination, lease, group) in groups {
        let new: Vec<NewLease> = prepared(
            "INSERT INTO delivery_leases (destination, entries, event_ids, sources, resource_keys, \
                                          statuses, outcomes, expires_at) \
             SELECT $1, count(*), array_agg(u.e ORDER BY u.n), array_agg(u.s ORDER BY u.n), \
                    array_agg(u.r ORDER BY u.n), array_agg(u.st ORDER BY u.n), \
                    array_agg(u.o ORDER BY u.n), now() + $7 * interval '1 millisecond' \
               FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) \
                    WITH ORDINALITY AS u(e, s, r, st, o, n) \
              WHERE (SELECT 1 FROM deliveries d \
                      WHERE d.event_id = u.e AND d.destination = $1 LIMIT 1) IS NULL \
             HAVING count(*) > 0 \
             RETURNING id, event_ids",
        )
        .bind::<Text, _>(destination)
        .bind::<Array<SqlUuid>, _>(group.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(group.iter().map(|r| r.source).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(group.iter().map(|r| r.resource_key).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(group.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(group.iter().map(|r| r.outcome).collect::<Vec<_>>())
        .bind::<BigInt, _>(millis(lease))
        .load(conn)
        .await?;
        for lease in new {
            // The lease keeps the group's order, less the intents left out: one pass.
            let mut rows = group.iter();
            for (position, event_id) in lease.event_ids.iter().enumerate() {
                let Some(row) = rows.find(|r| r.event_id == *event_id) else {
                    continue;
                };
                leased.push(LeasedDelivery {
                    slot: LeaseSlot {
                        lease: lease.id,
                        index: i32::try_from(position + 1).unwrap_or(i32::MAX),
                    },
                    event_id: row.event_id,
                    destination: destination.to_string(),
                    source: row.source.to_string(),
                    resource_key: row.resource_key.map(str::to_string),
                    status: row.status.map(str::to_string),
                    outcome: row.outcome.map(str::to_string),
                });
            }
        }
    }
    Ok(leased)
}

#[derive(QueryableByName)]
struct NewLease {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Array<SqlUuid>)]
    event_ids: Vec<Uuid>,
}

/// Expands up to `limit` leases that ran out (their worker died, or could not send or
/// record the first attempts in time) into pending `deliveries` rows, due at once with
/// attempt 1 counted as made, and deletes them, in one statement; entries that already
/// have their row (settled before the lease ran out) are left as they are. Leases a
/// settle holds are skipped (`SKIP LOCKED`): the settle records them itself. Returns the
/// rows inserted.
///
/// # Errors
/// [`DbError`].
pub async fn expand_expired_leases(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<usize, DbError> {
    Ok(prepared(
        "WITH gone AS ( \
           DELETE FROM delivery_leases WHERE id = ANY(ARRAY( \
             SELECT id FROM delivery_leases WHERE expires_at <= now() \
              ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)) \
           RETURNING id, destination, event_ids, sources, resource_keys, statuses, outcomes, \
                     created_at) \
         INSERT INTO deliveries (event_id, destination, source, resource_key, status, outcome, \
                                 attempts, next_attempt_at, created_at) \
         SELECT e.event_id, g.destination, e.source, e.resource_key, e.status, e.outcome, 1, now(), \
                g.created_at \
           FROM gone g, \
                unnest(g.event_ids, g.sources, g.resource_keys, g.statuses, g.outcomes) \
                WITH ORDINALITY AS e(event_id, source, resource_key, status, outcome, n) \
          ORDER BY g.id, e.n \
         ON CONFLICT (event_id, destination) DO NOTHING",
    )
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await?)
}

/// `duration` in whole milliseconds, as the SQL intervals here take it.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[derive(QueryableByName)]
struct PayloadRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    headers: serde_json::Value,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    body: Vec<u8>,
    #[diesel(sql_type = Nullable<Text>)]
    traceparent: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    received_at: OffsetDateTime,
}

/// The leased deliveries `leased` with their events' payloads read (one read-only
/// statement): what [`claim_deliveries`] returns for rows it leased itself. A delivery
/// whose payload is gone gets `payload: None`.
///
/// # Errors
/// [`DbError`].
pub async fn leased_deliveries(
    conn: &mut AsyncPgConnection,
    leased: Vec<LeasedDelivery>,
) -> Result<Vec<ClaimedDelivery>, DbError> {
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<Uuid> = leased.iter().map(|d| d.event_id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Both bounds: see `processing::id_bounds`.
    let (first, last) = crate::processing::id_bounds(ids.iter().copied()).unwrap_or_default();
    let rows: Vec<PayloadRow> = prepared(
        "SELECT e.id, p.headers, p.body, e.traceparent, e.received_at \
           FROM events e JOIN event_payloads p ON p.id = e.id \
          WHERE e.id = ANY($1) AND e.id BETWEEN $2 AND $3 AND p.id BETWEEN $2 AND $3",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<SqlUuid, _>(first)
    .bind::<SqlUuid, _>(last)
    .load(conn)
    .await?;
    let mut payloads: std::collections::HashMap<Uuid, DeliveryPayload> = rows
        .into_iter()
        .map(|r| {
            (
                r.id,
                DeliveryPayload {
                    headers: decode_headers(&r.headers),
                    body: r.body,
                    traceparent: r.traceparent,
                    received_at: r.received_at,
                },
            )
        })
        .collect();
    let mut out: Vec<ClaimedDelivery> = Vec::with_capacity(leased.len());
    for d in leased {
        // An event repeated in `leased` (deliveries to several destinations) shares its
        // payload; the usual call is one destination's, with each event once.
        let payload = payloads.remove(&d.event_id).or_else(|| {
            out.iter()
                .find(|o| o.event_id == d.event_id)
                .and_then(|o| o.payload.clone())
        });
        out.push(ClaimedDelivery {
            lease: Some(d.slot),
            event_id: d.event_id,
            source: d.source,
            resource_key: d.resource_key,
            status: d.status,
            outcome: d.outcome,
            attempt: 1,
            payload,
        });
    }
    Ok(out)
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Nullable<Text>)]
    resource_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    outcome: Option<String>,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<diesel::sql_types::Jsonb>)]
    headers: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Bytea>)]
    body: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    traceparent: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    received_at: Option<OffsetDateTime>,
}

/// A delivery leased to this worker for one attempt.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// `Some`: a first attempt handed to this worker by its decision, recorded in a lease
    /// until settled; `None`: a `deliveries` row this worker claimed.
    pub lease: Option<LeaseSlot>,
    /// The event (`webhook-id`).
    pub event_id: Uuid,
    /// The event's source.
    pub source: String,
    /// Its resource key.
    pub resource_key: Option<String>,
    /// The status it reported.
    pub status: Option<String>,
    /// The lifecycle outcome.
    pub outcome: Option<String>,
    /// This attempt's number (1 for the first). [`settle_deliveries`] only records a
    /// result for the attempt that still holds the lease.
    pub attempt: i32,
    /// The event's payload; `None` when it is gone (retention pruned the payload or
    /// dropped the event).
    pub payload: Option<DeliveryPayload>,
}

/// What is POSTed: the event's raw body and its content type, and its trace.
#[derive(Debug, Clone)]
pub struct DeliveryPayload {
    /// The request headers ingest stored.
    pub headers: Headers,
    /// The raw body.
    pub body: Vec<u8>,
    /// The ingest request's W3C trace context.
    pub traceparent: Option<String>,
    /// When ingest committed the event.
    pub received_at: OffsetDateTime,
}

/// Leases up to `limit` due pending deliveries of `destination` to the caller
/// (`FOR UPDATE SKIP LOCKED`, so concurrent workers take disjoint rows): each one's
/// attempt count goes up by one and its next attempt moves `lease` ahead, all in one
/// statement that commits on its own. A worker killed mid-attempt thus loses nothing:
/// once the lease runs out the row is due again, for any worker. With `ordered`, only
/// the oldest pending delivery of each resource is eligible, so one resource has at most
/// one delivery in flight and they go in decision order.
///
/// # Errors
/// [`DbError`].
pub async fn claim_deliveries(
    conn: &mut AsyncPgConnection,
    destination: &str,
    ordered: bool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedDelivery>, DbError> {
    let rows: Vec<ClaimedRow> = prepared(
        "WITH claimed AS ( \
           UPDATE deliveries d \
              SET attempts = d.attempts + 1, \
                  next_attempt_at = now() + $4 * interval '1 millisecond' \
            WHERE d.id = ANY(ARRAY( \
              SELECT c.id FROM deliveries c \
               WHERE c.destination = $1 AND c.state = 'pending' AND c.next_attempt_at <= now() \
                 AND (NOT $2 OR NOT EXISTS ( \
                      SELECT 1 FROM deliveries p \
                       WHERE p.destination = c.destination AND p.source = c.source \
                         AND p.resource_key = c.resource_key AND p.state = 'pending' \
                         AND p.id < c.id)) \
               ORDER BY c.next_attempt_at, c.id \
               LIMIT $3 \
               FOR UPDATE SKIP LOCKED)) \
           RETURNING d.id, d.event_id, d.source, d.resource_key, d.status, d.outcome, d.attempts) \
         SELECT c.event_id, c.source, c.resource_key, c.status, c.outcome, c.attempts, \
                p.headers, p.body, e.traceparent, e.received_at \
           FROM claimed c LEFT JOIN events e ON e.id = c.event_id \
                LEFT JOIN event_payloads p ON p.id = c.event_id \
          ORDER BY c.id",
    )
    .bind::<Text, _>(destination)
    .bind::<Bool, _>(ordered)
    .bind::<BigInt, _>(limit)
    .bind::<BigInt, _>(millis(lease))
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ClaimedDelivery {
            lease: None,
            event_id: r.event_id,
            source: r.source,
            resource_key: r.resource_key,
            status: r.status,
            outcome: r.outcome,
            attempt: r.attempts,
            payload: match (r.headers, r.body, r.received_at) {
                (Some(headers), Some(body), Some(received_at)) => Some(DeliveryPayload {
                    headers: decode_headers(&headers),
                    body,
                    traceparent: r.traceparent,
                    received_at,
                }),
                _ => None,
            },
        })
        .collect())
}

/// The result of one attempt.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    /// The event.
    pub event_id: Uuid,
    /// The destination.
    pub destination: String,
    /// The lease holding the delivery, for a first attempt handed over by the decision
    /// ([`ClaimedDelivery::lease`]).
    pub lease: Option<LeaseSlot>,
    /// The event's source, resource key, reported status and outcome
    /// ([`ClaimedDelivery`]): a leased delivery's row is written with them (the lease's
    /// arrays are not read back).
    pub source: String,
    /// See [`Self::source`].
    pub resource_key: Option<String>,
    /// See [`Self::source`].
    pub status: Option<String>,
    /// See [`Self::source`].
    pub outcome: Option<String>,
    /// The attempt number the claim returned (the fence: a stale result is dropped).
    pub attempt: i32,
    /// The new state: `Pending` (retry after `retry_in`), `Delivered`, `Failed`, `Dead`.
    pub state: DeliveryState,
    /// The HTTP status, if a response arrived.
    pub last_status: Option<i32>,
    /// What went wrong, if anything.
    pub last_error: Option<String>,
    /// How long the attempt took.
    pub latency_ms: i32,
    /// For a retry: how long until the next attempt.
    pub retry_in: Option<Duration>,
}

#[derive(QueryableByName)]
struct SettledLease {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Records attempt results, a few statements for any number of them.
///
/// A result of a leased first attempt writes its `deliveries` row, in the state the
/// attempt left it, while holding its lease (`FOR UPDATE`); a lease whose entries all
/// have their row is deleted, by the same statement (its other leases get their count:
/// the two writes never touch the same lease). If the lease is gone (it ran out and was expanded,
/// [`expand_expired_leases`]), the result updates the expanded row like any other.
///
/// Any other result applies only while its row is still pending at that attempt number:
/// if the lease ran out and another worker claimed the row again, the older attempt's
/// result is dropped (the newer attempt owns the row). Returns how many results were
/// recorded.
///
/// # Errors
/// [`DbError`].
pub async fn settle_deliveries(
    conn: &mut AsyncPgConnection,
    results: &[DeliveryResult],
) -> Result<usize, DbError> {
    let leased: Vec<(&DeliveryResult, LeaseSlot)> = results
        .iter()
        .filter_map(|r| r.lease.map(|slot| (r, slot)))
        .collect();
    let mut recorded = 0;
    let mut held: Vec<i64> = Vec::new();
    if !leased.is_empty() {
        let settled: Vec<SettledLease> = prepared(
            "WITH u AS ( \
               SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], \
                                    $6::text[], $7::text[], $8::int[], $9::text[], $10::int[], \
                                    $11::bigint[]) \
                        AS u(lease, event_id, source, resource_key, status, outcome, state, \
                             last_status, last_error, latency_ms, retry_ms)), \
             l AS ( \
               SELECT id, destination, created_at FROM delivery_leases \
                WHERE id IN (SELECT lease FROM u) FOR UPDATE), \
             ins AS ( \
               INSERT INTO deliveries (event_id, destination, source, resource_key, status, outcome, \
                                       state, attempts, last_status, last_error, latency_ms, \
                                       next_attempt_at, created_at, delivered_at) \
               SELECT u.event_id, l.destination, u.source, u.resource_key, u.status, u.outcome, \
                      u.state, 1, u.last_status, u.last_error, u.latency_ms, \
                      now() + coalesce(u.retry_ms, 0) * interval '1 millisecond', l.created_at, \
                      CASE WHEN u.state = 'delivered' THEN now() END \
                 FROM u JOIN l ON l.id = u.lease \
               ON CONFLICT (event_id, destination) DO NOTHING), \
             c AS (SELECT u.lease, count(*)::int AS n FROM u JOIN l ON l.id = u.lease \
                    GROUP BY u.lease), \
             done AS ( \
               DELETE FROM delivery_leases d USING c \
                WHERE d.id = c.lease AND d.settled + c.n >= d.entries RETURNING d.id), \
             kept AS ( \
               UPDATE delivery_leases d SET settled = d.settled + c.n FROM c \
                WHERE d.id = c.lease AND d.settled + c.n < d.entries RETURNING d.id) \
           SELECT id FROM done UNION ALL SELECT id FROM kept",
        )
        .bind::<Array<BigInt>, _>(leased.iter().map(|(_, s)| s.lease).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(leased.iter().map(|(r, _)| r.event_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            leased
                .iter()
                .map(|(r, _)| r.source.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            leased
                .iter()
                .map(|(r, _)| r.resource_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            leased
                .iter()
                .map(|(r, _)| r.status.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            leased
                .iter()
                .map(|(r, _)| r.outcome.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(
            leased
                .iter()
                .map(|(r, _)| r.state.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Integer>>, _>(
            leased.iter().map(|(r, _)| r.last_status).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            leased
                .iter()
                .map(|(r, _)| r.last_error.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Integer>, _>(leased.iter().map(|(r, _)| r.latency_ms).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(
            leased
                .iter()
                .map(|(r, _)| r.retry_in.map(millis))
                .collect::<Vec<_>>(),
        )
        .load(conn)
        .await?;
        held = settled.into_iter().map(|l| l.id).collect();
    }
    let rows: Vec<&DeliveryResult> = results
        .iter()
        .filter(|r| r.lease.is_none_or(|slot| !held.contains(&slot.lease)))
        .collect();
    recorded += results.len() - rows.len();
    if rows.is_empty() {
        return Ok(recorded);
    }
    recorded += prepared(
        "UPDATE deliveries d \
            SET state = u.state, last_status = u.last_status, last_error = u.last_error, \
                latency_ms = u.latency_ms, \
                next_attempt_at = CASE WHEN u.retry_ms IS NULL THEN d.next_attempt_at \
                                       ELSE now() + u.retry_ms * interval '1 millisecond' END, \
                delivered_at = CASE WHEN u.state = 'delivered' THEN now() ELSE d.delivered_at END \
           FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[], \
                       $7::int[], $8::bigint[]) AS u(event_id, destination, attempts, state, \
                                                     last_status, last_error, latency_ms, retry_ms) \
          WHERE d.event_id = u.event_id AND d.destination = u.destination \
            AND d.attempts = u.attempts AND d.state = 'pending'",
    )
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        rows.iter()
            .map(|r| r.destination.as_str())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Integer>>, _>(rows.iter().map(|r| r.last_status).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        rows.iter()
            .map(|r| r.last_error.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Integer>, _>(rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(
        rows.iter()
            .map(|r| r.retry_in.map(millis))
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(recorded)
}

#[derive(QueryableByName)]
struct Backlog {
    #[diesel(sql_type = Text)]
    destination: String,
    #[diesel(sql_type = BigInt)]
    pending: i64,
}

/// Pending deliveries per destination (the backlog gauge), leased first attempts
/// included. Reads the partial index and the (small) lease table.
///
/// # Errors
/// [`DbError`].
pub async fn pending_deliveries(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(String, i64)>, DbError> {
    let rows: Vec<Backlog> = prepared(
        "SELECT destination, sum(n)::bigint AS pending FROM ( \
           SELECT destination, count(*) AS n FROM deliveries \
            WHERE state = 'pending' GROUP BY destination \
           UNION ALL \
           SELECT destination, sum(entries - settled) AS n FROM delivery_leases \
            GROUP BY destination) b \
          GROUP BY destination",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.destination, r.pending))
        .collect())
}

#[derive(QueryableByName)]
struct ViewRow {
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    destination: String,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Integer>)]
    last_status: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    latency_ms: Option<i32>,
    #[diesel(sql_type = Timestamptz)]
    next_attempt_at: OffsetDateTime,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    delivered_at: Option<OffsetDateTime>,
}

/// One delivery as operators see it.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    /// The event.
    pub event_id: Uuid,
    /// The destination.
    pub destination: String,
    /// The event's source.
    pub source: String,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made (or in flight).
    pub attempts: i32,
    /// The last HTTP status received.
    pub last_status: Option<i32>,
    /// The last error.
    pub last_error: Option<String>,
    /// The last attempt's duration.
    pub latency_ms: Option<i32>,
    /// When a pending delivery is due (or its lease ends).
    pub next_attempt_at: OffsetDateTime,
    /// When the intent was committed.
    pub created_at: OffsetDateTime,
    /// When the destination answered 2xx.
    pub delivered_at: Option<OffsetDateTime>,
}

impl TryFrom<ViewRow> for DeliveryView {
    type Error = DbError;

    fn try_from(r: ViewRow) -> Result<Self, DbError> {
        Ok(DeliveryView {
            event_id: r.event_id,
            destination: r.destination,
            source: r.source,
            state: r
                .state
                .parse()
                .map_err(|e: hookline_domain::UnknownDeliveryState| {
                    DbError::Query(diesel::result::Error::DeserializationError(Box::new(e)))
                })?,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            latency_ms: r.latency_ms,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        })
    }
}

const VIEW_COLUMNS: &str = "event_id, destination, source, state, attempts, last_status, \
    last_error, latency_ms, next_attempt_at, created_at, delivered_at";

/// The entries of `delivery_leases` that have no `deliveries` row yet, as the pending
/// deliveries they are (attempt 1 in flight, due again when the lease ends), with `l` the
/// lease and `e` the entry; callers add their conditions after it with `AND`.
const LEASED_VIEW: &str = "SELECT e.event_id, l.destination, e.source, \
       'pending' AS state, 1 AS attempts, NULL::int AS last_status, NULL::text AS last_error, \
       NULL::int AS latency_ms, l.expires_at AS next_attempt_at, l.created_at, \
       NULL::timestamptz AS delivered_at \
  FROM delivery_leases l, unnest(l.event_ids, l.sources) WITH ORDINALITY AS e(event_id, source, n) \
 WHERE (SELECT 1 FROM deliveries d \
         WHERE d.event_id = e.event_id AND d.destination = l.destination LIMIT 1) IS NULL";

/// The deliveries of one event, by destination name, first attempts in flight included.
/// No locks.
///
/// # Errors
/// [`DbError`].
pub async fn event_deliveries(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
) -> Result<Vec<DeliveryView>, DbError> {
    let rows: Vec<ViewRow> = diesel::sql_query(format!(
        "SELECT {VIEW_COLUMNS} FROM deliveries WHERE event_id = $1 \
         UNION ALL {LEASED_VIEW} AND $1 = ANY(l.event_ids) AND e.event_id = $1 \
         ORDER BY destination"
    ))
    .bind::<SqlUuid, _>(event_id)
    .load(conn)
    .await?;
    rows.into_iter().map(DeliveryView::try_from).collect()
}

/// Which deliveries an operator means.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this destination.
    pub destination: Option<String>,
    /// Only these states (empty: any).
    pub states: Vec<DeliveryState>,
    /// Only intents committed at or after this time.
    pub since: Option<OffsetDateTime>,
}

/// Up to `limit` deliveries matching `filter`: first attempts in flight first (newest
/// first), then the recorded ones, newest first. No locks.
///
/// # Errors
/// [`DbError`].
pub async fn list_deliveries(
    conn: &mut AsyncPgConnection,
    filter: &DeliveryFilter,
    limit: i64,
) -> Result<Vec<DeliveryView>, DbError> {
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let mut rows: Vec<ViewRow> = Vec::new();
    if states.is_empty() || filter.states.contains(&DeliveryState::Pending) {
        rows = diesel::sql_query(format!(
            "{LEASED_VIEW} AND ($1::text IS NULL OR l.destination = $1) \
               AND ($2::timestamptz IS NULL OR l.created_at >= $2) \
             ORDER BY l.id DESC, e.n DESC LIMIT $3"
        ))
        .bind::<Nullable<Text>, _>(filter.destination.as_deref())
        .bind::<Nullable<Timestamptz>, _>(filter.since)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?;
    }
    let left = limit - i64::try_from(rows.len()).unwrap_or(limit);
    if left > 0 {
        rows.extend(
            diesel::sql_query(format!(
                "SELECT {VIEW_COLUMNS} FROM deliveries \
                  WHERE ($1::text IS NULL OR destination = $1) \
                    AND (cardinality($2::text[]) = 0 OR state = ANY($2)) \
                    AND ($3::timestamptz IS NULL OR created_at >= $3) \
                  ORDER BY id DESC LIMIT $4"
            ))
            .bind::<Nullable<Text>, _>(filter.destination.as_deref())
            .bind::<Array<Text>, _>(states)
            .bind::<Nullable<Timestamptz>, _>(filter.since)
            .bind::<BigInt, _>(left)
            .load::<ViewRow>(conn)
            .await?,
        );
    }
    rows.into_iter().map(DeliveryView::try_from).collect()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How many settled deliveries of `destination` in `states` (committed since `since`)
/// a redrive would send again. No locks.
///
/// # Errors
/// [`DbError`].
pub async fn count_redrivable(
    conn: &mut AsyncPgConnection,
    destination: &str,
    states: &[DeliveryState],
    since: Option<OffsetDateTime>,
) -> Result<i64, DbError> {
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM deliveries \
          WHERE destination = $1 AND state = ANY($2) AND state <> 'pending' \
            AND ($3::timestamptz IS NULL OR created_at >= $3)",
    )
    .bind::<Text, _>(destination)
    .bind::<Array<Text>, _>(states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
    .bind::<Nullable<Timestamptz>, _>(since)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

/// Makes up to `limit` settled deliveries of `destination` in `states` (committed since
/// `since`) pending again, due now, with their attempt count reset; returns how many.
/// Idempotent: a redriven row is pending, so a second call does not pick it again. Run
/// it in a loop until it returns 0 (small batches, no long row locks).
///
/// # Errors
/// [`DbError`].
pub async fn redrive_deliveries(
    conn: &mut AsyncPgConnection,
    destination: &str,
    states: &[DeliveryState],
    since: Option<OffsetDateTime>,
    limit: i64,
) -> Result<usize, DbError> {
    Ok(diesel::sql_query(
        "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = now(), \
                last_error = NULL \
          WHERE id = ANY(ARRAY( \
                SELECT id FROM deliveries \
                 WHERE destination = $1 AND state = ANY($2) AND state <> 'pending' \
                   AND ($3::timestamptz IS NULL OR created_at >= $3) \
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED))",
    )
    .bind::<Text, _>(destination)
    .bind::<Array<Text>, _>(states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
    .bind::<Nullable<Timestamptz>, _>(since)
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await?)
}

/// Pauses `destination` (it answered 410 Gone): workers stop sending to it until
/// [`resume_destination`]. Idempotent; the first reason is kept.
///
/// # Errors
/// [`DbError`].
pub async fn pause_destination(
    conn: &mut AsyncPgConnection,
    destination: &str,
    reason: &str,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO destination_pauses (destination, reason) VALUES ($1, $2) \
         ON CONFLICT (destination) DO NOTHING",
    )
    .bind::<Text, _>(destination)
    .bind::<Text, _>(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Lifts a pause; returns whether there was one.
///
/// # Errors
/// [`DbError`].
pub async fn resume_destination(
    conn: &mut AsyncPgConnection,
    destination: &str,
) -> Result<bool, DbError> {
    let n = diesel::sql_query("DELETE FROM destination_pauses WHERE destination = $1")
        .bind::<Text, _>(destination)
        .execute(conn)
        .await?;
    Ok(n > 0)
}

#[derive(QueryableByName)]
struct PauseRow {
    #[diesel(sql_type = Text)]
    destination: String,
    #[diesel(sql_type = Text)]
    reason: String,
}

/// Every paused destination and why. No locks.
///
/// # Errors
/// [`DbError`].
pub async fn paused_destinations(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(String, String)>, DbError> {
    let rows: Vec<PauseRow> = prepared("SELECT destination, reason FROM destination_pauses")
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.destination, r.reason))
        .collect())
}
