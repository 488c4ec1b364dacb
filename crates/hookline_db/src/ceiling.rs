//! The bare durable-ingest ceiling of `make bench` (`hookline-bench ceiling-server`): one
//! table with a unique key, filled by group-commit inserts. Nothing in Hookline uses it;
//! it lives here because this is the crate that names tables.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel::sql_types::{Array, Bytea, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::DbError;
use crate::prepared::prepared;

#[derive(QueryableByName)]
struct InsertedKey {
    #[diesel(sql_type = Text)]
    dedup_key: String,
}

/// Creates the ceiling table `bench_ceiling (dedup_key text PRIMARY KEY, body bytea,
/// received_at timestamptz)` if it does not exist. Idempotent.
///
/// # Errors
/// [`DbError`].
pub async fn create_ceiling_table(conn: &mut AsyncPgConnection) -> Result<(), DbError> {
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS bench_ceiling (\
           dedup_key text PRIMARY KEY, \
           body bytea NOT NULL, \
           received_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    Ok(())
}

/// Inserts one batch of `(dedup_key, body)` rows into the ceiling table with one
/// statement (`INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`, committed on return:
/// run it outside an explicit transaction) and returns the keys that went in; the others
/// were there already (or earlier in the batch). Rows are inserted in key order, so
/// concurrent batches sharing keys never deadlock.
///
/// # Errors
/// [`DbError`]; nothing of the batch is stored then.
pub async fn insert_ceiling_rows(
    conn: &mut AsyncPgConnection,
    keys: &[String],
    bodies: &[Vec<u8>],
) -> Result<HashSet<String>, DbError> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<InsertedKey> = prepared(
        "INSERT INTO bench_ceiling (dedup_key, body) \
         SELECT k, b FROM unnest($1::text[], $2::bytea[]) AS i(k, b) ORDER BY k \
         ON CONFLICT DO NOTHING RETURNING dedup_key",
    )
    .bind::<Array<Text>, _>(keys)
    .bind::<Array<Bytea>, _>(bodies)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.dedup_key).collect())
}
