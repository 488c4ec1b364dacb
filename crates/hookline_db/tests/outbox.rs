//! The outbox: one row per group commit listing the events it stored; the relay's
//! concurrent claimers split the backlog (`SKIP LOCKED`), confirmed batches leave it, and
//! rows whose events were deleted are dropped.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{
    claim_outbox, count_outbox, find_event, insert_events, mark_published, outbox_key,
};
use hookline_domain::EventState;
use hookline_testkit::{TestDb, count, new_event};
use time::OffsetDateTime;
use uuid::Uuid;

async fn sql(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Stores `batches` group commits of `per` events each, one `insert_events` per batch as
/// ingest does, and returns per batch its outbox key and its event ids in id order.
async fn seed(db: &TestDb, batches: usize, per: usize) -> Vec<(Uuid, Vec<Uuid>)> {
    let mut conn = db.connect().await;
    let mut seeded = Vec::new();
    for b in 0..batches {
        let batch: Vec<_> = (0..per)
            .map(|i| new_event("s", &format!("b{b}-k{i}")))
            .collect();
        let stored = insert_events(&mut conn, &batch, false).await.unwrap();
        assert!(stored.iter().all(|r| !r.duplicate));
        let mut ids: Vec<Uuid> = batch.iter().map(|e| e.id).collect();
        ids.sort();
        let key = outbox_key(&stored).unwrap();
        assert_eq!(
            key, ids[0],
            "a batch's row is keyed by its smallest event id"
        );
        seeded.push((key, ids));
    }
    seeded
}

fn soon() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(60)
}

async fn reported(conn: &mut AsyncPgConnection, id: Uuid) -> EventState {
    find_event(conn, id).await.unwrap().unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_writes_one_outbox_row_listing_only_the_events_it_stored() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let earlier = vec![new_event("s", "old")];
    insert_events(&mut conn, &earlier, false).await.unwrap();

    // Two new keys, a copy of one of them, and a duplicate of a committed key.
    let batch = vec![
        new_event("s", "a"),
        new_event("s", "b"),
        new_event("s", "a"),
        new_event("s", "old"),
    ];
    let stored = insert_events(&mut conn, &batch, false).await.unwrap();
    let new: BTreeSet<Uuid> = [batch[0].id, batch[1].id].into();
    let key = outbox_key(&stored).unwrap();
    assert_eq!(Some(&key), new.iter().next());
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM outbox")
            .await
            .unwrap(),
        2,
        "one row per group commit"
    );
    let listed = count(
        &db,
        &format!(
            "SELECT count(*) AS n FROM outbox o, unnest(o.event_ids) AS e(id) \
             WHERE o.id = '{key}' AND e.id IN ('{}', '{}')",
            batch[0].id, batch[1].id
        ),
    )
    .await
    .unwrap();
    assert_eq!(listed, 2);
    assert_eq!(count_outbox(&mut conn).await.unwrap(), 3, "events waiting");

    // Only duplicates: no row at all.
    let again = vec![new_event("s", "a"), new_event("s", "old")];
    let stored_again = insert_events(&mut conn, &again, true).await.unwrap();
    assert!(stored_again.iter().all(|r| r.duplicate));
    assert_eq!(outbox_key(&stored_again), None);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM outbox")
            .await
            .unwrap(),
        2
    );

    // `received` while its batch's row lists it, `published` once the batch is confirmed;
    // the other batch is untouched.
    for id in &new {
        assert_eq!(reported(&mut conn, *id).await, EventState::Received);
    }
    assert_eq!(mark_published(&mut conn, &[key]).await.unwrap(), 1);
    for id in &new {
        assert_eq!(reported(&mut conn, *id).await, EventState::Published);
    }
    assert_eq!(
        reported(&mut conn, earlier[0].id).await,
        EventState::Received
    );
    assert_eq!(count_outbox(&mut conn).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_claiming_at_once_get_disjoint_parts_of_the_backlog() {
    let db = TestDb::new().await;
    let seeded = seed(&db, 5, 3).await;
    let all: Vec<Uuid> = seeded.iter().flat_map(|(_, ids)| ids.clone()).collect();
    let mut first = db.connect().await;
    let mut second = db.connect().await;

    sql(&mut first, "BEGIN").await;
    let a = claim_outbox(&mut first, soon(), 3).await.unwrap();
    assert_eq!(
        a.batches,
        seeded[..3].iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "oldest first"
    );
    assert_eq!(
        a.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        all[..9],
        "every event of the claimed batches, in id order"
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
    let a_ids: BTreeSet<Uuid> = a.events.iter().map(|e| e.id).collect();
    let b_ids: BTreeSet<Uuid> = b.events.iter().map(|e| e.id).collect();
    assert!(
        a_ids.is_disjoint(&b_ids),
        "claimed twice: {:?}",
        a_ids.intersection(&b_ids)
    );
    assert_eq!(
        a_ids.union(&b_ids).copied().collect::<Vec<_>>(),
        all,
        "between them, the whole backlog"
    );

    // The first relay publishes and confirms; the second fails and rolls back.
    assert_eq!(mark_published(&mut first, &a.batches).await.unwrap(), 3);
    sql(&mut first, "COMMIT").await;
    sql(&mut second, "ROLLBACK").await;
    assert_eq!(count_outbox(&mut first).await.unwrap(), 6);
    assert_eq!(
        mark_published(&mut first, &a.batches).await.unwrap(),
        0,
        "confirming again changes nothing"
    );

    // What the second relay gave up is claimable again.
    let again = claim_outbox(&mut first, soon(), 100).await.unwrap();
    assert_eq!(again.batches, b.batches);
    assert_eq!(
        again
            .events
            .into_iter()
            .map(|e| e.id)
            .collect::<BTreeSet<_>>(),
        b_ids
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_batches_committed_before_the_cutoff_are_claimed() {
    let db = TestDb::new().await;
    seed(&db, 2, 3).await;
    let mut conn = db.connect().await;
    let past = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let none = claim_outbox(&mut conn, past, 100).await.unwrap();
    assert!(none.batches.is_empty() && none.events.is_empty());
    let claimed = claim_outbox(&mut conn, soon(), 100).await.unwrap();
    assert_eq!((claimed.batches.len(), claimed.events.len()), (2, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_whose_events_were_deleted_are_dropped_not_published() {
    let db = TestDb::new().await;
    let seeded = seed(&db, 2, 3).await;
    let mut conn = db.connect().await;
    // One event of the first batch, and every event of the second, deleted by hand.
    let (first, first_ids) = &seeded[0];
    let (second, second_ids) = &seeded[1];
    let gone: Vec<String> = std::iter::once(first_ids[1])
        .chain(second_ids.iter().copied())
        .map(|id| format!("'{id}'"))
        .collect();
    sql(
        &mut conn,
        &format!("DELETE FROM events WHERE id IN ({})", gone.join(", ")),
    )
    .await;

    let claimed = claim_outbox(&mut conn, soon(), 100).await.unwrap();
    assert_eq!(
        claimed.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        [first_ids[0], first_ids[2]]
    );
    assert!(claimed.events.iter().all(|e| e.source == "s"));
    assert_eq!(
        claimed.batches,
        [*first],
        "the first still has events to publish"
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) AS n FROM outbox WHERE id = '{second}'")
        )
        .await
        .unwrap(),
        0,
        "the orphaned row is gone"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM outbox")
            .await
            .unwrap(),
        1,
        "the other waits for its confirm"
    );
}
