//! The worker's `/readyz` answers within a second even when the database and the broker
//! both hang (accept connections, never answer).

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{PLAIN_SOURCE, TestWorker};
use hookline_testkit::{amqp_prefix, amqp_url, config_toml};
use tokio::net::TcpListener;

/// The deadline a readiness probe has (a functional bound, not a benchmark).
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// A server that accepts connections and never says a word; returns its address.
async fn silent_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_503_within_a_second_while_the_database_and_broker_hang() {
    let database = format!("postgres://root@{}/hl_test_silent", silent_server().await);
    let broker = format!("amqp://guest:guest@{}/%2f", silent_server().await);
    let toml = config_toml(&database, &amqp_prefix(), PLAIN_SOURCE).replace(&amqp_url(), &broker);
    let worker = TestWorker::spawn(&toml).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let started = Instant::now();
        let response = client
            .get(format!("{}/readyz", worker.admin))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("/readyz answers");
        let took = started.elapsed();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["database"], "unreachable");
        assert_eq!(body["consumer"], "disconnected");
        assert!(took < PROBE_DEADLINE, "/readyz took {took:?}");
    }
    worker.stop().await.unwrap();
}
