//! Effect handlers in the decision transaction, on real PostgreSQL and RabbitMQ. The
//! Refersion handler tested here is the shipped example's own file.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Helpers outside #[test] fns unwrap too; a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[path = "../examples/refersion/handler.rs"]
mod refersion;

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{WAIT, deps, insert, resource};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use hookline_domain::{EventState, Outcome as Decision};
use hookline_queue::{Envelope, Route, Topology};
use hookline_testkit::{
    APIFY_SOURCE, TestDb, TestIngest, amqp_prefix, config, config_toml, count, eventually,
    hmac_sha256_base64, ready_messages, test_publisher,
};
use hookline_worker::{
    EffectDecision, EffectEvent, Handler, HandlerError, Handlers, Outcome, Worker, process,
    process_batch,
};
use tokio::sync::watch;
use uuid::Uuid;

const SECRET: &str = "rfsn_webhook_signing_secret_0123";
const REFERSION_SOURCE: &str = r#"
[sources.refersion]
preset = "refersion"
secrets = ["rfsn_webhook_signing_secret_0123"]
"#;

/// What a [`Probe`] does on a call: `(event, this event's call number from 1)`.
type Rule = dyn Fn(&EffectEvent, usize) -> Step + Send + Sync;

enum Step {
    Pass,
    Fail(HandlerError),
    /// Never return: the transaction stays open, holding its locks.
    Block,
}

/// Wraps a handler: runs it, counts calls per event, records decisions, then does what
/// its rule says (so a failure comes after the inner handler's writes).
#[derive(Clone)]
struct Probe {
    inner: Arc<dyn Handler>,
    calls: Arc<Mutex<HashMap<Uuid, usize>>>,
    decisions: Arc<Mutex<Vec<(Uuid, EffectDecision)>>>,
    total: Arc<AtomicUsize>,
    rule: Arc<Mutex<Arc<Rule>>>,
}

impl Probe {
    fn new(inner: impl Handler) -> Self {
        Self {
            inner: Arc::new(inner),
            calls: Arc::default(),
            decisions: Arc::default(),
            total: Arc::default(),
            rule: Arc::new(Mutex::new(Arc::new(|_: &EffectEvent, _: usize| Step::Pass))),
        }
    }

    fn set_rule(&self, rule: impl Fn(&EffectEvent, usize) -> Step + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Arc::new(rule);
    }

    fn calls(&self, id: Uuid) -> usize {
        self.calls.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        AtomicUsize::load(&self.total, Ordering::SeqCst)
    }
}

impl Handler for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    fn handle<'a>(
        &'a self,
        event: &'a EffectEvent,
        decision: &'a EffectDecision,
        conn: &'a mut AsyncPgConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(event.id).or_default();
                *n += 1;
                *n
            };
            self.total.fetch_add(1, Ordering::SeqCst);
            self.decisions
                .lock()
                .unwrap()
                .push((event.id, decision.clone()));
            self.inner.handle(event, decision, conn).await?;
            let rule = self.rule.lock().unwrap().clone();
            match rule(event, n) {
                Step::Pass => Ok(()),
                Step::Fail(e) => Err(e),
                Step::Block => std::future::pending().await,
            }
        })
    }
}

/// Marks every event it is called for in `effect_marks` (a table the test creates).
struct Marks;

impl Handler for Marks {
    fn handle<'a>(
        &'a self,
        event: &'a EffectEvent,
        _: &'a EffectDecision,
        conn: &'a mut AsyncPgConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            diesel::sql_query("INSERT INTO effect_marks (event_id) VALUES ($1)")
                .bind::<diesel::sql_types::Uuid, _>(event.id)
                .execute(conn)
                .await?;
            Ok(())
        })
    }
}

async fn refersion_db() -> TestDb {
    let db = TestDb::new().await;
    refersion::migrate(&mut db.connect().await).await.unwrap();
    db
}

/// A Refersion sale body for order `order`.
fn sale(order: usize) -> String {
    serde_json::json!({
        "id": 900_000 + order,
        "type": "SALE",
        "status": "PENDING",
        "commission_total": "12.50",
        "currency": "USD",
        "order_id": format!("order-{order}"),
        "affiliate": {"id": 4242, "first_name": "Ada"},
    })
    .to_string()
}

async fn post_sale(ingest: &TestIngest, body: &str) -> u16 {
    let signature = hmac_sha256_base64(SECRET.as_bytes(), body.as_bytes());
    ingest
        .post(
            "refersion",
            &[
                ("refersion-topic", refersion::SALE_TOPIC),
                ("refersion-signature", &signature),
            ],
            body.to_string(),
        )
        .await
        .status()
        .as_u16()
}

/// A worker with `handlers`, running in-process until the returned sender says stop.
async fn spawn_worker(
    toml: &str,
    handlers: Handlers,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (config, sources) = config(toml);
    let worker = Worker::builder(config, sources)
        .handlers(handlers)
        .build()
        .await
        .expect("worker starts");
    let stop = worker.stop_handle();
    (stop, tokio::spawn(worker.run_until_stopped()))
}

async fn processed(db: &TestDb, source: &str) -> i64 {
    count(
        db,
        &format!(
            "SELECT count(*) AS n FROM events WHERE source = '{source}' AND state = 'processed'"
        ),
    )
    .await
    .unwrap()
}

async fn wait_processed(db: &TestDb, source: &str, n: i64, within: Duration) {
    eventually(
        &format!("{n} {source} events processed"),
        within,
        || async { (processed(db, source).await == n).then_some(()) },
    )
    .await
    .unwrap();
}

/// Exactly one conversion per sale event: as many rows as sale events, each pointing at
/// a distinct processed event, each order once.
async fn assert_one_conversion_per_sale(db: &TestDb, sales: i64) {
    assert_eq!(
        count(db, "SELECT count(*) AS n FROM refersion_conversions")
            .await
            .unwrap(),
        sales
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) AS n FROM refersion_conversions c JOIN events e ON e.id = c.event_id \
             WHERE e.state = 'processed'"
        )
        .await
        .unwrap(),
        sales,
        "every conversion belongs to a processed event"
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) AS n FROM events e WHERE e.source = 'refersion' AND e.state = 'processed' \
             AND NOT EXISTS (SELECT 1 FROM refersion_conversions c WHERE c.event_id = e.id)"
        )
        .await
        .unwrap(),
        0,
        "every processed sale has its conversion"
    );
}

async fn ids_of(db: &TestDb, sql: &str) -> Vec<Uuid> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let rows: Vec<Id> = diesel::sql_query(sql)
        .load(&mut db.connect().await)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

async fn republish(toml: &str, prefix: &str, ids: &[Uuid]) {
    let publisher = test_publisher(toml, prefix).await;
    let envelopes: Vec<Envelope> = ids
        .iter()
        .map(|id| Envelope::new(*id, "refersion", None))
        .collect();
    publisher
        .publish(&envelopes, Route::Work, None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_sales_then_redeliveries_then_a_replay_leave_one_conversion_per_sale() {
    let db = refersion_db().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, REFERSION_SOURCE);
    let ingest = TestIngest::spawn(&toml).await;
    let probe = Probe::new(refersion::Conversions);
    let workers = [
        spawn_worker(&toml, Handlers::new().on_source("refersion", probe.clone())).await,
        spawn_worker(&toml, Handlers::new().on_source("refersion", probe.clone())).await,
    ];

    // The storm: 200 sales, each delivered three times concurrently.
    let bodies: Vec<String> = (0..200).map(sale).collect();
    let mut deliveries: Vec<usize> = (0..600).map(|d| d % 200).collect();
    fastrand::shuffle(&mut deliveries);
    let statuses: Vec<u16> = futures_util::stream::iter(deliveries)
        .map(|i| post_sale(&ingest, &bodies[i]))
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 200);
    assert!(statuses.iter().all(|s| *s == 202 || *s == 200));
    wait_processed(&db, "refersion", 200, Duration::from_secs(60)).await;
    assert_one_conversion_per_sale(&db, 200).await;
    let all = ids_of(&db, "SELECT id FROM events WHERE source = 'refersion'").await;
    for id in &all {
        assert_eq!(
            probe.calls(*id),
            1,
            "one call per decided event (no contention here)"
        );
    }

    // Redeliveries of processed events: found final, the handler is not called.
    let before = probe.total();
    republish(&toml, &prefix, &all).await;
    republish(&toml, &prefix, &all).await;
    let work = Topology::new(&prefix).work_queue();
    eventually("the redeliveries consumed", WAIT, || async {
        (ready_messages(&work).await == 0).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(probe.total(), before, "no handler call for a redelivery");
    assert_one_conversion_per_sale(&db, 200).await;

    // A handler bug fails 20 new sales permanently; fixed, they are replayed
    // (`hookline replay --reset`: reset_for_replay, then republish) and run once each.
    probe.set_rule(|_, _| Step::Fail(HandlerError::Permanent("ledger closed".into())));
    for order in 200..220 {
        assert_eq!(post_sale(&ingest, &sale(order)).await, 202);
    }
    eventually("20 sales failed", WAIT, || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'failed'",
        )
        .await
        .ok()?
            == 20)
            .then_some(())
    })
    .await
    .unwrap();
    let failed = ids_of(&db, "SELECT id FROM events WHERE state = 'failed'").await;
    for id in &failed {
        let (_, _, last_error) = common::event_state(&db, *id).await;
        assert_eq!(last_error.as_deref(), Some("handler probe: ledger closed"));
    }
    assert_one_conversion_per_sale(&db, 200).await;
    probe.set_rule(|_, _| Step::Pass);
    let reset = hookline_db::reset_for_replay(&mut db.connect().await, &failed)
        .await
        .unwrap();
    assert_eq!(reset, 20);
    republish(&toml, &prefix, &failed).await;
    republish(&toml, &prefix, &failed).await;
    wait_processed(&db, "refersion", 220, WAIT).await;
    eventually("the replay consumed", WAIT, || async {
        (ready_messages(&work).await == 0).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_one_conversion_per_sale(&db, 220).await;
    for id in &failed {
        assert_eq!(
            probe.calls(*id),
            2,
            "the failed call, then the replay's, once"
        );
    }
    // Replaying processed events again resets nothing.
    let again = hookline_db::reset_for_replay(&mut db.connect().await, &all)
        .await
        .unwrap();
    assert_eq!(again, 0);

    for (stop, task) in workers {
        let _ = stop.send(true);
        task.await.unwrap().unwrap();
    }
    ingest.stop().await;
}

/// Set by the kill test for the child process it spawns (this same test binary).
const CHILD_CONFIG: &str = "HOOKLINE_EFFECTS_CHILD_CONFIG";
/// The file the child creates when its handler blocks mid-batch.
const CHILD_MARKER: &str = "HOOKLINE_EFFECTS_CHILD_MARKER";

/// Not a test on its own: the worker process of
/// [`a_worker_killed_mid_batch_loses_and_doubles_no_conversion`], which runs this binary
/// with [`CHILD_CONFIG`] set. Without it, it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker_process_for_the_kill_test() {
    let (Ok(path), Ok(marker)) = (std::env::var(CHILD_CONFIG), std::env::var(CHILD_MARKER)) else {
        return;
    };
    let toml = std::fs::read_to_string(path).unwrap();
    let probe = Probe::new(refersion::Conversions);
    let total = probe.total.clone();
    let blocked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    probe.set_rule(move |_, _| {
        // The first call from the 10th on blocks, inside a batch's open transaction. Not
        // "the 10th": two batches run at once, so the count can pass 10 between a call's
        // increment and its look at it.
        if AtomicUsize::load(&total, Ordering::SeqCst) >= 10
            && !blocked.swap(true, Ordering::SeqCst)
        {
            std::fs::write(&marker, b"blocked").unwrap();
            Step::Block
        } else {
            Step::Pass
        }
    });
    let (_stop, task) = spawn_worker(&toml, Handlers::new().on_source("refersion", probe)).await;
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_and_doubles_no_conversion() {
    let db = refersion_db().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, REFERSION_SOURCE);
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("hookline.toml");
    std::fs::write(&config_path, &toml).unwrap();
    let marker = dir.join("blocked");

    let ingest = TestIngest::spawn(&toml).await;
    for order in 0..100 {
        assert_eq!(post_sale(&ingest, &sale(order)).await, 202);
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_worker_process_for_the_kill_test",
            "--nocapture",
        ])
        .env(CHILD_CONFIG, &config_path)
        .env(CHILD_MARKER, &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(
        "the child blocked mid-batch",
        Duration::from_secs(60),
        || async { marker.exists().then_some(()) },
    )
    .await
    .unwrap();
    // The blocked batch is open: its events are locked and not yet processed.
    let before_kill = processed(&db, "refersion").await;
    assert!(before_kill < 100, "{before_kill}");
    child.kill().unwrap();
    child.wait().unwrap();
    // One statement, one snapshot: a batch the child had already sent its COMMIT for
    // still commits after the kill, and two separate counts could straddle it.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM events e WHERE e.source = 'refersion' \
               AND (e.state = 'processed') \
                   <> EXISTS (SELECT 1 FROM refersion_conversions c WHERE c.event_id = e.id)"
        )
        .await
        .unwrap(),
        0,
        "the killed batch's conversions rolled back with it: a conversion exactly for each \
         processed sale"
    );

    let probe = Probe::new(refersion::Conversions);
    let (stop, task) = spawn_worker(&toml, Handlers::new().on_source("refersion", probe)).await;
    wait_processed(&db, "refersion", 100, Duration::from_secs(60)).await;
    assert_one_conversion_per_sale(&db, 100).await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_handler_error_rolls_back_the_whole_decision_and_follows_the_retry_schedule() {
    let db = refersion_db().await;
    let prefix = amqp_prefix();
    let toml = config_toml(
        &db.url,
        &prefix,
        &format!("{REFERSION_SOURCE}{APIFY_SOURCE}"),
    );

    // Direct: the step's transaction rolls back as a whole.
    let probe = Probe::new(Marks);
    probe.set_rule(|_, n| {
        if n == 1 {
            Step::Fail(HandlerError::Transient("ledger busy".into()))
        } else {
            Step::Pass
        }
    });
    TestDb::execute(&db, "CREATE TABLE effect_marks (event_id uuid PRIMARY KEY)").await;
    let deps = deps(&db, &toml).with_handlers(Handlers::new().on_source("apify", probe.clone()));
    let id = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    let first = process(&deps, &common::envelope(id, "apify")).await;
    assert_eq!(
        first,
        Err(hookline_worker::ProcessError::Transient(
            "handler probe: ledger busy".into()
        ))
    );
    assert_eq!(common::event_state(&db, id).await.0, EventState::Received);
    assert!(
        resource(&db, "apify", "run-1").await.is_none(),
        "no resource written"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM effect_marks")
            .await
            .unwrap(),
        0
    );
    let second = process(&deps, &common::envelope(id, "apify"))
        .await
        .unwrap();
    assert!(matches!(second, Outcome::Processed { .. }), "{second:?}");
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM effect_marks")
            .await
            .unwrap(),
        1
    );

    // Through a worker: a failed batch is first retried as a single (calls 1 and 2, both
    // failing here), then on the retry schedule (call 3); one conversion in the end.
    let ingest = TestIngest::spawn(&toml).await;
    let probe = Probe::new(refersion::Conversions);
    probe.set_rule(|_, n| {
        if n <= 2 {
            Step::Fail(HandlerError::Transient("ledger busy".into()))
        } else {
            Step::Pass
        }
    });
    let (stop, task) =
        spawn_worker(&toml, Handlers::new().on_source("refersion", probe.clone())).await;
    assert_eq!(post_sale(&ingest, &sale(1)).await, 202);
    wait_processed(&db, "refersion", 1, WAIT).await;
    let id = ids_of(&db, "SELECT id FROM events WHERE source = 'refersion'").await[0];
    assert_eq!(
        probe.calls(id),
        3,
        "the third call came from the retry queue"
    );
    assert_one_conversion_per_sale(&db, 1).await;
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_handler_error_fails_only_its_event_with_no_decision_and_no_writes() {
    let db = TestDb::new().await;
    TestDb::execute(&db, "CREATE TABLE effect_marks (event_id uuid PRIMARY KEY)").await;
    let doomed = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    let later = insert(&db, "apify", Some("run-1"), Some("SUCCEEDED")).await;
    let other = insert(&db, "apify", Some("run-2"), Some("RUNNING")).await;
    let probe = Probe::new(Marks);
    probe.set_rule(move |event, _| {
        if event.id == doomed {
            Step::Fail(HandlerError::Permanent("no such account".into()))
        } else {
            Step::Pass
        }
    });
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE);
    let deps = deps(&db, &toml).with_handlers(Handlers::new().on_source("apify", probe.clone()));

    let outcomes = process_batch(&deps, &[doomed, later, other]).await.unwrap();
    assert_eq!(
        outcomes[&doomed],
        Outcome::Failed {
            reason: "handler probe: no such account".into()
        }
    );
    let (state, _, last_error) = common::event_state(&db, doomed).await;
    assert_eq!(state, EventState::Failed);
    assert_eq!(
        last_error.as_deref(),
        Some("handler probe: no such account")
    );
    // The later event of the same run is decided as if the failed one never arrived.
    match &outcomes[&later] {
        Outcome::Processed {
            transition: Some(t),
            ..
        } => assert_eq!((t.from.as_deref(), t.outcome), (None, Decision::Applied)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&outcomes[&other], Outcome::Processed { .. }));
    let run1 = resource(&db, "apify", "run-1").await.unwrap();
    assert_eq!(run1.status.as_deref(), Some("SUCCEEDED"));
    assert_eq!(
        run1.transitions.len(),
        1,
        "no transition for the failed event"
    );
    let marks = ids_of(
        &db,
        "SELECT event_id AS id FROM effect_marks ORDER BY event_id",
    )
    .await;
    assert_eq!(
        marks,
        [later, other],
        "the failed handler's write rolled back"
    );
    assert_eq!(probe.calls(doomed), 1);
    assert_eq!(probe.calls(later), 1, "called once, after the re-decision");
    assert_eq!(probe.calls(other), 1);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_lifecycle_source_handlers_see_only_applied_decisions_and_never_redeliveries() {
    let db = TestDb::new().await;
    TestDb::execute(&db, "CREATE TABLE effect_marks (event_id uuid PRIMARY KEY)").await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE);
    let probe = Probe::new(Marks);
    let deps = deps(&db, &toml).with_handlers(Handlers::new().on_source("apify", probe.clone()));
    let mut ids = Vec::new();
    for status in [
        "READY",
        "RUNNING",
        "RUNNING",
        "READY",
        "SUCCEEDED",
        "FAILED",
    ] {
        ids.push(insert(&db, "apify", Some("run-1"), Some(status)).await);
    }
    // Half in one batch, half one by one: the same path either way.
    process_batch(&deps, &ids[..3]).await.unwrap();
    for id in &ids[3..] {
        process(&deps, &common::envelope(*id, "apify"))
            .await
            .unwrap();
    }
    let decisions = probe.decisions.lock().unwrap().clone();
    let seen: Vec<(Uuid, Option<&str>, Option<&str>, bool)> = decisions
        .iter()
        .map(|(id, d)| {
            assert_eq!(d.outcome, Some(Decision::Applied));
            (*id, d.from.as_deref(), d.to.as_deref(), d.terminal)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (ids[0], None, Some("READY"), false),
            (ids[1], Some("READY"), Some("RUNNING"), false),
            (ids[4], Some("RUNNING"), Some("SUCCEEDED"), true),
        ],
        "not for unchanged, rejected_downgrade or rejected_terminal"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'"
        )
        .await
        .unwrap(),
        6
    );
    // Redelivered: final, no call.
    process_batch(&deps, &ids).await.unwrap();
    assert_eq!(probe.total(), 3);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM effect_marks")
            .await
            .unwrap(),
        3
    );

    // A handler for a source that is not configured is refused at build time.
    let (config, sources) = config(&toml);
    let refused = Worker::builder(config, sources)
        .on_source("nowhere", Marks)
        .build()
        .await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_payload_was_pruned_fails_before_its_handlers_and_the_rest_go_on() {
    let db = TestDb::new().await;
    TestDb::execute(&db, "CREATE TABLE effect_marks (event_id uuid PRIMARY KEY)").await;
    let pruned = insert(&db, "apify", Some("run-1"), Some("RUNNING")).await;
    let kept = insert(&db, "apify", Some("run-2"), Some("RUNNING")).await;
    // What retention does to an old payload (here by hand: the event was never decided).
    TestDb::execute(
        &db,
        &format!("DELETE FROM event_payloads WHERE id = '{pruned}'"),
    )
    .await;
    let probe = Probe::new(Marks);
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE);
    let deps = deps(&db, &toml).with_handlers(Handlers::new().on_source("apify", probe.clone()));

    let outcomes = process_batch(&deps, &[pruned, kept]).await.unwrap();
    match &outcomes[&pruned] {
        Outcome::Failed { reason } => assert!(reason.contains("payload pruned"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&outcomes[&kept], Outcome::Processed { .. }));
    assert_eq!(probe.calls(pruned), 0, "no handler ever saw an empty body");
    assert_eq!(probe.calls(kept), 1);
    assert!(
        resource(&db, "apify", "run-1")
            .await
            .unwrap()
            .transitions
            .is_empty()
    );
}
