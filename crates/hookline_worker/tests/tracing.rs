//! One webhook is one trace: the ingest request span, the producer span and the worker's
//! consumer span share a trace id, linked through the W3C `traceparent` AMQP header.
//! (Its own test binary: it installs the process-wide subscriber.)

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
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_crosses_the_queue_from_the_ingest_request_to_the_worker() {
    let exporter = InMemorySpanExporter::default();
    let provider = hookline_telemetry::provider_with("hookline-test", |b| {
        b.with_simple_exporter(exporter.clone())
    });
    let _telemetry = hookline_telemetry::init_with_provider("pretty", "warn", provider);
    assert!(hookline_telemetry::tracing_enabled());

    let db = TestDb::new().await;
    let prefix = amqp_prefix();
    let toml = config_toml(&db.url, &prefix, APIFY_SOURCE);
    let ingest = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let response = ingest
        .post(
            "apify",
            &[
                ("x-hookline-token", "apify-token"),
                ("traceparent", &traceparent),
            ],
            apify_body("run-traced", "SUCCEEDED"),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    eventually("the event processed", Duration::from_secs(30), || async {
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

    let trace_id = TraceId::from_hex(TRACE_ID).unwrap();
    let work_queue = format!(
        "process {}",
        hookline_queue::Topology::new(&prefix).work_queue()
    );
    let spans = eventually(
        "the three spans exported",
        Duration::from_secs(30),
        || async {
            let spans: Vec<SpanData> = exporter
                .get_finished_spans()
                .ok()?
                .into_iter()
                .filter(|s| s.span_context.trace_id() == trace_id)
                .collect();
            let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
            (names.contains(&"POST /webhooks/{source}")
                && names.contains(&format!("publish {prefix}").as_str())
                && names.contains(&work_queue.as_str()))
            .then_some(spans)
        },
    )
    .await
    .unwrap();
    let find = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    let request = find("POST /webhooks/{source}");
    let publish = find(&format!("publish {prefix}"));
    let process = find(&work_queue);

    // The chain: caller -> ingest request -> publish -> process, all one trace.
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex(CALLER_SPAN).unwrap()
    );
    assert_eq!(publish.parent_span_id, request.span_context.span_id());
    assert_eq!(process.parent_span_id, publish.span_context.span_id());
    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/webhooks/{source}")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("202"),
        "{:?}",
        request.attributes
    );
    for (span, operation) in [(publish, "send"), (process, "process")] {
        assert_eq!(
            attribute(span, "messaging.system").as_deref(),
            Some("rabbitmq")
        );
        assert_eq!(
            attribute(span, "messaging.operation.type").as_deref(),
            Some(operation)
        );
        assert!(
            attribute(span, "messaging.destination.name")
                .unwrap()
                .starts_with(&prefix)
        );
    }
    worker.stop().await.unwrap();
    ingest.stop().await;
}
