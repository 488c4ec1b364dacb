//! Transient failures, retries through the delay queues, the dead-letter queue and poison
//! messages, against the real broker and database.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    TestWorker, WAIT, broker, envelope, event_state, fail_processing_transiently, insert,
    ready_messages, test_publisher,
};
use hookline_domain::EventState;
use hookline_queue::{Envelope, Route, Topology};
use hookline_testkit::{APIFY_SOURCE, Proxy, TestDb, amqp_prefix, config_toml, count, eventually};

/// Takes one message off the dead-letter queue.
async fn take_dead(prefix: &str) -> Envelope {
    let broker = broker().await;
    let message = eventually("a dead-lettered message", WAIT, || async {
        broker
            .get(&Topology::new(prefix).dead_queue())
            .await
            .expect("basic.get")
    })
    .await
    .unwrap();
    let _ = broker.close().await;
    Envelope::from_bytes(&message.body).expect("an envelope")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_then_dead_lettered_with_attempts_and_last_error_recorded() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    fail_processing_transiently(&db, None).await;
    let worker = TestWorker::spawn(&toml).await;
    let publisher = test_publisher(&toml, &prefix).await;
    let id = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    publisher
        .publish(&[envelope(id, "apify")], Route::Work, None)
        .await
        .unwrap();

    let dead = take_dead(&prefix).await;
    assert_eq!(dead.event_id, id);
    assert_eq!(dead.attempt, 3, "max_attempts = 3 in the test config");
    let (state, attempts, last_error) = eventually("the failure recorded", WAIT, || async {
        let row = event_state(&db, id).await;
        (row.0 == EventState::Dead).then_some(row)
    })
    .await
    .unwrap();
    assert_eq!(state, EventState::Dead);
    assert_eq!(attempts, 3);
    assert!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("injected serialization failure")),
        "{last_error:?}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        0,
        "nothing of a failed attempt is kept"
    );
    eventually("the work queue empty", WAIT, || async {
        (ready_messages(&Topology::new(&prefix).work_queue()).await == 0).then_some(())
    })
    .await
    .unwrap();
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_the_message_is_retried_and_dead_lettered_and_the_event_is_untouched()
 {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let proxy = Proxy::postgres().await;
    proxy.down();
    let worker_toml = config_toml(&db.url_via(&proxy), &prefix, APIFY_SOURCE);
    let worker = TestWorker::spawn(&worker_toml).await;
    let publisher = test_publisher(&worker_toml, &prefix).await;
    let id = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    publisher
        .publish(&[envelope(id, "apify")], Route::Work, None)
        .await
        .unwrap();

    let dead = take_dead(&prefix).await;
    assert_eq!((dead.event_id, dead.attempt), (id, 3));
    proxy.up();
    // The bookkeeping is best effort and the database was down throughout: the event
    // is exactly as ingest stored it, ready to be redriven.
    let (state, attempts, _) = event_state(&db, id).await;
    assert_eq!((state, attempts), (EventState::Received, 0));
    let client = reqwest::Client::new();
    eventually("readiness back with the database", WAIT, || async {
        let response = client
            .get(format!("{}/readyz", worker.admin))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await
    .unwrap();
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_as_is_without_blocking_the_events_behind_it() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    let publisher = test_publisher(&toml, &prefix).await;
    for garbage in [&b"not json"[..], br#"{"v":7,"event_id":"x"}"#, b""] {
        publisher.publish_raw(garbage, Route::Work).await.unwrap();
    }
    let id = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    publisher
        .publish(&[envelope(id, "apify")], Route::Work, None)
        .await
        .unwrap();

    let worker = TestWorker::spawn(&toml).await;
    eventually("the good event processed", WAIT, || async {
        (event_state(&db, id).await.0 == EventState::Processed).then_some(())
    })
    .await
    .unwrap();
    eventually("the work queue empty", WAIT, || async {
        (ready_messages(&Topology::new(&prefix).work_queue()).await == 0).then_some(())
    })
    .await
    .unwrap();
    eventually(
        "the three poison messages in the dead-letter queue",
        WAIT,
        || async {
            (ready_messages(&Topology::new(&prefix).dead_queue()).await == 3).then_some(())
        },
    )
    .await
    .unwrap();
    worker.stop().await.unwrap();
}
