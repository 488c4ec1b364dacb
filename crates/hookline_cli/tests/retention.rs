//! `hookline retention run|status`, and what the other commands show and refuse once
//! retention pruned an event's payload.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Stack, stderr};
use hookline_domain::EventState;
use hookline_testkit::{APIFY_SOURCE, PLAIN_SOURCE};

/// A stack whose `plain` source keeps payloads for one second.
async fn short_payloads() -> Stack {
    let stack = Stack::new().await;
    let toml = hookline_testkit::config_toml(
        &stack.db.url,
        &stack.prefix,
        &format!("{APIFY_SOURCE}{PLAIN_SOURCE}payload = \"1s\"\n"),
    );
    std::fs::write(&stack.config, toml).unwrap();
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_status_lists_every_table_with_partitions_rows_bytes_and_oldest() {
    let stack = Stack::new().await;
    for key in ["s-1", "s-2", "s-3"] {
        stack.seed("plain", key, None).await;
    }
    let status = stack.json(&["retention", "status", "--exact"]).await;
    let tables = status["tables"].as_array().unwrap();
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "events",
            "event_payloads",
            "dedup_keys",
            "transitions",
            "outbox",
            "deliveries"
        ]
    );
    assert_eq!(tables[0]["rows"], 3);
    assert_eq!(tables[1]["rows"], 3);
    assert_eq!(tables[2]["rows"], 3);
    assert!(tables[0]["partitions"].as_i64().unwrap() >= 5, "{status}");
    assert!(tables[0]["bytes"].as_i64().unwrap() > 0);
    assert!(tables[0]["oldest"].is_string());
    assert_eq!(
        tables[3]["oldest"],
        serde_json::Value::Null,
        "no transitions yet"
    );
    assert_eq!(status["generation"], 1);

    let text = stack.ok(&["retention", "status"]).await;
    assert!(text.starts_with("TABLE"), "{text}");
    assert!(text.contains("event_payloads"), "{text}");
    assert!(text.contains("dedup key generation 1 is current"), "{text}");
    assert!(text.contains("estimates"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_and_a_run_prunes_what_it_said() {
    let stack = short_payloads().await;
    let id = stack.seed("plain", "p-1", None).await;
    let kept = stack.seed("apify", "r:1", Some(("r", "RUNNING"))).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let dry = stack.json(&["retention", "run", "--dry-run"]).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["pruned"]["event_payloads"], 1, "{dry}");
    let shown = stack.json(&["events", "show", &id.to_string()]).await;
    assert_eq!(shown["payload_pruned"], false);
    assert_eq!(shown["body"], r#"{"key":"p-1"}"#);
    let text = stack.ok(&["retention", "run", "--dry-run"]).await;
    assert!(text.starts_with("dry run: would create"), "{text}");
    assert!(
        text.contains("would prune 1 rows of event_payloads"),
        "{text}"
    );

    let text = stack.ok(&["retention", "run"]).await;
    assert!(text.contains("pruned 1 rows of event_payloads"), "{text}");
    let shown = stack.json(&["events", "show", &id.to_string()]).await;
    assert_eq!(shown["payload_pruned"], true, "{shown}");
    assert!(
        shown.get("body").is_none() && shown.get("body_base64").is_none(),
        "{shown}"
    );
    assert_eq!(shown["dedup_key"], "p-1");
    let text = stack.ok(&["events", "show", &id.to_string()]).await;
    assert!(text.contains("pruned by retention"), "{text}");
    assert!(!text.contains("body ("), "{text}");
    let listed = stack.json(&["events", "list", "--source", "plain"]).await;
    assert_eq!(listed[0]["payload_pruned"], true);
    // The other source keeps its payload (the default 7 days).
    let other = stack.json(&["events", "show", &kept.to_string()]).await;
    assert_eq!(other["payload_pruned"], false);
    // Nothing left for a second run.
    let again = stack.json(&["retention", "run"]).await;
    assert_eq!(again["pruned"], serde_json::json!({}), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_an_event_whose_payload_was_pruned_and_says_why() {
    let stack = short_payloads().await;
    let pruned = stack.seed("plain", "p-1", None).await;
    stack
        .set_state(pruned, EventState::Dead, 3, Some("timeout"))
        .await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    stack.ok(&["retention", "run"]).await;
    let fresh = stack.seed("plain", "p-2", None).await;
    stack
        .set_state(fresh, EventState::Dead, 3, Some("timeout"))
        .await;

    let output = stack
        .run(&["replay", "--id", &pruned.to_string(), "--reset"])
        .await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("cannot be replayed"), "{err}");
    assert!(err.contains("retention.payload"), "{err}");
    assert_eq!(
        stack.state(pruned).await.0,
        EventState::Dead,
        "nothing was reset"
    );

    let summary = stack
        .json(&["replay", "--source", "plain", "--reset"])
        .await;
    assert_eq!(summary["selected"], 2, "{summary}");
    assert_eq!(summary["pruned"], 1);
    assert_eq!(summary["published"], 1);
    assert_eq!(summary["reset"], 1);
    let envelopes = stack.drain(&stack.work_queue()).await;
    assert_eq!(
        envelopes.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        [fresh]
    );
    assert_eq!(stack.state(pruned).await.0, EventState::Dead);
    let text = stack
        .ok(&["replay", "--source", "plain", "--dry-run", "--reset"])
        .await;
    assert!(
        text.contains("1 event not replayed: retention pruned"),
        "{text}"
    );
    stack.delete_broker_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_run_says_so_when_another_runner_holds_the_lock() {
    let stack = Stack::new().await;
    let mut holder = stack.db.connect().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "SELECT pg_advisory_lock({})",
            hookline_db::MAINTENANCE_LOCK_KEY
        )),
        &mut holder,
    )
    .await
    .unwrap();
    let output = stack.run(&["retention", "run"]).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("another maintenance runner holds the lock"),
        "{err}"
    );
    drop(holder);
    // Once it is released, the pass runs.
    let report = stack.json(&["retention", "run"]).await;
    assert_eq!(report["ran"], true);
}
