//! `key_audit`: the cluster test's verdict counts an acknowledged key without a row as
//! lost, an event with two transition-log rows as decided twice, and anything not
//! `processed` as unprocessed, for one run's keys only.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hookline_db::{
    KeyAudit, TransitionRow, finish_events, insert_events, key_audit, record_transitions,
};
use hookline_domain::Outcome;
use hookline_testkit::{TestDb, new_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_finds_lost_keys_double_decisions_and_unprocessed_events() {
    let db = TestDb::new().await;
    let batch = vec![
        new_event("bench", "run_1-0"),
        new_event("bench", "run_1-1"),
        new_event("bench", "run_1-2"),
        // Another run (`_` is a LIKE wildcard) and another source: never counted.
        new_event("bench", "runX1-3"),
        new_event("other", "run_1-4"),
    ];
    let mut conn = db.connect().await;
    insert_events(&mut conn, &batch, false).await.unwrap();
    finish_events(&mut conn, &[(batch[0].id, None), (batch[1].id, None)])
        .await
        .unwrap();
    let row = |i: usize| TransitionRow {
        source: "bench",
        resource_key: "r",
        event_id: Some(batch[i].id),
        from: None,
        to: "RUNNING",
        outcome: Outcome::Applied,
        reason: None,
        actor: None,
    };
    // Event 0 decided once, event 1 twice.
    record_transitions(&mut conn, &[], &[row(0), row(1), row(1)])
        .await
        .unwrap();

    // The client was answered for keys 0, 1 (twice: a duplicate) and 9 (never stored).
    let acked: Vec<String> = ["run_1-0", "run_1-1", "run_1-1", "run_1-9"]
        .map(String::from)
        .to_vec();
    let audit = key_audit(&mut conn, "bench", "run_1-", &acked)
        .await
        .unwrap();
    assert_eq!(
        audit,
        KeyAudit {
            acked: 3,
            missing: 1,
            stored: 3,
            processed: 2,
            unprocessed: 1,
            transitions: 3,
            decided_twice: 1,
        }
    );
}
