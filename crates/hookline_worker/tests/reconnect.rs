//! Losing the broker connection: the worker says it is not ready, reconnects on its own
//! and carries on.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestWorker, WAIT, envelope, event_state, insert, test_publisher};
use hookline_domain::EventState;
use hookline_queue::Route;
use hookline_testkit::{
    APIFY_SOURCE, Proxy, TestDb, amqp_prefix, amqp_url, config_toml, eventually,
};

async fn readyz(client: &reqwest::Client, worker: &TestWorker) -> Option<serde_json::Value> {
    let response = client
        .get(format!("{}/readyz", worker.admin))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_losing_the_broker_the_worker_reconnects_and_processes_what_arrived_meanwhile() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    let broker = Proxy::broker().await;
    let proxied = broker.amqp_url();
    let worker_toml = toml.replace(&amqp_url(), &proxied);
    assert_ne!(worker_toml, toml, "the worker goes through the proxy");
    let worker = TestWorker::spawn(&worker_toml).await;
    let publisher = test_publisher(&toml, &prefix).await;
    let client = reqwest::Client::new();

    let before = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    publisher
        .publish(&[envelope(before, "apify")], Route::Work, None)
        .await
        .unwrap();
    eventually("the first event processed", WAIT, || async {
        (event_state(&db, before).await.0 == EventState::Processed).then_some(())
    })
    .await
    .unwrap();

    broker.down();
    eventually("readiness to report the lost consumer", WAIT, || async {
        let body = readyz(&client, &worker).await?;
        (body["consumer"] == "disconnected").then_some(())
    })
    .await
    .unwrap();
    let during = insert(&db, "apify", Some("run-1"), Some("SUCCEEDED")).await;
    publisher
        .publish(&[envelope(during, "apify")], Route::Work, None)
        .await
        .unwrap();

    broker.up();
    eventually("the event published meanwhile processed", WAIT, || async {
        (event_state(&db, during).await.0 == EventState::Processed).then_some(())
    })
    .await
    .unwrap();
    let body = readyz(&client, &worker).await.expect("admin answers");
    assert_eq!(body["consumer"], "connected", "{body}");
    let run = common::resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(run.status.as_deref(), Some("SUCCEEDED"));
    worker.stop().await.unwrap();
}
