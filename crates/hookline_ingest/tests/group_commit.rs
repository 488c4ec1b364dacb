//! The group-commit statement under concurrency: overlapping batches must never deadlock.

use futures_util::future::join_all;
use hookline_db::{NewEvent, insert_events};
use hookline_testkit::{TestDb, count};
use uuid::Uuid;

fn event(key: usize) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        source: "s".into(),
        dedup_key: format!("key-{key}"),
        resource_key: None,
        status: None,
        headers: serde_json::json!([]),
        query: String::new(),
        body: b"{}".to_vec(),
        traceparent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_sharing_keys_in_different_orders_never_deadlock() {
    let db = TestDb::new().await;
    // Large batches, so that concurrent statements really overlap in time; odd rounds
    // look committed keys up first, even ones insert straight away.
    for round in 0..3 {
        // Eight batches of 1500 over the same 1000 keys (+ round offset), each shuffled.
        let batches: Vec<Vec<NewEvent>> = (0..8)
            .map(|_| {
                let mut keys: Vec<usize> = (0..1500).map(|k| round * 250 + k % 1000).collect();
                fastrand::shuffle(&mut keys);
                keys.into_iter().map(event).collect()
            })
            .collect();
        let results = join_all(batches.iter().map(|batch| {
            let db = &db;
            async move {
                let mut conn = db.connect().await;
                insert_events(&mut conn, batch, round % 2 == 1).await
            }
        }))
        .await;
        for (batch, result) in batches.iter().zip(&results) {
            let result = result.as_ref().expect("no deadlock, no error");
            assert_eq!(result.len(), batch.len(), "one answer per row");
        }
        let new: usize = results
            .iter()
            .flatten()
            .flatten()
            .filter(|r| !r.duplicate)
            .count();
        assert_eq!(
            new,
            if round == 0 { 1000 } else { 250 },
            "round {round}: one new row per new key"
        );
    }
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        1500
    );
}
