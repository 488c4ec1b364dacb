//! `hookline events list|show` and `dead-letters list` against a real database.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Stack, stderr};
use hookline_domain::EventState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_list_filters_by_source_state_dedup_key_and_time_range() {
    let stack = Stack::new().await;
    let a = stack
        .seed(
            "apify",
            "run-1:ACTOR.RUN.SUCCEEDED",
            Some(("run-1", "SUCCEEDED")),
        )
        .await;
    let b = stack.seed("plain", "delivery-1", None).await;
    let c = stack.seed("plain", "delivery-2", None).await;
    stack.set_state(b, EventState::Processed, 0, None).await;
    stack
        .sql(&format!(
            "UPDATE events SET received_at = now() - interval '3 days' WHERE id = '{c}'"
        ))
        .await;
    // Its batch's outbox row carries the batch's `received_at` (how a reader finds it).
    stack
        .sql(&format!(
            "UPDATE outbox o SET received_at = e.received_at FROM events e \
             WHERE e.id = '{c}' AND e.id = ANY(o.event_ids)"
        ))
        .await;

    let ids = |value: serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    // Newest first.
    assert_eq!(
        ids(stack.json(&["events", "list"]).await),
        [b.to_string(), a.to_string(), c.to_string()]
    );
    assert_eq!(
        ids(stack.json(&["events", "list", "--source", "plain"]).await),
        [b.to_string(), c.to_string()]
    );
    assert_eq!(
        ids(stack
            .json(&["events", "list", "--state", "processed"])
            .await),
        [b.to_string()]
    );
    // `received` while the outbox holds it, `published` once the broker confirmed it.
    assert_eq!(
        ids(stack.json(&["events", "list", "--state", "received"]).await),
        [a.to_string(), c.to_string()]
    );
    stack
        .sql(&format!("DELETE FROM outbox WHERE '{c}' = ANY(event_ids)"))
        .await;
    assert_eq!(
        ids(stack.json(&["events", "list", "--state", "received"]).await),
        [a.to_string()]
    );
    let published = stack
        .json(&["events", "list", "--state", "published"])
        .await;
    assert_eq!(ids(published.clone()), [c.to_string()]);
    assert_eq!(published[0]["state"], "published");
    assert_eq!(
        ids(stack
            .json(&["events", "list", "--dedup-key", "run-1:ACTOR.RUN.SUCCEEDED"])
            .await),
        [a.to_string()]
    );
    assert_eq!(
        ids(stack.json(&["events", "list", "--since", "1d"]).await),
        [b.to_string(), a.to_string()]
    );
    assert_eq!(
        ids(stack.json(&["events", "list", "--until", "2d"]).await),
        [c.to_string()]
    );
    assert_eq!(
        ids(stack.json(&["events", "list", "--limit", "1"]).await),
        [b.to_string()]
    );

    let listed = stack.json(&["events", "list", "--source", "apify"]).await;
    let event = &listed[0];
    assert_eq!(event["source"], "apify");
    assert_eq!(event["state"], "received");
    assert_eq!(event["resource_key"], "run-1");
    assert_eq!(event["status"], "SUCCEEDED");
    assert_eq!(event["attempts"], 0);
    assert!(event.get("body").is_none(), "lists leave bodies out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_list_prints_an_aligned_table_for_people() {
    let stack = Stack::new().await;
    let id = stack.seed("plain", "delivery-1", None).await;
    stack
        .set_state(id, EventState::Dead, 3, Some("database unavailable"))
        .await;

    let stdout = stack.ok(&["events", "list"]).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{stdout}");
    for column in [
        "SOURCE",
        "STATE",
        "ATTEMPTS",
        "RECEIVED",
        "DEDUP KEY",
        "LAST ERROR",
    ] {
        assert!(lines[0].contains(column), "{stdout}");
    }
    assert!(lines[1].starts_with(&id.to_string()), "{stdout}");
    assert!(lines[1].contains("database unavailable"), "{stdout}");
    // Columns line up: each value starts where its header does.
    let at = |line: &str, text: &str| line.find(text).unwrap();
    assert_eq!(at(lines[0], "STATE"), at(lines[1], "dead"));
    assert_eq!(
        at(lines[0], "LAST ERROR"),
        at(lines[1], "database unavailable")
    );
    assert_eq!(lines[2], "1 event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_show_finds_an_event_by_id_or_by_source_and_dedup_key_with_its_body() {
    let stack = Stack::new().await;
    let id = stack.seed("plain", "delivery-7", None).await;

    let by_id = stack.json(&["events", "show", &id.to_string()]).await;
    assert_eq!(by_id["id"], id.to_string());
    assert_eq!(by_id["dedup_key"], "delivery-7");
    assert_eq!(by_id["body"], r#"{"key":"delivery-7"}"#);
    assert_eq!(by_id["headers"][0]["name"], "content-type");
    assert_eq!(by_id["query"], "");

    let by_key = stack
        .json(&[
            "events",
            "show",
            "--source",
            "plain",
            "--dedup-key",
            "delivery-7",
        ])
        .await;
    assert_eq!(by_key, by_id);

    let text = stack.ok(&["events", "show", &id.to_string()]).await;
    assert!(text.contains("dedup key"), "{text}");
    assert!(text.contains("delivery-7"), "{text}");
    assert!(text.contains("content-type: application/json"), "{text}");
    assert!(text.contains(r#"{"key":"delivery-7"}"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_event_id_fails_with_no_event_and_exit_status_1() {
    let stack = Stack::new().await;
    let id = uuid::Uuid::now_v7();
    let output = stack.run(&["events", "show", &id.to_string()]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("no event {id}")),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty());

    let output = stack
        .run(&["events", "show", "--source", "plain", "--dedup-key", "nope"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no event"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flag_values_fail_with_a_message_naming_them() {
    let stack = Stack::new().await;
    let output = stack.run(&["events", "list", "--state", "finished"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("finished"), "{}", stderr(&output));

    let output = stack.run(&["events", "list", "--since", "yesterday"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("RFC 3339"), "{}", stderr(&output));

    let output = stack.run(&["events", "show", "not-a-uuid"]).await;
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_list_shows_dead_events_from_postgres_with_error_and_attempts() {
    let stack = Stack::new().await;
    let dead = stack.seed("plain", "delivery-1", None).await;
    let other_dead = stack
        .seed("apify", "run-2:x", Some(("run-2", "RUNNING")))
        .await;
    let failed = stack.seed("plain", "delivery-2", None).await;
    stack
        .set_state(dead, EventState::Dead, 3, Some("connection refused"))
        .await;
    stack
        .set_state(other_dead, EventState::Dead, 3, Some("deadlock detected"))
        .await;
    stack
        .set_state(failed, EventState::Failed, 0, Some("no status"))
        .await;

    let listed = stack.json(&["dead-letters", "list"]).await;
    assert_eq!(listed["total"], 2);
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], other_dead.to_string());
    assert_eq!(events[1]["id"], dead.to_string());
    assert_eq!(events[1]["attempts"], 3);
    assert_eq!(events[1]["last_error"], "connection refused");

    let plain = stack
        .json(&["dead-letters", "list", "--source", "plain"])
        .await;
    assert_eq!(plain["total"], 1);
    assert_eq!(plain["events"][0]["id"], dead.to_string());

    let text = stack.ok(&["dead-letters", "list"]).await;
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("2 of 2 dead events shown"), "{text}");
    assert!(!text.contains(&failed.to_string()), "{text}");
}
