//! `hookline deliveries list|redrive` against the real database.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Stack, stderr};
use uuid::Uuid;

/// A stack whose config has destinations `orders` and `audit`, with deliveries seeded in
/// every state.
async fn stack() -> (Stack, Vec<Uuid>) {
    let stack = Stack::new().await;
    let mut toml = std::fs::read_to_string(&stack.config).unwrap();
    for name in ["orders", "audit"] {
        toml.push_str(&format!(
            "\n[destinations.{name}]\nurl = \"http://127.0.0.1:9/{name}\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
        ));
    }
    std::fs::write(&stack.config, toml).unwrap();
    let mut ids = Vec::new();
    for (i, state) in ["dead", "dead", "failed", "delivered", "pending"]
        .iter()
        .enumerate()
    {
        let id = stack.seed("plain", &format!("d-{i}"), None).await;
        let delivered_at = if *state == "delivered" {
            "now()"
        } else {
            "NULL"
        };
        stack
            .sql(&format!(
                "INSERT INTO deliveries (event_id, destination, source, state, attempts, last_status, last_error, delivered_at) \
                 VALUES ('{id}', 'orders', 'plain', '{state}', 3, 503, 'HTTP 503 Service Unavailable', {delivered_at})"
            ))
            .await;
        ids.push(id);
    }
    stack
        .sql(&format!(
            "INSERT INTO deliveries (event_id, destination, source, state, attempts) \
             VALUES ('{}', 'audit', 'plain', 'dead', 12)",
            ids[0]
        ))
        .await;
    (stack, ids)
}

async fn states(stack: &Stack, destination: &str) -> Vec<(String, i64)> {
    let json = stack
        .json(&["deliveries", "list", "--destination", destination])
        .await;
    let mut states: Vec<(String, i64)> = json["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["state"].as_str().unwrap().to_string(),
                d["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    states.sort();
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_destination_and_state_and_shows_pauses() {
    let (stack, ids) = stack().await;
    stack
        .sql("INSERT INTO destination_pauses (destination, reason) VALUES ('audit', '410 Gone')")
        .await;
    let table = stack
        .ok(&["deliveries", "list", "--destination", "orders"])
        .await;
    assert!(table.contains("5 deliveries"), "{table}");
    assert!(table.contains("HTTP 503"), "{table}");
    assert!(
        table.contains("destination audit is paused (410 Gone)"),
        "{table}"
    );
    let json = stack.json(&["deliveries", "list", "--state", "dead"]).await;
    let rows = json["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{json}");
    assert!(rows.iter().all(|d| d["state"] == "dead"));
    assert!(
        rows.iter()
            .any(|d| d["event_id"] == ids[0].to_string() && d["destination"] == "audit")
    );
    assert_eq!(json["paused"][0]["destination"], "audit");
    let since_future = stack
        .json(&["deliveries", "list", "--since", "2999-01-01T00:00:00Z"])
        .await;
    assert_eq!(since_future["deliveries"].as_array().unwrap().len(), 0);

    let bad = stack.run(&["deliveries", "list", "--state", "sent"]).await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("unknown delivery state \"sent\""),
        "{}",
        stderr(&bad)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_makes_dead_and_failed_pending_again_once_and_resumes_a_paused_destination() {
    let (stack, _) = stack().await;
    stack
        .sql("INSERT INTO destination_pauses (destination, reason) VALUES ('orders', '410 Gone')")
        .await;
    let dry = stack
        .json(&[
            "deliveries",
            "redrive",
            "--destination",
            "orders",
            "--dry-run",
        ])
        .await;
    assert_eq!(dry["would_redrive"], 3);
    assert_eq!(dry["paused"], true);
    assert_eq!(
        states(&stack, "orders").await,
        [
            ("dead".into(), 3),
            ("dead".into(), 3),
            ("delivered".into(), 3),
            ("failed".into(), 3),
            ("pending".into(), 3)
        ],
        "a dry run changes nothing"
    );

    let only_dead = stack
        .json(&[
            "deliveries",
            "redrive",
            "--destination",
            "orders",
            "--state",
            "dead",
            "--batch-size",
            "1",
        ])
        .await;
    assert_eq!(only_dead["redriven"], 2);
    assert_eq!(only_dead["resumed"], true);
    assert_eq!(
        states(&stack, "orders").await,
        [
            ("delivered".into(), 3),
            ("failed".into(), 3),
            ("pending".into(), 0),
            ("pending".into(), 0),
            ("pending".into(), 3)
        ]
    );
    let rest = stack
        .json(&["deliveries", "redrive", "--destination", "orders"])
        .await;
    assert_eq!(rest["redriven"], 1);
    assert_eq!(rest["resumed"], false);
    let again = stack
        .json(&["deliveries", "redrive", "--destination", "orders"])
        .await;
    assert_eq!(again["redriven"], 0, "idempotent");
    assert_eq!(
        states(&stack, "audit").await,
        [("dead".into(), 12)],
        "other destinations are untouched"
    );

    let unknown = stack
        .run(&["deliveries", "redrive", "--destination", "nosuch"])
        .await;
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("\"nosuch\" is not configured"),
        "{}",
        stderr(&unknown)
    );
    let pending = stack
        .run(&[
            "deliveries",
            "redrive",
            "--destination",
            "orders",
            "--state",
            "pending",
        ])
        .await;
    assert!(!pending.status.success());
    assert!(
        stderr(&pending).contains("use dead or failed"),
        "{}",
        stderr(&pending)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_a_bad_destination_key() {
    let stack = Stack::new().await;
    let mut toml = std::fs::read_to_string(&stack.config).unwrap();
    toml.push_str(
        "\n[destinations.orders]\nurl = \"https://orders.internal/hooks\"\nsecret = \"not-whsec\"\nsources = [\"plain\"]\n",
    );
    std::fs::write(&stack.config, &toml).unwrap();
    let output = stack.run(&["check-config"]).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("destinations.orders.secret"), "{err}");
    assert!(
        !err.contains("not-whsec"),
        "the secret is not echoed: {err}"
    );

    std::fs::write(
        &stack.config,
        toml.replace("not-whsec", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    )
    .unwrap();
    let json = stack.json(&["check-config"]).await;
    assert_eq!(json["destinations"][0], "orders");
}
