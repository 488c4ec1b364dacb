//! `/readyz` answers within a second whatever the broker does: it never waits on a
//! connect attempt, and readiness comes back after an outage without any traffic.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hookline_testkit::{
    APIFY_SOURCE, Proxy, TestDb, TestIngest, amqp_prefix, amqp_url, apify_body, config_toml,
    eventually,
};
use tokio::net::TcpListener;

/// The deadline a readiness probe has (a functional bound, not a benchmark).
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// A broker that accepts connections and never says a word: every connect attempt hangs
/// until its timeout. Returns its `amqp://` URL; stops when the test's runtime does.
async fn silent_broker() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("amqp://guest:guest@{addr}/%2f")
}

/// GET `/readyz`; returns the status, the `broker` field and how long it took.
async fn readyz(app: &TestIngest) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = app
        .client
        .get(format!("{}/readyz", app.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/readyz answers");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let broker = body["broker"].as_str().unwrap_or_default().to_string();
    (status, broker, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_503_within_a_second_while_the_broker_hangs() {
    let db = TestDb::new().await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE)
        .replace(&amqp_url(), &silent_broker().await);
    let app = TestIngest::spawn(&toml).await;
    // A webhook makes the publisher try to connect too (and hang there).
    let accepted = app
        .post(
            "apify",
            &[("x-hookline-token", "apify-token")],
            apify_body("run-1", "RUNNING"),
        )
        .await;
    assert_eq!(accepted.status().as_u16(), 202);
    // Several probes in a row: the first starts a background connect, the later ones
    // arrive while it (and the publisher's) hangs.
    for _ in 0..3 {
        let (status, broker, took) = readyz(&app).await;
        assert_eq!((status, broker.as_str()), (503, "unreachable"));
        assert!(took < PROBE_DEADLINE, "/readyz took {took:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_a_broker_outage_and_recovers_without_traffic() {
    let db = TestDb::new().await;
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE).replace(
        &amqp_url(),
        &format!("amqp://guest:guest@{}/%2f", proxy.addr),
    );
    let app = TestIngest::spawn(&toml).await;
    let (status, _, _) = readyz(&app).await;
    assert_eq!(status, 200);

    proxy.down();
    eventually(
        "readiness to report the broker down",
        Duration::from_secs(30),
        || async {
            let (status, broker, took) = readyz(&app).await;
            assert!(took < PROBE_DEADLINE, "/readyz took {took:?}");
            (status == 503 && broker == "unreachable").then_some(())
        },
    )
    .await
    .unwrap();

    // No webhooks: only the probes themselves bring the connection back.
    proxy.up();
    eventually(
        "readiness back with the broker",
        Duration::from_secs(30),
        || async {
            let (status, _, took) = readyz(&app).await;
            assert!(took < PROBE_DEADLINE, "/readyz took {took:?}");
            (status == 200).then_some(())
        },
    )
    .await
    .unwrap();
    app.stop().await;
}
