//! Ingest and a worker in-process on one database and one broker prefix: webhooks in,
//! resource statuses out.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestWorker, WAIT};
use hookline_testkit::{
    APIFY_SOURCE, TestDb, TestIngest, amqp_prefix, apify_body, config_toml, count, eventually,
};
use serde_json::Value;

const TOKEN: (&str, &str) = ("x-hookline-token", "apify-token");

async fn post(app: &TestIngest, body: &str) -> (u16, Value) {
    let response = app.post("apify", &[TOKEN], body.to_string()).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

/// Waits until the run's transition log has `n` entries, and returns the resource.
async fn resource_with(app: &TestIngest, run: &str, n: usize) -> Value {
    eventually(&format!("{n} transitions for {run}"), WAIT, || async {
        let (status, body) = app.admin_get(&format!("/v1/resources/apify/{run}")).await;
        (status == 200 && body["transitions"].as_array().is_some_and(|t| t.len() >= n))
            .then_some(body)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_delivered_four_times_two_at_once_is_processed_once_and_a_late_running_is_rejected()
 {
    let db = TestDb::new().await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE);
    let app = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    let run = "HG7ML7M8z78YcAPEB";
    let succeeded = apify_body(run, "SUCCEEDED");

    let first = post(&app, &succeeded).await;
    let (second, third) = tokio::join!(post(&app, &succeeded), post(&app, &succeeded));
    let fourth = post(&app, &succeeded).await;
    let answers = [first, second, third, fourth];
    let mut codes: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    codes.sort_unstable();
    assert_eq!(codes, [200, 200, 200, 202], "{answers:?}");
    let event_id = answers[0].1["event_id"].clone();
    assert!(
        answers.iter().all(|(_, b)| b["event_id"] == event_id),
        "every duplicate names the first event: {answers:?}"
    );

    let resource = resource_with(&app, run, 1).await;
    assert_eq!(resource["source"], "apify");
    assert_eq!(resource["resource_key"], run);
    assert_eq!(resource["status"], "SUCCEEDED");
    assert_eq!(resource["terminal"], true);
    assert_eq!(resource["last_event_id"], event_id);
    assert!(resource["updated_at"].is_string());
    let transition = &resource["transitions"][0];
    assert_eq!(transition["event_id"], event_id);
    assert_eq!(transition["from"], Value::Null);
    assert_eq!(transition["to"], "SUCCEEDED");
    assert_eq!(transition["outcome"], "applied");
    assert!(transition["at"].is_string());
    let (status, event) = app
        .admin_get(&format!("/v1/events/{}", event_id.as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(event["state"], "processed");

    let (status, late) = post(&app, &apify_body(run, "RUNNING")).await;
    assert_eq!(status, 202, "{late}");
    let resource = resource_with(&app, run, 2).await;
    assert_eq!(resource["status"], "SUCCEEDED", "a terminal status stays");
    assert_eq!(resource["last_event_id"], event_id);
    assert_eq!(resource["transitions"][1]["event_id"], late["event_id"]);
    assert_eq!(resource["transitions"][1]["from"], "SUCCEEDED");
    assert_eq!(resource["transitions"][1]["to"], "RUNNING");
    assert_eq!(resource["transitions"][1]["outcome"], "rejected_terminal");

    // Nothing else happens: still two events, both processed, one transition each.
    eventually("both events processed", WAIT, || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'",
        )
        .await
        .ok()?
            == 2)
            .then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM transitions")
            .await
            .unwrap(),
        2
    );

    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_admin_listener_serves_metrics_health_and_readiness() {
    let db = TestDb::new().await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE);
    let app = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let request = client.get(format!("{}{path}", worker.admin));
        async move {
            let response = request.send().await.expect("admin answers");
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (
                status,
                content_type,
                response.text().await.unwrap_or_default(),
            )
        }
    };

    let (status, _, body) = get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let ready = eventually("the worker to be ready", WAIT, || async {
        let (status, _, body) = get("/readyz").await;
        (status == 200).then_some(body)
    })
    .await
    .unwrap();
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["consumer"], "connected");

    let (status, _) = post(&app, &apify_body("run-metrics", "RUNNING")).await;
    assert_eq!(status, 202);
    resource_with(&app, "run-metrics", 1).await;
    let (status, content_type, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        metrics.contains(hookline_telemetry::names::WORKER_EVENTS),
        "{metrics}"
    );
    assert!(
        metrics.contains(hookline_telemetry::names::WORKER_TRANSITIONS),
        "{metrics}"
    );

    let (status, content_type, body) = get("/nope").await;
    assert_eq!(status, 404);
    assert_eq!(content_type, "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "not_found");

    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_needs_no_source_secrets_only_ingest_resolves_them() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let app = TestIngest::spawn(&config_toml(&db.url, &prefix, APIFY_SOURCE)).await;
    // The same source, its secret left to an environment variable nobody set.
    let unset = APIFY_SOURCE.replace("\"apify-token\"", "\"env:HOOKLINE_TEST_SURELY_UNSET\"");
    let worker = TestWorker::spawn(&config_toml(&db.url, &prefix, &unset)).await;

    let (status, _) = post(&app, &apify_body("run-secretless", "SUCCEEDED")).await;
    assert_eq!(status, 202);
    let resource = resource_with(&app, "run-secretless", 1).await;
    assert_eq!(resource["status"], "SUCCEEDED", "{resource}");
    worker.stop().await.unwrap();
    app.stop().await;
}
