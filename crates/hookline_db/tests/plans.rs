//! Pooled connections keep index plans for their prepared statements however small the
//! tables were when the plans were made (`hookline_db::POOLED_SESSION`).

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{
    LeaseSlot, LeasedDelivery, NewEvent, create_pool, event_payloads, finish_events, insert_events,
    leased_deliveries, lock_events,
};
use hookline_testkit::{TestDb, new_event};
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct Scans {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    s: String,
}

/// Sequential scans of the event tables' partitions in this connection's transaction.
async fn event_seq_scans(conn: &mut AsyncPgConnection) -> i64 {
    diesel::sql_query(
        "SELECT coalesce(sum(seq_scan), 0)::bigint AS n FROM pg_stat_xact_user_tables \
          WHERE relname LIKE 'events\\_%' OR relname LIKE 'event\\_payloads\\_%'",
    )
    .get_result::<Scans>(conn)
    .await
    .unwrap()
    .n
}

/// Scans (index or sequential), in this connection's transaction, of the event tables' partitions other
/// than the one holding today's events (on a fresh database: the `_legacy` one), that is
/// of the empty partitions created ahead.
async fn other_partition_scans(conn: &mut AsyncPgConnection) -> i64 {
    diesel::sql_query(
        "SELECT coalesce(sum(idx_scan + seq_scan), 0)::bigint AS n FROM pg_stat_xact_user_tables \
          WHERE relname LIKE 'events\\_p%' OR relname LIKE 'event\\_payloads\\_p%'",
    )
    .get_result::<Scans>(conn)
    .await
    .unwrap()
    .n
}

async fn store(conn: &mut AsyncPgConnection, keys: std::ops::Range<usize>) -> Vec<Uuid> {
    let batch: Vec<NewEvent> = keys
        .map(|i| new_event("s", &format!("key-{i:05}")))
        .collect();
    insert_events(conn, &batch, true)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event_id)
        .collect()
}

/// The worker's event lock and payload read are prepared on a pooled connection while
/// the tables hold two rows, and run past the five runs after which PostgreSQL keeps one
/// generic plan. Thousands of rows later (no `ANALYZE`: this machine's autovacuum is
/// off) the same statements still find their rows through the primary keys: a plan
/// kept from the tiny tables would scan the whole partition on every batch.
#[tokio::test]
async fn plans_made_on_tiny_tables_still_use_the_indexes_once_the_tables_grow() {
    let db = TestDb::new().await;
    let pool = create_pool(&db.url, 1).unwrap();
    let mut conn = pool.get().await.unwrap();
    let setting: Setting = diesel::sql_query("SELECT current_setting('enable_seqscan') AS s")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(setting.s, "off", "the pooled session's settings");

    let first = store(&mut conn, 0..2).await;
    for _ in 0..8 {
        assert_eq!(lock_events(&mut conn, &first).await.unwrap().len(), 2);
        assert_eq!(event_payloads(&mut conn, &first).await.unwrap().len(), 2);
    }
    let mut filler = db.connect().await;
    for chunk in 0..6 {
        store(&mut filler, 2 + chunk * 1000..2 + (chunk + 1) * 1000).await;
    }
    let later = store(&mut conn, 10_000..10_040).await;

    // pg_stat_xact_user_tables counts this transaction's own scans, before they are
    // reported to the shared statistics.
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    let locked = lock_events(&mut conn, &later).await.unwrap();
    let payloads = event_payloads(&mut conn, &later).await.unwrap();
    assert_eq!((locked.len(), payloads.len()), (40, 40));
    let scans = event_seq_scans(&mut conn).await;
    diesel::sql_query("COMMIT")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        scans, 0,
        "the kept plans read the 6 000-row partitions sequentially"
    );
}

/// PostgreSQL prunes partitions by an array parameter only when it plans with the array's
/// value, not in the generic plan a prepared statement keeps after five runs: then
/// `id = ANY($1)` alone descends the primary key of every partition for every id (30 days
/// kept and the days ahead: ~35 index descents per id). The worker's statements add the
/// batch's id bounds, which prune at executor start: forced onto generic plans, they do
/// not touch the (empty) partitions created ahead.
#[tokio::test]
async fn the_workers_statements_by_id_touch_only_the_partition_holding_the_ids() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let ids = store(&mut conn, 0..20).await;
    let ahead: Scans = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'events\\_p%' AND relkind = 'r'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(ahead.n >= 2, "partitions created ahead: {}", ahead.n);

    diesel::sql_query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    assert_eq!(lock_events(&mut conn, &ids).await.unwrap().len(), 20);
    assert_eq!(event_payloads(&mut conn, &ids).await.unwrap().len(), 20);
    let leased: Vec<LeasedDelivery> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| LeasedDelivery {
            slot: LeaseSlot {
                lease: 1,
                index: i32::try_from(i + 1).unwrap(),
            },
            event_id: *id,
            destination: "d".into(),
            source: "s".into(),
            resource_key: None,
            status: None,
            outcome: None,
        })
        .collect();
    let read = leased_deliveries(&mut conn, leased).await.unwrap();
    assert!(read.iter().all(|d| d.payload.is_some()));
    let done: Vec<(Uuid, Option<&str>)> = ids.iter().map(|id| (*id, None)).collect();
    finish_events(&mut conn, &done).await.unwrap();
    let scans = other_partition_scans(&mut conn).await;
    diesel::sql_query("COMMIT")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        scans, 0,
        "scans of the partitions that hold none of the ids"
    );
}
