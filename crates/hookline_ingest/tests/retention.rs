//! Retention at the front door: a key is a duplicate for its horizon and then new again,
//! the committed-key cache included; a pruned payload changes no answer, also after a
//! restart, and shows as `payload_pruned` in the admin API; ingest runs maintenance itself
//! and reports it in its metrics.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_testkit::{
    ADMIN_TOKEN, TestDb, TestIngest, WAIT, amqp_prefix, config_toml, eventually,
};
use serde_json::Value;

/// A token source keyed by a header, with retention overrides appended by each test.
fn source(overrides: &str) -> String {
    format!(
        "[sources.short]\nverifier = \"token\"\ntoken_header = \"x-token\"\nsecrets = [\"t\"]\n\
         dedup_key = \"{{header:x-delivery-id}}\"\n{overrides}\n"
    )
}

async fn post(app: &TestIngest, id: &str) -> (u16, Value) {
    let response = app
        .post(
            "short",
            &[("x-token", "t"), ("x-delivery-id", id)],
            r#"{"order":"o-1","card":"4242"}"#,
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_a_duplicate_until_its_horizon_and_then_a_new_event_even_with_the_cache_on() {
    let db = TestDb::new().await;
    let horizon = Duration::from_millis(1_500);
    let toml = config_toml(
        &db.url,
        &amqp_prefix(),
        &source("dedup_horizon = \"1500ms\""),
    );
    let app = TestIngest::spawn(&toml).await;
    let (status, first) = post(&app, "d-1").await;
    assert_eq!(status, 202, "{first}");
    // Answered from the committed-key cache (and the database would say the same).
    let (status, again) = post(&app, "d-1").await;
    assert_eq!(
        (status, &again["event_id"]),
        (200, &first["event_id"]),
        "{again}"
    );

    tokio::time::sleep(horizon + Duration::from_millis(300)).await;
    let (status, renewed) = post(&app, "d-1").await;
    assert_eq!(status, 202, "past its horizon the key is new: {renewed}");
    assert_ne!(renewed["event_id"], first["event_id"]);
    let (status, again) = post(&app, "d-1").await;
    assert_eq!((status, &again["event_id"]), (200, &renewed["event_id"]));
    // Both receipts are stored and found by their key.
    let (status, listed) = app.admin_get("/v1/events?source=short&dedup_key=d-1").await;
    assert_eq!(status, 200);
    assert_eq!(listed["events"].as_array().unwrap().len(), 2, "{listed}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_payload_changes_no_answer_after_a_restart_and_shows_as_pruned() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    // Ingest's own maintenance runner prunes: a pass at start-up, then every second.
    let toml = config_toml(
        &db.url,
        &prefix,
        &format!(
            "[retention]\ninterval = \"1s\"\n{}",
            source("payload = \"1s\"")
        ),
    );
    let app = TestIngest::spawn(&toml).await;
    let (status, first) = post(&app, "p-1").await;
    assert_eq!(status, 202, "{first}");
    let id = first["event_id"].as_str().unwrap().to_string();
    let (_, shown) = app.admin_get(&format!("/v1/events/{id}")).await;
    assert_eq!(shown["payload_pruned"], false, "{shown}");
    assert_eq!(shown["body"], r#"{"order":"o-1","card":"4242"}"#);

    let pruned = eventually("the payload pruned by ingest's runner", WAIT, || async {
        let (_, shown) = app.admin_get(&format!("/v1/events/{id}")).await;
        (shown["payload_pruned"] == true).then_some(shown)
    })
    .await
    .unwrap();
    let object = pruned.as_object().unwrap();
    assert!(
        !object.contains_key("body") && !object.contains_key("body_base64"),
        "{pruned}"
    );
    assert_eq!(pruned["headers"], Value::Null);
    assert_eq!(pruned["dedup_key"], "p-1");
    // The event itself is untouched (waiting for the broker's confirm, or confirmed).
    assert!(
        pruned["state"] == "received" || pruned["state"] == "published",
        "{pruned}"
    );

    // The pass records its metrics once it is done (after the prune committed).
    let metrics = eventually("the pass in the metrics", WAIT, || async {
        let text = app
            .client
            .get(format!("{}/metrics", app.admin))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("hookline_retention_pruned_rows_total")
            .then_some(text)
    })
    .await
    .unwrap();
    for line in [
        "hookline_retention_last_run_timestamp_seconds",
        "hookline_retention_last_run_duration_seconds",
        "hookline_retention_table_rows{table=\"events\"}",
        "hookline_retention_table_bytes{table=\"event_payloads\"}",
        "hookline_retention_runs_total{result=\"ran\"}",
        "hookline_retention_pruned_rows_total{table=\"event_payloads\"}",
    ] {
        assert!(
            metrics.contains(line),
            "{line} missing from /metrics:\n{metrics}"
        );
    }
    app.stop().await;

    // A new process (empty cache) gets the same answer from the database.
    let app = TestIngest::spawn(&toml).await;
    let (status, again) = post(&app, "p-1").await;
    assert_eq!(
        (status, again["event_id"].as_str()),
        (200, Some(id.as_str())),
        "{again}"
    );
    let (status, _) = post(&app, "p-2").await;
    assert_eq!(status, 202);
    let response = app
        .client
        .get(format!("{}/v1/events/{id}", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    app.stop().await;
}
