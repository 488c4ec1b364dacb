//! `kill -9` of the ingest process mid-stream loses nothing it acknowledged: every 2xx
//! names a committed event, and whatever was committed but not yet confirmed by the
//! broker is published by the outbox relay of the instance that takes over.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use hookline_testkit::{
    APIFY_SOURCE, TestDb, TestIngest, amqp_prefix, apify_body, config_toml, count, eventually,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_ingest_loses_nothing_it_acknowledged_and_its_outbox_is_relayed_by_the_next() {
    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    let (port, admin) = (free_port(), free_port());
    let process_toml = toml
        .replacen(
            "addr = \"127.0.0.1:0\"",
            &format!("addr = \"127.0.0.1:{port}\""),
            1,
        )
        .replacen(
            "addr = \"127.0.0.1:0\"",
            &format!("addr = \"127.0.0.1:{admin}\""),
            1,
        );
    let dir = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hookline.toml");
    std::fs::write(&config, process_toml).unwrap();
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_hookline-ingest"))
        .env("HOOKLINE_CONFIG", &config)
        .env("HOOKLINE__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hookline-ingest starts");
    // A request that gets no answer must fail the test, not hang it.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    eventually(
        "the ingest process ready",
        Duration::from_secs(30),
        || async {
            client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(())
        },
    )
    .await
    .unwrap();

    // 600 webhooks, 32 at a time; the process is killed once 150 have been answered.
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let pid = ingest.id();
    let results: Vec<Option<(u16, serde_json::Value)>> = futures_util::stream::iter(0..600)
        .map(|i| {
            let (client, base, answered) = (&client, &base, &answered);
            async move {
                let response = client
                    .post(format!("{base}/webhooks/apify"))
                    .header("x-hookline-token", "apify-token")
                    .body(apify_body(&format!("crash-{i}"), "RUNNING"))
                    .send()
                    .await
                    .ok()?;
                let status = response.status().as_u16();
                let body = response.json().await.ok()?;
                if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 150 {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                Some((status, body))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    // Had fewer than 151 been answered, the process would still run and `wait` would
    // never return: kill it in any case (the assertions below then say what happened).
    let _ = ingest.kill();
    ingest.wait().unwrap();
    let acknowledged: Vec<&serde_json::Value> = results
        .iter()
        .flatten()
        .filter(|(status, _)| *status == 202)
        .map(|(_, body)| body)
        .collect();
    assert!(acknowledged.len() >= 150, "the kill came mid-stream");
    assert!(acknowledged.len() < 600, "the kill interrupted the stream");
    assert!(results.iter().flatten().all(|(status, _)| *status < 500));

    // Every acknowledged event is stored.
    for body in &acknowledged {
        let id = body["event_id"].as_str().unwrap();
        let sql = format!("SELECT count(*) AS n FROM events WHERE id = '{id}'");
        assert_eq!(
            count(&db, &sql).await.unwrap(),
            1,
            "acknowledged {id} is stored"
        );
    }
    // A new instance's relay publishes whatever was committed but never confirmed.
    let successor = TestIngest::spawn(&toml).await;
    eventually(
        "every stored event published",
        Duration::from_secs(60),
        || async {
            (count(&db, "SELECT count(*) AS n FROM outbox").await.ok()? == 0).then_some(())
        },
    )
    .await
    .unwrap();
    successor.stop().await;
}
