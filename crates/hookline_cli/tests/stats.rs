//! `hookline stats` against seeded events whose numbers are known.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::Stack;
use hookline_domain::EventState;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Receives `id` an hour ago and, when `latency_ms` is given, processes it that much later.
async fn place(stack: &Stack, id: Uuid, state: EventState, latency_ms: Option<u32>) {
    stack.set_state(id, state, 0, None).await;
    let processed = latency_ms.map_or("NULL".to_string(), |ms| {
        format!("now() - interval '1 hour' + interval '{ms} milliseconds'")
    });
    stack
        .sql(&format!(
            "UPDATE events SET received_at = now() - interval '1 hour', processed_at = {processed} \
             WHERE id = '{id}'"
        ))
        .await;
}

fn source<'a>(stats: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    stats["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["source"] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_counts_each_state_per_source_and_computes_latency_percentiles() {
    let stack = Stack::new().await;
    for (i, latency) in [100, 200, 300].into_iter().enumerate() {
        let id = stack
            .seed("apify", &format!("p{i}"), Some(("r", "RUNNING")))
            .await;
        place(&stack, id, EventState::Processed, Some(latency)).await;
    }
    let failed = stack.seed("apify", "f", Some(("r", "RUNNING"))).await;
    place(&stack, failed, EventState::Failed, Some(5_000)).await;
    let dead = stack.seed("apify", "d", Some(("r", "RUNNING"))).await;
    place(&stack, dead, EventState::Dead, None).await;
    let pending = stack.seed("apify", "q", Some(("r", "RUNNING"))).await;
    place(&stack, pending, EventState::Published, None).await;
    let received = stack.seed("apify", "q2", Some(("r", "RUNNING"))).await;
    place(&stack, received, EventState::Received, None).await;
    // Outside the default 24 h window: counted nowhere.
    let old = stack.seed("apify", "old", Some(("r", "RUNNING"))).await;
    stack.set_state(old, EventState::Processed, 0, None).await;
    let old_plain = stack.seed("plain", "old", None).await;
    for id in [old, old_plain] {
        stack
            .sql(&format!(
                "UPDATE events SET received_at = now() - interval '3 days' WHERE id = '{id}'"
            ))
            .await;
    }
    // A source no longer configured still has its events counted.
    let legacy = stack.seed("legacy", "l", None).await;
    place(&stack, legacy, EventState::Processed, Some(1_000)).await;

    let stats = stack.json(&["stats"]).await;
    let apify = source(&stats, "apify");
    assert_eq!(apify["received"], 7);
    assert_eq!(apify["processed"], 3);
    assert_eq!(apify["failed"], 1);
    assert_eq!(apify["dead_lettered"], 1);
    assert_eq!(apify["pending"], 2);
    assert!(apify["duplicates"].is_null(), "{apify}");
    // Processed events only: the failed one's 5 s does not count.
    let p50 = apify["p50_ms"].as_f64().unwrap();
    let p99 = apify["p99_ms"].as_f64().unwrap();
    assert!((p50 - 200.0).abs() < 0.01, "p50 {p50}");
    assert!((p99 - 298.0).abs() < 0.01, "p99 {p99}");

    // Configured, nothing in the window: zeros and no percentiles.
    let plain = source(&stats, "plain");
    assert_eq!(plain["received"], 0);
    assert!(plain["p50_ms"].is_null());
    assert_eq!(source(&stats, "legacy")["processed"], 1);
    assert!(
        stats["duplicates_metric"]
            .as_str()
            .unwrap()
            .contains("outcome=\"duplicate\"")
    );

    // A wider window takes the old events in; --source narrows to one row.
    let wide = stack
        .json(&["stats", "--since", "4d", "--source", "apify"])
        .await;
    assert_eq!(wide["sources"].as_array().unwrap().len(), 1);
    assert_eq!(source(&wide, "apify")["received"], 8);
    assert_eq!(source(&wide, "apify")["processed"], 4);

    // RFC 3339 bounds: a window that ends before the seeded hour is empty.
    let two_hours_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(2))
        .format(&Rfc3339)
        .unwrap();
    let before = stack
        .json(&["stats", "--since", "1d", "--until", &two_hours_ago])
        .await;
    assert_eq!(source(&before, "apify")["received"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_prints_a_table_with_duplicates_marked_not_available() {
    let stack = Stack::new().await;
    let id = stack.seed("plain", "delivery-1", None).await;
    place(&stack, id, EventState::Processed, Some(1_500)).await;

    let stdout = stack.ok(&["stats"]).await;
    let header = stdout
        .lines()
        .find(|l| l.starts_with("SOURCE"))
        .expect("a header");
    for column in [
        "RECEIVED",
        "DUPLICATES",
        "PENDING",
        "PROCESSED",
        "FAILED",
        "DEAD-LETTERED",
        "P50",
        "P99",
    ] {
        assert!(header.contains(column), "{stdout}");
    }
    let plain = stdout
        .lines()
        .find(|l| l.starts_with("plain"))
        .expect("a row for plain");
    let cells: Vec<&str> = plain.split_whitespace().collect();
    assert_eq!(
        cells,
        ["plain", "1", "n/a", "0", "1", "0", "0", "1.50s", "1.50s"]
    );
    assert!(
        stdout.contains("hookline_ingest_requests_total{outcome=\"duplicate\"}"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_refuses_an_empty_window() {
    let stack = Stack::new().await;
    let output = stack
        .run(&["stats", "--since", "1h", "--until", "2h"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(common::stderr(&output).contains("window is empty"));
}
