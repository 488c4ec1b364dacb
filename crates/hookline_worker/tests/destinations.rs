//! HTTP destinations against a real receiver on port 0, with ingest, workers, PostgreSQL
//! and RabbitMQ all real: every applied event arrives signed (checked with the Standard
//! Webhooks verifier), at least once, with one `webhook-id` across its attempts, through
//! failures, timeouts, 429 + Retry-After, open circuits, a paused destination, a killed
//! worker and a redrive.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{TestWorker, WAIT};
use hookline_domain::{DeliveryState, Headers, RequestParts};
use hookline_testkit::{
    APIFY_SOURCE, PLAIN_SOURCE, Received, Receiver, Reply, TestDb, TestIngest, amqp_prefix,
    apify_body, config, config_toml, count, eventually,
};
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: (&str, &str) = ("x-hookline-token", "apify-token");
const LONG: Duration = Duration::from_secs(90);

/// A destination with fast retries (100 ms), a 2 s timeout and a circuit that does not
/// open, unless `extra` sets those keys.
fn destination(name: &str, url: &str, extra: &str) -> String {
    let mut defaults = String::new();
    for (key, value) in [("timeout", "\"2s\""), ("circuit_failures", "1000")] {
        if !extra.contains(&format!("{key} =")) {
            defaults.push_str(&format!("{key} = {value}\n"));
        }
    }
    format!(
        "\n[destinations.{name}]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
         retry = [\"100ms\"]\n{defaults}{extra}\n"
    )
}

/// Checks a received request's Standard Webhooks signature with Hookline's own verifier
/// (whose test vectors come from the reference libraries).
fn verify(request: &Received) -> Result<(), String> {
    let (_, sources) = config(&format!(
        "[sources.check]\npreset = \"standard-webhooks\"\nsecrets = [\"{SECRET}\"]"
    ));
    let verifier = hookline_providers::verifiers(&sources)
        .unwrap()
        .remove("check")
        .unwrap();
    let headers = Headers::new(
        request
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec())),
    );
    verifier
        .verify(
            RequestParts {
                source: "check",
                headers: &headers,
                query: "",
                body: &request.body,
            },
            SystemTime::now(),
        )
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The trace every test webhook arrives with (as a provider's own `traceparent`).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn post_run(app: &TestIngest, run: &str, status: &str) -> Value {
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let response = app
        .post(
            "apify",
            &[
                TOKEN,
                ("traceparent", &traceparent),
                ("content-type", "application/json"),
            ],
            apify_body(run, status),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// The deliveries to `destination` in `state` as operators see them
/// (`hookline deliveries list`): first attempts still in their lease count as pending.
async fn deliveries_in(db: &TestDb, destination: &str, state: DeliveryState) -> i64 {
    let mut conn = db.connect().await;
    let views = hookline_db::list_deliveries(
        &mut conn,
        &hookline_db::DeliveryFilter {
            destination: Some(destination.into()),
            states: vec![state],
            since: None,
        },
        1_000_000,
    )
    .await
    .unwrap();
    i64::try_from(views.len()).unwrap()
}

async fn wait_deliveries(db: &TestDb, destination: &str, state: DeliveryState, n: i64) {
    eventually(
        &format!("{n} {state} deliveries to {destination}"),
        LONG,
        || async { (deliveries_in(db, destination, state).await >= n).then_some(()) },
    )
    .await
    .unwrap();
}

fn by_id(received: &[Received]) -> BTreeMap<String, Vec<Received>> {
    let mut map: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    for r in received {
        map.entry(r.webhook_id().to_string())
            .or_default()
            .push(r.clone());
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_events_arrive_signed_through_500_429_and_a_timeout_with_one_webhook_id() {
    let receiver = Receiver::start().await;
    // Per event: 500, then 429 with Retry-After 1, then no answer (the 1 s timeout), then 204.
    receiver.script(|_, nth| match nth {
        1 => Reply::Status(500),
        2 => Reply::RetryAfter(429, 1),
        3 => Reply::Hang,
        _ => Reply::Status(204),
    });
    let db = TestDb::new().await;
    let extra = format!(
        "{APIFY_SOURCE}{}",
        destination(
            "orders",
            &receiver.url("/hooks"),
            "timeout = \"1s\"\nheaders = { \"x-api-key\" = \"key-123\" }"
        )
    );
    let toml = config_toml(&db.url, &amqp_prefix(), &extra);
    let app = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;

    let runs: Vec<String> = (0..12).map(|i| format!("run-{i:02}")).collect();
    let mut event_ids = HashMap::new();
    for run in &runs {
        let accepted = post_run(&app, run, "SUCCEEDED").await;
        event_ids.insert(
            run.clone(),
            accepted["event_id"].as_str().unwrap().to_string(),
        );
        // A duplicate, and (below) a late RUNNING after the terminal SUCCEEDED: neither is
        // delivered.
        post_run(&app, run, "SUCCEEDED").await;
    }
    wait_deliveries(&db, "orders", DeliveryState::Delivered, 12).await;
    for run in &runs {
        post_run(&app, run, "RUNNING").await;
    }
    eventually("the downgrades are decided", WAIT, || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM transitions WHERE outcome = 'rejected_terminal'",
        )
        .await
        .unwrap()
            == 12)
            .then_some(())
    })
    .await
    .unwrap();
    // Give a wrongly made delivery of a rejected event time to show up.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let received = receiver.received();
    let attempts = by_id(&received);
    assert_eq!(
        attempts.len(),
        12,
        "one webhook-id per applied event, no other"
    );
    for (run, id) in &event_ids {
        let tries = &attempts[id];
        assert_eq!(
            tries.iter().map(|r| r.reply).collect::<Vec<_>>(),
            [
                Reply::Status(500),
                Reply::RetryAfter(429, 1),
                Reply::Hang,
                Reply::Status(204)
            ],
            "{run}"
        );
        for (i, r) in tries.iter().enumerate() {
            verify(r).unwrap_or_else(|e| panic!("{run} attempt {i}: {e}"));
            assert_eq!(r.header("hookline-attempt"), Some(&*(i + 1).to_string()));
            assert_eq!(r.header("hookline-source"), Some("apify"));
            assert_eq!(r.header("hookline-resource-key"), Some(run.as_str()));
            assert_eq!(r.header("hookline-status"), Some("SUCCEEDED"));
            assert_eq!(r.header("hookline-outcome"), Some("applied"));
            assert_eq!(r.header("x-api-key"), Some("key-123"));
            assert_eq!(r.header("content-type"), Some("application/json"));
            let traceparent = r.header("traceparent").unwrap_or_default();
            assert!(
                traceparent.starts_with(&format!("00-{TRACE_ID}-")),
                "{run}: the delivery continues the webhook's trace: {traceparent:?}"
            );
            assert_eq!(r.body, apify_body(run, "SUCCEEDED").as_bytes());
        }
        assert!(
            tries[2].at.duration_since(tries[1].at) >= Duration::from_millis(950),
            "{run}: Retry-After: 1 was honoured"
        );
    }
    let row = count(
        &db,
        "SELECT min(attempts)::bigint AS n FROM deliveries WHERE destination = 'orders' AND last_status = 204",
    )
    .await
    .unwrap();
    assert_eq!(row, 4);

    let id = &event_ids["run-00"];
    let (status, event) = app.admin_get(&format!("/v1/events/{id}")).await;
    assert_eq!(status, 200);
    let deliveries = event["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{event}");
    let d = &deliveries[0];
    assert_eq!(d["destination"], "orders");
    assert_eq!(d["state"], "delivered");
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["last_status"], 204);
    assert_eq!(d["last_error"], Value::Null);
    assert!(d["delivered_at"].is_string(), "{d}");

    let metrics = reqwest::get(format!("{}/metrics", worker.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "hookline_deliveries_attempts_total{destination=\"orders\",result=\"delivered\"} 12",
        "hookline_deliveries_attempts_total{destination=\"orders\",result=\"retry\"} 36",
        "hookline_deliveries_attempt_duration_seconds_bucket{destination=\"orders\"",
        "hookline_deliveries_lag_seconds_bucket{destination=\"orders\"",
        "hookline_deliveries_circuit_state{destination=\"orders\"}",
        "hookline_deliveries_pending{destination=\"orders\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_delivery_keeps_each_resources_decision_order_through_failures() {
    let receiver = Receiver::start().await;
    // Every event's first attempt fails, every third event's second one too.
    receiver.script(|r, nth| {
        let status = r.header("hookline-status").unwrap_or_default();
        match (nth, status) {
            (1, _) => Reply::Status(503),
            (2, "RUNNING") => Reply::Status(502),
            _ => Reply::Status(200),
        }
    });
    let db = TestDb::new().await;
    let extra = format!(
        "{APIFY_SOURCE}{}",
        destination(
            "ordered",
            &receiver.url("/"),
            "ordered = true\noutcomes = [\"applied\", \"rejected_downgrade\"]"
        )
    );
    let toml = config_toml(&db.url, &amqp_prefix(), &extra);
    let app = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    // Decision order per run: READY, TIMING-OUT, a late RUNNING (rejected), SUCCEEDED.
    let runs: Vec<String> = (0..6).map(|i| format!("ordered-{i}")).collect();
    let sequence = ["READY", "TIMING-OUT", "RUNNING", "SUCCEEDED"];
    for (round, status) in sequence.iter().enumerate() {
        for run in &runs {
            post_run(&app, run, status).await;
        }
        // Each status is decided for every run before the next is posted.
        let target = (runs.len() * (round + 1)) as i64;
        eventually("the round is decided", WAIT, || async {
            (count(
                &db,
                "SELECT count(*) AS n FROM events WHERE state = 'processed'",
            )
            .await
            .unwrap()
                >= target)
                .then_some(())
        })
        .await
        .unwrap();
    }
    wait_deliveries(&db, "ordered", DeliveryState::Delivered, 24).await;

    let received = receiver.received();
    for run in &runs {
        let mine: Vec<&Received> = received
            .iter()
            .filter(|r| r.header("hookline-resource-key") == Some(run.as_str()))
            .collect();
        // The order in which this run's events were first attempted is the decision order,
        // and no event was attempted before the one ahead of it was delivered.
        let mut first_seen: Vec<&str> = Vec::new();
        for r in &mine {
            let status = r.header("hookline-status").unwrap();
            if !first_seen.contains(&status) {
                first_seen.push(status);
            }
        }
        assert_eq!(first_seen, sequence, "{run}");
        let mut delivered: Vec<&str> = Vec::new();
        for r in &mine {
            let status = r.header("hookline-status").unwrap();
            let position = sequence.iter().position(|s| *s == status).unwrap();
            assert_eq!(
                delivered.len(),
                position,
                "{run}: {status} was sent while an earlier event was undelivered: {delivered:?}"
            );
            if r.reply == Reply::Status(200) {
                delivered.push(status);
            }
        }
        assert_eq!(delivered, sequence, "{run}");
        let outcomes: Vec<&str> = mine
            .iter()
            .filter(|r| r.reply == Reply::Status(200))
            .map(|r| r.header("hookline-outcome").unwrap())
            .collect();
        assert_eq!(
            outcomes,
            ["applied", "applied", "rejected_downgrade", "applied"],
            "{run}"
        );
    }
    assert!(
        receiver.max_in_flight() <= runs.len(),
        "one request in flight per resource at most"
    );
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_opens_its_circuit_and_a_probe_closes_it() {
    let receiver = Receiver::start().await;
    receiver.script(|_, _| Reply::Status(503));
    let db = TestDb::new().await;
    let extra = format!(
        "{PLAIN_SOURCE}{}",
        destination(
            "flaky",
            &receiver.url("/"),
            "circuit_failures = 3\ncircuit_cooldown = \"1s\"\nmax_attempts = 1000\nconcurrency = 1"
        )
    );
    let toml = config_toml(&db.url, &amqp_prefix(), &extra);
    let app = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    for i in 0..10 {
        let response = app
            .post(
                "plain",
                &[
                    ("x-token", "plain-token"),
                    ("x-delivery-id", &format!("d-{i}")),
                ],
                format!("{{\"n\":{i}}}"),
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    let gauge = |value: &'static str| {
        let admin = worker.admin.clone();
        async move {
            let text = reqwest::get(format!("{admin}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.contains(&format!(
                "hookline_deliveries_circuit_state{{destination=\"flaky\"}} {value}"
            ))
            .then_some(())
        }
    };
    eventually("the circuit opens", LONG, || gauge("2"))
        .await
        .unwrap();
    let at_open = receiver.received().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = receiver.received().len() - at_open;
    // Closed, 10 deliveries retried every ~100 ms would send ~30 requests in 3 s; open,
    // only the half-open probes go out (1 s, then 2 s apart).
    assert!(during <= 4, "{during} requests while the circuit was open");

    receiver.script(|_, _| Reply::Status(204));
    wait_deliveries(&db, "flaky", DeliveryState::Delivered, 10).await;
    eventually("the circuit closes", WAIT, || gauge("0"))
        .await
        .unwrap();
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_refusals_fail_at_once_410_pauses_and_exhausted_ones_go_dead_until_redriven() {
    let gone = Receiver::start().await;
    gone.script(|_, _| Reply::Status(410));
    let refusing = Receiver::start().await;
    refusing.script(|_, _| Reply::Status(422));
    let down = Receiver::start().await;
    down.script(|_, _| Reply::Status(503));
    let db = TestDb::new().await;
    let extra = format!(
        "{PLAIN_SOURCE}{}{}{}",
        destination("gone", &gone.url("/"), "concurrency = 1"),
        destination("refusing", &refusing.url("/"), ""),
        destination("down", &down.url("/"), "max_attempts = 3"),
    );
    let toml = config_toml(&db.url, &amqp_prefix(), &extra);
    let app = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    let post = |i: usize| {
        let app = &app;
        async move {
            app.post(
                "plain",
                &[
                    ("x-token", "plain-token"),
                    ("x-delivery-id", &format!("p-{i}")),
                ],
                format!("{{\"n\":{i}}}"),
            )
            .await
            .status()
        }
    };
    assert_eq!(post(0).await, 202);
    wait_deliveries(&db, "gone", DeliveryState::Failed, 1).await;
    eventually("the pause is recorded", WAIT, || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM destination_pauses WHERE destination = 'gone'",
        )
        .await
        .unwrap()
            == 1)
            .then_some(())
    })
    .await
    .unwrap();
    // Every worker re-reads the pauses each second (the one that got the 410 knows at once).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 1..5 {
        assert_eq!(post(i).await, 202);
    }
    wait_deliveries(&db, "refusing", DeliveryState::Failed, 5).await;
    wait_deliveries(&db, "down", DeliveryState::Dead, 5).await;
    // The paused destination got its one request; the other four wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gone.received().len(), 1);
    assert_eq!(deliveries_in(&db, "gone", DeliveryState::Pending).await, 4);
    // Refused: one attempt each. Dead: max_attempts each, with the last answer kept.
    assert_eq!(refusing.received().len(), 5);
    assert_eq!(down.received().len(), 15);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM deliveries WHERE destination = 'down' AND last_status = 503 AND last_error LIKE 'HTTP 503%' AND attempts = 3")
            .await
            .unwrap(),
        5
    );
    let dead_id: String = {
        let mut conn = db.connect().await;
        let views = hookline_db::list_deliveries(
            &mut conn,
            &hookline_db::DeliveryFilter {
                destination: Some("down".into()),
                states: vec![DeliveryState::Dead],
                since: None,
            },
            1,
        )
        .await
        .unwrap();
        views[0].event_id.to_string()
    };
    let (_, event) = app.admin_get(&format!("/v1/events/{dead_id}")).await;
    let mut states: Vec<(String, String)> = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    states.sort();
    assert!(states.contains(&("down".into(), "dead".into())), "{event}");
    assert!(
        states.contains(&("refusing".into(), "failed".into())),
        "{event}"
    );

    // Redrive (what `hookline deliveries redrive` runs; its own test drives the CLI):
    // the dead ones go again and now succeed; the paused destination resumes.
    down.script(|_, _| Reply::Status(204));
    gone.script(|_, _| Reply::Status(204));
    let mut conn = db.connect().await;
    let redriven =
        hookline_db::redrive_deliveries(&mut conn, "down", &[DeliveryState::Dead], None, 100)
            .await
            .unwrap();
    assert_eq!(redriven, 5);
    wait_deliveries(&db, "down", DeliveryState::Delivered, 5).await;
    assert_eq!(down.received().len(), 20);
    assert!(
        hookline_db::resume_destination(&mut conn, "gone")
            .await
            .unwrap()
    );
    wait_deliveries(&db, "gone", DeliveryState::Delivered, 4).await;
    assert_eq!(deliveries_in(&db, "gone", DeliveryState::Failed).await, 1);
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_destination_stalls_neither_another_destination_nor_processing() {
    let stuck = Receiver::start().await;
    stuck.script(|_, _| Reply::Hang);
    let fast = Receiver::start().await;
    let db = TestDb::new().await;
    let extra = format!(
        "{APIFY_SOURCE}{}{}",
        destination(
            "stuck",
            &stuck.url("/"),
            "timeout = \"30s\"\nconcurrency = 2"
        ),
        destination("fast", &fast.url("/"), ""),
    );
    let toml = config_toml(&db.url, &amqp_prefix(), &extra);
    let app = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    for i in 0..30 {
        post_run(&app, &format!("busy-{i}"), "SUCCEEDED").await;
    }
    wait_deliveries(&db, "fast", DeliveryState::Delivered, 30).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'"
        )
        .await
        .unwrap(),
        30
    );
    assert_eq!(
        deliveries_in(&db, "stuck", DeliveryState::Pending).await,
        30
    );
    assert!(stuck.max_in_flight() <= 2, "concurrency = 2 per process");
    worker.stop().await.unwrap();
    app.stop().await;
}

/// Set by the kill test for the child worker process it spawns (this same test binary).
const CHILD_CONFIG: &str = "HOOKLINE_DELIVERY_CHILD_CONFIG";

/// Not a test on its own: the worker process of
/// [`a_worker_killed_mid_delivery_loses_no_delivery`]. Without its variable it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker_process_for_the_delivery_kill_test() {
    let Ok(path) = std::env::var(CHILD_CONFIG) else {
        return;
    };
    let toml = std::fs::read_to_string(path).unwrap();
    let worker = TestWorker::spawn(&toml).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_delivery_loses_no_delivery() {
    let receiver = Receiver::start().await;
    receiver.script(|_, _| Reply::Hang);
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let extra = format!(
        "{APIFY_SOURCE}{}",
        destination("hooks", &receiver.url("/"), "timeout = \"1s\"")
    );
    let toml = config_toml(&db.url, &prefix, &extra);
    let path = std::env::temp_dir().join(format!("{prefix}.toml"));
    std::fs::write(&path, &toml).unwrap();
    let app = TestIngest::spawn(&toml).await;
    for i in 0..20 {
        post_run(&app, &format!("kill-{i}"), "SUCCEEDED").await;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_worker_process_for_the_delivery_kill_test",
            "--nocapture",
        ])
        .env(CHILD_CONFIG, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The child decided the events and has their deliveries in flight (the receiver
    // holds every request open).
    eventually("deliveries in flight in the child", LONG, || async {
        (receiver.max_in_flight() >= 10).then_some(())
    })
    .await
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    receiver.script(|_, _| Reply::Status(204));
    let worker = TestWorker::spawn(&toml).await;
    // The killed process's leases run out (timeout + margin) and the new worker sends
    // them again.
    wait_deliveries(&db, "hooks", DeliveryState::Delivered, 20).await;
    let ids = by_id(&receiver.received());
    assert_eq!(ids.len(), 20);
    assert!(
        ids.values()
            .all(|tries| tries.last().unwrap().reply == Reply::Status(204)),
        "every event ends with a 2xx"
    );
    let _ = std::fs::remove_file(&path);
    worker.stop().await.unwrap();
    app.stop().await;
}
