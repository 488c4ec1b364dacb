//! First attempts handed to the deciding worker live in one lease per (batch,
//! destination) until their results are recorded: each delivery's row is written once, in
//! the state the attempt left it; a lease that runs out is expanded into due rows, once,
//! however settles and expansions race; readers show the entries in flight as pending.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{
    DeliveryFilter, DeliveryResult, LeasedDelivery, NewDelivery, claim_deliveries,
    enqueue_deliveries, event_deliveries, expand_expired_leases, list_deliveries,
    pending_deliveries, settle_deliveries,
};
use hookline_domain::DeliveryState;
use hookline_testkit::TestDb;
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

/// Lease rows left.
async fn leases(conn: &mut AsyncPgConnection) -> i64 {
    count(conn, "SELECT count(*) AS n FROM delivery_leases").await
}

/// Settles one result.
async fn settle_one(conn: &mut AsyncPgConnection, result: DeliveryResult) -> usize {
    settle_deliveries(conn, &[result]).await.unwrap()
}

fn intent<'a>(event_id: Uuid, destination: &'a str, leased: Option<Duration>) -> NewDelivery<'a> {
    NewDelivery {
        event_id,
        destination,
        source: "apify",
        resource_key: Some("run-1"),
        status: Some("SUCCEEDED"),
        outcome: Some("applied"),
        leased,
    }
}

/// The result of the first attempt of `leased`, or of `attempt` of a claimed row when
/// `leased` is `None`.
fn result(
    event_id: Uuid,
    leased: Option<&LeasedDelivery>,
    attempt: i32,
    state: DeliveryState,
) -> DeliveryResult {
    DeliveryResult {
        event_id,
        destination: "d".into(),
        lease: leased.map(|l| l.slot),
        source: "apify".into(),
        resource_key: Some("run-1".into()),
        status: Some("SUCCEEDED".into()),
        outcome: Some("applied".into()),
        attempt,
        state,
        last_status: Some(if state == DeliveryState::Delivered {
            204
        } else {
            503
        }),
        last_error: (state != DeliveryState::Delivered).then(|| "HTTP 503".to_string()),
        latency_ms: 3,
        retry_in: (state == DeliveryState::Pending).then(|| Duration::from_secs(60)),
    }
}

fn pending_of(backlog: &[(String, i64)], destination: &str) -> i64 {
    backlog
        .iter()
        .find(|(d, _)| d == destination)
        .map_or(0, |(_, n)| *n)
}

const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

#[tokio::test]
async fn a_leased_first_attempt_is_one_row_written_with_its_result_and_the_lease_goes_when_all_are()
{
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let events: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let mut intents: Vec<NewDelivery> = events.iter().map(|e| intent(*e, "d", HOUR)).collect();
    intents.push(intent(events[0], "ordered", None));
    let leased = enqueue_deliveries(&mut conn, &intents).await.unwrap();

    // One lease for the three, in the order given; the due intent is a row.
    assert_eq!(leased.len(), 3);
    assert!(leased.iter().all(|l| l.slot.lease == leased[0].slot.lease));
    let order: Vec<(Uuid, i32)> = leased.iter().map(|l| (l.event_id, l.slot.index)).collect();
    assert_eq!(order, vec![(events[0], 1), (events[1], 2), (events[2], 3)]);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM deliveries").await,
        1
    );
    assert_eq!(leases(&mut conn).await, 1);

    // Readers see the leased ones as pending, attempt 1 in flight.
    let views = event_deliveries(&mut conn, events[0]).await.unwrap();
    let seen: Vec<(&str, DeliveryState, i32)> = views
        .iter()
        .map(|v| (v.destination.as_str(), v.state, v.attempts))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("d", DeliveryState::Pending, 1),
            ("ordered", DeliveryState::Pending, 0)
        ]
    );
    let filter = DeliveryFilter {
        destination: Some("d".into()),
        states: vec![DeliveryState::Pending],
        since: None,
    };
    let listed = list_deliveries(&mut conn, &filter, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|v| v.event_id).collect::<Vec<_>>(),
        vec![events[2], events[1], events[0]],
        "newest first"
    );
    let backlog = pending_deliveries(&mut conn).await.unwrap();
    assert_eq!(pending_of(&backlog, "d"), 3);
    assert_eq!(pending_of(&backlog, "ordered"), 1);

    // Two results: a success and a retry. Each is its row, once, in its state.
    let recorded = settle_deliveries(
        &mut conn,
        &[
            result(events[0], Some(&leased[0]), 1, DeliveryState::Delivered),
            result(events[1], Some(&leased[1]), 1, DeliveryState::Pending),
        ],
    )
    .await
    .unwrap();
    assert_eq!(recorded, 2);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM deliveries WHERE destination = 'd' AND attempts = 1 \
              AND source = 'apify' AND resource_key = 'run-1' AND status = 'SUCCEEDED' \
              AND outcome = 'applied' \
              AND ((state = 'delivered' AND delivered_at IS NOT NULL AND last_status = 204) \
                OR (state = 'pending' AND next_attempt_at > now() + interval '50 seconds' \
                    AND last_error = 'HTTP 503'))"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT settled::bigint AS n FROM delivery_leases"
        )
        .await,
        2
    );
    // The retry is a row now and the third still in the lease: two pending, not three
    // or four.
    let backlog = pending_deliveries(&mut conn).await.unwrap();
    assert_eq!(pending_of(&backlog, "d"), 2);
    let views = event_deliveries(&mut conn, events[0]).await.unwrap();
    assert_eq!(views.len(), 2, "the settled entry is not shown twice");
    assert_eq!(views[0].state, DeliveryState::Delivered);

    // The last result: the lease is gone.
    settle_one(
        &mut conn,
        result(events[2], Some(&leased[2]), 1, DeliveryState::Failed),
    )
    .await;
    assert_eq!(leases(&mut conn).await, 0);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM deliveries WHERE destination = 'd'"
        )
        .await,
        3
    );

    // A replayed event's intent, to a destination it already has a delivery for, is left
    // out: no lease, nothing to send.
    let again: Vec<NewDelivery> = events.iter().map(|e| intent(*e, "d", HOUR)).collect();
    assert!(
        enqueue_deliveries(&mut conn, &again)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(leases(&mut conn).await, 0);
}

#[tokio::test]
async fn an_expired_lease_becomes_due_rows_once_and_late_results_are_fenced_by_the_attempt() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let events: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let intents: Vec<NewDelivery> = events
        .iter()
        .map(|e| intent(*e, "d", Some(Duration::ZERO)))
        .collect();
    let leased = enqueue_deliveries(&mut conn, &intents).await.unwrap();
    // The first was recorded in time; the others' worker died.
    settle_one(
        &mut conn,
        result(events[0], Some(&leased[0]), 1, DeliveryState::Delivered),
    )
    .await;

    assert_eq!(expand_expired_leases(&mut conn, 10).await.unwrap(), 2);
    assert_eq!(expand_expired_leases(&mut conn, 10).await.unwrap(), 0);
    assert_eq!(leases(&mut conn).await, 0);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM deliveries WHERE state = 'pending' AND attempts = 1 \
              AND source = 'apify' AND resource_key = 'run-1' AND outcome = 'applied'"
        )
        .await,
        2
    );

    // A first attempt that did go out and is recorded late lands on its expanded row.
    settle_one(
        &mut conn,
        result(events[1], Some(&leased[1]), 1, DeliveryState::Delivered),
    )
    .await;
    // The other expanded row is claimed again (attempt 2): the late result of its first
    // attempt no longer applies; attempt 2's does.
    let claimed = claim_deliveries(&mut conn, "d", false, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].event_id, claimed[0].attempt), (events[2], 2));
    assert_eq!(claimed[0].lease, None);
    let late = settle_one(
        &mut conn,
        result(events[2], Some(&leased[2]), 1, DeliveryState::Failed),
    )
    .await;
    assert_eq!(late, 0);
    settle_one(
        &mut conn,
        result(events[2], None, 2, DeliveryState::Delivered),
    )
    .await;
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM deliveries WHERE state = 'delivered'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM deliveries WHERE event_id = ANY(ARRAY( \
               SELECT event_id FROM deliveries GROUP BY event_id HAVING count(*) > 1))"
        )
        .await,
        0
    );
}

/// Settles and expansions of the same leases, on three connections at once, while the
/// leases run out (the settles take longer than the leases last): every first attempt
/// ends recorded exactly once, as `delivered` at attempt 1 (whichever side took its
/// lease), and no lease is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settles_racing_expansions_record_every_first_attempt_once() {
    const LEASES: usize = 40;
    const PER_LEASE: usize = 8;
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let mut leased = Vec::new();
    for _ in 0..LEASES {
        let intents: Vec<NewDelivery> = (0..PER_LEASE)
            .map(|_| intent(Uuid::now_v7(), "d", Some(Duration::from_millis(150))))
            .collect();
        leased.extend(enqueue_deliveries(&mut conn, &intents).await.unwrap());
    }
    assert_eq!(leased.len(), LEASES * PER_LEASE);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut expanders = Vec::new();
    for _ in 0..2 {
        let mut conn = db.connect().await;
        let done = done.clone();
        expanders.push(tokio::spawn(async move {
            let mut expanded = 0;
            while !std::sync::atomic::AtomicBool::load(&done, std::sync::atomic::Ordering::Acquire)
            {
                expanded += expand_expired_leases(&mut conn, 3).await.unwrap();
                tokio::task::yield_now().await;
            }
            expanded
        }));
    }
    let mut recorded = 0;
    // Results in chunks that cut across leases, as the settle task batches them.
    for chunk in leased.chunks(5) {
        let results: Vec<DeliveryResult> = chunk
            .iter()
            .map(|l| result(l.event_id, Some(l), 1, DeliveryState::Delivered))
            .collect();
        recorded += settle_deliveries(&mut conn, &results).await.unwrap();
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let mut expanded = 0;
    for expander in expanders {
        expanded += expander.await.unwrap();
    }
    expanded += expand_expired_leases(&mut conn, 1000).await.unwrap();

    assert_eq!(recorded, LEASES * PER_LEASE, "every result recorded");
    assert!(expanded <= LEASES * PER_LEASE);
    assert_eq!(leases(&mut conn).await, 0);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM deliveries WHERE state = 'delivered' AND attempts = 1"
        )
        .await,
        i64::try_from(LEASES * PER_LEASE).unwrap()
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM deliveries").await,
        i64::try_from(LEASES * PER_LEASE).unwrap()
    );
}
