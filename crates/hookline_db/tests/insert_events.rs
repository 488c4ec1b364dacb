//! The group-commit contract of `insert_events`: one row per `(source, dedup_key)` under
//! any concurrency, no deadlock between overlapping batches, the first id for every
//! duplicate, and a duplicate answered only once its original is committed.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::join_all;
use hookline_db::{InsertResult, NewEvent, insert_events};
use hookline_testkit::{TestDb, count, new_event};
use uuid::Uuid;

/// An answer without its remaining horizon (which depends on the clock).
fn answer(r: &InsertResult) -> (Uuid, bool) {
    (r.event_id, r.duplicate)
}

fn answers(results: &[InsertResult]) -> Vec<(Uuid, bool)> {
    results.iter().map(answer).collect()
}

fn event(key: usize) -> NewEvent {
    new_event("s", &format!("key-{key:05}"))
}

async fn sql(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The id stored for each key.
async fn stored_ids(db: &TestDb) -> HashMap<String, Uuid> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        dedup_key: String,
    }
    let mut conn = db.connect().await;
    let rows: Vec<Row> = diesel::sql_query("SELECT id, dedup_key FROM events")
        .load(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| (r.dedup_key, r.id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_sharing_keys_in_opposite_orders_never_deadlock_and_agree_on_ids() {
    let db = TestDb::new().await;
    const KEYS: usize = 1500;
    const BATCHES: usize = 8;
    // Each round adds KEYS / 2 new keys to half of the previous round's: odd rounds look
    // committed keys up first, even ones insert straight away.
    for round in 0..3 {
        let keys: Vec<usize> = (round * KEYS / 2..round * KEYS / 2 + KEYS).collect();
        // Half the batches ascending, half descending, each starting somewhere else: without
        // a common lock order two of them hold each other's keys within one statement.
        let batches: Vec<Vec<NewEvent>> = (0..BATCHES)
            .map(|b| {
                let mut order = keys.clone();
                order.rotate_left(b * KEYS / BATCHES);
                if b % 2 == 1 {
                    order.reverse();
                }
                order.into_iter().map(event).collect()
            })
            .collect();
        // Connect first, so that the statements, not the handshakes, overlap.
        let mut conns = Vec::new();
        for _ in 0..BATCHES {
            conns.push(db.connect().await);
        }
        let results = join_all(
            conns
                .iter_mut()
                .zip(&batches)
                .map(|(conn, batch)| insert_events(conn, batch, round % 2 == 1)),
        )
        .await;
        let stored = stored_ids(&db).await;
        let mut new = 0;
        for (batch, result) in batches.iter().zip(results) {
            let result = result.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(result.len(), batch.len(), "one answer per row");
            for (event, answer) in batch.iter().zip(&result) {
                assert_eq!(
                    Some(&answer.event_id),
                    stored.get(&event.dedup_key),
                    "round {round}: every caller gets the stored id of {}",
                    event.dedup_key
                );
                assert_eq!(answer.duplicate, answer.event_id != event.id);
                new += usize::from(!answer.duplicate);
            }
        }
        assert_eq!(
            new,
            if round == 0 { KEYS } else { KEYS / 2 },
            "round {round}: one new row per new key"
        );
    }
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        2 * KEYS as i64
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM (SELECT 1 FROM events GROUP BY source, dedup_key \
             HAVING count(*) > 1) d"
        )
        .await
        .unwrap(),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM (SELECT DISTINCT unnest(event_ids) FROM outbox) o"
        )
        .await
        .unwrap(),
        2 * KEYS as i64,
        "every new event is queued for publishing, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_one_batch_the_first_of_a_key_is_new_and_the_later_ones_are_its_duplicates() {
    for lookup_first in [false, true] {
        let db = TestDb::new().await;
        let mut conn = db.connect().await;
        // Later copies carry smaller ids than the first, so "first" cannot mean "lowest id".
        let mut a3 = new_event("s", "a");
        let b = new_event("s", "b");
        let mut a2 = new_event("s", "a");
        let a1 = new_event("s", "a");
        std::mem::swap(&mut a3.id, &mut a2.id);
        let other_source = new_event("t", "a");
        let batch = [a1.clone(), b.clone(), a2, other_source.clone(), a3];
        let result = insert_events(&mut conn, &batch, lookup_first)
            .await
            .unwrap();
        let new = |id| (id, false);
        let duplicate_of = |id| (id, true);
        assert_eq!(
            answers(&result),
            [
                new(a1.id),
                new(b.id),
                duplicate_of(a1.id),
                new(other_source.id),
                duplicate_of(a1.id)
            ],
            "lookup_first = {lookup_first}"
        );
        assert_eq!(
            count(&db, "SELECT count(*) AS n FROM events")
                .await
                .unwrap(),
            3
        );

        // Many keys, three copies each, interleaved: the batch is sorted before the
        // insert, and that must not change which copy counts as the first.
        let batch: Vec<NewEvent> = (0..3).flat_map(|_| (0..300).rev().map(event)).collect();
        let result = insert_events(&mut conn, &batch, lookup_first)
            .await
            .unwrap();
        for (i, (event, answer)) in batch.iter().zip(&result).enumerate() {
            let first = &batch[i % 300];
            assert_eq!(
                (answer.event_id, answer.duplicate),
                (first.id, i >= 300),
                "row {i} ({}), lookup_first = {lookup_first}",
                event.dedup_key
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looking_committed_keys_up_first_or_not_gives_identical_answers() {
    // The same committed events and the same batch (same ids) in two databases.
    let committed: Vec<NewEvent> = (0..6).map(event).collect();
    let mut batch: Vec<NewEvent> = Vec::new();
    for k in [3, 10, 0, 11, 10, 5, 12, 3, 0] {
        batch.push(event(k)); // committed (0, 3, 5), new (10, 11, 12), repeats of both
    }
    let mut answers = Vec::new();
    for lookup_first in [false, true] {
        let db = TestDb::new().await;
        let mut conn = db.connect().await;
        let first = insert_events(&mut conn, &committed, false).await.unwrap();
        assert!(first.iter().all(|r| !r.duplicate));
        answers.push(
            insert_events(&mut conn, &batch, lookup_first)
                .await
                .unwrap(),
        );
        assert_eq!(
            count(&db, "SELECT count(*) AS n FROM events")
                .await
                .unwrap(),
            9
        );
    }
    assert_eq!(self::answers(&answers[0]), self::answers(&answers[1]));
    let by_key: HashMap<&str, Uuid> = committed
        .iter()
        .map(|e| (e.dedup_key.as_str(), e.id))
        .collect();
    for (event, answer) in batch.iter().zip(&answers[0]) {
        if let Some(id) = by_key.get(event.dedup_key.as_str()) {
            assert_eq!((answer.event_id, answer.duplicate), (*id, true));
        }
    }
    let new: Vec<Uuid> = answers[0]
        .iter()
        .filter(|a| !a.duplicate)
        .map(|a| a.event_id)
        .collect();
    assert_eq!(new, [batch[1].id, batch[3].id, batch[6].id]);
    assert_eq!(
        answer(&answers[0][4]),
        (answers[0][1].event_id, true),
        "a repeat of a new key is a duplicate of its first row"
    );
}

/// A duplicate of an event another transaction is still inserting waits for that
/// transaction: it is answered with the original's id once that commits, and becomes the
/// original itself if that rolls back. Never an id that is not committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_answered_only_with_the_id_of_a_committed_event() {
    for (lookup_first, commit) in [(false, true), (true, true), (false, false), (true, false)] {
        let db = TestDb::new().await;
        let mut holder = db.connect().await;
        let original = new_event("s", "racing");
        sql(&mut holder, "BEGIN").await;
        let held = insert_events(&mut holder, std::slice::from_ref(&original), false)
            .await
            .unwrap();
        assert!(!held[0].duplicate);

        let retry = new_event("s", "racing");
        let waiting = tokio::spawn({
            let retry = retry.clone();
            let mut conn = db.connect().await;
            async move { insert_events(&mut conn, &[retry], lookup_first).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiting.is_finished(),
            "answered before the original committed (lookup_first = {lookup_first})"
        );
        sql(&mut holder, if commit { "COMMIT" } else { "ROLLBACK" }).await;
        let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("answered once the original's transaction ended")
            .unwrap()
            .unwrap();
        let expected = if commit {
            (original.id, true)
        } else {
            (retry.id, false)
        };
        assert_eq!(
            self::answer(&answer[0]),
            expected,
            "lookup_first = {lookup_first}, commit = {commit}"
        );
        assert_eq!(stored_ids(&db).await.get("racing"), Some(&expected.0));
    }
}

/// The group commit's statements are prepared once per connection and reused: a batch
/// costs Bind + Execute, not Parse + Describe + Bind + Execute + Close (the ingest
/// throughput target depends on it). Three batches of different sizes on one connection
/// leave one named statement for the insert and one for the live-key lookup, each
/// executed once per batch.
#[tokio::test]
async fn group_commit_statements_are_prepared_once_per_connection() {
    #[derive(diesel::QueryableByName)]
    struct Statement {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        runs: i64,
    }
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    for (round, size) in [1usize, 7, 30].into_iter().enumerate() {
        let batch: Vec<NewEvent> = (0..size).map(|i| event(round * 100 + i)).collect();
        let results = insert_events(&mut conn, &batch, true).await.unwrap();
        assert!(
            results.iter().all(|r| !r.duplicate),
            "round {round}: all keys are new"
        );
    }
    let statements: Vec<Statement> = diesel::sql_query(
        "SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let insert: Vec<&Statement> = statements
        .iter()
        .filter(|s| s.statement.contains("INSERT INTO events"))
        .collect();
    assert_eq!(
        insert.len(),
        1,
        "one prepared insert, not one per batch size"
    );
    assert_eq!(
        insert[0].runs, 3,
        "the insert ran once per batch from its one Parse"
    );
    let lookups = statements
        .iter()
        .filter(|s| s.statement.contains("ORDER BY k.source, k.dedup_key"))
        .count();
    assert_eq!(lookups, 1, "the live-key lookup is prepared once too");
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        38
    );
}
