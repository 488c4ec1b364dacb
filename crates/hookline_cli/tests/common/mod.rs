//! Helpers shared by the CLI's integration tests: a database and AMQP prefix per test, a
//! config file pointing at them, seeding, and running the `hookline` binary.
#![allow(dead_code)] // each test binary uses a different subset

use hookline_domain::EventState;
use std::path::PathBuf;
use std::process::Output;

use hookline_queue::Envelope;
use hookline_testkit::{APIFY_SOURCE, PLAIN_SOURCE, TestDb};
use uuid::Uuid;

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
        let mut event = hookline_testkit::new_event(source, dedup_key);
        event.resource_key = resource.map(|(key, _)| key.to_string());
        event.status = resource.map(|(_, status)| status.to_string());
        event.headers = serde_json::json!([{"name": "content-type", "value": "application/json"}]);
        event.body = format!(r#"{{"key":"{dedup_key}"}}"#).into_bytes();
        let stored = hookline_testkit::store_event(&self.db, event).await;
        assert!(!stored.duplicate);
        stored.event_id
    }

    /// Runs SQL against the test database.
    pub async fn sql(&self, sql: &str) {
        self.db.execute(sql).await;
    }

    /// Puts an event in `state` with `attempts` and `last_error`, as the pipeline would.
    pub async fn set_state(
        &self,
        id: Uuid,
        state: EventState,
        attempts: i32,
        last_error: Option<&str>,
    ) {
        let error = last_error.map_or("NULL".to_string(), |e| format!("'{e}'"));
        let processed = if matches!(state, EventState::Processed | EventState::Failed) {
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
    pub async fn state(&self, id: Uuid) -> (EventState, i32, Option<String>) {
        hookline_testkit::event_state(&self.db, id).await
    }

    /// `{prefix}.work`, the queue workers consume.
    pub fn work_queue(&self) -> String {
        format!("{}.work", self.prefix)
    }

    /// `{prefix}.dead`, the dead-letter queue.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Takes every ready message off `queue` (acknowledged on receipt) and returns the
    /// envelopes in queue order.
    pub async fn drain(&self, queue: &str) -> Vec<Envelope> {
        hookline_testkit::drain(queue).await
    }

    /// Publishes envelopes for `ids` to the dead-letter queue, as a worker does when
    /// retries run out.
    pub async fn dead_letter(&self, ids: &[Uuid], source: &str) {
        hookline_testkit::dead_letter(&self.prefix, ids, source).await;
    }

    /// Deletes the queues and exchange of this test's prefix (best effort).
    pub async fn delete_broker_state(&self) {
        hookline_testkit::delete_broker_state(&self.prefix).await;
    }
}

/// The text of stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
