//! `hookline resources show|force-status` against a real database.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Stack, stderr};
use hookline_db::{ResourceUpdate, TransitionRow, lock_resources, record_transitions};
use hookline_domain::EventState;
use hookline_domain::Outcome;

/// An Apify run `run-1` that a worker moved to RUNNING, as the pipeline would leave it.
async fn running_run(stack: &Stack) -> uuid::Uuid {
    let event = stack
        .seed(
            "apify",
            "run-1:ACTOR.RUN.RUNNING",
            Some(("run-1", "RUNNING")),
        )
        .await;
    let mut conn = stack.db.connect().await;
    let locked = lock_resources(&mut conn, &[("apify", "run-1")])
        .await
        .unwrap();
    assert_eq!(locked[0].2, None, "a fresh resource has no status");
    record_transitions(
        &mut conn,
        &[ResourceUpdate {
            source: "apify",
            resource_key: "run-1",
            status: "RUNNING",
            terminal: false,
            event_id: Some(event),
        }],
        &[TransitionRow {
            source: "apify",
            resource_key: "run-1",
            event_id: Some(event),
            from: None,
            to: "RUNNING",
            outcome: Outcome::Applied,
            reason: None,
            actor: None,
        }],
    )
    .await
    .unwrap();
    stack.set_state(event, EventState::Processed, 0, None).await;
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_show_prints_status_terminal_flag_and_transitions() {
    let stack = Stack::new().await;
    let event = running_run(&stack).await;

    let json = stack.json(&["resources", "show", "apify", "run-1"]).await;
    assert_eq!(json["source"], "apify");
    assert_eq!(json["resource_key"], "run-1");
    assert_eq!(json["status"], "RUNNING");
    assert_eq!(json["terminal"], false);
    assert_eq!(json["last_event_id"], event.to_string());
    let transitions = json["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0]["outcome"], "applied");
    assert_eq!(transitions[0]["to"], "RUNNING");
    assert!(transitions[0]["from"].is_null());

    let text = stack.ok(&["resources", "show", "apify", "run-1"]).await;
    assert!(text.contains("apify/run-1"), "{text}");
    assert!(text.contains("RUNNING"), "{text}");
    assert!(text.contains("terminal"), "{text}");
    let header = text
        .lines()
        .find(|l| l.starts_with("AT"))
        .expect("a transitions table");
    for column in ["OUTCOME", "FROM", "TO", "EVENT", "ACTOR", "REASON"] {
        assert!(header.contains(column), "{text}");
    }
    assert!(text.contains(&event.to_string()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_resource_fails_with_no_resource() {
    let stack = Stack::new().await;
    let output = stack.run(&["resources", "show", "apify", "nope"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no resource apify/nope"),
        "{}",
        stderr(&output)
    );
    let output = stack
        .run(&[
            "resources",
            "force-status",
            "apify",
            "nope",
            "SUCCEEDED",
            "--reason",
            "x",
            "--actor",
            "ops",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no resource apify/nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_status_without_a_reason_fails_and_changes_nothing() {
    let stack = Stack::new().await;
    running_run(&stack).await;

    let output = stack
        .run(&["resources", "force-status", "apify", "run-1", "SUCCEEDED"])
        .await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--reason"), "{}", stderr(&output));

    let output = stack
        .run(&[
            "resources",
            "force-status",
            "apify",
            "run-1",
            "SUCCEEDED",
            "--reason",
            "  ",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--reason must not be empty"),
        "{}",
        stderr(&output)
    );

    let json = stack.json(&["resources", "show", "apify", "run-1"]).await;
    assert_eq!(json["status"], "RUNNING");
    assert_eq!(json["transitions"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_status_writes_a_forced_transition_with_reason_and_actor() {
    let stack = Stack::new().await;
    running_run(&stack).await;

    // Lower-case is accepted and stored in the lifecycle's spelling; SUCCEEDED is terminal.
    let forced = stack
        .json(&[
            "resources",
            "force-status",
            "apify",
            "run-1",
            "succeeded",
            "--reason",
            "Apify support confirmed the run finished",
            "--actor",
            "alice",
        ])
        .await;
    assert_eq!(forced["from"], "RUNNING");
    assert_eq!(forced["to"], "SUCCEEDED");
    assert_eq!(forced["terminal"], true);

    let json = stack.json(&["resources", "show", "apify", "run-1"]).await;
    assert_eq!(json["status"], "SUCCEEDED");
    assert_eq!(json["terminal"], true);
    let last = json["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["outcome"], "forced");
    assert_eq!(last["from"], "RUNNING");
    assert_eq!(last["to"], "SUCCEEDED");
    assert_eq!(last["reason"], "Apify support confirmed the run finished");
    assert_eq!(last["actor"], "alice");
    assert!(last["event_id"].is_null());

    // Forcing bypasses the lifecycle: even out of a terminal status, and the actor
    // defaults to $USER.
    let output = stack
        .run_with_env(
            &[
                "resources",
                "force-status",
                "apify",
                "run-1",
                "RUNNING",
                "--reason",
                "re-opened by mistake upstream",
            ],
            &[("USER", "ops-bot")],
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("SUCCEEDED -> RUNNING"), "{stdout}");
    assert!(stdout.contains("forced by ops-bot"), "{stdout}");
    let json = stack.json(&["resources", "show", "apify", "run-1"]).await;
    assert_eq!(json["status"], "RUNNING");
    assert_eq!(json["terminal"], false);
    let last = json["transitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["actor"], "ops-bot");
    assert_eq!(last["outcome"], "forced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_status_refuses_a_status_outside_the_sources_lifecycle() {
    let stack = Stack::new().await;
    running_run(&stack).await;
    let output = stack
        .run(&[
            "resources",
            "force-status",
            "apify",
            "run-1",
            "EXPLODED",
            "--reason",
            "x",
            "--actor",
            "alice",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("EXPLODED") && err.contains("apify-run"),
        "{err}"
    );
    let json = stack.json(&["resources", "show", "apify", "run-1"]).await;
    assert_eq!(json["transitions"].as_array().unwrap().len(), 1);
}
