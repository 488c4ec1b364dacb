//! The processing step's rules, one event at a time (`process`, a batch of one), driven
//! directly against a real PostgreSQL.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PLAIN_SOURCE, deps, envelope, event_state, insert, resource};
use hookline_domain::EventState;
use hookline_domain::Outcome as Decision;
use hookline_testkit::{APIFY_SOURCE, TestDb, amqp_prefix, config_toml, count};
use hookline_worker::{Outcome, process};

async fn setup() -> (TestDb, hookline_worker::Deps) {
    let db = TestDb::new().await;
    let toml = config_toml(
        &db.url,
        &amqp_prefix(),
        &format!("{APIFY_SOURCE}{PLAIN_SOURCE}"),
    );
    let deps = deps(&db, &toml);
    (db, deps)
}

/// Stores an Apify event for `run` in `status` and runs the step on it.
async fn step(db: &TestDb, deps: &hookline_worker::Deps, run: &str, status: &str) -> Outcome {
    let id = insert(db, "apify", Some(run), Some(status)).await;
    process(deps, &envelope(id, "apify"))
        .await
        .expect("the step commits")
}

fn decision(outcome: &Outcome) -> Decision {
    match outcome {
        Outcome::Processed {
            transition: Some(t),
            ..
        } => t.outcome,
        other => panic!("expected a processed event with a transition, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_statuses_apply_in_order_and_mark_each_event_processed() {
    let (db, deps) = setup().await;
    for status in ["READY", "RUNNING", "TIMING-OUT", "TIMED-OUT"] {
        let outcome = step(&db, &deps, "run-1", status).await;
        assert_eq!(decision(&outcome), Decision::Applied, "{status}");
    }
    let run = resource(&db, "apify", "run-1").await.expect("resource row");
    assert_eq!(run.status.as_deref(), Some("TIMED-OUT"));
    assert!(run.terminal);
    let froms: Vec<_> = run.transitions.iter().map(|t| t.from.clone()).collect();
    assert_eq!(
        froms,
        [
            None,
            Some("READY".into()),
            Some("RUNNING".into()),
            Some("TIMING-OUT".into())
        ]
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events WHERE state = 'processed' AND processed_at IS NOT NULL")
            .await
            .unwrap(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_status_again_is_logged_as_unchanged() {
    let (db, deps) = setup().await;
    step(&db, &deps, "run-1", "RUNNING").await;
    let outcome = step(&db, &deps, "run-1", "RUNNING").await;
    assert_eq!(decision(&outcome), Decision::Unchanged);
    let run = resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(run.status.as_deref(), Some("RUNNING"));
    assert_eq!(run.transitions.len(), 2);
    assert_eq!(run.transitions[1].outcome, Decision::Unchanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_lower_status_is_a_rejected_downgrade_and_changes_nothing() {
    let (db, deps) = setup().await;
    step(&db, &deps, "run-1", "TIMING-OUT").await;
    let outcome = step(&db, &deps, "run-1", "RUNNING").await;
    assert_eq!(decision(&outcome), Decision::RejectedDowngrade);
    let run = resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(run.status.as_deref(), Some("TIMING-OUT"));
    assert!(!run.terminal);
    assert_eq!(run.transitions[1].outcome, Decision::RejectedDowngrade);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_moves_a_resource_out_of_a_terminal_status() {
    let (db, deps) = setup().await;
    let first = insert(&db, "apify", Some("run-1"), Some("SUCCEEDED")).await;
    process(&deps, &envelope(first, "apify")).await.unwrap();
    let outcome = step(&db, &deps, "run-1", "RUNNING").await;
    assert_eq!(decision(&outcome), Decision::RejectedTerminal);
    let outcome = step(&db, &deps, "run-1", "FAILED").await;
    assert_eq!(decision(&outcome), Decision::RejectedTerminal);
    let run = resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(run.status.as_deref(), Some("SUCCEEDED"));
    assert!(run.terminal);
    assert_eq!(
        run.last_event_id,
        Some(first),
        "rejected events do not become the last event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_are_stored_in_the_lifecycle_spelling() {
    let (db, deps) = setup().await;
    let outcome = step(&db, &deps, "run-1", "running").await;
    assert_eq!(decision(&outcome), Decision::Applied);
    let run = resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(run.status.as_deref(), Some("RUNNING"));
    assert_eq!(run.transitions[0].to, "RUNNING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_the_same_event_twice_is_a_redelivery_with_one_transition() {
    let (db, deps) = setup().await;
    let id = insert(&db, "apify", Some("run-1"), Some("SUCCEEDED")).await;
    let first = process(&deps, &envelope(id, "apify")).await.unwrap();
    assert_eq!(decision(&first), Decision::Applied);
    let second = process(&deps, &envelope(id, "apify")).await.unwrap();
    assert_eq!(
        second,
        Outcome::Redelivered {
            state: EventState::Processed
        }
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) AS n FROM transitions WHERE event_id = '{id}'")
        )
        .await
        .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_status_fails_the_event_visibly_and_is_not_retried() {
    let (db, deps) = setup().await;
    step(&db, &deps, "run-1", "RUNNING").await;
    let id = insert(&db, "apify", Some("run-1"), Some("EXPLODED")).await;
    let outcome = process(&deps, &envelope(id, "apify")).await.unwrap();
    let Outcome::Failed { reason } = outcome else {
        panic!("expected failed, got {outcome:?}");
    };
    assert!(reason.contains("EXPLODED"), "{reason}");
    let (state, attempts, last_error) = event_state(&db, id).await;
    assert_eq!(state, EventState::Failed);
    assert_eq!(
        attempts, 0,
        "a permanent failure is not an attempt to retry"
    );
    assert_eq!(last_error.as_deref(), Some(reason.as_str()));
    // A redelivery of the failed event does not try again.
    assert_eq!(
        process(&deps, &envelope(id, "apify")).await.unwrap(),
        Outcome::Redelivered {
            state: EventState::Failed
        }
    );
    let run = resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(run.status.as_deref(), Some("RUNNING"));
    assert_eq!(run.transitions.len(), 1, "no transition is logged for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_resource_key_or_status_fails_the_event() {
    let (db, deps) = setup().await;
    let no_key = insert(&db, "apify", None, Some("RUNNING")).await;
    let no_status = insert(&db, "apify", Some("run-1"), None).await;
    for (id, needle) in [(no_key, "resource key"), (no_status, "status")] {
        let outcome = process(&deps, &envelope(id, "apify")).await.unwrap();
        assert!(
            matches!(&outcome, Outcome::Failed { reason } if reason.contains(needle)),
            "{outcome:?}"
        );
        assert_eq!(event_state(&db, id).await.0, EventState::Failed);
    }
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM resources")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_of_a_source_this_worker_does_not_know_fails() {
    let (db, deps) = setup().await;
    let id = insert(&db, "retired", Some("r"), Some("RUNNING")).await;
    let outcome = process(&deps, &envelope(id, "retired")).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Failed { reason } if reason.contains("retired")),
        "{outcome:?}"
    );
    assert_eq!(event_state(&db, id).await.0, EventState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_a_lifecycle_is_simply_marked_processed() {
    let (db, deps) = setup().await;
    let id = insert(&db, "plain", None, None).await;
    let outcome = process(&deps, &envelope(id, "plain")).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Processed {
                transition: None,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(event_state(&db, id).await.0, EventState::Processed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_for_an_event_that_does_not_exist_is_missing() {
    let (_db, deps) = setup().await;
    let outcome = process(&deps, &envelope(uuid::Uuid::now_v7(), "apify"))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_transient_error() {
    let db = TestDb::new().await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE);
    let (_, sources) = hookline_testkit::config(&toml);
    // Nothing listens on port 1: every checkout fails at once.
    let nowhere = hookline_testkit::urls::refused(&hookline_testkit::database_url("nowhere"));
    let pool = hookline_db::create_pool(&nowhere, 2).unwrap();
    let deps = hookline_worker::Deps::new(pool, sources);
    let id = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    let error = process(&deps, &envelope(id, "apify")).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}
