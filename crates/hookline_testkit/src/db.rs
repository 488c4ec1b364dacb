//! A fresh PostgreSQL database per test, dropped when the test is done with it, and the
//! few reads and writes tests need around the code under test.

use std::time::Duration;

use anyhow::Context;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{InsertResult, NewEvent, insert_events};
use uuid::Uuid;

use crate::Proxy;
use crate::urls::{database_server_url, database_url, with_addr, with_database};

/// How long dropping a test database may take before [`TestDb`]'s `Drop` gives up on it
/// (it is then left for `scripts/clean_test_state.sh`).
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// A database created for one test, with migrations applied; dropped (`WITH (FORCE)`,
/// so open connections do not keep it) when this value goes out of scope. Set
/// `HOOKLINE_TEST_KEEP_DB=1` to keep it for inspection.
pub struct TestDb {
    /// Its connection URL.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl TestDb {
    /// Creates `hl_test_<random>` on [`database_server_url`] and migrates it.
    ///
    /// # Panics
    /// If PostgreSQL is unreachable: the test cannot mean anything without it.
    pub async fn new() -> Self {
        let db = Self::empty().await;
        hookline_db::run_migrations(&db.url)
            .await
            .expect("migrate test database");
        db
    }

    /// Creates `hl_test_<random>` without migrating it (for tests of migrating).
    ///
    /// # Panics
    /// If PostgreSQL is unreachable.
    pub async fn empty() -> Self {
        let name = format!("hl_test_{}", Uuid::new_v4().simple());
        let mut admin = hookline_db::connect(&database_url("postgres"))
            .await
            .expect("PostgreSQL must be running for tests (make up / scripts/ensure_services.sh)");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        Self {
            url: database_url(&name),
            name,
        }
    }

    /// The same database reached through `proxy` (which must forward to PostgreSQL):
    /// the URL with only host and port replaced.
    pub fn url_via(&self, proxy: &Proxy) -> String {
        with_addr(&self.url, proxy.addr)
    }

    /// A fresh connection to the test database.
    ///
    /// # Panics
    /// If it cannot connect.
    pub async fn connect(&self) -> AsyncPgConnection {
        hookline_db::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    /// Runs `sql` (statements without results) against the test database.
    ///
    /// # Panics
    /// If it fails (the message names the statement).
    pub async fn execute(&self, sql: &str) {
        let mut conn = self.connect().await;
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("HOOKLINE_TEST_KEEP_DB").is_some_and(|v| v == "1") {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        // Drop is synchronous and usually runs on a thread of the test's runtime (which
        // may be shutting down): a thread of our own with a runtime of its own does the
        // async work, and its errors are reported, never raised.
        let admin = with_database(&database_server_url(), "postgres");
        let name = self.name.clone();
        let dropper = std::thread::Builder::new()
            .name(format!("drop-{name}"))
            .spawn(move || drop_database(&admin, &name));
        let outcome = match dropper {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the dropping thread panicked"))),
            Err(e) => Err(anyhow::Error::new(e).context("spawn the dropping thread")),
        };
        if let Err(e) = outcome {
            eprintln!("warning: test database {} not dropped: {e:#}", self.name);
        }
    }
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)` over a connection to `admin`.
fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build a runtime")?;
    runtime.block_on(async {
        tokio::time::timeout(DROP_TIMEOUT, async {
            let mut conn = hookline_db::connect(admin).await.context("connect")?;
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .context("DROP DATABASE")?;
            anyhow::Ok(())
        })
        .await
        .context("timed out")?
    })
}

/// True if a database called `name` exists on the test server.
///
/// # Errors
/// If the server cannot be queried.
pub async fn database_exists(name: &str) -> anyhow::Result<bool> {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = hookline_db::connect(&database_url("postgres")).await?;
    let row: N = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(&mut conn)
        .await?;
    Ok(row.n > 0)
}

/// Counts rows of a SQL query returning one `bigint` column named `n`.
///
/// # Errors
/// If the query fails.
pub async fn count(db: &TestDb, sql: &str) -> anyhow::Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = db.connect().await;
    let row: N = diesel::sql_query(sql)
        .get_result(&mut conn)
        .await
        .context(sql.to_string())?;
    Ok(row.n)
}

/// The default `retention.dedup_horizon` (7 days), which [`new_event`] gives its events.
pub const DEFAULT_DEDUP_HORIZON: Duration = Duration::from_secs(7 * 86_400);

/// An event of `source` with key `dedup_key` as ingest would build it: a fresh UUIDv7,
/// no resource, no headers, body `{}`, the default dedup horizon.
pub fn new_event(source: &str, dedup_key: &str) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        source: source.to_string(),
        dedup_key: dedup_key.to_string(),
        resource_key: None,
        status: None,
        headers: serde_json::json!([]),
        query: String::new(),
        body: b"{}".to_vec(),
        traceparent: None,
        dedup_horizon: DEFAULT_DEDUP_HORIZON,
    }
}

/// Stores `event` through [`insert_events`], as ingest would (state `received`, with its
/// batch's outbox row).
///
/// # Panics
/// If the insert fails.
pub async fn store_event(db: &TestDb, event: NewEvent) -> InsertResult {
    let mut conn = db.connect().await;
    let stored = insert_events(&mut conn, &[event], false)
        .await
        .expect("insert event");
    stored[0]
}

/// Stores one new event of `source` (dedup key `dedup-<id>`, so never a duplicate) with
/// an optional resource key and status, and returns its id.
///
/// # Panics
/// If the insert fails or the event was somehow a duplicate.
pub async fn insert_event(
    db: &TestDb,
    source: &str,
    resource_key: Option<&str>,
    status: Option<&str>,
) -> Uuid {
    let mut event = new_event(source, "");
    event.dedup_key = format!("dedup-{}", event.id);
    event.resource_key = resource_key.map(str::to_string);
    event.status = status.map(str::to_string);
    let id = event.id;
    let stored = store_event(db, event).await;
    assert_eq!(stored.event_id, id);
    id
}

/// `(state, attempts, last_error)` of an event, with the state as reported
/// ([`hookline_db::find_event`]: `published` once the broker confirmed it).
///
/// # Panics
/// If the query fails or the event does not exist.
pub async fn event_state(
    db: &TestDb,
    id: Uuid,
) -> (hookline_domain::EventState, i32, Option<String>) {
    let mut conn = db.connect().await;
    let event = hookline_db::find_event(&mut conn, id)
        .await
        .expect("query event")
        .expect("event exists");
    (event.state, event.attempts, event.last_error)
}
