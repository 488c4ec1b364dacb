//! `hookline replay` and `dead-letters redrive` against the real database and broker.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use hookline_domain::EventState;
use std::collections::BTreeSet;

use common::{Stack, stderr};
use hookline_testkit::amqp_url;
use hookline_testkit::urls::refused;
use uuid::Uuid;

fn ids(envelopes: &[hookline_queue::Envelope]) -> BTreeSet<Uuid> {
    envelopes.iter().map(|e| e.event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_republishes_unfinished_events_to_the_work_queue_and_skips_final_ones() {
    let stack = Stack::new().await;
    let received = stack.seed("plain", "d-1", None).await;
    let published = stack.seed("plain", "d-2", None).await;
    let processed = stack.seed("plain", "d-3", None).await;
    let dead = stack.seed("plain", "d-4", None).await;
    let other_source = stack.seed("apify", "r:1", Some(("r", "RUNNING"))).await;
    stack
        .set_state(published, EventState::Published, 0, None)
        .await;
    stack
        .set_state(processed, EventState::Processed, 0, None)
        .await;
    stack
        .set_state(dead, EventState::Dead, 3, Some("timeout"))
        .await;

    let summary = stack.json(&["replay", "--source", "plain"]).await;
    assert_eq!(summary["selected"], 4);
    assert_eq!(summary["published"], 2);
    assert_eq!(summary["skipped"], 2);
    assert_eq!(summary["reset"], 0);

    let envelopes = stack.drain(&stack.work_queue()).await;
    assert_eq!(envelopes.len(), 2);
    assert_eq!(ids(&envelopes), BTreeSet::from([received, published]));
    for envelope in &envelopes {
        assert_eq!(envelope.source, "plain");
        assert_eq!(envelope.attempt, 1);
    }
    // The confirmed publish counts: `received` became `published`; final events untouched.
    assert_eq!(stack.state(received).await.0, EventState::Published);
    assert_eq!(stack.state(processed).await.0, EventState::Processed);
    assert_eq!(
        stack.state(dead).await,
        (EventState::Dead, 3, Some("timeout".into()))
    );
    assert_eq!(stack.state(other_source).await.0, EventState::Received);

    // Idempotent: running it again republishes the same pointers and changes nothing else.
    let again = stack.json(&["replay", "--source", "plain"]).await;
    assert_eq!(again["published"], 2);
    assert_eq!(
        ids(&stack.drain(&stack.work_queue()).await),
        BTreeSet::from([received, published])
    );
    assert_eq!(stack.state(processed).await.0, EventState::Processed);
    stack.delete_broker_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_with_reset_re_runs_failed_and_dead_events_but_never_processed_ones() {
    let stack = Stack::new().await;
    let failed = stack.seed("plain", "d-1", None).await;
    let dead = stack.seed("plain", "d-2", None).await;
    let processed = stack.seed("plain", "d-3", None).await;
    stack
        .set_state(failed, EventState::Failed, 0, Some("no status"))
        .await;
    stack
        .set_state(dead, EventState::Dead, 3, Some("timeout"))
        .await;
    stack
        .set_state(processed, EventState::Processed, 0, None)
        .await;

    let summary = stack
        .json(&[
            "replay",
            "--id",
            &failed.to_string(),
            "--id",
            &dead.to_string(),
            "--id",
            &processed.to_string(),
            "--reset",
        ])
        .await;
    assert_eq!(summary["selected"], 3);
    assert_eq!(summary["published"], 2);
    assert_eq!(summary["reset"], 2);
    assert_eq!(summary["skipped"], 1);

    assert_eq!(
        ids(&stack.drain(&stack.work_queue()).await),
        BTreeSet::from([failed, dead])
    );
    assert_eq!(stack.state(failed).await, (EventState::Published, 0, None));
    assert_eq!(stack.state(dead).await, (EventState::Published, 0, None));
    assert_eq!(stack.state(processed).await.0, EventState::Processed);
    stack.delete_broker_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_dry_run_reports_without_publishing_or_changing_anything() {
    let stack = Stack::new().await;
    let dead = stack.seed("plain", "d-1", None).await;
    let received = stack.seed("plain", "d-2", None).await;
    stack
        .set_state(dead, EventState::Dead, 3, Some("timeout"))
        .await;

    let summary = stack
        .json(&["replay", "--all", "--reset", "--dry-run"])
        .await;
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["published"], 2);
    assert_eq!(summary["reset"], 1);
    assert_eq!(stack.state(dead).await.0, EventState::Dead);
    assert_eq!(stack.state(received).await.0, EventState::Received);

    let text = stack.ok(&["replay", "--all", "--reset", "--dry-run"]).await;
    assert!(text.contains("dry run"), "{text}");
    assert!(text.contains("would publish 2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_pages_through_more_events_than_one_batch() {
    let stack = Stack::new().await;
    let mut seeded = BTreeSet::new();
    for i in 0..7 {
        seeded.insert(stack.seed("plain", &format!("d-{i}"), None).await);
    }
    let summary = stack
        .json(&["replay", "--source", "plain", "--batch-size", "3"])
        .await;
    assert_eq!(summary["selected"], 7);
    assert_eq!(summary["published"], 7);
    let envelopes = stack.drain(&stack.work_queue()).await;
    assert_eq!(envelopes.len(), 7, "each event published once");
    assert_eq!(ids(&envelopes), seeded);
    stack.delete_broker_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_to_run_without_a_filter_or_all_and_names_unknown_ids() {
    let stack = Stack::new().await;
    stack.seed("plain", "d-1", None).await;

    let output = stack.run(&["replay"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("needs a filter"),
        "{}",
        stderr(&output)
    );

    let unknown = Uuid::now_v7();
    let output = stack.run(&["replay", "--id", &unknown.to_string()]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("no event {unknown}")),
        "{}",
        stderr(&output)
    );

    let output = stack.run(&["dead-letters", "redrive"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("needs a filter"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_moves_dead_events_to_published_and_republishes_them() {
    let stack = Stack::new().await;
    let dead_plain = stack.seed("plain", "d-1", None).await;
    let dead_apify = stack.seed("apify", "r:1", Some(("r", "RUNNING"))).await;
    let failed = stack.seed("plain", "d-2", None).await;
    stack
        .set_state(dead_plain, EventState::Dead, 3, Some("timeout"))
        .await;
    stack
        .set_state(dead_apify, EventState::Dead, 3, Some("timeout"))
        .await;
    stack
        .set_state(failed, EventState::Failed, 0, Some("no status"))
        .await;

    let summary = stack
        .json(&["dead-letters", "redrive", "--source", "plain"])
        .await;
    assert_eq!(summary["selected"], 1);
    assert_eq!(summary["reset"], 1);
    assert_eq!(summary["published"], 1);
    assert_eq!(
        stack.state(dead_plain).await,
        (EventState::Published, 0, None)
    );
    // Other sources and other states are not touched.
    assert_eq!(stack.state(dead_apify).await.0, EventState::Dead);
    assert_eq!(stack.state(failed).await.0, EventState::Failed);
    let envelopes = stack.drain(&stack.work_queue()).await;
    assert_eq!(ids(&envelopes), BTreeSet::from([dead_plain]));

    // By id, with a table for people.
    let text = stack
        .ok(&["dead-letters", "redrive", "--id", &dead_apify.to_string()])
        .await;
    assert!(text.contains("selected 1 event:"), "{text}");
    assert_eq!(
        stack.state(dead_apify).await,
        (EventState::Published, 0, None)
    );
    assert_eq!(
        ids(&stack.drain(&stack.work_queue()).await),
        BTreeSet::from([dead_apify])
    );

    // Nothing dead is left: a second redrive is a no-op.
    let again = stack.json(&["dead-letters", "redrive", "--all"]).await;
    assert_eq!(again["selected"], 0);
    assert!(stack.drain(&stack.work_queue()).await.is_empty());
    assert_eq!(stack.state(failed).await.0, EventState::Failed);
    stack.delete_broker_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_all_with_purge_queue_empties_the_dead_letter_queue() {
    let stack = Stack::new().await;
    let a = stack.seed("plain", "d-1", None).await;
    let b = stack.seed("plain", "d-2", None).await;
    for id in [a, b] {
        stack
            .set_state(id, EventState::Dead, 3, Some("timeout"))
            .await;
    }
    stack.dead_letter(&[a, b], "plain").await;

    let summary = stack
        .json(&["dead-letters", "redrive", "--all", "--purge-queue"])
        .await;
    assert_eq!(summary["reset"], 2);
    assert_eq!(summary["purged"], 2);
    assert!(stack.drain(&stack.dead_queue()).await.is_empty());
    assert_eq!(
        ids(&stack.drain(&stack.work_queue()).await),
        BTreeSet::from([a, b])
    );

    // --purge-queue only makes sense once every dead event was redriven.
    let output = stack
        .run(&[
            "dead-letters",
            "redrive",
            "--source",
            "plain",
            "--purge-queue",
        ])
        .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--all"), "{}", stderr(&output));
    stack.delete_broker_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_fails_clearly_when_the_broker_is_unreachable_and_changes_nothing() {
    let stack = Stack::new().await;
    let dead = stack.seed("plain", "d-1", None).await;
    stack
        .set_state(dead, EventState::Dead, 3, Some("timeout"))
        .await;
    let output = stack
        .run_with_env(
            &["dead-letters", "redrive", "--all"],
            // Port 1: nothing listens, the connection is refused at once.
            &[("HOOKLINE__AMQP__URL", &refused(&amqp_url()))],
        )
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("RabbitMQ"), "{}", stderr(&output));
    assert_eq!(stack.state(dead).await.0, EventState::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_for_replay_only_ever_touches_failed_and_dead_events() {
    let stack = Stack::new().await;
    let mut all = Vec::new();
    for state in EventState::ALL {
        let id = stack.seed("plain", state.as_str(), None).await;
        stack.set_state(id, state, 2, Some("boom")).await;
        all.push((id, state));
    }
    let ids: Vec<Uuid> = all.iter().map(|(id, _)| *id).collect();
    let mut conn = stack.db.connect().await;
    assert_eq!(
        hookline_db::reset_for_replay(&mut conn, &ids)
            .await
            .unwrap(),
        2
    );
    for (id, state) in &all {
        let expected = match *state {
            EventState::Failed | EventState::Dead => (EventState::Published, 0, None),
            other => (other, 2, Some("boom".to_string())),
        };
        assert_eq!(stack.state(*id).await, expected, "{state}");
    }
    // A second call finds nothing left to reset.
    assert_eq!(
        hookline_db::reset_for_replay(&mut conn, &ids)
            .await
            .unwrap(),
        0
    );
}
