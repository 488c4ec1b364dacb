//! Helpers shared by the worker's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use hookline_config::Sources;
use hookline_db::{NewEvent, ResourceView, find_event, find_resource, insert_events};
use hookline_queue::Envelope;
use hookline_testkit::{TestDb, config};
use hookline_worker::{Deps, Worker};
use tokio::sync::watch;
use uuid::Uuid;

/// A source without a lifecycle: events are just marked processed.
pub const PLAIN_SOURCE: &str = r#"
[sources.plain]
verifier = "token"
token_header = "x-token"
secrets = ["plain-token"]
dedup_key = "{header:x-delivery-id}"
"#;

/// Generous: a loaded 2-core CI box must never fail on time.
pub const WAIT: Duration = Duration::from_secs(30);

/// Step dependencies over `db` with the sources of `toml`.
pub fn deps(db: &TestDb, toml: &str) -> Deps {
    let (_, sources): (_, Sources) = config(toml);
    Deps::new(
        hookline_db::create_pool(&db.url, 24).expect("pool"),
        sources,
    )
}

/// Stores one event directly (as ingest would) and returns its id.
pub async fn insert(
    db: &TestDb,
    source: &str,
    resource_key: Option<&str>,
    status: Option<&str>,
) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = db.connect().await;
    let stored = insert_events(
        &mut conn,
        &[NewEvent {
            id,
            source: source.to_string(),
            dedup_key: format!("dedup-{id}"),
            resource_key: resource_key.map(str::to_string),
            status: status.map(str::to_string),
            headers: serde_json::json!([]),
            query: String::new(),
            body: b"{}".to_vec(),
            traceparent: None,
        }],
        false,
    )
    .await
    .expect("insert event");
    assert_eq!(stored[0].event_id, id);
    id
}

/// The first-attempt envelope ingest would publish for `id`.
pub fn envelope(id: Uuid, source: &str) -> Envelope {
    Envelope::new(id, source, None)
}

/// `(state, attempts, last_error)` of an event.
pub async fn event_state(db: &TestDb, id: Uuid) -> (String, i32, Option<String>) {
    let mut conn = db.connect().await;
    let event = find_event(&mut conn, id)
        .await
        .expect("query event")
        .expect("event exists");
    (event.state, event.attempts, event.last_error)
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

/// A broker connection for inspecting the test's queues.
pub async fn broker() -> hookline_queue::Broker {
    hookline_queue::Broker::connect(&hookline_testkit::amqp_url(), "worker-test")
        .await
        .expect("RabbitMQ must be running for tests")
}

/// Ready messages in `queue` (unacknowledged ones are not counted).
pub async fn ready_messages(queue: &str) -> u32 {
    let broker = broker().await;
    let count = broker.message_count(queue).await.expect("queue exists");
    let _ = broker.close().await;
    count
}

/// A confirming publisher on the test's prefix, with the topology the worker declares.
pub async fn test_publisher(toml: &str, prefix: &str) -> hookline_queue::Publisher {
    let (config, _) = config(toml);
    let policy = hookline_worker::RetryPolicy::from_config(&config.worker);
    let publisher = hookline_queue::Publisher::new(
        &hookline_testkit::amqp_url(),
        hookline_queue::Topology::new(prefix),
        policy.delays().to_vec(),
        "worker-test-publisher",
    );
    publisher.ensure_connected().await.expect("broker up");
    publisher
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
