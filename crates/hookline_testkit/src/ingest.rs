//! Hookline's ingest service running in-process on port 0, with an HTTP client for it.

use std::time::Duration;

use hookline_ingest::Application;
use tokio::sync::watch;

use crate::config::{ADMIN_TOKEN, config};

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
                // actix closes a keep-alive connection idle for 5 s; a client reusing one
                // at that moment gets `IncompleteMessage` (seen once in the scale test
                // after a pause between its halves). Never reuse one idle that long.
                .pool_idle_timeout(Duration::from_secs(2))
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
