//! Queries behind the operator CLI: selecting events to replay, resetting failed and dead
//! ones, and the per-source monitoring figures.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use hookline_domain::EventState;

use crate::DbError;
use crate::columns::{StateColumn, payload_pruned};
use crate::schema::events;

/// Which events an operator command acts on; unset fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct EventSelection {
    /// Only these ids (empty: any id).
    pub ids: Vec<Uuid>,
    /// Exact source.
    pub source: Option<String>,
    /// Reported state.
    pub state: Option<EventState>,
    /// Received at or after.
    pub since: Option<OffsetDateTime>,
    /// Received before.
    pub until: Option<OffsetDateTime>,
}

impl EventSelection {
    fn query(&self) -> events::BoxedQuery<'_, Pg> {
        let mut query = events::table.into_boxed();
        if !self.ids.is_empty() {
            query = query.filter(events::id.eq_any(&self.ids));
        }
        if let Some(source) = &self.source {
            query = query.filter(events::source.eq(source));
        }
        if let Some(state) = &self.state {
            query = crate::admin::in_state(query, *state);
        }
        if let Some(since) = self.since {
            query = query.filter(events::received_at.ge(since));
        }
        if let Some(until) = self.until {
            query = query.filter(events::received_at.lt(until));
        }
        query
    }
}

/// What a replay needs of one event to republish it (no body, no headers).
#[derive(Debug, Clone, Queryable)]
pub struct ReplayTarget {
    /// Event id.
    pub id: Uuid,
    /// Source name.
    pub source: String,
    /// State when selected, as stored (`received` includes events already published:
    /// both are waiting for a worker).
    #[diesel(deserialize_as = StateColumn)]
    pub state: EventState,
    /// Trace context to carry on.
    pub traceparent: Option<String>,
    /// Retention pruned its payload: it cannot be replayed (a worker or a destination
    /// would get an empty body).
    pub payload_pruned: bool,
}

/// Counts the events `selection` matches. Read-only, no locks: a snapshot that may drift
/// while a replay runs (it sizes a progress bar, nothing more).
///
/// # Errors
/// [`DbError`].
pub async fn count_selected(
    conn: &mut AsyncPgConnection,
    selection: &EventSelection,
) -> Result<i64, DbError> {
    Ok(selection.query().count().get_result(conn).await?)
}

/// Up to `limit` events `selection` matches with an id above `after`, in id (arrival)
/// order. Read-only, no locks: keyset pages, so a long replay holds nothing between
/// batches and neither repeats nor skips an event whose state changes under it.
///
/// # Errors
/// [`DbError`].
pub async fn select_for_replay(
    conn: &mut AsyncPgConnection,
    selection: &EventSelection,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ReplayTarget>, DbError> {
    let mut query = selection.query();
    if let Some(after) = after {
        query = query.filter(events::id.gt(after));
    }
    Ok(query
        .order(events::id)
        .limit(limit.max(1))
        .select((
            events::id,
            events::source,
            events::state,
            events::traceparent,
            payload_pruned(),
        ))
        .load(conn)
        .await?)
}

/// Moves the `failed` or `dead` events among `ids` back to `published` (attempts 0, no
/// error, not processed) and returns how many changed; rows in any other state, and
/// events whose payload retention pruned, are left alone, so it is idempotent and never
/// re-runs a processed event or one without its body. The rows stay locked
/// until the caller's transaction ends: publish their envelopes in that transaction, so
/// the reset commits only together with a confirmed publish.
///
/// # Errors
/// [`DbError`].
pub async fn reset_for_replay(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(events::table)
        .filter(events::id.eq_any(ids))
        .filter(events::state.eq_any([EventState::Failed, EventState::Dead].map(StateColumn)))
        .filter(payload_pruned().eq(false))
        .set((
            events::state.eq(StateColumn(EventState::Published)),
            events::attempts.eq(0),
            events::last_error.eq(None::<String>),
            events::processed_at.eq(None::<OffsetDateTime>),
        ))
        .execute(conn)
        .await?)
}

/// One source's figures over a window, by the events' current state.
#[derive(Debug, Clone, PartialEq, Serialize, QueryableByName)]
pub struct SourceStats {
    /// Source name.
    #[diesel(sql_type = Text)]
    pub source: String,
    /// Events stored (first deliveries; duplicates are not stored).
    #[diesel(sql_type = BigInt)]
    pub received: i64,
    /// Still `received` or `published`: waiting for the broker or a worker.
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    /// `processed`.
    #[diesel(sql_type = BigInt)]
    pub processed: i64,
    /// `failed` (permanently unprocessable).
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    /// `dead` (retries exhausted).
    #[diesel(sql_type = BigInt)]
    pub dead_lettered: i64,
    /// Median received -> processed time of processed events, in milliseconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub p50_ms: Option<f64>,
    /// 99th percentile received -> processed time of processed events, in milliseconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub p99_ms: Option<f64>,
}

/// Per-source counts and received -> processed percentiles for events received in
/// `[since, until)`, sorted by source. Read-only, no locks, one statement (one snapshot).
///
/// # Errors
/// [`DbError`].
pub async fn source_stats(
    conn: &mut AsyncPgConnection,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Vec<SourceStats>, DbError> {
    Ok(diesel::sql_query(
        "SELECT source, \
           count(*) AS received, \
           count(*) FILTER (WHERE state = ANY($3)) AS pending, \
           count(*) FILTER (WHERE state = $4) AS processed, \
           count(*) FILTER (WHERE state = $5) AS failed, \
           count(*) FILTER (WHERE state = $6) AS dead_lettered, \
           (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)) \
              FILTER (WHERE state = $4))::float8 * 1000 AS p50_ms, \
           (percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)) \
              FILTER (WHERE state = $4))::float8 * 1000 AS p99_ms \
         FROM events WHERE received_at >= $1 AND received_at < $2 \
         GROUP BY source ORDER BY source",
    )
    .bind::<Timestamptz, _>(since)
    .bind::<Timestamptz, _>(until)
    .bind::<Array<Text>, _>(vec![StateColumn(EventState::Received), StateColumn(EventState::Published)])
    .bind::<Text, _>(StateColumn(EventState::Processed))
    .bind::<Text, _>(StateColumn(EventState::Failed))
    .bind::<Text, _>(StateColumn(EventState::Dead))
    .load(conn)
    .await?)
}

/// How a batch of events whose dedup keys start with one prefix fared: how many are
/// stored, how many a worker decided (`processed` or `failed`), and their received ->
/// processed latency. Read-only, no locks; the benchmark's end-to-end figures.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct KeyPrefixFigures {
    /// Events stored.
    #[diesel(sql_type = BigInt)]
    pub stored: i64,
    /// Events decided (`processed` or `failed`).
    #[diesel(sql_type = BigInt)]
    pub decided: i64,
    /// First receipt to last processing, in seconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub span_s: Option<f64>,
    /// First processing to last processing, in seconds: how long the workers took over a
    /// backlog that was queued before they started.
    #[diesel(sql_type = Nullable<Double>)]
    pub busy_span_s: Option<f64>,
    /// Median received -> processed, in milliseconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub p50_ms: Option<f64>,
    /// 90th percentile, in milliseconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub p90_ms: Option<f64>,
    /// 99th percentile, in milliseconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub p99_ms: Option<f64>,
    /// Slowest, in milliseconds.
    #[diesel(sql_type = Nullable<Double>)]
    pub max_ms: Option<f64>,
}

/// The `LIKE` pattern matching every string that starts with `prefix`: its wildcards
/// (`%`, `_`) and the escape character are escaped.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// [`KeyPrefixFigures`] for `source`'s events received from `since` on whose dedup key
/// starts with `prefix` (`LIKE` wildcards in it are escaped). `since` bounds the scan to
/// the run's own rows (the `(source, received_at)` index): a benchmark polls this while it
/// measures, and must not charge PostgreSQL a scan of every earlier event each time.
/// Read-only, no locks, one statement.
///
/// # Errors
/// [`DbError`].
pub async fn key_prefix_figures(
    conn: &mut AsyncPgConnection,
    source: &str,
    prefix: &str,
    since: std::time::SystemTime,
) -> Result<KeyPrefixFigures, DbError> {
    Ok(diesel::sql_query(
        "SELECT count(*) AS stored, \
           count(*) FILTER (WHERE state = ANY($3)) AS decided, \
           extract(epoch FROM max(processed_at) - min(received_at))::float8 AS span_s, \
           extract(epoch FROM max(processed_at) - min(processed_at))::float8 AS busy_span_s, \
           (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)) \
              FILTER (WHERE processed_at IS NOT NULL))::float8 * 1000 AS p50_ms, \
           (percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)) \
              FILTER (WHERE processed_at IS NOT NULL))::float8 * 1000 AS p90_ms, \
           (percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)) \
              FILTER (WHERE processed_at IS NOT NULL))::float8 * 1000 AS p99_ms, \
           (max(extract(epoch FROM processed_at - received_at)))::float8 * 1000 AS max_ms \
         FROM events WHERE source = $1 AND received_at >= $4 AND dedup_key LIKE $2",
    )
    .bind::<Text, _>(source)
    .bind::<Text, _>(like_prefix(prefix))
    .bind::<Array<Text>, _>(vec![
        StateColumn(EventState::Processed),
        StateColumn(EventState::Failed),
    ])
    .bind::<Timestamptz, _>(OffsetDateTime::from(since))
    .get_result(conn)
    .await?)
}

/// [`KeyPrefixFigures`] for the deliveries to `destination` of `source`'s events whose
/// dedup key starts with `prefix`: `stored` counts the delivery intents (the recorded
/// ones, plus every first attempt of the destination still in a lease, whatever its
/// event: so `decided` reaches `stored` only once none is in flight), `decided` the
/// delivered ones, and the span and latencies run from receipt to the destination's 2xx.
/// Events received before `since` are not looked at, as with [`key_prefix_figures`].
/// Read-only.
///
/// # Errors
/// [`DbError`].
pub async fn key_prefix_delivery_figures(
    conn: &mut AsyncPgConnection,
    source: &str,
    prefix: &str,
    destination: &str,
    since: std::time::SystemTime,
) -> Result<KeyPrefixFigures, DbError> {
    Ok(diesel::sql_query(
        "SELECT count(d.id) + (SELECT coalesce(sum(entries - settled), 0) FROM delivery_leases \
                                WHERE destination = $3) AS stored, \
           count(d.delivered_at) AS decided, \
           extract(epoch FROM max(d.delivered_at) - min(e.received_at))::float8 AS span_s, \
           extract(epoch FROM max(d.delivered_at) - min(d.delivered_at))::float8 AS busy_span_s, \
           (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - e.received_at)) \
              FILTER (WHERE d.delivered_at IS NOT NULL))::float8 * 1000 AS p50_ms, \
           (percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - e.received_at)) \
              FILTER (WHERE d.delivered_at IS NOT NULL))::float8 * 1000 AS p90_ms, \
           (percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - e.received_at)) \
              FILTER (WHERE d.delivered_at IS NOT NULL))::float8 * 1000 AS p99_ms, \
           (max(extract(epoch FROM d.delivered_at - e.received_at)))::float8 * 1000 AS max_ms \
         FROM events e LEFT JOIN deliveries d ON d.event_id = e.id AND d.destination = $3 \
         WHERE e.source = $1 AND e.received_at >= $4 AND e.dedup_key LIKE $2",
    )
    .bind::<Text, _>(source)
    .bind::<Text, _>(like_prefix(prefix))
    .bind::<Text, _>(destination)
    .bind::<Timestamptz, _>(OffsetDateTime::from(since))
    .get_result(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::like_prefix;

    #[test]
    fn like_prefixes_escape_wildcards_and_the_escape_character() {
        assert_eq!(like_prefix("run-"), "run-%");
        assert_eq!(like_prefix(r"a%b_c\d"), r"a\%b\_c\\d%");
        assert_eq!(like_prefix(""), "%");
    }
}
