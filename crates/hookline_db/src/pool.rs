use std::sync::Arc;
use std::time::Duration;

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

/// Builds a pool of at most `size` connections to `url` (with its `sslmode` and
/// `sslrootcert`: see the crate's TLS notes). Connections are opened lazily, so this
/// succeeds while the database is down; checkouts then fail fast with
/// [`DbError::Unavailable`] and succeed again once it is back.
///
/// # Errors
/// [`DbError::Config`] if `url` is unusable (bad `sslmode`, unreadable CA file), or the
/// pool settings themselves are invalid.
pub fn create_pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let target = Arc::new(PgTarget::parse(url)?);
    let mut config = ManagerConfig::default();
    // A cheap liveness check on checkout: a connection killed by a database restart is
    // replaced instead of failing the next batch.
    config.recycling_method = RecyclingMethod::Verified;
    // Every pooled connection goes through the same TLS path as `connect`.
    config.custom_setup = Box::new(move |_url| {
        let target = target.clone();
        async move {
            target
                .connect()
                .await
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))
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
