//! Ingest and the worker with `amqp.url` a list of nodes: the first is dead and the
//! second is `amqps://` (a local TLS endpoint in front of the shared broker, its CA in
//! `amqp.ca_file`), and a webhook still goes all the way to processed. With every node
//! dead, ingest still accepts (the event waits in the outbox) and `/readyz` says 503
//! without naming a password.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestWorker, WAIT, event_state};
use hookline_domain::EventState;
use hookline_testkit::urls::refused;
use hookline_testkit::{
    APIFY_SOURCE, TestCa, TestDb, TestIngest, TlsProxy, amqp_prefix, amqp_url, apify_body,
    config_toml, eventually, with_broker_nodes,
};
use uuid::Uuid;

async fn get_json(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_a_dead_first_node_ingest_and_the_worker_go_over_amqps_to_the_second() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let ca = TestCa::new("hookline test broker CA");
    let endpoint = TlsProxy::broker(&ca).await;
    let toml = with_broker_nodes(
        &config_toml(&db.url, &prefix, APIFY_SOURCE),
        &[refused(&amqp_url()), endpoint.amqps_url()],
        Some(ca.path()),
    );
    let ingest = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;

    let response = ingest
        .post(
            "apify",
            &[("x-hookline-token", "apify-token")],
            apify_body("run-tls", "SUCCEEDED"),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let id: Uuid = body["event_id"].as_str().unwrap().parse().unwrap();
    eventually("the event processed", WAIT, || async {
        (event_state(&db, id).await.0 == EventState::Processed).then_some(())
    })
    .await
    .unwrap();
    let (status, body) = get_json(&ingest.client, format!("{}/readyz", ingest.base)).await;
    assert_eq!(status, 200, "{body}");
    worker.stop().await.unwrap();
    ingest.stop().await;
    hookline_testkit::delete_broker_state(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_node_dead_ingest_accepts_and_readyz_is_503_without_a_password() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = with_broker_nodes(
        &config_toml(&db.url, &prefix, APIFY_SOURCE),
        &[
            "amqp://hookline:mq-pa55word@127.0.0.1:1/%2f".into(),
            "amqp://hookline:mq-pa55word@127.0.0.1:2/%2f".into(),
        ],
        None,
    );
    let ingest = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    let response = ingest
        .post(
            "apify",
            &[("x-hookline-token", "apify-token")],
            apify_body("run-down", "RUNNING"),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202, "durable in PostgreSQL");
    let body: serde_json::Value = response.json().await.unwrap();
    let id: Uuid = body["event_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(event_state(&db, id).await.0, EventState::Received);

    let (status, body) = get_json(&ingest.client, format!("{}/readyz", ingest.base)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unreachable"), "{body}");
    assert!(!body.contains("mq-pa55word"), "{body}");
    let (status, body) = get_json(&ingest.client, format!("{}/readyz", worker.admin)).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("mq-pa55word"), "{body}");
    worker.stop().await.unwrap();
    ingest.stop().await;
}
