//! Test-only helpers: a fresh PostgreSQL database per test, a random AMQP prefix per
//! test, Hookline services spawned in-process on port 0, and webhook signers.
//!
//! Tests run against the real PostgreSQL and RabbitMQ (`HOOKLINE_TEST_DATABASE_URL`,
//! default `postgres://root@127.0.0.1:5432`; `HOOKLINE_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Isolation comes from names, not mocks.

mod proxy;

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use hmac::{KeyInit, Mac};
use hookline_config::{Config, Sources};
use hookline_ingest::Application;
use tokio::sync::watch;

pub use proxy::Proxy;

/// The server URL tests create their databases on (no database name).
pub fn database_server_url() -> String {
    std::env::var("HOOKLINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432".into())
}

/// The broker tests use.
pub fn amqp_url() -> String {
    std::env::var("HOOKLINE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A database created for one test, with migrations applied.
pub struct TestDb {
    /// Its connection URL.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl TestDb {
    /// The same database reached through `proxy` (which must forward to PostgreSQL).
    pub fn url_via(&self, proxy: &Proxy) -> String {
        format!("postgres://root@{}/{}", proxy.addr, self.name)
    }

    /// Creates `hl_test_<random>` and migrates it.
    ///
    /// # Panics
    /// If PostgreSQL is unreachable: the test cannot mean anything without it.
    pub async fn new() -> Self {
        let name = format!("hl_test_{}", uuid::Uuid::new_v4().simple());
        let server = database_server_url();
        let mut admin = AsyncPgConnection::establish(&format!("{server}/postgres"))
            .await
            .expect("PostgreSQL must be running for tests (make up / scripts/ensure_services.sh)");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = format!("{server}/{name}");
        hookline_db::run_migrations(&url)
            .await
            .expect("migrate test database");
        Self { url, name }
    }

    /// A fresh connection to the test database.
    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to test database")
    }
}

/// A unique AMQP prefix, so tests sharing the broker never see each other's queues.
pub fn amqp_prefix() -> String {
    format!("hl_test_{}", uuid::Uuid::new_v4().simple())
}

/// A full config for tests: ports 0, the given database and prefix, fast retries and
/// relay, plus `extra` TOML (sources, lifecycles, overrides of `[ingest]`/`[worker]`).
pub fn config_toml(db_url: &str, prefix: &str, extra: &str) -> String {
    let has = |section: &str| extra.contains(&format!("[{section}]"));
    let mut toml = format!(
        r#"
[http]
addr = "127.0.0.1:0"
workers = 2

[admin]
addr = "127.0.0.1:0"
token = "test-admin-token"

[database]
url = "{db_url}"
pool_size = 8
migrate = false

[amqp]
url = "{amqp}"
prefix = "{prefix}"
"#,
        amqp = amqp_url()
    );
    if !has("ingest") {
        toml.push_str("\n[ingest]\nrelay_after_ms = 1000\nrelay_interval_ms = 200\n");
    }
    if !has("worker") {
        toml.push_str("\n[worker]\nadmin_addr = \"127.0.0.1:0\"\nmax_attempts = 3\nretry_base_ms = 100\nretry_cap_ms = 400\nconcurrency = 16\n");
    }
    toml.push_str(extra);
    toml
}

/// Parses a config produced by [`config_toml`].
///
/// # Panics
/// If the TOML is invalid (a bug in the test).
pub fn config(toml: &str) -> (Config, Sources) {
    Config::from_toml(toml).unwrap_or_else(|e| panic!("test config is invalid: {e}"))
}

/// The admin bearer token [`config_toml`] sets.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// An Apify-style token source named `apify`, token `apify-token`, on the `apify-run` lifecycle.
pub const APIFY_SOURCE: &str = r#"
[sources.apify]
preset = "apify"
secrets = ["apify-token"]
"#;

/// A running in-process ingest service.
pub struct TestIngest {
    /// `http://127.0.0.1:<port>` of the public listener.
    pub base: String,
    /// `http://127.0.0.1:<port>` of the admin listener.
    pub admin: String,
    /// HTTP client.
    pub client: reqwest::Client,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestIngest {
    /// Builds and starts ingest from `toml`.
    ///
    /// # Panics
    /// If it cannot start.
    pub async fn spawn(toml: &str) -> Self {
        let (config, sources) = config(toml);
        let app = Application::build(config, sources)
            .await
            .expect("ingest starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let admin = format!("http://127.0.0.1:{}", app.admin_port());
        let stop = app.stop_handle();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            base,
            admin,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
            stop,
            task,
        }
    }

    /// POSTs `body` to `/webhooks/{source}` with `headers`.
    pub async fn post(
        &self,
        source: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/{source}", self.base))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request reaches ingest")
    }

    /// GET on the admin listener with the bearer token; returns status and JSON.
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Stops gracefully and waits for the drain.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`.
///
/// # Errors
/// If the deadline passes first (the message says what was awaited).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "timed out after {timeout:?} waiting for {what}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Standard Webhooks signature header value for `secret` (`whsec_…`).
pub fn sign_standard_webhooks(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("whsec_ secret is base64");
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &content))
    )
}

/// Hex HMAC-SHA256 of `content` under `key`.
pub fn hmac_sha256_hex(key: &[u8], content: &[u8]) -> String {
    hex::encode(hmac_sha256(key, content))
}

fn hmac_sha256(key: &[u8], content: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(content);
    mac.finalize().into_bytes().to_vec()
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An Apify webhook body for run `run_id` in `status`.
pub fn apify_body(run_id: &str, status: &str) -> String {
    let event_type = if status == "READY" {
        "ACTOR.RUN.CREATED".to_string()
    } else {
        format!("ACTOR.RUN.{}", status.replace('-', "_"))
    };
    serde_json::json!({
        "userId": "u1",
        "createdAt": "2026-11-22T07:00:00.000Z",
        "eventType": event_type,
        "eventData": { "actorId": "a1", "actorRunId": run_id },
        "resource": { "id": run_id, "status": status },
    })
    .to_string()
}
