//! `process_batch` with many events: one transaction settling every kind of event, in
//! arrival order, overlapping batches racing on real PostgreSQL, and batch messages.
//! (`process`, the step's rules one event at a time, is `step.rs`'s; it is the same path,
//! a batch of one.)

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use hookline_domain::{EventState, Outcome as Decision};
use std::sync::Arc;

use common::{deps, insert, rank, resource};
use hookline_testkit::{APIFY_SOURCE, TestDb, amqp_prefix, config_toml, count};
use hookline_worker::{Outcome, process_batch};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_applies_the_lifecycle_in_arrival_order_and_settles_every_kind_of_event() {
    let db = TestDb::new().await;
    let deps = deps(&db, &config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE));
    let running = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    let succeeded = insert(&db, "apify", Some("run-1"), Some("SUCCEEDED")).await;
    let late = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    let other = insert(&db, "apify", Some("run-2"), Some("timing-out")).await;
    let unknown = insert(&db, "apify", Some("run-3"), Some("EXPLODED")).await;
    let keyless = insert(&db, "apify", None, Some("RUNNING")).await;
    let missing = Uuid::now_v7();

    // Out of order and with a duplicate: the batch still decides in id (arrival) order.
    let ids = [
        late, other, succeeded, running, unknown, keyless, missing, running,
    ];
    let outcomes = process_batch(&deps, &ids).await.unwrap();
    let transition = |id: Uuid| match &outcomes[&id] {
        Outcome::Processed {
            transition: Some(t),
            ..
        } => (t.from.clone(), t.to.clone(), t.outcome),
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!(
        transition(running),
        (None, "RUNNING".into(), Decision::Applied)
    );
    assert_eq!(
        transition(succeeded),
        (
            Some("RUNNING".into()),
            "SUCCEEDED".into(),
            Decision::Applied
        )
    );
    assert_eq!(
        transition(late),
        (
            Some("SUCCEEDED".into()),
            "RUNNING".into(),
            Decision::RejectedTerminal
        )
    );
    assert_eq!(
        transition(other),
        (None, "TIMING-OUT".into(), Decision::Applied),
        "stored in the lifecycle's spelling"
    );
    assert!(
        matches!(&outcomes[&unknown], Outcome::Failed { reason } if reason.contains("EXPLODED"))
    );
    assert!(matches!(&outcomes[&keyless], Outcome::Failed { .. }));
    assert_eq!(outcomes[&missing], Outcome::Missing);

    let run1 = resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(
        (run1.status.as_deref(), run1.terminal, run1.last_event_id),
        (Some("SUCCEEDED"), true, Some(succeeded))
    );
    assert_eq!(run1.transitions.len(), 3);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'"
        )
        .await
        .unwrap(),
        4
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'failed'"
        )
        .await
        .unwrap(),
        2
    );

    // A second batch over the same events changes nothing: they are final.
    let again = process_batch(&deps, &[running, succeeded, unknown])
        .await
        .unwrap();
    assert!(
        again
            .values()
            .all(|o| matches!(o, Outcome::Redelivered { .. })),
        "{again:?}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_racing_on_shared_resources_apply_each_event_once_and_only_forward() {
    let db = TestDb::new().await;
    let deps = Arc::new(deps(
        &db,
        &config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE),
    ));
    let statuses = [
        "READY",
        "RUNNING",
        "TIMING-OUT",
        "ABORTING",
        "SUCCEEDED",
        "FAILED",
    ];
    let mut ids = Vec::new();
    for i in 0..240 {
        let run = format!("run-{}", i % 6);
        let status = statuses[(i * 7 + i / 6) % statuses.len()];
        ids.push(insert(&db, "apify", Some(&run), Some(status)).await);
    }
    // Twelve concurrent batches of 40 drawn with overlap (every event is in two batches),
    // in shuffled order: the deadlock-prone shape.
    let batches: Vec<Vec<Uuid>> = (0..12)
        .map(|b| {
            let mut batch: Vec<Uuid> = (0..40).map(|k| ids[(b * 20 + k) % ids.len()]).collect();
            fastrand::shuffle(&mut batch);
            batch
        })
        .collect();
    let results = futures_util::future::join_all(batches.into_iter().map(|batch| {
        let deps = deps.clone();
        async move { process_batch(&deps, &batch).await }
    }))
    .await;
    for result in &results {
        assert!(result.is_ok(), "no batch may deadlock or fail: {result:?}");
    }
    let processed = count(
        &db,
        "SELECT count(*) AS n FROM events WHERE state = 'processed'",
    )
    .await
    .unwrap();
    let transitions = count(&db, "SELECT count(*) AS n FROM transitions")
        .await
        .unwrap();
    assert_eq!(
        transitions, processed,
        "exactly one transition per processed event"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) - count(DISTINCT event_id) AS n FROM transitions"
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(processed, 240, "every event processed");
    for run in 0..6 {
        let view = resource(&db, "apify", &format!("run-{run}")).await.unwrap();
        for t in view
            .transitions
            .iter()
            .filter(|t| t.outcome == Decision::Applied)
        {
            if let Some(from) = &t.from {
                assert!(
                    rank(&t.to) > rank(from),
                    "applied downgrade {from} -> {}",
                    t.to
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_message_settles_each_event_alone_and_a_failing_one_is_retried_then_dead_lettered_by_itself()
 {
    use common::{TestWorker, WAIT, event_state, ready_messages, test_publisher};
    use hookline_queue::{Envelope, Route, Topology};
    use hookline_testkit::eventually;

    let db = TestDb::new().await;
    common::fail_processing_transiently(&db, Some("run-doomed")).await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    let worker = TestWorker::spawn(&toml).await;
    let publisher = test_publisher(&toml, &prefix).await;
    let good = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    let doomed = insert(&db, "apify", Some("run-doomed"), Some("RUNNING")).await;
    let also_good = insert(&db, "apify", Some("run-2"), Some("SUCCEEDED")).await;
    let envelopes: Vec<Envelope> = [good, doomed, also_good]
        .iter()
        .map(|id| Envelope::new(*id, "apify", None))
        .collect();
    // One AMQP message carrying three pointers.
    publisher
        .publish_batched(&envelopes, Route::Work, 64)
        .await
        .unwrap();

    eventually("the doomed event dead-lettered", WAIT, || async {
        (event_state(&db, doomed).await.0 == EventState::Dead).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(event_state(&db, good).await.0, EventState::Processed);
    assert_eq!(event_state(&db, also_good).await.0, EventState::Processed);
    let (_, attempts, last_error) = event_state(&db, doomed).await;
    assert_eq!(attempts, 3, "max_attempts = 3");
    assert!(last_error.unwrap().contains("serialization"));
    eventually("the batch message acknowledged", WAIT, || async {
        (ready_messages(&Topology::new(&prefix).work_queue()).await == 0).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        ready_messages(&Topology::new(&prefix).dead_queue()).await,
        1,
        "only the doomed event"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        2
    );
    worker.stop().await.unwrap();
}
