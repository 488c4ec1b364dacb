//! The loss-and-duplication audit behind `make cluster-test`: given the keys a load
//! generator was answered 2xx for, what PostgreSQL holds of them.

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_domain::EventState;

use crate::DbError;
use crate::columns::StateColumn;

/// What PostgreSQL holds of one run's events (dedup keys starting with a prefix) against
/// the keys the client was answered 2xx for.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct KeyAudit {
    /// Distinct acknowledged keys given.
    #[diesel(sql_type = BigInt)]
    pub acked: i64,
    /// Acknowledged keys with no event row: acknowledged and lost.
    #[diesel(sql_type = BigInt)]
    pub missing: i64,
    /// The run's event rows.
    #[diesel(sql_type = BigInt)]
    pub stored: i64,
    /// Of those, `processed`.
    #[diesel(sql_type = BigInt)]
    pub processed: i64,
    /// Of those, not `processed` (still waiting, or failed or dead).
    #[diesel(sql_type = BigInt)]
    pub unprocessed: i64,
    /// Transition-log rows written for the run's events.
    #[diesel(sql_type = BigInt)]
    pub transitions: i64,
    /// Events with more than one transition-log row: decided twice.
    #[diesel(sql_type = BigInt)]
    pub decided_twice: i64,
}

/// [`KeyAudit`] of `source`'s events whose dedup key starts with `prefix` (`LIKE`
/// wildcards escaped), against the acknowledged `acked_keys`. Read-only, no locks, one
/// statement.
///
/// # Errors
/// [`DbError`].
pub async fn key_audit(
    conn: &mut AsyncPgConnection,
    source: &str,
    prefix: &str,
    acked_keys: &[String],
) -> Result<KeyAudit, DbError> {
    let escaped: String = prefix
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    Ok(diesel::sql_query(
        "WITH acked AS (SELECT DISTINCT k AS dedup_key FROM unnest($3::text[]) AS k), \
              run AS (SELECT id, state FROM events WHERE source = $1 AND dedup_key LIKE $2), \
              decided AS (SELECT t.event_id, count(*) AS n FROM transitions t JOIN run ON run.id = t.event_id GROUP BY t.event_id) \
         SELECT (SELECT count(*) FROM acked) AS acked, \
                (SELECT count(*) FROM acked a WHERE NOT EXISTS \
                   (SELECT 1 FROM events e WHERE e.source = $1 AND e.dedup_key = a.dedup_key)) AS missing, \
                (SELECT count(*) FROM run) AS stored, \
                (SELECT count(*) FROM run WHERE state = $4) AS processed, \
                (SELECT count(*) FROM run WHERE state <> $4) AS unprocessed, \
                (SELECT coalesce(sum(n), 0)::bigint FROM decided) AS transitions, \
                (SELECT count(*) FROM decided WHERE n > 1) AS decided_twice",
    )
    .bind::<Text, _>(source)
    .bind::<Text, _>(format!("{escaped}%"))
    .bind::<Array<Text>, _>(acked_keys)
    .bind::<Text, _>(StateColumn(EventState::Processed))
    .get_result(conn)
    .await?)
}
