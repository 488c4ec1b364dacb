//! Every metric the operators' dashboards need, scraped from the admin listeners after a
//! real flow. (Its own test binary: the Prometheus recorder is process-wide, so the
//! figures here are exactly this test's.)

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::TestWorker;
use hookline_testkit::{
    APIFY_SOURCE, TestDb, TestIngest, amqp_prefix, apify_body, config_toml, count, eventually,
};

const TOKEN: (&str, &str) = ("x-hookline-token", "apify-token");
const WAIT: Duration = Duration::from_secs(30);

/// The value of the sample `series` (metric name with labels, exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_worker_expose_every_operational_metric() {
    let db = TestDb::new().await;
    // One run's processing always fails transiently, to exercise retries and dead-lettering.
    common::fail_processing_transiently(&db, Some("run-doomed")).await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    let ingest = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;

    let succeeded = apify_body("run-1", "SUCCEEDED");
    for (headers, body, want) in [
        (vec![TOKEN], succeeded.clone(), 202),
        (vec![TOKEN], succeeded, 200),
        (
            vec![("x-hookline-token", "wrong")],
            apify_body("run-1", "RUNNING"),
            401,
        ),
        (vec![TOKEN], "{}".to_string(), 400),
    ] {
        assert_eq!(
            ingest.post("apify", &headers, body).await.status().as_u16(),
            want
        );
    }
    assert_eq!(
        ingest
            .post("nosuch", &[TOKEN], "{}")
            .await
            .status()
            .as_u16(),
        404
    );
    eventually("run-1 processed", WAIT, || async {
        (count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state = 'processed'",
        )
        .await
        .ok()?
            == 1)
            .then_some(())
    })
    .await
    .unwrap();
    // A late RUNNING after SUCCEEDED: processed, and rejected by the lifecycle.
    let late = ingest
        .post("apify", &[TOKEN], apify_body("run-1", "RUNNING"))
        .await;
    assert_eq!(late.status().as_u16(), 202);
    let doomed = ingest
        .post("apify", &[TOKEN], apify_body("run-doomed", "RUNNING"))
        .await;
    assert_eq!(doomed.status().as_u16(), 202);
    eventually(
        "the late event processed and the doomed one dead",
        WAIT,
        || async {
            let processed = count(
                &db,
                "SELECT count(*) AS n FROM events WHERE state = 'processed'",
            )
            .await
            .ok()?;
            let dead = count(&db, "SELECT count(*) AS n FROM events WHERE state = 'dead'")
                .await
                .ok()?;
            (processed == 2 && dead == 1).then_some(())
        },
    )
    .await
    .unwrap();

    let scrape = |base: String| async move {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let text = eventually("the final figures on /metrics", WAIT, || {
        let scrape = scrape(ingest.admin.clone());
        async move {
            let text = scrape.await;
            (sample(
                &text,
                r#"hookline_worker_dead_lettered_total{source="apify"}"#,
            ) == Some(1.0))
            .then_some(text)
        }
    })
    .await
    .unwrap();
    let requests = |outcome: &str, source: &str| {
        sample(
            &text,
            &format!(r#"hookline_ingest_requests_total{{source="{source}",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(requests("accepted", "apify"), Some(3.0), "{text}");
    assert_eq!(requests("duplicate", "apify"), Some(1.0));
    assert_eq!(requests("invalid_signature", "apify"), Some(1.0));
    assert_eq!(requests("bad_payload", "apify"), Some(1.0));
    assert_eq!(requests("unknown_source", "unknown"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            r#"hookline_ingest_request_duration_seconds_count{outcome="accepted"}"#
        ),
        Some(3.0)
    );
    assert!(
        sample(&text, r#"hookline_publish_confirms_total{result="ack"}"#).unwrap_or(0.0) >= 3.0
    );
    assert!(
        sample(&text, "hookline_outbox_backlog").is_some(),
        "backlog gauge"
    );
    assert!(sample(&text, "hookline_ingest_batch_rows_count").unwrap_or(0.0) >= 1.0);
    let worker_events = |outcome: &str| {
        sample(
            &text,
            &format!(r#"hookline_worker_events_total{{source="apify",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(worker_events("processed"), Some(2.0));
    let transitions = |outcome: &str| {
        sample(
            &text,
            &format!(r#"hookline_worker_transitions_total{{source="apify",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(transitions("applied"), Some(1.0));
    assert_eq!(transitions("rejected_terminal"), Some(1.0));
    assert_eq!(
        sample(&text, r#"hookline_worker_retries_total{source="apify"}"#),
        Some(2.0),
        "max_attempts = 3"
    );
    assert_eq!(
        sample(
            &text,
            r#"hookline_worker_processing_lag_seconds_count{source="apify"}"#
        ),
        Some(2.0)
    );
    // The worker's own admin listener serves the same registry.
    let worker_text = scrape(worker.admin.clone()).await;
    assert!(worker_text.contains("hookline_worker_events_total"));
    worker.stop().await.unwrap();
    ingest.stop().await;
}
