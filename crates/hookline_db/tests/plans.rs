//! Pooled connections keep index plans for their prepared statements however small the
//! tables were when the plans were made (`hookline_db::POOLED_SESSION`).

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{NewEvent, create_pool, event_payloads, insert_events, lock_events};
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
