//! Queries behind `make overload` and `make chaos`: a stall of the events table on
//! purpose, and the integrity figures a chaos run must end with (all zero).

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use hookline_domain::{EventState, LifecycleConfig, Outcome};
use serde::Serialize;
use uuid::Uuid;

use crate::DbError;
use crate::columns::{OutcomeColumn, StateColumn};

/// Takes `ACCESS EXCLUSIVE` on `events` inside a transaction this opens: every insert
/// into and read of `events` waits until [`release_events_table`] (or the connection
/// closes). A database that hangs, for benchmarks; nothing in Hookline calls it.
///
/// # Errors
/// [`DbError`].
pub async fn lock_events_table(conn: &mut AsyncPgConnection) -> Result<(), DbError> {
    conn.batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .await?;
    Ok(())
}

/// Ends [`lock_events_table`]'s transaction (it wrote nothing), releasing the lock.
///
/// # Errors
/// [`DbError`].
pub async fn release_events_table(conn: &mut AsyncPgConnection) -> Result<(), DbError> {
    conn.batch_execute("ROLLBACK").await?;
    Ok(())
}

/// What a chaos run left in PostgreSQL for one source. Every field but `events` and
/// `resources` must be 0.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, Serialize)]
pub struct IntegrityFigures {
    /// Events of the source.
    #[diesel(sql_type = BigInt)]
    pub events: i64,
    /// Resources of the source.
    #[diesel(sql_type = BigInt)]
    pub resources: i64,
    /// Acknowledged event ids (200/202 answers) with no event row: lost webhooks.
    #[diesel(sql_type = BigInt)]
    pub acknowledged_lost: i64,
    /// Events with more than one transition-log row (operator `forced` rows aside).
    #[diesel(sql_type = BigInt)]
    pub decided_twice: i64,
    /// Processed events of a resource with no transition-log row: decided zero times.
    #[diesel(sql_type = BigInt)]
    pub processed_undecided: i64,
    /// `applied` transitions to a rank at or below the one they left, or out of a
    /// terminal status.
    #[diesel(sql_type = BigInt)]
    pub applied_downgrades: i64,
    /// Resources whose status ranks below the highest status any of their events
    /// carried: an applicable event was lost or wrongly rejected.
    #[diesel(sql_type = BigInt)]
    pub resources_behind: i64,
    /// Events not final (neither `processed`, `failed` nor `dead`).
    #[diesel(sql_type = BigInt)]
    pub not_final: i64,
    /// Events `failed` or `dead`: final, but not decided.
    #[diesel(sql_type = BigInt)]
    pub failed_or_dead: i64,
}

/// [`IntegrityFigures`] for `source`, whose statuses follow `lifecycle`, given the event
/// ids its clients were acknowledged. Read-only, no locks, one statement (one snapshot).
///
/// # Errors
/// [`DbError`].
pub async fn integrity_figures(
    conn: &mut AsyncPgConnection,
    source: &str,
    lifecycle: &LifecycleConfig,
    acknowledged: &[Uuid],
) -> Result<IntegrityFigures, DbError> {
    let (statuses, ranks): (Vec<String>, Vec<i32>) = lifecycle
        .ranks
        .iter()
        .enumerate()
        .flat_map(|(rank, group)| {
            group
                .iter()
                .map(move |s| (s.to_ascii_uppercase(), rank as i32))
        })
        .unzip();
    let terminal: Vec<String> = lifecycle
        .terminal
        .clone()
        .unwrap_or_else(|| lifecycle.ranks.last().cloned().unwrap_or_default())
        .iter()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    Ok(diesel::sql_query(
        "WITH rank AS (SELECT * FROM unnest($2::text[], $3::int[]) AS r(status, rank)), \
         ev AS NOT MATERIALIZED (SELECT id, resource_key, upper(status) AS status, state FROM events WHERE source = $1), \
         tr AS NOT MATERIALIZED (SELECT event_id, upper(from_status) AS from_status, upper(to_status) AS to_status, outcome \
                FROM transitions WHERE source = $1 AND outcome <> $6), \
         top AS (SELECT ev.resource_key, max(rank.rank) AS rank FROM ev JOIN rank USING (status) \
                 GROUP BY ev.resource_key) \
         SELECT \
           (SELECT count(*) FROM ev) AS events, \
           (SELECT count(*) FROM resources WHERE source = $1) AS resources, \
           (SELECT count(*) FROM unnest($5::uuid[]) AS a(id) \
              WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = a.id AND e.source = $1)) \
             AS acknowledged_lost, \
           (SELECT count(*) FROM (SELECT event_id FROM tr GROUP BY event_id HAVING count(*) > 1) twice) \
             AS decided_twice, \
           (SELECT count(*) FROM ev WHERE state = $7 AND resource_key IS NOT NULL \
              AND NOT EXISTS (SELECT 1 FROM tr WHERE tr.event_id = ev.id)) AS processed_undecided, \
           (SELECT count(*) FROM tr \
              LEFT JOIN rank f ON f.status = tr.from_status JOIN rank t ON t.status = tr.to_status \
              WHERE tr.outcome = $8 AND tr.from_status IS NOT NULL \
                AND (f.rank IS NULL OR t.rank <= f.rank OR tr.from_status = ANY($4))) AS applied_downgrades, \
           (SELECT count(*) FROM resources r JOIN rank cur ON cur.status = upper(r.status) \
              JOIN top ON top.resource_key = r.resource_key \
              WHERE r.source = $1 AND cur.rank < top.rank) AS resources_behind, \
           (SELECT count(*) FROM ev WHERE state <> ALL($9)) AS not_final, \
           (SELECT count(*) FROM ev WHERE state = ANY($10)) AS failed_or_dead",
    )
    .bind::<Text, _>(source)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Integer>, _>(ranks)
    .bind::<Array<Text>, _>(terminal)
    .bind::<Array<diesel::sql_types::Uuid>, _>(acknowledged)
    .bind::<Text, _>(OutcomeColumn(Outcome::Forced))
    .bind::<Text, _>(StateColumn(EventState::Processed))
    .bind::<Text, _>(OutcomeColumn(Outcome::Applied))
    .bind::<Array<Text>, _>(vec![
        StateColumn(EventState::Processed),
        StateColumn(EventState::Failed),
        StateColumn(EventState::Dead),
    ])
    .bind::<Array<Text>, _>(vec![StateColumn(EventState::Failed), StateColumn(EventState::Dead)])
    .get_result(conn)
    .await?)
}

/// What `make chaos` checks of one HTTP destination that takes every outcome of a source:
/// once the deliveries have drained, `delivered` equals `processed`, and `pending` and
/// `failed_or_dead` are 0.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, Serialize)]
pub struct DeliveryFigures {
    /// Processed events of the source.
    #[diesel(sql_type = BigInt)]
    pub processed: i64,
    /// Processed events with a `delivered` delivery to the destination.
    #[diesel(sql_type = BigInt)]
    pub delivered: i64,
    /// Deliveries to the destination not settled yet: pending rows, and first attempts
    /// still in a lease.
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    /// Deliveries to the destination `failed` or `dead`.
    #[diesel(sql_type = BigInt)]
    pub failed_or_dead: i64,
}

/// [`DeliveryFigures`] for `source`'s events and `destination`. Read-only, no locks, one
/// statement.
///
/// # Errors
/// [`DbError`].
pub async fn delivery_figures(
    conn: &mut AsyncPgConnection,
    source: &str,
    destination: &str,
) -> Result<DeliveryFigures, DbError> {
    Ok(diesel::sql_query(
        "WITH ev AS (SELECT id FROM events WHERE source = $1 AND state = $3) \
         SELECT (SELECT count(*) FROM ev) AS processed, \
           (SELECT count(*) FROM ev JOIN deliveries d ON d.event_id = ev.id \
              AND d.destination = $2 AND d.state = 'delivered') AS delivered, \
           (SELECT count(*) FROM deliveries WHERE destination = $2 AND state = 'pending') \
             + (SELECT coalesce(sum(entries - settled), 0) FROM delivery_leases \
                 WHERE destination = $2) AS pending, \
           (SELECT count(*) FROM deliveries WHERE destination = $2 \
              AND state IN ('failed', 'dead')) AS failed_or_dead",
    )
    .bind::<Text, _>(source)
    .bind::<Text, _>(destination)
    .bind::<Text, _>(StateColumn(EventState::Processed))
    .get_result(conn)
    .await?)
}

#[derive(QueryableByName)]
struct EventId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// The ids of `source`'s processed events. Read-only.
///
/// # Errors
/// [`DbError`].
pub async fn processed_event_ids(
    conn: &mut AsyncPgConnection,
    source: &str,
) -> Result<Vec<Uuid>, DbError> {
    let rows: Vec<EventId> =
        diesel::sql_query("SELECT id FROM events WHERE source = $1 AND state = $2")
            .bind::<Text, _>(source)
            .bind::<Text, _>(StateColumn(EventState::Processed))
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
