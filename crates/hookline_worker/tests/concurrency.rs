//! Many workers racing on one resource, with real concurrent transactions.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{STATUSES, deps, envelope, insert, rank, resource};
use futures_util::StreamExt;
use hookline_domain::Outcome as Decision;
use hookline_testkit::{APIFY_SOURCE, TestDb, amqp_prefix, config_toml, count};
use hookline_worker::{Outcome, process};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_shuffled_statuses_of_one_run_on_sixteen_workers_give_one_transition_each_and_only_move_forward()
 {
    let db = TestDb::new().await;
    let deps = Arc::new(deps(
        &db,
        &config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE),
    ));
    let mut statuses: Vec<&str> = STATUSES.iter().copied().cycle().take(50).collect();
    fastrand::shuffle(&mut statuses);
    let mut ids = Vec::new();
    for status in &statuses {
        ids.push(insert(&db, "apify", Some("run-race"), Some(status)).await);
    }
    fastrand::shuffle(&mut ids);

    let outcomes: Vec<Outcome> = futures_util::stream::iter(ids.clone())
        .map(|id| {
            let deps = deps.clone();
            // Spawned, so the 16 steps really run in parallel on the runtime's threads.
            async move {
                tokio::spawn(async move { process(&deps, &envelope(id, "apify")).await })
                    .await
                    .expect("step task")
            }
        })
        .buffer_unordered(16)
        .map(|result| result.expect("every step commits"))
        .collect()
        .await;

    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Processed {
                transition: Some(_),
                ..
            }
        )),
        "{outcomes:?}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        50
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT event_id) AS n FROM transitions")
            .await
            .unwrap(),
        50,
        "exactly one transition per event"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'"
        )
        .await
        .unwrap(),
        50
    );

    let run = resource(&db, "apify", "run-race").await.expect("resource");
    let status = run.status.clone().expect("a status applied");
    assert_eq!(rank(&status), 3, "ends terminal: {status}");
    assert!(run.terminal);

    // The log, in commit order, tells one consistent story.
    let mut current: Option<String> = None;
    let mut applied_terminal = 0;
    for t in &run.transitions {
        assert_eq!(t.from, current, "each decision saw the previous one: {t:?}");
        match t.outcome {
            Decision::Applied => {
                if let Some(from) = &t.from {
                    assert!(rank(&t.to) > rank(from), "applied a downgrade: {t:?}");
                }
                if rank(&t.to) == 3 {
                    applied_terminal += 1;
                }
                current = Some(t.to.clone());
            }
            Decision::Unchanged => assert_eq!(Some(&t.to), t.from.as_ref()),
            Decision::RejectedDowngrade => {
                assert!(rank(&t.to) <= rank(t.from.as_deref().unwrap()), "{t:?}");
            }
            Decision::RejectedTerminal => assert_eq!(rank(t.from.as_deref().unwrap()), 3, "{t:?}"),
            other => panic!("unexpected outcome {other}"),
        }
    }
    assert_eq!(applied_terminal, 1, "the first terminal status wins, alone");
    assert_eq!(current.as_deref(), Some(status.as_str()));
}
