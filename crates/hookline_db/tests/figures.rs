//! `key_prefix_figures`: the benchmark's end-to-end figures count exactly the events of
//! one run, decided or not, and treat `LIKE` wildcards in the prefix literally; the
//! delivery figures count first attempts still in their lease as not delivered yet.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hookline_db::{
    DeliveryResult, NewDelivery, enqueue_deliveries, finish_events, insert_events,
    key_prefix_delivery_figures, key_prefix_figures, settle_deliveries,
};
use hookline_domain::DeliveryState;
use hookline_testkit::{TestDb, new_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_count_one_runs_events_and_only_decided_ones_as_decided() {
    let db = TestDb::new().await;
    // A second back: PostgreSQL's clock and this one are the same machine's.
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let batch = vec![
        new_event("bench", "run_1-a"),
        new_event("bench", "run_1-b"),
        new_event("bench", "run_1-c"),
        // `_` is a LIKE wildcard: this key must not count for prefix "run_1-".
        new_event("bench", "runX1-d"),
        new_event("other", "run_1-e"),
    ];
    let mut conn = db.connect().await;
    insert_events(&mut conn, &batch, false).await.unwrap();
    finish_events(
        &mut conn,
        &[(batch[0].id, None), (batch[1].id, Some("no status"))],
    )
    .await
    .unwrap();

    let figures = key_prefix_figures(&mut conn, "bench", "run_1-", since)
        .await
        .unwrap();
    assert_eq!((figures.stored, figures.decided), (3, 2), "{figures:?}");
    assert!(figures.p50_ms.is_some_and(|ms| ms >= 0.0), "{figures:?}");
    assert!(figures.span_s.is_some(), "{figures:?}");
    assert!(figures.busy_span_s.is_some_and(|s| s >= 0.0), "{figures:?}");

    // Events received before `since` are not counted.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let after = key_prefix_figures(&mut conn, "bench", "run_1-", later)
        .await
        .unwrap();
    assert_eq!((after.stored, after.decided), (0, 0), "{after:?}");

    let none = key_prefix_figures(&mut conn, "bench", "nope-", since)
        .await
        .unwrap();
    assert_eq!((none.stored, none.decided, none.p50_ms), (0, 0, None));
}

/// The benchmark waits until `decided` reaches `stored`: a first attempt still in its
/// lease has no `deliveries` row yet, and must count as stored and not delivered, or the
/// wait would end (and call the run complete) with deliveries in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_figures_count_leased_first_attempts_as_not_delivered_yet() {
    let db = TestDb::new().await;
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let batch = vec![new_event("bench", "run_2-a"), new_event("bench", "run_2-b")];
    let mut conn = db.connect().await;
    insert_events(&mut conn, &batch, false).await.unwrap();
    let intents: Vec<NewDelivery> = batch
        .iter()
        .map(|e| NewDelivery {
            event_id: e.id,
            destination: "sink",
            source: "bench",
            resource_key: None,
            status: None,
            outcome: None,
            leased: Some(std::time::Duration::from_secs(60)),
        })
        .collect();
    let leased = enqueue_deliveries(&mut conn, &intents).await.unwrap();
    let before = key_prefix_delivery_figures(&mut conn, "bench", "run_2-", "sink", since)
        .await
        .unwrap();
    assert_eq!((before.stored, before.decided), (2, 0), "{before:?}");

    let results: Vec<DeliveryResult> = leased
        .iter()
        .take(1)
        .map(|l| DeliveryResult {
            event_id: l.event_id,
            destination: l.destination.clone(),
            lease: Some(l.slot),
            source: l.source.clone(),
            resource_key: None,
            status: None,
            outcome: None,
            attempt: 1,
            state: DeliveryState::Delivered,
            last_status: Some(204),
            last_error: None,
            latency_ms: 1,
            retry_in: None,
        })
        .collect();
    settle_deliveries(&mut conn, &results).await.unwrap();
    let half = key_prefix_delivery_figures(&mut conn, "bench", "run_2-", "sink", since)
        .await
        .unwrap();
    assert_eq!((half.stored, half.decided), (2, 1), "{half:?}");
}
