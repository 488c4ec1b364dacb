use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{Hook, HookError};
use diesel::{ConnectionError, sql_query};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;

use crate::DbError;
use crate::tls::PgTarget;

/// The connection pool every binary shares across its tasks.
pub type Pool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
/// A connection checked out of [`Pool`]; returns itself on drop.
pub type PooledConnection = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Arbitrary but fixed: every Hookline process that migrates takes this advisory lock, so
/// replicas starting together apply each migration once.
const MIGRATION_LOCK_KEY: i64 = 0x486f_6f6b_6c69_6e65; // "Hookline"

/// How long a pooled connection serves before it is closed and replaced (on its next
/// checkout). Each connection caches its prepared statements and, after five runs,
/// usually their generic plans, which PostgreSQL re-plans only when an `ANALYZE` or a
/// schema change invalidates them; replacing connections bounds how long any plan lives
/// (the sequential scans of plans made on tiny tables are ruled out by
/// [`POOLED_SESSION`]), and spreads connections again after a failover.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// What every pooled connection runs once it is open: no sequential scan where an index
/// can serve.
///
/// The pools serve the hot paths only (ingest's group commit, the worker's batches and
/// deliveries, the admin API's lookups), and every statement there finds its rows through
/// an index. Their statements are prepared once per connection, and after five runs
/// PostgreSQL plans them once (the generic plan) and keeps that plan until an `ANALYZE`
/// invalidates it. A plan made while a table was still tiny (a fresh database before the
/// first `ANALYZE`; with autovacuum off, as on this project's CI machines, there is none)
/// scans sequentially, and each run then reads the whole partition: measured on a fresh
/// database with autovacuum off, the worker's event update took 7.5 ms per batch of ~40
/// instead of 0.8 ms, its lock 4.5 ms instead of 0.24, and the delivery payload read
/// 9.7 ms instead of 0.43 (BENCHMARKS.md has the end-to-end figures). With sequential scans priced out the generic plan is the index plan
/// whatever the table's size when it was made. A statement with no usable index still
/// scans (the setting only makes the alternative win when there is one), and bulk work
/// (migrations, the CLI) uses its own connections ([`connect`]), which keep the default.
pub const POOLED_SESSION: &str = "SET enable_seqscan = off";

/// Builds a pool of at most `size` connections to `url` (with its `sslmode` and
/// `sslrootcert`: see the crate's TLS notes). Connections are opened lazily, so this
/// succeeds while the database is down; checkouts then fail fast with
/// [`DbError::Unavailable`] and succeed again once it is back. A connection older than
/// [`MAX_CONNECTION_AGE`] is replaced when next checked out.
///
/// # Errors
/// [`DbError::Config`] if `url` is unusable (bad `sslmode`, unreadable CA file), or the
/// pool settings themselves are invalid.
pub fn create_pool(url: &str, size: usize) -> Result<Pool, DbError> {
    create_pool_aged(url, size, MAX_CONNECTION_AGE)
}

/// [`create_pool`] with connections replaced once older than `max_age`.
fn create_pool_aged(url: &str, size: usize, max_age: Duration) -> Result<Pool, DbError> {
    let target = Arc::new(PgTarget::parse(url)?);
    let mut config = ManagerConfig::default();
    // A cheap liveness check on checkout: a connection killed by a database restart is
    // replaced instead of failing the next batch.
    config.recycling_method = RecyclingMethod::Verified;
    // Every pooled connection goes through the same TLS path as `connect`, then gets
    // the session settings of the hot paths (see [`POOLED_SESSION`]).
    config.custom_setup = Box::new(move |_url| {
        let target = target.clone();
        async move {
            let mut conn = target
                .connect()
                .await
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
            sql_query(POOLED_SESSION)
                .execute(&mut conn)
                .await
                .map_err(|e| ConnectionError::BadConnection(format!("session settings: {e}")))?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        // Bounded waits: a request or message waits at most this long for a connection,
        // then gets a retryable error rather than hanging.
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        // A failed pre-recycle hook drops the connection; the checkout takes another
        // or opens a new one.
        .pre_recycle(Hook::sync_fn(move |_, metrics| {
            if metrics.age() >= max_age {
                return Err(HookError::message("connection reached its maximum age"));
            }
            Ok(())
        }))
        .build()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Opens one connection outside any pool (CLI, migrations, tests), honouring the URL's
/// `sslmode` and `sslrootcert`.
///
/// # Errors
/// [`DbError::Config`] if `url` is unusable; [`DbError::Unavailable`] if the database
/// cannot be reached or its certificate fails verification (the message says which,
/// with the URL's password redacted).
pub async fn connect(url: &str) -> Result<AsyncPgConnection, DbError> {
    PgTarget::parse(url)?.connect().await
}

/// `SELECT 1` on a pooled connection: the readiness probe.
///
/// # Errors
/// [`DbError`] if no connection can be had or the query fails.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

/// Applies pending embedded migrations under a session advisory lock (concurrent
/// starters wait, then find nothing left to do). Returns the versions applied.
///
/// # Errors
/// [`DbError`] if the database is unreachable or a migration fails.
pub async fn run_migrations(url: &str) -> Result<Vec<String>, DbError> {
    migrate(url, None).await
}

/// As [`run_migrations`], but only the migrations up to and including version `last`
/// (e.g. `2026-11-22-000002`): a database built as an older release left it, for tests
/// of migrating one that holds data.
///
/// # Errors
/// [`DbError`] if the database is unreachable or a migration fails.
pub async fn run_migrations_until(url: &str, last: &str) -> Result<Vec<String>, DbError> {
    migrate(url, Some(last.to_string())).await
}

async fn migrate(url: &str, last: Option<String>) -> Result<Vec<String>, DbError> {
    let mut conn = connect(url).await?;
    sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await?;
    // The harness drives a sync API with block_in_place; a blocking thread makes that
    // safe on any runtime flavour.
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        let result = match &last {
            None => harness.run_pending_migrations(MIGRATIONS),
            Some(last) => harness.pending_migrations(MIGRATIONS).and_then(|pending| {
                // Versions compare by their digits (`2026-11-22-000002` = `20261122000002`).
                let digits = |v: &str| v.chars().filter(char::is_ascii_digit).collect::<String>();
                let wanted: Vec<_> = pending
                    .into_iter()
                    .filter(|m| digits(&m.name().version().to_string()) <= digits(last))
                    .collect();
                harness.run_migrations(&wanted)
            }),
        }
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        .map_err(|e| DbError::Migration(e.to_string()));
        (harness.into_inner(), result)
    })
    .await
    .map_err(|e| DbError::Migration(e.to_string()))?;
    let mut conn = conn;
    sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn backend_pid(pool: &Pool) -> i32 {
        #[derive(diesel::QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let mut conn = pool.get().await.expect("a pooled connection");
        let row: Pid = sql_query("SELECT pg_backend_pid() AS pid")
            .get_result(&mut conn)
            .await
            .expect("pg_backend_pid()");
        row.pid
    }

    /// A connection is reused while young and replaced once past its age; the pool
    /// stays usable throughout.
    #[tokio::test]
    async fn connections_past_their_age_are_replaced_on_checkout() {
        let db = hookline_testkit::TestDb::new().await;
        let pool = create_pool_aged(&db.url, 1, Duration::from_millis(600)).expect("pool");
        let first = backend_pid(&pool).await;
        assert_eq!(
            backend_pid(&pool).await,
            first,
            "a young connection is reused"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        let second = backend_pid(&pool).await;
        assert_ne!(second, first, "an old connection is replaced");
        assert_eq!(
            backend_pid(&pool).await,
            second,
            "and its replacement reused"
        );
        let status = pool.status();
        assert_eq!(
            status.size, 1,
            "the old one is closed, not kept beside the new"
        );
    }
}
