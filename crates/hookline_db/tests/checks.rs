//! `integrity_figures` (what `make chaos` checks) counts each kind of violation once and
//! nothing else; `lock_events_table` (what `make overload` stalls with) holds inserts
//! until released.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_db::{
    finish_events, insert_events, integrity_figures, lock_events_table, release_events_table,
};
use hookline_domain::Lifecycle;
use hookline_testkit::{TestDb, new_event};
use uuid::Uuid;

fn event(key: &str, resource: Option<&str>, status: &str) -> hookline_db::NewEvent {
    let mut event = new_event("chaos", key);
    event.resource_key = resource.map(str::to_string);
    event.status = Some(status.to_string());
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_violation_is_counted_once_and_a_clean_resource_not_at_all() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let events = vec![
        // r1: clean (applied forward, a late READY rejected after the terminal status).
        event("e1", Some("r1"), "RUNNING"),
        event("e2", Some("r1"), "SUCCEEDED"),
        event("e3", Some("r1"), "READY"),
        // r2: a downgrade applied; the resource ends below its best status.
        event("e4", Some("r2"), "SUCCEEDED"),
        event("e5", Some("r2"), "RUNNING"),
        // r3: e6 decided twice; e7 processed without a decision of its source (its only
        // row is another source's), and r3 ends behind it.
        event("e6", Some("r3"), "running"),
        event("e7", Some("r3"), "TIMING-OUT"),
        // Not final; failed.
        event("e8", Some("r4"), "READY"),
        event("e9", Some("r4"), "READY"),
    ];
    insert_events(&mut conn, &events, false).await.unwrap();
    let id = |i: usize| events[i - 1].id;
    let done: Vec<(Uuid, Option<&str>)> = (1..=7).map(|i| (id(i), None)).collect();
    finish_events(&mut conn, &done).await.unwrap();
    finish_events(&mut conn, &[(id(9), Some("bad"))])
        .await
        .unwrap();
    let resources = "INSERT INTO resources (source, resource_key, status, terminal) VALUES \
        ('chaos', 'r1', 'SUCCEEDED', true), ('chaos', 'r2', 'RUNNING', false), \
        ('chaos', 'r3', 'RUNNING', false), ('other', 'r1', 'READY', false)";
    db.execute(resources).await;
    let transitions = format!(
        "INSERT INTO transitions (source, resource_key, event_id, from_status, to_status, outcome) VALUES \
         ('chaos', 'r1', '{}', NULL, 'RUNNING', 'applied'), \
         ('chaos', 'r1', '{}', 'RUNNING', 'SUCCEEDED', 'applied'), \
         ('chaos', 'r1', '{}', 'SUCCEEDED', 'READY', 'rejected_terminal'), \
         ('chaos', 'r1', '{}', 'SUCCEEDED', 'FAILED', 'forced'), \
         ('chaos', 'r2', '{}', NULL, 'SUCCEEDED', 'applied'), \
         ('chaos', 'r2', '{}', 'SUCCEEDED', 'RUNNING', 'applied'), \
         ('chaos', 'r3', '{}', NULL, 'RUNNING', 'applied'), \
         ('chaos', 'r3', '{}', 'RUNNING', 'RUNNING', 'unchanged'), \
         ('other', 'r1', '{}', 'SUCCEEDED', 'READY', 'applied')",
        id(1),
        id(2),
        id(3),
        id(1),
        id(4),
        id(5),
        id(6),
        id(6),
        id(7),
    );
    db.execute(&transitions).await;

    let lifecycle = Lifecycle::builtin("apify-run").unwrap();
    let mut acknowledged: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    acknowledged.push(Uuid::now_v7());
    let figures = integrity_figures(&mut conn, "chaos", &lifecycle, &acknowledged)
        .await
        .unwrap();
    assert_eq!(
        figures,
        hookline_db::IntegrityFigures {
            events: 9,
            resources: 3,
            acknowledged_lost: 1,
            decided_twice: 1,
            processed_undecided: 1,
            applied_downgrades: 1,
            resources_behind: 2,
            not_final: 1,
            failed_or_dead: 1,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_waits_while_the_events_table_is_locked() {
    let db = TestDb::new().await;
    let mut lock = db.connect().await;
    lock_events_table(&mut lock).await.unwrap();
    let insert = tokio::spawn({
        let url = db.url.clone();
        async move {
            let mut conn = hookline_db::connect(&url).await.unwrap();
            insert_events(&mut conn, &[new_event("s", "k")], false)
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!insert.is_finished(), "the insert went through the lock");
    release_events_table(&mut lock).await.unwrap();
    let stored = insert.await.unwrap();
    assert!(!stored[0].duplicate);
}
