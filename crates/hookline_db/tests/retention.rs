//! The data lifecycle's contracts: a key is a duplicate for exactly its horizon under any
//! concurrency (also across a key generation switch and after its payload is pruned),
//! maintenance creates partitions ahead and drops expired ones with one runner at a time,
//! and a database holding events migrates in place without losing one.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use futures_util::future::join_all;
use hookline_db::{
    EventFilter, InsertResult, MaintenanceOptions, NewEvent, find_event, find_events,
    insert_events, retention_status, run_maintenance, switch_dedup_generation,
};
use hookline_domain::{EventState, Retention, RetentionPolicy};
use hookline_testkit::{TestDb, count, new_event};
use time::OffsetDateTime;
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(86_400);

fn defaults() -> Retention {
    Retention {
        dedup_horizon: 7 * DAY,
        payload: 7 * DAY,
        events: 30 * DAY,
    }
}

fn keyed(key: &str, horizon: Duration) -> NewEvent {
    let mut event = new_event("s", key);
    event.dedup_horizon = horizon;
    event
}

async fn sql(conn: &mut AsyncPgConnection, sql: &str) {
    diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn insert_one(
    conn: &mut AsyncPgConnection,
    event: &NewEvent,
    lookup_first: bool,
) -> InsertResult {
    insert_events(conn, std::slice::from_ref(event), lookup_first)
        .await
        .unwrap()[0]
}

async fn events_with_key(conn: &mut AsyncPgConnection, key: &str) -> Vec<Uuid> {
    let filter = EventFilter {
        source: Some("s".into()),
        dedup_key: Some(key.into()),
        limit: 100,
        ..EventFilter::default()
    };
    let mut ids: Vec<Uuid> = find_events(conn, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_a_duplicate_within_its_horizon_and_a_new_event_after_it() {
    for lookup_first in [false, true] {
        let db = TestDb::new().await;
        let mut conn = db.connect().await;
        let horizon = Duration::from_millis(1_500);
        let first = keyed("k", horizon);
        assert!(!insert_one(&mut conn, &first, lookup_first).await.duplicate);
        let again = insert_one(&mut conn, &keyed("k", horizon), lookup_first).await;
        assert_eq!((again.event_id, again.duplicate), (first.id, true));
        assert!(again.expires_in <= horizon, "{:?}", again.expires_in);

        tokio::time::sleep(horizon + Duration::from_millis(200)).await;
        // Past the horizon, in the same key generation: a new event takes the key over.
        let renewed = keyed("k", horizon);
        let answer = insert_one(&mut conn, &renewed, lookup_first).await;
        assert_eq!((answer.event_id, answer.duplicate), (renewed.id, false));
        let again = insert_one(&mut conn, &keyed("k", horizon), lookup_first).await;
        assert_eq!((again.event_id, again.duplicate), (renewed.id, true));

        // Past it again, with the key in an earlier generation: stored anew in the current.
        switch_dedup_generation(&mut conn).await.unwrap();
        tokio::time::sleep(horizon + Duration::from_millis(200)).await;
        let third = keyed("k", horizon);
        assert!(!insert_one(&mut conn, &third, lookup_first).await.duplicate);
        let again = insert_one(&mut conn, &keyed("k", horizon), lookup_first).await;
        assert_eq!((again.event_id, again.duplicate), (third.id, true));

        // Every receipt stays findable by its key.
        let mut all = vec![first.id, renewed.id, third.id];
        all.sort();
        assert_eq!(events_with_key(&mut conn, "k").await, all);
        // A key with the default horizon is untouched by all of this.
        let other = keyed("other", 7 * DAY);
        insert_one(&mut conn, &other, lookup_first).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            insert_one(&mut conn, &keyed("other", 7 * DAY), lookup_first)
                .await
                .duplicate
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_inserts_of_a_key_past_its_horizon_store_exactly_one_new_event() {
    const KEYS: usize = 150;
    const RACERS: usize = 8;
    let horizon = Duration::from_millis(1_000);
    for switch_first in [false, true] {
        let db = TestDb::new().await;
        let mut conn = db.connect().await;
        let keys: Vec<String> = (0..KEYS).map(|k| format!("edge-{k:04}")).collect();
        let originals: Vec<NewEvent> = keys.iter().map(|k| keyed(k, horizon)).collect();
        insert_events(&mut conn, &originals, false).await.unwrap();
        if switch_first {
            // The expired keys sit in the earlier generation, the new ones go to the current.
            switch_dedup_generation(&mut conn).await.unwrap();
        }
        tokio::time::sleep(horizon + Duration::from_millis(200)).await;

        let batches: Vec<Vec<NewEvent>> = (0..RACERS)
            .map(|r| {
                let mut order: Vec<&String> = keys.iter().collect();
                order.rotate_left(r * KEYS / RACERS);
                if r % 2 == 1 {
                    order.reverse();
                }
                order.into_iter().map(|k| keyed(k, horizon)).collect()
            })
            .collect();
        let mut conns = Vec::new();
        for _ in 0..RACERS {
            conns.push(db.connect().await);
        }
        let results = join_all(
            conns
                .iter_mut()
                .zip(&batches)
                .enumerate()
                .map(|(r, (conn, batch))| insert_events(conn, batch, r % 3 == 0)),
        )
        .await;
        let mut winners: HashMap<&str, HashSet<Uuid>> = HashMap::new();
        let mut new = 0;
        for (batch, result) in batches.iter().zip(results) {
            for (event, answer) in batch.iter().zip(result.unwrap()) {
                winners
                    .entry(&event.dedup_key)
                    .or_default()
                    .insert(answer.event_id);
                new += usize::from(!answer.duplicate);
                assert_eq!(answer.duplicate, answer.event_id != event.id);
            }
        }
        assert_eq!(
            new, KEYS,
            "one new event per key (switch_first = {switch_first})"
        );
        assert!(
            winners.values().all(|ids| ids.len() == 1),
            "every racer got the same id per key"
        );
        assert!(
            winners
                .iter()
                .all(|(k, ids)| !ids
                    .contains(&originals[keys.iter().position(|x| x == k).unwrap()].id)),
            "never the expired original"
        );
        assert_eq!(
            count(&db, "SELECT count(*) AS n FROM events")
                .await
                .unwrap(),
            2 * KEYS as i64
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_generation_switches_during_racing_inserts_never_store_a_key_twice() {
    const ROUNDS: usize = 12;
    const KEYS: usize = 120;
    const RACERS: usize = 6;
    let db = TestDb::new().await;
    let mut conns = Vec::new();
    for _ in 0..RACERS {
        conns.push(db.connect().await);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switcher = tokio::spawn({
        let stop = stop.clone();
        let mut conn = db.connect().await;
        async move {
            let mut switches = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                switch_dedup_generation(&mut conn).await.unwrap();
                switches += 1;
            }
            switches
        }
    });
    for round in 0..ROUNDS {
        let keys: Vec<String> = (0..KEYS).map(|k| format!("r{round}-{k:04}")).collect();
        // Each racer sends every key twice, in its own order and in several batches, so
        // batches of one key straddle switches.
        let batches: Vec<Vec<Vec<NewEvent>>> = (0..RACERS)
            .map(|r| {
                let mut order: Vec<&String> = keys.iter().chain(keys.iter()).collect();
                order.rotate_left(r * KEYS / RACERS);
                if r % 2 == 1 {
                    order.reverse();
                }
                order
                    .chunks(KEYS / 3)
                    .map(|chunk| chunk.iter().map(|k| keyed(k, 7 * DAY)).collect())
                    .collect()
            })
            .collect();
        let results = join_all(conns.iter_mut().zip(&batches).enumerate().map(
            |(r, (conn, batches))| async move {
                let mut answers = Vec::new();
                for batch in batches {
                    let result = insert_events(conn, batch, r % 2 == 0).await.unwrap();
                    answers.extend(batch.iter().map(|e| e.dedup_key.clone()).zip(result));
                }
                answers
            },
        ))
        .await;
        let mut ids: HashMap<String, HashSet<Uuid>> = HashMap::new();
        let mut new = 0;
        for (key, answer) in results.into_iter().flatten() {
            new += usize::from(!answer.duplicate);
            ids.entry(key).or_default().insert(answer.event_id);
        }
        assert_eq!(new, KEYS, "round {round}: one new event per key");
        assert!(
            ids.values().all(|s| s.len() == 1),
            "round {round}: one id per key"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let switches = switcher.await.unwrap();
    assert!(
        switches >= 2,
        "the generation switched during the rounds ({switches})"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        (ROUNDS * KEYS) as i64
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM (SELECT 1 FROM dedup_keys GROUP BY source, dedup_key \
             HAVING count(*) > 1) twice"
        )
        .await
        .unwrap(),
        0,
        "no key in two generations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_payload_leaves_the_event_visible_and_its_key_a_duplicate() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let mut policy = RetentionPolicy::uniform(defaults());
    policy.overrides.insert(
        "s".into(),
        Retention {
            payload: Duration::from_secs(1),
            ..defaults()
        },
    );
    let mut event = keyed("k", 7 * DAY);
    event.body = b"{\"secret\":\"pii\"}".to_vec();
    event.headers = serde_json::json!([{"name": "x-id", "value": "1"}]);
    event.query = "token=abc".into();
    insert_one(&mut conn, &event, false).await;
    let kept = new_event("t", "kept");
    insert_one(&mut conn, &kept, false).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let dry = run_maintenance(
        &mut conn,
        &policy,
        MaintenanceOptions {
            dry_run: true,
            ..MaintenanceOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.pruned.get("event_payloads"), Some(&1), "{dry:?}");
    assert!(
        !find_event(&mut conn, event.id)
            .await
            .unwrap()
            .unwrap()
            .payload_pruned
    );

    let report = run_maintenance(&mut conn, &policy, MaintenanceOptions::default())
        .await
        .unwrap();
    assert!(report.ran);
    assert_eq!(report.pruned.get("event_payloads"), Some(&1), "{report:?}");
    let stored = find_event(&mut conn, event.id).await.unwrap().unwrap();
    assert!(stored.payload_pruned);
    assert!(stored.body.is_empty() && stored.query.is_empty());
    assert_eq!(stored.headers, serde_json::json!([]));
    assert_eq!(
        (stored.source.as_str(), stored.dedup_key.as_str()),
        ("s", "k")
    );
    let other = find_event(&mut conn, kept.id).await.unwrap().unwrap();
    assert!(
        !other.payload_pruned,
        "another source's payload follows its own retention"
    );

    // The key is still inside its 7-day horizon: a duplicate, on any connection.
    let mut fresh = db.connect().await;
    let again = insert_one(&mut fresh, &keyed("k", 7 * DAY), true).await;
    assert_eq!((again.event_id, again.duplicate), (event.id, true));
    // A second pass has nothing left to prune (it resumes where the first stopped).
    let report = run_maintenance(&mut conn, &policy, MaintenanceOptions::default())
        .await
        .unwrap();
    assert!(report.pruned.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_with_a_shorter_events_retention_loses_its_events_in_batches() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let short = Retention {
        dedup_horizon: Duration::from_millis(500),
        payload: Duration::from_millis(500),
        events: Duration::from_secs(1),
    };
    let mut policy = RetentionPolicy::uniform(defaults());
    policy.overrides.insert("s".into(), short);
    let batch: Vec<NewEvent> = (0..25)
        .map(|k| keyed(&format!("k{k}"), short.dedup_horizon))
        .collect();
    insert_events(&mut conn, &batch, false).await.unwrap();
    let kept = new_event("t", "kept");
    insert_one(&mut conn, &kept, false).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let report = run_maintenance(
        &mut conn,
        &policy,
        MaintenanceOptions {
            batch_size: 10,
            ..MaintenanceOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.pruned.get("events"), Some(&25), "{report:?}");
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events WHERE source = 's'")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM event_payloads")
            .await
            .unwrap(),
        1,
        "their payloads went with them"
    );
    assert!(find_event(&mut conn, kept.id).await.unwrap().is_some());
    // Past its horizon the key is simply new again.
    let again = keyed("k0", short.dedup_horizon);
    assert!(!insert_one(&mut conn, &again, false).await.duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_creates_partitions_ahead_and_drops_whole_expired_ones() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let policy = RetentionPolicy::uniform(defaults());
    let event = new_event("s", "today");
    insert_one(&mut conn, &event, false).await;
    hookline_db::record_transitions(
        &mut conn,
        &[],
        &[hookline_db::TransitionRow {
            source: "s",
            resource_key: "r",
            event_id: Some(event.id),
            from: None,
            to: "RUNNING",
            outcome: hookline_domain::Outcome::Applied,
            reason: None,
            actor: None,
        }],
    )
    .await
    .unwrap();

    // Today: the migration made everything this pass would.
    let report = run_maintenance(&mut conn, &policy, MaintenanceOptions::default())
        .await
        .unwrap();
    assert!(
        report.ran && report.created.is_empty() && report.dropped.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.generation, None);

    let now = OffsetDateTime::now_utc();
    let at = |days: i64| MaintenanceOptions {
        now: Some(now + time::Duration::days(days)),
        ..MaintenanceOptions::default()
    };
    // Eight days on: today's payload partition is past 7 days and goes whole; partitions
    // for the days ahead of then are made; the key generation is a horizon old.
    let dry = run_maintenance(
        &mut conn,
        &policy,
        MaintenanceOptions {
            dry_run: true,
            ..at(8)
        },
    )
    .await
    .unwrap();
    let report = run_maintenance(&mut conn, &policy, at(8)).await.unwrap();
    assert_eq!(
        (&dry.created, &dry.dropped, dry.generation.is_some()),
        (
            &report.created,
            &report.dropped,
            report.generation.is_some()
        ),
        "a dry run reports what the pass then does"
    );
    assert_eq!(report.generation, Some(2));
    assert!(
        report
            .dropped
            .contains(&"event_payloads_legacy".to_string()),
        "{report:?}"
    );
    assert!(
        !report.dropped.iter().any(|p| p.starts_with("events_")),
        "{report:?}"
    );
    let day = |days: i64| {
        let d = (now + time::Duration::days(days)).date();
        format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
    };
    for table in ["events", "event_payloads", "transitions"] {
        for ahead in 8..=11 {
            let name = format!("{table}_p{}", day(ahead));
            assert!(report.created.contains(&name), "{name} in {report:?}");
        }
    }
    let stored = find_event(&mut conn, event.id).await.unwrap().unwrap();
    assert!(stored.payload_pruned && stored.state == EventState::Received);

    // Forty days on: the events, their transitions and both key generations are past
    // 30 days and go whole.
    let report = run_maintenance(&mut conn, &policy, at(40)).await.unwrap();
    for gone in [
        "events_legacy",
        "transitions_legacy",
        "dedup_keys_g1",
        "dedup_keys_g2",
    ] {
        assert!(
            report.dropped.contains(&gone.to_string()),
            "{gone} in {report:?}"
        );
    }
    assert!(find_event(&mut conn, event.id).await.unwrap().is_none());
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        0
    );
    let status = retention_status(&mut conn, true).await.unwrap();
    let tables: Vec<&str> = status.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(
        tables,
        [
            "events",
            "event_payloads",
            "dedup_keys",
            "transitions",
            "outbox",
            "deliveries"
        ]
    );
    assert_eq!(status.generation, 3);
    for t in &status.tables[..4] {
        assert!(t.partitions > 0 && t.bytes > 0, "{t:?}");
    }
    assert_eq!(status.tables[0].rows, 0);
    // Nothing is left for a second pass at the same time (but key generations: a
    // switch stamps the real clock, which this test's clock is 40 days ahead of).
    let report = run_maintenance(&mut conn, &policy, at(40)).await.unwrap();
    assert!(report.created.is_empty(), "{report:?}");
    assert!(
        report.dropped.iter().all(|p| p.starts_with("dedup_keys_g")),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_maintenance_runners_at_once_take_turns_and_do_each_thing_once() {
    let db = TestDb::new().await;
    let policy = RetentionPolicy::uniform(defaults());
    let mut a = db.connect().await;
    let mut b = db.connect().await;
    let now = OffsetDateTime::now_utc();
    for days in [10_i64, 20, 45, 60, 90] {
        let options = MaintenanceOptions {
            now: Some(now + time::Duration::days(days)),
            ..MaintenanceOptions::default()
        };
        let (ra, rb) = tokio::join!(
            run_maintenance(&mut a, &policy, options),
            run_maintenance(&mut b, &policy, options)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.ran || rb.ran, "day {days}: one of them ran");
        let mut created: Vec<&String> = ra.created.iter().chain(&rb.created).collect();
        let total = created.len();
        created.sort();
        created.dedup();
        assert_eq!(
            created.len(),
            total,
            "day {days}: no partition created twice"
        );
        let mut dropped: Vec<&String> = ra.dropped.iter().chain(&rb.dropped).collect();
        let total = dropped.len();
        dropped.sort();
        dropped.dedup();
        assert_eq!(
            dropped.len(),
            total,
            "day {days}: no partition dropped twice"
        );
        assert!(
            ra.generation.is_none() || rb.generation.is_none(),
            "day {days}: one generation switch"
        );
    }

    // While one runner holds the lock, another does nothing and says so. The first is held
    // mid-pass: its generation switch waits for a reader of dedup_generations.
    let mut reader = db.connect().await;
    sql(&mut reader, "BEGIN").await;
    sql(&mut reader, "SELECT * FROM dedup_generations").await;
    let holding = tokio::spawn({
        let policy = policy.clone();
        async move {
            let options = MaintenanceOptions {
                now: Some(now + time::Duration::days(200)),
                ..MaintenanceOptions::default()
            };
            run_maintenance(&mut a, &policy, options).await
        }
    });
    hookline_testkit::eventually(
        "the first runner to hold the lock",
        hookline_testkit::WAIT,
        || {
            let db = &db;
            async move {
                let held = count(
                    db,
                    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .await
                .unwrap();
                (held > 0).then_some(())
            }
        },
    )
    .await
    .unwrap();
    let skipped = run_maintenance(&mut b, &policy, MaintenanceOptions::default())
        .await
        .unwrap();
    assert!(!skipped.ran, "{skipped:?}");
    assert!(skipped.created.is_empty() && skipped.dropped.is_empty());
    sql(&mut reader, "COMMIT").await;
    let held = holding.await.unwrap().unwrap();
    assert!(held.ran && held.generation.is_some(), "{held:?}");
}

/// A database as the previous release left it, with events in every state, outbox rows,
/// transitions and a resource, goes through the retention migration: every event is still
/// there with its payload, state and key, and its key is still a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_populated_database_migrates_in_place_without_losing_an_event() {
    let db = TestDb::empty().await;
    hookline_db::run_migrations_until(&db.url, "2026-11-22-000002")
        .await
        .unwrap();
    const EVENTS: usize = 40;
    let states = ["received", "received", "processed", "failed", "dead"];
    let mut old: Vec<(Uuid, String, &str)> = Vec::new();
    for i in 0..EVENTS {
        let id = Uuid::now_v7();
        let state = states[i % states.len()];
        let key = format!("old-{i:03}");
        db.execute(&format!(
            "INSERT INTO events (id, source, dedup_key, resource_key, status, state, headers, query, body, \
                                 received_at, processed_at) \
             VALUES ('{id}', 'apify', '{key}', 'run-{r}', 'RUNNING', '{state}', \
                     '[{{\"name\": \"x-n\", \"value\": \"{i}\"}}]', 'n={i}', convert_to('body {i}', 'UTF8'), \
                     now() - interval '{age} hours', {processed})",
            r = i % 4,
            age = EVENTS - i,
            processed = if state == "processed" { "now()" } else { "NULL" },
        ))
        .await;
        if state == "received" && i % 2 == 0 {
            // Half the received ones still wait for the broker's confirm.
            db.execute(&format!(
                "INSERT INTO outbox (event_id, received_at) SELECT id, received_at FROM events WHERE id = '{id}'"
            ))
            .await;
        }
        old.push((id, key, state));
    }
    db.execute(
        "INSERT INTO resources (source, resource_key, status) VALUES ('apify', 'run-0', 'RUNNING')",
    )
    .await;
    for (id, _, _) in old.iter().filter(|(_, _, s)| *s == "processed") {
        db.execute(&format!(
            "INSERT INTO transitions (source, resource_key, event_id, to_status, outcome) \
             VALUES ('apify', 'run-0', '{id}', 'RUNNING', 'applied')"
        ))
        .await;
    }
    let outbox_before = count(&db, "SELECT count(*) AS n FROM outbox")
        .await
        .unwrap();

    let applied = hookline_db::run_migrations(&db.url).await.unwrap();
    assert!(
        applied
            .iter()
            .any(|v| v.contains("20261201000010") || v.contains("2026-12-01-000010")),
        "{applied:?}"
    );

    let mut conn = db.connect().await;
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        EVENTS as i64
    );
    for (i, (id, key, state)) in old.iter().enumerate() {
        let event = find_event(&mut conn, *id)
            .await
            .unwrap()
            .expect("event kept");
        assert_eq!(&event.dedup_key, key);
        assert_eq!(event.body, format!("body {i}").into_bytes());
        assert_eq!(event.query, format!("n={i}"));
        assert_eq!(
            event.headers,
            serde_json::json!([{"name": "x-n", "value": i.to_string()}])
        );
        assert!(!event.payload_pruned);
        let reported = match *state {
            "received" if i % 2 == 0 => "received",
            "received" => "published",
            other => other,
        };
        assert_eq!(event.state.as_str(), reported, "event {i}");
    }
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM outbox")
            .await
            .unwrap(),
        outbox_before
    );
    let resource = hookline_db::find_resource(&mut conn, "apify", "run-0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resource.transitions.len(), EVENTS / states.len());

    // Every stored key is still a duplicate of its event; a new key is new.
    let mut retries: Vec<NewEvent> = old
        .iter()
        .map(|(_, key, _)| new_event("apify", key))
        .collect();
    let fresh = new_event("apify", "after-migration");
    retries.push(fresh.clone());
    for lookup_first in [false, true] {
        let answers = insert_events(&mut conn, &retries, lookup_first)
            .await
            .unwrap();
        for (answer, (id, _, _)) in answers.iter().zip(&old) {
            assert_eq!((answer.event_id, answer.duplicate), (*id, true));
        }
        assert_eq!(answers[EVENTS].event_id, fresh.id);
        assert_eq!(
            answers[EVENTS].duplicate, lookup_first,
            "new on the first try only"
        );
    }
    // New transitions land in the partitioned table next to the old ones.
    hookline_db::record_transitions(
        &mut conn,
        &[],
        &[hookline_db::TransitionRow {
            source: "apify",
            resource_key: "run-0",
            event_id: Some(fresh.id),
            from: Some("RUNNING"),
            to: "SUCCEEDED",
            outcome: hookline_domain::Outcome::Applied,
            reason: None,
            actor: None,
        }],
    )
    .await
    .unwrap();
    let resource = hookline_db::find_resource(&mut conn, "apify", "run-0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resource.transitions.len(), EVENTS / states.len() + 1);
    let ids: Vec<i64> = {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let rows: Vec<Id> = diesel_async::RunQueryDsl::load(
            diesel::sql_query("SELECT id FROM transitions ORDER BY id"),
            &mut conn,
        )
        .await
        .unwrap();
        rows.into_iter().map(|r| r.id).collect()
    };
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "the id sequence carried on: {ids:?}"
    );

    // And the migrated database is maintained like any other.
    let report = run_maintenance(
        &mut conn,
        &RetentionPolicy::uniform(defaults()),
        MaintenanceOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.ran && report.dropped.is_empty(), "{report:?}");
}

/// Adds a delivery of `event_id` to `destination` in `state`, created `age_days` ago.
async fn delivery(
    conn: &mut AsyncPgConnection,
    event_id: Uuid,
    destination: &str,
    state: &str,
    age_days: i64,
) {
    sql(
        conn,
        &format!(
            "INSERT INTO deliveries (event_id, destination, source, state, created_at) \
             VALUES ('{event_id}', '{destination}', 's', '{state}', \
                     date_trunc('second', now()) - interval '{age_days} days')"
        ),
    )
    .await;
}

/// `(event_id, destination)` of every delivery, sorted.
async fn deliveries(conn: &mut AsyncPgConnection) -> Vec<(Uuid, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        event_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        destination: String,
    }
    let rows: Vec<Row> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT event_id, destination FROM deliveries ORDER BY event_id, destination",
        ),
        conn,
    )
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| (r.event_id, r.destination))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_go_with_the_events_a_shorter_retention_prunes_in_batches() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let short = Retention {
        dedup_horizon: Duration::from_millis(500),
        payload: Duration::from_millis(500),
        events: Duration::from_secs(1),
    };
    let mut policy = RetentionPolicy::uniform(defaults());
    policy.overrides.insert("s".into(), short);
    // One statement: all 25 share one received_at, so the batches of 10 resume by id.
    let batch: Vec<NewEvent> = (0..25)
        .map(|k| keyed(&format!("k{k}"), short.dedup_horizon))
        .collect();
    insert_events(&mut conn, &batch, false).await.unwrap();
    for (i, event) in batch.iter().enumerate() {
        // Whatever their state: the event is what they are kept for.
        delivery(&mut conn, event.id, "a", "delivered", 0).await;
        if i % 2 == 0 {
            delivery(&mut conn, event.id, "b", "pending", 0).await;
        }
    }
    let kept = new_event("t", "kept");
    insert_one(&mut conn, &kept, false).await;
    delivery(&mut conn, kept.id, "a", "delivered", 0).await;
    delivery(&mut conn, kept.id, "b", "pending", 0).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let report = run_maintenance(
        &mut conn,
        &policy,
        MaintenanceOptions {
            batch_size: 10,
            ..MaintenanceOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.pruned.get("events"), Some(&25), "{report:?}");
    assert_eq!(
        deliveries(&mut conn).await,
        [(kept.id, "a".to_string()), (kept.id, "b".to_string())],
        "the pruned events' deliveries went with them, the other source's stay"
    );
    assert!(find_event(&mut conn, kept.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_go_by_time_with_their_events_partitions_but_pending_ones_wait_for_the_event() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let policy = RetentionPolicy::uniform(defaults());
    let stored = new_event("s", "stored");
    insert_one(&mut conn, &stored, false).await;
    let recent = new_event("s", "recent");
    insert_one(&mut conn, &recent, false).await;
    // Rows older than the 30 days, all with one created_at (the walk resumes by ctid):
    // settled ones go by time; a pending one waits while its event is stored, and goes
    // once it is not.
    let orphan = Uuid::now_v7();
    for d in ["a", "b", "c"] {
        delivery(&mut conn, stored.id, d, "delivered", 40).await;
        delivery(&mut conn, orphan, d, "pending", 40).await;
    }
    delivery(&mut conn, stored.id, "d", "dead", 40).await;
    delivery(&mut conn, stored.id, "e", "failed", 40).await;
    delivery(&mut conn, stored.id, "p1", "pending", 40).await;
    delivery(&mut conn, stored.id, "p2", "pending", 40).await;
    // Recent ones stay, whatever their state.
    delivery(&mut conn, recent.id, "a", "delivered", 0).await;
    delivery(&mut conn, recent.id, "b", "pending", 0).await;
    // 29 days old: inside the retention.
    delivery(&mut conn, recent.id, "c", "delivered", 29).await;

    let options = MaintenanceOptions {
        batch_size: 2,
        ..MaintenanceOptions::default()
    };
    let dry = run_maintenance(
        &mut conn,
        &policy,
        MaintenanceOptions {
            dry_run: true,
            ..options
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.pruned.get("deliveries"), Some(&8), "{dry:?}");
    let report = run_maintenance(&mut conn, &policy, options).await.unwrap();
    assert_eq!(report.pruned.get("deliveries"), Some(&8), "{report:?}");
    let s = |d: &str| d.to_string();
    let mut left = vec![
        (stored.id, s("p1")),
        (stored.id, s("p2")),
        (recent.id, s("a")),
        (recent.id, s("b")),
        (recent.id, s("c")),
    ];
    left.sort();
    assert_eq!(deliveries(&mut conn).await, left);
    let again = run_maintenance(&mut conn, &policy, options).await.unwrap();
    assert!(again.pruned.is_empty(), "{again:?}");

    // Forty days on, the events' partitions go, and every delivery with them (the
    // pending ones too: their events are gone).
    let report = run_maintenance(
        &mut conn,
        &policy,
        MaintenanceOptions {
            now: Some(OffsetDateTime::now_utc() + time::Duration::days(40)),
            ..options
        },
    )
    .await
    .unwrap();
    assert!(
        report.dropped.contains(&"events_legacy".to_string()),
        "{report:?}"
    );
    assert_eq!(report.pruned.get("deliveries"), Some(&5), "{report:?}");
    assert!(deliveries(&mut conn).await.is_empty());
    let status = retention_status(&mut conn, true).await.unwrap();
    let table = status
        .tables
        .iter()
        .find(|t| t.table == "deliveries")
        .unwrap();
    assert_eq!((table.partitions, table.rows, table.oldest), (0, 0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_that_write_much_wal_shrink_and_the_walk_misses_no_row() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let short = Retention {
        dedup_horizon: Duration::from_millis(500),
        payload: Duration::from_millis(500),
        events: Duration::from_secs(1),
    };
    let mut policy = RetentionPolicy::uniform(defaults());
    policy.overrides.insert("s".into(), short);
    // 130 events with one received_at: batches of 100, then (every batch writes more
    // than 1 byte of WAL) 50, then 25, resuming by id within that instant.
    let batch: Vec<NewEvent> = (0..130)
        .map(|k| keyed(&format!("k{k}"), short.dedup_horizon))
        .collect();
    insert_events(&mut conn, &batch, false).await.unwrap();
    for event in &batch {
        delivery(&mut conn, event.id, "a", "delivered", 40).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let report = run_maintenance(
        &mut conn,
        &policy,
        MaintenanceOptions {
            batch_size: 100,
            wal_per_batch: 1,
            pause_ratio: 0.5,
            ..MaintenanceOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.pruned.get("events"), Some(&130), "{report:?}");
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        0
    );
    assert!(deliveries(&mut conn).await.is_empty());
}
