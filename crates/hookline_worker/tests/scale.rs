//! Horizontal scale and crash safety: two ingest instances and four `hookline-worker`
//! processes on one queue; 1 000 events over 100 resources, each delivered three times
//! concurrently with statuses in shuffled order; one worker is killed with SIGKILL
//! mid-stream. Every event is processed exactly once and every resource ends at its
//! highest-rank status. (Ingest runs in-process here: this crate's tests can start only
//! its own binary; each ingest instance has its own server, pool and publisher.)

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{STATUSES, rank};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use futures_util::StreamExt;
use hookline_testkit::{TestDb, TestIngest, amqp_prefix, config_toml, count, eventually};

const SOURCE: &str = r#"
[sources.runs]
verifier = "token"
secrets = ["t"]
dedup_key = "{header:x-delivery-id}"
resource_key = "{json:/eventData/actorRunId}"
status = "{json:/resource/status}"
lifecycle = "apify-run"
"#;
fn spawn_worker(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hookline-worker"))
        .env("HOOKLINE_CONFIG", config)
        .env("HOOKLINE__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hookline-worker starts")
}

/// Two text columns, `a` and `b`.
#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingests_and_four_worker_processes_one_killed_process_every_event_exactly_once() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, SOURCE);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hookline.toml");
    std::fs::write(&config, &toml).unwrap();

    let ingests = [
        TestIngest::spawn(&toml).await,
        TestIngest::spawn(&toml).await,
    ];
    let mut workers: Vec<Child> = (0..4).map(|_| spawn_worker(&config)).collect();

    // 1 000 events over 100 runs, statuses drawn at random (so arriving shuffled); each
    // delivered three times, the copies racing each other across both ingests.
    let events: Vec<(String, String, &str)> = (0..1000)
        .map(|i| {
            (
                format!("e-{i}"),
                format!("run-{}", i % 100),
                STATUSES[fastrand::usize(..STATUSES.len())],
            )
        })
        .collect();
    let mut deliveries: Vec<usize> = (0..3000).map(|d| d % 1000).collect();
    fastrand::shuffle(&mut deliveries);

    let send = |i: usize, copy: usize| {
        let (id, run, status) = &events[i];
        let body =
            serde_json::json!({"eventData": {"actorRunId": run}, "resource": {"status": status}})
                .to_string();
        let ingest = &ingests[copy % 2];
        async move {
            ingest
                .post(
                    "runs",
                    &[("x-hookline-token", "t"), ("x-delivery-id", id)],
                    body,
                )
                .await
                .status()
                .as_u16()
        }
    };
    let first_half = futures_util::stream::iter(deliveries[..1500].iter().enumerate())
        .map(|(copy, i)| send(*i, copy))
        .buffer_unordered(48)
        .collect::<Vec<u16>>();
    let mut statuses = first_half.await;

    // Mid-stream: SIGKILL one worker while the others keep going.
    eventually("processing under way", Duration::from_secs(60), || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'",
        )
        .await
        .ok()?
            >= 100)
            .then_some(())
    })
    .await
    .unwrap();
    workers[0].kill().expect("SIGKILL the first worker");
    workers[0].wait().unwrap();

    let second_half = futures_util::stream::iter(deliveries[1500..].iter().enumerate())
        .map(|(copy, i)| send(*i, copy + 1))
        .buffer_unordered(48)
        .collect::<Vec<u16>>();
    statuses.extend(second_half.await);

    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 200),
        "only 202 and 200, no 5xx"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1000,
        "one 202 per event"
    );
    eventually(
        "all 1 000 events processed",
        Duration::from_secs(120),
        || async {
            (count(
                &db,
                "SELECT count(*) AS n FROM events WHERE state = 'processed'",
            )
            .await
            .ok()?
                == 1000)
                .then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        1000,
        "one transition per event"
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT event_id) AS n FROM transitions")
            .await
            .unwrap(),
        1000
    );

    // Every run ends at the highest rank any of its events reported; no applied downgrade.
    let mut conn = db.connect().await;
    let finals: Vec<Pair> =
        diesel::sql_query("SELECT resource_key AS a, status AS b FROM resources")
            .load(&mut conn)
            .await
            .unwrap();
    assert_eq!(finals.len(), 100);
    for run in &finals {
        let best = events
            .iter()
            .filter(|(_, r, _)| *r == run.a)
            .map(|(_, _, s)| rank(s))
            .max()
            .unwrap();
        assert_eq!(rank(&run.b), best, "{} ended at {}", run.a, run.b);
    }
    let applied: Vec<Pair> = diesel::sql_query(
        "SELECT from_status AS a, to_status AS b FROM transitions \
         WHERE outcome = 'applied' AND from_status IS NOT NULL",
    )
    .load(&mut conn)
    .await
    .unwrap();
    for t in &applied {
        assert!(
            rank(&t.b) > rank(&t.a),
            "applied downgrade {} -> {}",
            t.a,
            t.b
        );
    }

    for worker in &mut workers[1..] {
        // SIGTERM: the drain path; each must exit 0.
        let _ = Command::new("kill")
            .args(["-TERM", &worker.id().to_string()])
            .status();
        assert!(
            worker.wait().unwrap().success(),
            "a worker stopped by SIGTERM exits 0"
        );
    }
    for ingest in ingests {
        ingest.stop().await;
    }
}
