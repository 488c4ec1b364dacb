//! The outbox relay's queries: concurrent claimers split the backlog (`SKIP LOCKED`),
//! confirmed events leave it, and rows whose event was deleted are dropped.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{claim_outbox, count_outbox, insert_events, mark_published};
use hookline_testkit::{TestDb, count, new_event};
use time::OffsetDateTime;
use uuid::Uuid;

async fn sql(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Stores `n` events (each with its outbox row) and returns their ids in id order.
async fn seed(db: &TestDb, n: usize) -> Vec<Uuid> {
    let batch: Vec<_> = (0..n).map(|i| new_event("s", &format!("k{i}"))).collect();
    let mut conn = db.connect().await;
    let stored = insert_events(&mut conn, &batch, false).await.unwrap();
    assert!(stored.iter().all(|r| !r.duplicate));
    let mut ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();
    ids.sort();
    ids
}

fn soon() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_claiming_at_once_get_disjoint_parts_of_the_backlog() {
    let db = TestDb::new().await;
    let ids = seed(&db, 10).await;
    let mut first = db.connect().await;
    let mut second = db.connect().await;

    sql(&mut first, "BEGIN").await;
    let a = claim_outbox(&mut first, soon(), 6).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..6],
        "oldest first"
    );
    sql(&mut second, "BEGIN").await;
    // SKIP LOCKED: the second claimer neither waits for the first nor gets its rows.
    let b = tokio::time::timeout(
        Duration::from_secs(5),
        claim_outbox(&mut second, soon(), 100),
    )
    .await
    .expect("the second claim does not wait on the first one's locks")
    .unwrap();
    let a: BTreeSet<Uuid> = a.into_iter().map(|e| e.id).collect();
    let b: BTreeSet<Uuid> = b.into_iter().map(|e| e.id).collect();
    assert!(a.is_disjoint(&b), "claimed twice: {:?}", a.intersection(&b));
    assert_eq!(
        a.union(&b).copied().collect::<Vec<_>>(),
        ids,
        "between them, the whole backlog"
    );

    // The first relay publishes and confirms; the second fails and rolls back.
    let confirmed: Vec<Uuid> = a.iter().copied().collect();
    assert_eq!(mark_published(&mut first, &confirmed).await.unwrap(), 6);
    sql(&mut first, "COMMIT").await;
    sql(&mut second, "ROLLBACK").await;
    assert_eq!(count_outbox(&mut first).await.unwrap(), 4);
    assert_eq!(
        mark_published(&mut first, &confirmed).await.unwrap(),
        0,
        "confirming again changes nothing"
    );

    // What the second relay gave up is claimable again.
    let again = claim_outbox(&mut first, soon(), 100).await.unwrap();
    assert_eq!(again.into_iter().map(|e| e.id).collect::<BTreeSet<_>>(), b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_events_committed_before_the_cutoff_are_claimed() {
    let db = TestDb::new().await;
    seed(&db, 3).await;
    let mut conn = db.connect().await;
    let past = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    assert!(claim_outbox(&mut conn, past, 100).await.unwrap().is_empty());
    assert_eq!(claim_outbox(&mut conn, soon(), 100).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_whose_event_was_deleted_are_dropped_not_published() {
    let db = TestDb::new().await;
    let ids = seed(&db, 3).await;
    let mut conn = db.connect().await;
    sql(
        &mut conn,
        &format!("DELETE FROM events WHERE id = '{}'", ids[1]),
    )
    .await;

    let claimed = claim_outbox(&mut conn, soon(), 100).await.unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[0], ids[2]]
    );
    assert!(claimed.iter().all(|e| e.source == "s"));
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) AS n FROM outbox WHERE event_id = '{}'",
                ids[1]
            )
        )
        .await
        .unwrap(),
        0,
        "the orphan is gone"
    );
    assert_eq!(
        count_outbox(&mut conn).await.unwrap(),
        2,
        "the others wait for their confirm"
    );
}
