//! The public contract of `POST /webhooks/{source}` against real PostgreSQL and RabbitMQ.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::future::join_all;
use hookline_testkit::{
    ADMIN_TOKEN, APIFY_SOURCE, Proxy, TestDb, TestIngest, amqp_prefix, apify_body, config_toml,
    count, eventually,
};
use serde_json::Value;

const TOKEN: (&str, &str) = ("x-hookline-token", "apify-token");

/// A source keyed by a header, so any body (empty, binary) can be stored.
const RAW_SOURCE: &str = r#"
[sources.raw]
verifier = "token"
token_header = "x-token"
secrets = ["old-token", "new-token"]
dedup_key = "{header:x-delivery-id}"
"#;

async fn ingest(extra: &str) -> (TestDb, TestIngest) {
    let db = TestDb::new().await;
    let app = TestIngest::spawn(&config_toml(&db.url, &amqp_prefix(), extra)).await;
    (db, app)
}

async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("every answer is JSON");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_webhook_is_accepted_and_its_retry_is_a_duplicate_with_the_first_id() {
    let (db, app) = ingest(APIFY_SOURCE).await;
    let body = apify_body("run-1", "SUCCEEDED");
    let (status, first) = json(app.post("apify", &[TOKEN], body.clone()).await).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["status"], "accepted");
    assert_eq!(first["duplicate"], false);
    let (status, second) = json(app.post("apify", &[TOKEN], body).await).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["status"], "duplicate");
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["event_id"], first["event_id"]);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_identical_webhooks_store_one_event_and_answer_one_202() {
    let (db, app) = ingest(APIFY_SOURCE).await;
    let body = apify_body("run-storm", "SUCCEEDED");
    let responses = join_all((0..200).map(|_| {
        let body = body.clone();
        let app = &app;
        async move { json(app.post("apify", &[TOKEN], body).await).await }
    }))
    .await;
    let accepted: Vec<&Value> = responses
        .iter()
        .filter(|(s, _)| *s == 202)
        .map(|(_, b)| b)
        .collect();
    let duplicates: Vec<&Value> = responses
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(accepted.len(), 1, "exactly one 202: {responses:?}");
    assert_eq!(duplicates.len(), 199, "all others 200: {responses:?}");
    assert!(responses.iter().all(|(s, _)| *s < 500), "no 5xx");
    let first_id = &accepted[0]["event_id"];
    assert!(
        duplicates
            .iter()
            .all(|d| d["duplicate"] == true && &d["event_id"] == first_id)
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_webhooks_racing_with_duplicates_each_get_exactly_one_row() {
    let (db, app) = ingest(APIFY_SOURCE).await;
    let requests = (0..300).map(|i| apify_body(&format!("run-{}", i % 60), "SUCCEEDED"));
    let responses = join_all(requests.map(|body| {
        let app = &app;
        async move { app.post("apify", &[TOKEN], body).await.status().as_u16() }
    }))
    .await;
    assert_eq!(responses.iter().filter(|s| **s == 202).count(), 60);
    assert_eq!(responses.iter().filter(|s| **s == 200).count(), 240);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        60
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_and_headers_are_stored_exactly() {
    let (_db, app) = ingest(RAW_SOURCE).await;
    let body: Vec<u8> = vec![0xff, 0x00, 0xfe, b'{', b'x'];
    let response = app
        .post(
            "raw",
            &[
                ("x-token", "new-token"),
                ("x-delivery-id", "d-1"),
                ("X-Custom", "Keep Me"),
            ],
            body.clone(),
        )
        .await;
    let (status, accepted) = json(response).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["event_id"].as_str().unwrap();
    let (status, event) = app.admin_get(&format!("/v1/events/{id}")).await;
    assert_eq!(status, 200);
    use base64::Engine;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(
            event["body_base64"]
                .as_str()
                .expect("binary body shown as base64"),
        )
        .unwrap();
    assert_eq!(stored, body);
    let headers = event["headers"].as_array().unwrap();
    assert!(
        headers
            .iter()
            .any(|h| h["name"] == "x-custom" && h["value"] == "Keep Me"),
        "{headers:?}"
    );
    assert_eq!(event["dedup_key"], "d-1");

    let (status, text) = json(
        app.post(
            "raw",
            &[("x-token", "old-token"), ("x-delivery-id", "d-2")],
            "plain text",
        )
        .await,
    )
    .await;
    assert_eq!(
        status, 202,
        "rotated secrets: the old one still works: {text}"
    );
    let (_, event) = app
        .admin_get(&format!(
            "/v1/events/{}",
            text["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(event["body"], "plain text");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_json_error_and_never_a_500() {
    let extra = format!(
        "{APIFY_SOURCE}{RAW_SOURCE}\n[http]\naddr = \"127.0.0.1:0\"\nmax_body_bytes = 1024\n"
    );
    let db = TestDb::new().await;
    let toml = config_toml(&db.url, &amqp_prefix(), "")
        .replace("[http]\naddr = \"127.0.0.1:0\"\nworkers = 2\n", "")
        + &extra;
    let app = TestIngest::spawn(&toml).await;
    let ok_body = apify_body("run-x", "RUNNING");

    // (source, headers, body, status, error code, text the detail must contain)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "nosuch",
            vec![TOKEN],
            ok_body.clone().into(),
            404,
            "unknown_source",
            None,
        ),
        (
            "apify",
            vec![],
            ok_body.clone().into(),
            401,
            "invalid_signature",
            Some("missing"),
        ),
        (
            "apify",
            vec![("x-hookline-token", "wrong")],
            ok_body.clone().into(),
            401,
            "invalid_signature",
            None,
        ),
        (
            "apify",
            vec![TOKEN],
            b"{\"eventType\":\"X\"}".to_vec(),
            400,
            "bad_payload",
            Some("json:/eventData/actorRunId"),
        ),
        (
            "apify",
            vec![TOKEN],
            b"not json".to_vec(),
            400,
            "bad_payload",
            Some("not valid JSON"),
        ),
        (
            "apify",
            vec![TOKEN],
            Vec::new(),
            400,
            "bad_payload",
            Some("not valid JSON"),
        ),
        (
            "apify",
            vec![TOKEN],
            vec![0xff, 0xfe, 0x00],
            400,
            "bad_payload",
            Some("not valid JSON"),
        ),
        (
            "apify",
            vec![TOKEN],
            vec![b'x'; 2048],
            413,
            "payload_too_large",
            None,
        ),
        (
            "raw",
            vec![("x-token", "new-token")],
            b"x".to_vec(),
            400,
            "bad_payload",
            Some("header:x-delivery-id"),
        ),
    ];
    for (source, headers, body, want_status, want_error, want_detail) in cases {
        let (status, answer) = json(app.post(source, &headers, body).await).await;
        assert_eq!(status, want_status, "{source} {headers:?}: {answer}");
        assert_eq!(answer["error"], want_error, "{answer}");
        if let Some(detail) = want_detail {
            assert!(
                answer["detail"].as_str().unwrap_or("").contains(detail),
                "{answer}"
            );
        }
    }

    // A chunked body (no Content-Length) over the limit is refused too.
    let stream =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 512])));
    let response = app
        .client
        .post(format!("{}/webhooks/apify", app.base))
        .header(TOKEN.0, TOKEN.1)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);

    // The token may come as ?token= instead of a header.
    let response = app
        .client
        .post(format!("{}/webhooks/apify?token=apify-token", app.base))
        .body(ok_body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);

    let response = app
        .client
        .get(format!("{}/webhooks/apify", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        1
    );
    app.stop().await;
}

/// A retry of a committed event is answered from the ingest's memory of committed keys:
/// same answer as the database's (200, the first id), even while the database is down. A
/// key it has not seen committed still needs the database, so it gets 503 then. With the
/// cache off (`dedup_cache_bytes = 0`), every request needs the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_committed_events_are_answered_from_memory_while_the_database_is_down() {
    for cache in [true, false] {
        let db = TestDb::new().await;
        let proxy = Proxy::postgres().await;
        let extra = if cache {
            APIFY_SOURCE.to_string()
        } else {
            format!("[ingest]\ndedup_cache_bytes = 0\n{APIFY_SOURCE}")
        };
        let app =
            TestIngest::spawn(&config_toml(&db.url_via(&proxy), &amqp_prefix(), &extra)).await;
        let body = apify_body("cached", "RUNNING");
        let (status, first) = json(app.post("apify", &[TOKEN], body.clone()).await).await;
        assert_eq!(status, 202, "{first}");

        proxy.down();
        let (status, retry) = json(app.post("apify", &[TOKEN], body.clone()).await).await;
        if cache {
            assert_eq!(status, 200, "{retry}");
            assert_eq!(retry["duplicate"], true);
            assert_eq!(retry["event_id"], first["event_id"]);
        } else {
            assert_eq!(
                (status, retry["error"].as_str()),
                (503, Some("unavailable"))
            );
        }
        let (status, _) = json(
            app.post("apify", &[TOKEN], apify_body("unseen", "RUNNING"))
                .await,
        )
        .await;
        assert_eq!(status, 503, "a new key needs the database");
        // A bad signature is still refused before any cache lookup.
        let (status, _) = json(
            app.post("apify", &[("x-hookline-token", "wrong")], body)
                .await,
        )
        .await;
        assert_eq!(status, 401);
        proxy.up();
        assert_eq!(
            count(&db, "SELECT count(*) AS n FROM events")
                .await
                .unwrap(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_answers_503_with_retry_after_and_recovers_without_a_restart() {
    let db = TestDb::new().await;
    let proxy = Proxy::postgres().await;
    let app = TestIngest::spawn(&config_toml(
        &db.url_via(&proxy),
        &amqp_prefix(),
        APIFY_SOURCE,
    ))
    .await;
    let (status, _) = json(
        app.post("apify", &[TOKEN], apify_body("before", "RUNNING"))
            .await,
    )
    .await;
    assert_eq!(status, 202);

    proxy.down();
    let response = app
        .post("apify", &[TOKEN], apify_body("during", "RUNNING"))
        .await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let (_, body) = json(response).await;
    assert_eq!(body["error"], "unavailable");
    let (status, ready) = json(
        app.client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, ready["database"].as_str()),
        (503, Some("unreachable"))
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM events WHERE resource_key = 'during'"
        )
        .await
        .unwrap(),
        0
    );

    proxy.up();
    let status = eventually(
        "ingest to accept again",
        Duration::from_secs(30),
        || async {
            let status = app
                .post("apify", &[TOKEN], apify_body("during", "RUNNING"))
                .await
                .status()
                .as_u16();
            (status != 503).then_some(status)
        },
    )
    .await
    .unwrap();
    assert_eq!(status, 202);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM events")
            .await
            .unwrap(),
        2
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_report_their_dependencies() {
    let (_db, app) = ingest(APIFY_SOURCE).await;
    let (status, health) = json(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, ready) = json(
        app.client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["broker"], "ok");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_bearer_token_and_finds_events_by_key() {
    let (_db, app) = ingest(APIFY_SOURCE).await;
    let (_, accepted) = json(
        app.post("apify", &[TOKEN], apify_body("run-a", "RUNNING"))
            .await,
    )
    .await;
    let id = accepted["event_id"].as_str().unwrap();

    let unauthorized = app
        .client
        .get(format!("{}/v1/events/{id}", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let wrong = app
        .client
        .get(format!("{}/v1/events/{id}", app.admin))
        .bearer_auth(format!("{ADMIN_TOKEN}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let (status, found) = app
        .admin_get("/v1/events?source=apify&dedup_key=run-a:ACTOR.RUN.RUNNING")
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["events"][0]["id"], id);
    assert_eq!(found["events"][0]["resource_key"], "run-a");
    assert_eq!(found["events"][0]["status"], "RUNNING");
    assert!(
        ["received", "published"].contains(&found["events"][0]["state"].as_str().unwrap()),
        "{found}"
    );
    let (status, _) = app.admin_get("/v1/events/not-a-uuid").await;
    assert_eq!(status, 400);
    let (status, _) = app
        .admin_get(&format!("/v1/events/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.admin_get("/v1/resources/apify/never-seen").await;
    assert_eq!(status, 404);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookline_ingest_requests_total"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_are_published_and_marked_published() {
    let (db, app) = ingest(APIFY_SOURCE).await;
    for i in 0..20 {
        let status = app
            .post(
                "apify",
                &[TOKEN],
                apify_body(&format!("pub-{i}"), "RUNNING"),
            )
            .await
            .status();
        assert_eq!(status.as_u16(), 202);
    }
    eventually(
        "every event to be confirmed by the broker",
        Duration::from_secs(30),
        || async {
            (count(
                &db,
                "SELECT count(*) AS n FROM events e WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE e.id = ANY(o.event_ids))",
            )
            .await
            .ok()?
                == 20)
                .then_some(())
        },
    )
    .await
    .unwrap();
    // Reported as published: the outbox row went with the confirm.
    let (_, found) = app
        .admin_get("/v1/events?source=apify&dedup_key=pub-0:ACTOR.RUN.RUNNING")
        .await;
    assert_eq!(found["events"][0]["state"], "published", "{found}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_keeps_accepting_and_the_outbox_drains_when_it_returns() {
    let db = TestDb::new().await;
    let proxy = Proxy::broker().await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE)
        .replace(&hookline_testkit::amqp_url(), &proxy.amqp_url());
    let app = TestIngest::spawn(&toml).await;
    proxy.down();
    for i in 0..30 {
        let status = app
            .post(
                "apify",
                &[TOKEN],
                apify_body(&format!("out-{i}"), "RUNNING"),
            )
            .await
            .status();
        assert_eq!(
            status.as_u16(),
            202,
            "the broker being down must not refuse webhooks"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM outbox")
            .await
            .unwrap(),
        30
    );
    proxy.up();
    eventually(
        "the outbox relay to publish the backlog",
        Duration::from_secs(60),
        || async {
            (count(
                &db,
                "SELECT count(*) AS n FROM events e WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE e.id = ANY(o.event_ids))",
            )
            .await
            .ok()?
                == 30)
                .then_some(())
        },
    )
    .await
    .unwrap();
    app.stop().await;
}
