//! Hostile HTTP input against ingest: each case gets its exact answer (never a 500, a
//! panic or a hang), and after each one a normal webhook is still accepted. Requests
//! reqwest cannot express (invalid UTF-8 header bytes, thousands of headers, a body shorter
//! than its `Content-Length`) are written as raw bytes over TCP.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hookline_testkit::{
    ADMIN_TOKEN, APIFY_SOURCE, TestDb, TestIngest, amqp_prefix, apify_body, config_toml,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: (&str, &str) = ("x-hookline-token", "apify-token");

/// A source keyed by a header, so any body can be stored.
const RAW_SOURCE: &str = r#"
[sources.raw]
verifier = "token"
token_header = "x-token"
secrets = ["raw-token"]
dedup_key = "{header:x-delivery-id}"
"#;

/// The body limit of these tests' ingest.
const LIMIT: usize = 1024;

async fn ingest() -> (TestDb, TestIngest) {
    let db = TestDb::new().await;
    let toml = config_toml(&db.url, &amqp_prefix(), "")
        .replace("[http]\naddr = \"127.0.0.1:0\"\nworkers = 2\n", "")
        + &format!(
            "{APIFY_SOURCE}{RAW_SOURCE}\n[http]\naddr = \"127.0.0.1:0\"\nworkers = 2\n\
             max_body_bytes = {LIMIT}\n"
        );
    (db, TestIngest::spawn(&toml).await)
}

fn port(base: &str) -> u16 {
    base.rsplit(':').next().unwrap().parse().unwrap()
}

/// What came back on a raw connection.
#[derive(Debug)]
struct Raw {
    /// `None` when the server closed without answering.
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// Sends `request` as is (write errors ignored: the server may refuse and close before
/// reading it all), half-closes if `shut`, then reads one response (or the close) within
/// `within`; panics if neither comes in time.
async fn raw(port: u16, request: &[u8], shut: bool, within: Duration) -> Raw {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = stream.write_all(request).await;
    if shut {
        let _ = stream.shutdown().await;
    }
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("no answer and no close within {within:?}"));
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        assert!(buf.is_empty(), "partial answer: {buf:?}");
        return Raw {
            status: None,
            head: String::new(),
            body: Vec::new(),
        };
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    Raw {
        status,
        head,
        body: buf[end + 4..].to_vec(),
    }
}

/// A POST to `/webhooks/{source}` as bytes: `headers` verbatim (each a full header line
/// without CRLF), then `Content-Length` of `body` unless a header sets the framing.
fn request(source: &str, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST /webhooks/{source} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n")
        .into_bytes();
    let framed = headers.iter().any(|h| {
        let h = String::from_utf8_lossy(h).to_lowercase();
        h.starts_with("content-length:") || h.starts_with("transfer-encoding:")
    });
    for h in headers {
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    if !framed {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

const SECS_5: Duration = Duration::from_secs(5);

/// The server survived: a normal webhook is still accepted.
async fn still_serving(app: &TestIngest, run: &str) {
    let response = app
        .post("apify", &[TOKEN], apify_body(run, "RUNNING"))
        .await;
    assert_eq!(response.status().as_u16(), 202, "after the abuse case");
}

fn assert_error(answer: &Raw, status: u16, error: &str) -> Value {
    assert_eq!(answer.status, Some(status), "{answer:?}");
    let body = answer.json();
    assert_eq!(body["error"], error, "{body}");
    body
}

/// actix-http refuses more than 96 headers or a head over 128 KiB while parsing it,
/// before any handler runs: 431 with an empty body (the one non-JSON answer, at the HTTP
/// layer). Between that and our own limit (32 KiB of header bytes) the webhook route
/// refuses with a JSON 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_headers_and_a_64_kib_header_are_refused_with_431() {
    let (_db, app) = ingest().await;
    let port = port(&app.base);
    let body = apify_body("run-h", "RUNNING");
    let lines: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("x-filler-{i}: v").into_bytes())
        .collect();
    let mut headers: Vec<&[u8]> = vec![b"x-hookline-token: apify-token"];
    headers.extend(lines.iter().map(Vec::as_slice));
    let answer = raw(
        port,
        &request("apify", &headers, body.as_bytes()),
        false,
        SECS_5,
    )
    .await;
    assert_eq!(answer.status, Some(431), "{answer:?}");
    assert!(answer.body.is_empty(), "{answer:?}");
    still_serving(&app, "after-many").await;

    let big = format!("x-big: {}", "a".repeat(64 * 1024)).into_bytes();
    let headers: Vec<&[u8]> = vec![b"x-hookline-token: apify-token", &big];
    let answer = raw(
        port,
        &request("apify", &headers, body.as_bytes()),
        false,
        SECS_5,
    )
    .await;
    let error = assert_error(&answer, 431, "headers_too_large");
    assert_eq!(error["detail"], "headers exceed 32768 bytes");
    still_serving(&app, "after-big").await;

    let huge = format!("x-big: {}", "a".repeat(200 * 1024)).into_bytes();
    let headers: Vec<&[u8]> = vec![b"x-hookline-token: apify-token", &huge];
    let answer = raw(
        port,
        &request("apify", &headers, body.as_bytes()),
        false,
        SECS_5,
    )
    .await;
    assert_eq!(answer.status, Some(431), "{answer:?}");
    assert!(answer.body.is_empty(), "{answer:?}");
    still_serving(&app, "after-huge").await;
    app.stop().await;
}

/// Verifiers read the first value of a repeated header (`Headers::get`): a right token
/// first is accepted whatever follows; a wrong one first is refused even if a right one
/// follows. Deterministic, and no order of headers lets a wrong token in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_token_header_is_judged_by_its_first_value() {
    let (_db, app) = ingest().await;
    let port = port(&app.base);
    let body = apify_body("run-dup", "RUNNING");
    let answer = raw(
        port,
        &request(
            "apify",
            &[b"x-hookline-token: wrong", b"x-hookline-token: apify-token"],
            body.as_bytes(),
        ),
        false,
        SECS_5,
    )
    .await;
    assert_error(&answer, 401, "invalid_signature");
    let answer = raw(
        port,
        &request(
            "apify",
            &[b"x-hookline-token: apify-token", b"x-hookline-token: wrong"],
            body.as_bytes(),
        ),
        false,
        SECS_5,
    )
    .await;
    assert_eq!(answer.status, Some(202), "{answer:?}");
    assert_eq!(answer.json()["status"], "accepted");
    still_serving(&app, "after-dup").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_header_values_is_refused_in_a_token_and_stored_elsewhere() {
    let (_db, app) = ingest().await;
    let port = port(&app.base);
    let body = apify_body("run-utf8", "RUNNING");
    let answer = raw(
        port,
        &request(
            "apify",
            &[b"x-hookline-token: apify-\xff\xfe"],
            body.as_bytes(),
        ),
        false,
        SECS_5,
    )
    .await;
    assert_error(&answer, 401, "invalid_signature");

    let answer = raw(
        port,
        &request(
            "raw",
            &[
                b"x-token: raw-token",
                b"x-delivery-id: d-utf8",
                b"x-odd: caf\xe9 \xff",
            ],
            b"x",
        ),
        false,
        SECS_5,
    )
    .await;
    assert_eq!(answer.status, Some(202), "{answer:?}");
    let id = answer.json()["event_id"].as_str().unwrap().to_string();
    let (status, event) = app.admin_get(&format!("/v1/events/{id}")).await;
    assert_eq!(status, 200, "{event}");
    let odd = event["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "x-odd")
        .unwrap_or_else(|| panic!("x-odd stored: {event}"));
    // base64 of b"caf\xe9 \xff"
    assert_eq!(odd["value_base64"], "Y2Fm6SD/", "{odd}");
    still_serving(&app, "after-utf8").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_does_not_hang_the_server() {
    let (_db, app) = ingest().await;
    let port = port(&app.base);
    // The client half-closes after 10 of the 500 bytes: the body cannot complete.
    let started = Instant::now();
    let answer = raw(
        port,
        &request(
            "apify",
            &[b"x-hookline-token: apify-token", b"content-length: 500"],
            b"{\"partial\"",
        ),
        true,
        SECS_5,
    )
    .await;
    let error = assert_error(&answer, 400, "bad_payload");
    assert_eq!(
        error["detail"],
        "could not read body: payload reached EOF before completing: None"
    );
    assert!(started.elapsed() < SECS_5);

    // The client keeps the connection open and sends nothing more: the server gives up
    // within its body timeout (startup.rs) instead of holding the connection forever.
    let started = Instant::now();
    let answer = raw(
        port,
        &request(
            "apify",
            &[b"x-hookline-token: apify-token", b"content-length: 500"],
            b"{\"partial\"",
        ),
        false,
        Duration::from_secs(30),
    )
    .await;
    let waited = started.elapsed();
    let error = assert_error(&answer, 408, "request_timeout");
    assert_eq!(error["detail"], "body not received within 10 s");
    assert_eq!(answer.header("connection").as_deref(), Some("close"));
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    still_serving(&app, "after-short").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_past_the_limit_is_refused_without_reading_it_all() {
    let (_db, app) = ingest().await;
    let port = port(&app.base);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(
            b"POST /webhooks/apify HTTP/1.1\r\nhost: x\r\nx-hookline-token: apify-token\r\n\
              transfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // Up to 64 MiB in 1 KiB chunks; the server answers after the first ~1 KiB and stops
    // reading, so the writes fail or the answer arrives long before the end.
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024)).into_bytes();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let mut sent = 0usize;
        for _ in 0..65_536 {
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
            sent += 1024;
        }
        sent
    });
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    tokio::time::timeout(SECS_5, async {
        loop {
            match reader.read(&mut piece).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
                && serde_json::from_slice::<Value>(&buf[end + 4..]).is_ok()
            {
                break;
            }
        }
    })
    .await
    .expect("answered within 5 s");
    writing.abort();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let body: Value = serde_json::from_slice(&buf[end + 4..]).unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");
    still_serving(&app, "after-chunked").await;
    app.stop().await;
}

/// No content coding is decoded: a compressed body would otherwise be verified and
/// stored as if it were plain, and decoding one invites a zip bomb. Anything but
/// `identity` is refused before the body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_refused_with_415_and_identity_is_accepted() {
    let (_db, app) = ingest().await;
    let body = apify_body("run-gz", "RUNNING");
    for encoding in [
        "gzip",
        "br",
        "deflate",
        "x-unknown",
        "gzip, identity",
        "GZIP",
    ] {
        let response = app
            .post(
                "apify",
                &[TOKEN, ("content-encoding", encoding)],
                body.clone(),
            )
            .await;
        assert_eq!(response.status().as_u16(), 415, "{encoding}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "unsupported_encoding", "{answer}");
        assert_eq!(
            answer["detail"],
            format!("content-encoding {encoding} is not accepted"),
            "{answer}"
        );
    }
    // A gzip header on a body far over the limit: still 415 (nothing is read or inflated).
    let response = app
        .post(
            "apify",
            &[TOKEN, ("content-encoding", "gzip")],
            vec![0u8; 10 * LIMIT],
        )
        .await;
    assert_eq!(response.status().as_u16(), 415);
    let response = app
        .post("apify", &[TOKEN, ("content-encoding", "identity")], body)
        .await;
    assert_eq!(response.status().as_u16(), 202);
    still_serving(&app, "after-gzip").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_body_is_a_bad_payload_or_unauthorized_without_a_token() {
    let (_db, app) = ingest().await;
    let port = port(&app.base);
    let answer = raw(
        port,
        &request("apify", &[b"x-hookline-token: apify-token"], b""),
        false,
        SECS_5,
    )
    .await;
    let body = assert_error(&answer, 400, "bad_payload");
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
    // The signature is checked first.
    let answer = raw(port, &request("apify", &[], b""), false, SECS_5).await;
    assert_error(&answer, 401, "invalid_signature");
    // Chunked with no chunks at all.
    let answer = raw(
        port,
        &request(
            "apify",
            &[
                b"x-hookline-token: apify-token",
                b"transfer-encoding: chunked",
            ],
            b"0\r\n\r\n",
        ),
        false,
        SECS_5,
    )
    .await;
    assert_error(&answer, 400, "bad_payload");
    still_serving(&app, "after-empty").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_other_than_post_are_405_with_allow_post() {
    let (_db, app) = ingest().await;
    let port = port(&app.base);
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let request = format!(
            "{method} /webhooks/apify HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             x-hookline-token: apify-token\r\ncontent-length: 0\r\n\r\n"
        );
        let answer = raw(port, request.as_bytes(), false, SECS_5).await;
        assert_error(&answer, 405, "method_not_allowed");
        assert_eq!(answer.header("allow").as_deref(), Some("POST"), "{method}");
    }
    // HEAD gets the same status and headers, without a body.
    let answer = raw(
        port,
        b"HEAD /webhooks/apify HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        true,
        SECS_5,
    )
    .await;
    assert_eq!(answer.status, Some(405), "{answer:?}");
    assert_eq!(answer.header("allow").as_deref(), Some("POST"));
    still_serving(&app, "after-methods").await;
    app.stop().await;
}

/// Missing, wrong, empty or non-Bearer credentials all get the same 401, byte for byte:
/// nothing tells which part was wrong. (The comparison itself is `subtle::ConstantTimeEq`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_every_bad_credential_with_one_identical_401() {
    let (_db, app) = ingest().await;
    let url = format!("{}/v1/events?source=apify", app.admin);
    let wrong_length = format!("Bearer {ADMIN_TOKEN}x");
    let prefix = format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]);
    let basic = "Basic dXNlcjpwYXNz".to_string();
    let lower = format!("bearer-{ADMIN_TOKEN}");
    let variants: Vec<Option<&str>> = vec![
        None,
        Some("Bearer wrong"),
        Some("Bearer "),
        Some("Bearer"),
        Some(&wrong_length),
        Some(&prefix),
        Some(&basic),
        Some(&lower),
        Some(ADMIN_TOKEN),
    ];
    let mut bodies = Vec::new();
    for auth in variants {
        let mut request = app.client.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        let bytes = response.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"], "unauthorized", "{body}");
        bodies.push(bytes);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let (status, _) = app.admin_get("/v1/events?source=apify").await;
    assert_eq!(status, 200);
    still_serving(&app, "after-admin").await;
    app.stop().await;
}
