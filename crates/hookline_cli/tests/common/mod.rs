//! Helpers shared by the CLI's integration tests: a database and AMQP prefix per test, a
//! config file pointing at them, seeding, and running the `hookline` binary.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use hookline_db::{NewEvent, find_event, insert_events};
use hookline_queue::{Broker, Envelope};
use hookline_testkit::{APIFY_SOURCE, TestDb};
use uuid::Uuid;

/// A source without a lifecycle (no resources).
pub const PLAIN_SOURCE: &str = r#"
[sources.plain]
verifier = "token"
token_header = "x-token"
secrets = ["plain-token"]
dedup_key = "{header:x-delivery-id}"
"#;

/// One test's world: its database, its AMQP prefix and a config file naming both.
pub struct Stack {
    pub db: TestDb,
    pub prefix: String,
    pub config: PathBuf,
}

impl Stack {
    /// A fresh database and prefix, with the `apify` and `plain` sources configured.
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let prefix = hookline_testkit::amqp_prefix();
        let dir = std::env::temp_dir().join(&db.name);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("hookline.toml");
        let toml = hookline_testkit::config_toml(
            &db.url,
            &prefix,
            &format!("{APIFY_SOURCE}{PLAIN_SOURCE}"),
        );
        std::fs::write(&config, toml).expect("write config");
        Self { db, prefix, config }
    }

    /// Runs `hookline args…` with this stack's config and returns what it did.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[]).await
    }

    /// [`Stack::run`] with extra environment variables.
    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
        command.env("HOOKLINE_CONFIG", &self.config).args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().await.expect("run hookline")
    }

    /// Runs a command that must succeed and returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "hookline {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 stdout")
    }

    /// Runs a command with `--json` that must succeed and parses its stdout.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Stores one event as ingest would (state `received`) and returns its id.
    pub async fn seed(
        &self,
        source: &str,
        dedup_key: &str,
        resource: Option<(&str, &str)>,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let mut conn = self.db.connect().await;
        let stored = insert_events(
            &mut conn,
            &[NewEvent {
                id,
                source: source.to_string(),
                dedup_key: dedup_key.to_string(),
                resource_key: resource.map(|(key, _)| key.to_string()),
                status: resource.map(|(_, status)| status.to_string()),
                headers: serde_json::json!([{"name": "content-type", "value": "application/json"}]),
                query: String::new(),
                body: format!(r#"{{"key":"{dedup_key}"}}"#).into_bytes(),
                traceparent: None,
            }],
            false,
        )
        .await
        .expect("insert event");
        assert!(!stored[0].duplicate);
        id
    }

    /// Runs SQL against the test database.
    pub async fn sql(&self, sql: &str) {
        let mut conn = self.db.connect().await;
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Puts an event in `state` with `attempts` and `last_error`, as the pipeline would.
    pub async fn set_state(&self, id: Uuid, state: &str, attempts: i32, last_error: Option<&str>) {
        let error = last_error.map_or("NULL".to_string(), |e| format!("'{e}'"));
        let processed = if matches!(state, "processed" | "failed") {
            "now()"
        } else {
            "NULL"
        };
        self.sql(&format!(
            "UPDATE events SET state = '{state}', attempts = {attempts}, last_error = {error}, \
             processed_at = {processed} WHERE id = '{id}'"
        ))
        .await;
    }

    /// `(state, attempts, last_error)` of an event.
    pub async fn state(&self, id: Uuid) -> (String, i32, Option<String>) {
        let mut conn = self.db.connect().await;
        let event = find_event(&mut conn, id)
            .await
            .expect("query event")
            .expect("event exists");
        (event.state, event.attempts, event.last_error)
    }

    /// `{prefix}.work`, the queue workers consume.
    pub fn work_queue(&self) -> String {
        hookline_queue::Topology::new(self.prefix.clone()).work_queue()
    }

    /// `{prefix}.dead`, the dead-letter queue.
    pub fn dead_queue(&self) -> String {
        hookline_queue::Topology::new(self.prefix.clone()).dead_queue()
    }

    /// Takes every ready message off `queue` (acknowledged on receipt) and returns the
    /// envelopes in queue order.
    pub async fn drain(&self, queue: &str) -> Vec<Envelope> {
        let broker = Broker::connect(&hookline_testkit::amqp_url(), "cli-test")
            .await
            .expect("RabbitMQ must be running for tests");
        let mut envelopes = Vec::new();
        while let Some(message) = broker.get(queue).await.expect("basic.get") {
            envelopes.push(Envelope::from_bytes(&message.body).expect("an envelope"));
        }
        let _ = broker.close().await;
        envelopes
    }

    /// Publishes envelopes for `ids` to the dead-letter queue, as a worker does when
    /// retries run out.
    pub async fn dead_letter(&self, ids: &[Uuid], source: &str) {
        let publisher = hookline_queue::Publisher::new(
            &hookline_testkit::amqp_url(),
            hookline_queue::Topology::new(self.prefix.clone()),
            self.delays(),
            "cli-test",
        );
        let envelopes: Vec<Envelope> = ids
            .iter()
            .map(|id| Envelope::new(*id, source, None))
            .collect();
        publisher
            .publish(&envelopes, hookline_queue::Route::Dead, None)
            .await
            .expect("publish to the dead-letter queue");
    }

    /// The retry delays of the test config (worker.max_attempts = 3, base 100 ms, cap 400 ms).
    fn delays(&self) -> Vec<Duration> {
        hookline_queue::retry_delays(3, Duration::from_millis(100), Duration::from_millis(400))
    }

    /// Deletes the queues and exchange of this test's prefix (best effort).
    pub async fn delete_broker_state(&self) {
        let Ok(broker) = Broker::connect(&hookline_testkit::amqp_url(), "cli-test-cleanup").await
        else {
            return;
        };
        let topology = hookline_queue::Topology::new(self.prefix.clone());
        let _ = broker.delete_topology(&topology, &self.delays()).await;
        let _ = broker.close().await;
    }
}

/// The text of stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
