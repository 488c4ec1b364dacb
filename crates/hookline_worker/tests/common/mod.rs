//! Helpers for the worker's integration tests; the ones other suites share live in
//! `hookline_testkit` and are re-exported here.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use hookline_config::Sources;
use hookline_db::{ResourceView, find_resource};
use hookline_queue::Envelope;
use hookline_testkit::{TestDb, config};
use hookline_worker::{Deps, Worker};
use tokio::sync::watch;
use uuid::Uuid;

pub use hookline_testkit::{
    PLAIN_SOURCE, WAIT, broker, event_state, insert_event as insert, ready_messages, test_publisher,
};

/// Step dependencies over `db` with the sources of `toml`.
pub fn deps(db: &TestDb, toml: &str) -> Deps {
    let (_, sources): (_, Sources) = config(toml);
    Deps::new(
        hookline_db::create_pool(&db.url, 24).expect("pool"),
        sources,
    )
}

/// The first-attempt envelope ingest would publish for `id`.
pub fn envelope(id: Uuid, source: &str) -> Envelope {
    Envelope::new(id, source, None)
}

/// A resource with its transition log.
pub async fn resource(db: &TestDb, source: &str, key: &str) -> Option<ResourceView> {
    let mut conn = db.connect().await;
    find_resource(&mut conn, source, key)
        .await
        .expect("query resource")
}

/// A worker running in-process until [`TestWorker::stop`].
pub struct TestWorker {
    pub admin: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestWorker {
    pub async fn spawn(toml: &str) -> Self {
        let (config, sources) = config(toml);
        let worker = Worker::build(config, sources).await.expect("worker starts");
        let admin = format!("http://127.0.0.1:{}", worker.admin_port());
        let stop = worker.stop_handle();
        let task = tokio::spawn(worker.run_until_stopped());
        Self { admin, stop, task }
    }

    /// Stops gracefully; returns what `run_until_stopped` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.expect("worker task does not panic")
    }
}

/// Every status of the `apify-run` lifecycle.
pub const STATUSES: [&str; 8] = [
    "READY",
    "RUNNING",
    "TIMING-OUT",
    "ABORTING",
    "SUCCEEDED",
    "FAILED",
    "TIMED-OUT",
    "ABORTED",
];

/// The rank of an `apify-run` status, written out independently of the code under test.
pub fn rank(status: &str) -> usize {
    match status {
        "READY" => 0,
        "RUNNING" => 1,
        "TIMING-OUT" | "ABORTING" => 2,
        _ => 3,
    }
}

/// Makes marking an event processed fail with a serialization failure (SQLSTATE 40001),
/// the transient error a real database produces under contention: for every event, or
/// only for those of `resource_key`.
pub async fn fail_processing_transiently(db: &TestDb, resource_key: Option<&str>) {
    use diesel_async::RunQueryDsl;
    let only = resource_key.map_or(String::new(), |k| format!(" AND NEW.resource_key = '{k}'"));
    let mut conn = db.connect().await;
    for sql in [
        "CREATE FUNCTION hl_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001'; END $$"
            .to_string(),
        format!(
            "CREATE TRIGGER hl_test_fail BEFORE UPDATE ON events FOR EACH ROW \
             WHEN (NEW.state = 'processed'{only}) EXECUTE FUNCTION hl_test_fail()"
        ),
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
}
