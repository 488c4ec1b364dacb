//! Graceful shutdown with messages in flight, and a second worker picking up the rest.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestWorker, WAIT, envelope, insert, ready_messages, test_publisher};
use diesel_async::RunQueryDsl;
use hookline_queue::{Route, Topology};
use hookline_testkit::{APIFY_SOURCE, TestDb, amqp_prefix, config_toml, count, eventually};

const EVENTS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_finishes_what_it_took_and_a_second_worker_processes_the_rest_exactly_once()
 {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    // Slow each commit down a little so the stop lands with messages in flight.
    let mut conn = db.connect().await;
    for sql in [
        "CREATE FUNCTION hl_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$",
        "CREATE TRIGGER hl_test_slow BEFORE UPDATE ON events FOR EACH ROW \
         WHEN (NEW.state = 'processed') EXECUTE FUNCTION hl_test_slow()",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    let publisher = test_publisher(&toml, &prefix).await;
    let mut envelopes = Vec::new();
    for n in 0..EVENTS {
        let run = format!("run-{}", n % 10);
        let status = ["READY", "RUNNING", "SUCCEEDED"][n % 3];
        let id = insert(&db, "apify", Some(&run), Some(status)).await;
        envelopes.push(envelope(id, "apify"));
    }
    publisher
        .publish(&envelopes, Route::Work, None)
        .await
        .unwrap();

    let first = TestWorker::spawn(&toml).await;
    eventually("the first worker to get going", WAIT, || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'",
        )
        .await
        .ok()?
            >= 5)
            .then_some(())
    })
    .await
    .unwrap();
    first
        .stop()
        .await
        .expect("run_until_stopped returns Ok after draining");
    let processed_by_first = count(
        &db,
        "SELECT count(*) AS n FROM events WHERE state = 'processed'",
    )
    .await
    .unwrap();
    assert!(processed_by_first >= 5);

    let second = TestWorker::spawn(&toml).await;
    eventually("every event processed", WAIT, || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'",
        )
        .await
        .ok()?
            == EVENTS as i64)
            .then_some(())
    })
    .await
    .unwrap();
    eventually("the work queue empty", WAIT, || async {
        (ready_messages(&Topology::new(&prefix).work_queue()).await == 0).then_some(())
    })
    .await
    .unwrap();
    second.stop().await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        EVENTS as i64,
        "each event decided exactly once"
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT event_id) AS n FROM transitions")
            .await
            .unwrap(),
        EVENTS as i64
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events WHERE attempts > 0")
            .await
            .unwrap(),
        0,
        "a graceful stop is not a failure"
    );
}
