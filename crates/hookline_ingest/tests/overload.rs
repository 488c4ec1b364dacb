//! Overload: a stalled database, more webhooks than `http.max_in_flight`, and slow
//! clients. Every request is answered (a 503 with `Retry-After` at worst), nothing
//! answered 503 is lost or stored twice once the client retries, and no client holds a
//! connection for more than a few seconds by sending slowly.
//!
//! The database is stalled by a test transaction holding `LOCK TABLE events IN ACCESS
//! EXCLUSIVE MODE`: ingest's inserts wait on it as they would on a hung server. Time
//! bounds here are generous upper bounds (a slow shared machine must not fail them); the
//! figures under load come from `make overload`.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use hookline_testkit::{
    APIFY_SOURCE, TestDb, TestIngest, amqp_prefix, apify_body, config_toml, count,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: (&str, &str) = ("x-hookline-token", "apify-token");

/// Ingest on a fresh database with `http` keys added to the test config's `[http]`.
async fn ingest(http: &str) -> (TestDb, TestIngest) {
    let db = TestDb::new().await;
    let toml = config_toml(&db.url, &amqp_prefix(), APIFY_SOURCE).replace(
        "[http]\naddr = \"127.0.0.1:0\"\nworkers = 2\n",
        &format!("[http]\naddr = \"127.0.0.1:0\"\nworkers = 2\n{http}\n"),
    );
    assert!(toml.contains(http), "the test config has an [http] section");
    (db, TestIngest::spawn(&toml).await)
}

/// A transaction holding every insert into (and read of) `events` until dropped or
/// released.
struct Stall(AsyncPgConnection);

impl Stall {
    async fn start(db: &TestDb) -> Self {
        let mut conn = db.connect().await;
        conn.batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        Self(conn)
    }

    async fn release(mut self) {
        self.0.batch_execute("ROLLBACK").await.unwrap();
    }
}

/// Ingest's group commits of this test's database waiting on a lock.
async fn inserts_waiting(db: &TestDb) -> i64 {
    count(
        db,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND query LIKE 'WITH input AS (%INSERT INTO dedup_keys%'",
    )
    .await
    .unwrap()
}

fn port(app: &TestIngest) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// Status, `Retry-After` and JSON body of a webhook for `run`.
async fn webhook(app: &TestIngest, run: &str) -> (u16, Option<String>, Value) {
    let response = app
        .post("apify", &[TOKEN], apify_body(run, "RUNNING"))
        .await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, response.json().await.unwrap())
}

fn assert_unavailable(answer: &(u16, Option<String>, Value), detail: &str) {
    let (status, retry_after, body) = answer;
    assert_eq!(*status, 503, "{body}");
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains(detail),
        "{body} should say {detail:?}"
    );
    assert_eq!(retry_after.as_deref(), Some("5"), "{body}");
}

/// The value of `hookline_ingest_requests_total{source="apify",outcome=...}`.
async fn requests_counted(app: &TestIngest, outcome: &str) -> u64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series =
        format!("hookline_ingest_requests_total{{source=\"apify\",outcome=\"{outcome}\"}}");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_not_committed_by_the_request_timeout_gets_503_and_its_retry_is_stored_once() {
    let (db, app) = ingest("request_timeout = \"1s\"").await;
    let stall = Stall::start(&db).await;
    let runs: Vec<String> = (0..20).map(|i| format!("stalled-{i}")).collect();
    let started = Instant::now();
    let answers = futures_util::future::join_all(runs.iter().map(|run| webhook(&app, run))).await;
    for answer in &answers {
        assert_unavailable(answer, "not stored within 1s");
    }
    // Answered by the deadline, not by the stall (which lasts until released below).
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(requests_counted(&app, "deadline").await >= 20);

    stall.release().await;
    // The providers retry: each webhook is stored exactly once, whether its first
    // attempt committed after its 503 (then the retry is a duplicate) or never did.
    for run in &runs {
        let (status, _, body) = webhook(&app, run).await;
        assert!([200, 202].contains(&status), "{run}: {status} {body}");
        let key = format!("{run}:ACTOR.RUN.RUNNING");
        let stored = count(
            &db,
            &format!("SELECT count(*) AS n FROM events WHERE dedup_key = '{key}'"),
        )
        .await
        .unwrap();
        assert_eq!(stored, 1, "{run}");
        let same = count(
            &db,
            &format!(
                "SELECT count(*) AS n FROM events WHERE dedup_key = '{key}' AND id = '{}'",
                body["event_id"].as_str().unwrap()
            ),
        )
        .await
        .unwrap();
        assert_eq!(same, 1, "{run}: the answer names the stored event: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_max_in_flight_webhooks_are_shed_at_once_and_counted() {
    let (db, app) = ingest("max_in_flight = 2\nrequest_timeout = \"60s\"").await;
    let stall = Stall::start(&db).await;
    let app = std::sync::Arc::new(app);
    // Two webhooks wait on the stalled database and hold both places: one after the
    // other, each in its own group commit (ingest runs two), each seen waiting.
    let mut held = Vec::new();
    for i in 0..2 {
        let task = {
            let app = app.clone();
            tokio::spawn(async move { webhook(&app, &format!("held-{i}")).await })
        };
        held.push(task);
        hookline_testkit::eventually(
            "the held webhook's insert to wait on the lock",
            hookline_testkit::WAIT,
            || async { (inserts_waiting(&db).await > i).then_some(()) },
        )
        .await
        .unwrap();
    }

    let shed_before = requests_counted(&app, "shed").await;
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..10).map(|i| {
        let app = app.clone();
        async move { webhook(&app, &format!("extra-{i}")).await }
    }))
    .await;
    for answer in &answers {
        assert_unavailable(answer, "more than 2 webhooks in flight");
    }
    // At once: long before the 60 s request timeout the held ones wait under.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(requests_counted(&app, "shed").await >= shed_before + 10);
    assert_eq!(inserts_waiting(&db).await, 2, "the held ones still wait");

    stall.release().await;
    for task in held {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, 202, "{body}");
    }
    // Their places are free again.
    let (status, _, body) = webhook(&app, "after").await;
    assert_eq!(status, 202, "{body}");
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

/// Writes `bytes` one at a time, `pause` apart, until the server closes the connection
/// (or `give_up` passes); returns what the server sent and when it closed.
async fn trickle(
    stream: &mut TcpStream,
    bytes: impl Iterator<Item = u8>,
    pause: Duration,
    give_up: Duration,
) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in bytes {
        if started.elapsed() > give_up {
            return (received, None);
        }
        let _ = stream.write_all(&[byte]).await;
        let deadline = tokio::time::Instant::now() + pause;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0) | Err(_)) => return (received, Some(started.elapsed())),
                Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            }
        }
    }
    (received, None)
}

/// An endless head: a request line, then one header whose value never ends.
fn endless_head() -> impl Iterator<Item = u8> {
    b"POST /webhooks/apify HTTP/1.1\r\nhost: x\r\nx-slow: "
        .to_vec()
        .into_iter()
        .chain(std::iter::repeat(b'a'))
}

fn request_bytes(run: &str) -> Vec<u8> {
    let body = apify_body(run, "RUNNING");
    format!(
        "POST /webhooks/apify HTTP/1.1\r\nhost: x\r\nx-hookline-token: apify-token\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one response (head and `content-length` body); returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return head.split(' ').nth(1).unwrap().parse().unwrap();
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("a response within 30 s")
            .unwrap();
        assert!(n > 0, "closed before a full response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

const GIVE_UP: Duration = Duration::from_secs(30);
const BYTE_PAUSE: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_byte_by_byte_is_cut_off_within_seconds() {
    let (_db, app) = ingest("").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let (received, closed) = trickle(&mut stream, endless_head(), BYTE_PAUSE, GIVE_UP).await;
    assert!(closed.is_some(), "still open after {GIVE_UP:?}");
    // actix-web's head timeout: 408, then the close.
    assert!(
        received.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    let (status, _, body) = webhook(&app, "after-slow-head").await;
    assert_eq!(status, 202, "{body}");
    app.stop().await;
}

/// actix-web times out only the first head of a connection; the second one is bounded
/// by ingest's own limit between requests (src/conn.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_head_on_a_kept_alive_connection_sent_byte_by_byte_is_cut_off_too() {
    let (_db, app) = ingest("").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    stream.write_all(&request_bytes("kept-1")).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 202);
    let (_, closed) = trickle(&mut stream, endless_head(), BYTE_PAUSE, GIVE_UP).await;
    assert!(closed.is_some(), "still open after {GIVE_UP:?}");
    let (status, _, body) = webhook(&app, "after-slow-second-head").await;
    assert_eq!(status, 202, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_byte_by_byte_gets_408_within_the_body_timeout() {
    let (_db, app) = ingest("").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    stream
        .write_all(
            b"POST /webhooks/apify HTTP/1.1\r\nhost: x\r\nx-hookline-token: apify-token\r\n\
              content-length: 100000\r\n\r\n",
        )
        .await
        .unwrap();
    let (received, closed) =
        trickle(&mut stream, std::iter::repeat(b' '), BYTE_PAUSE, GIVE_UP).await;
    assert!(closed.is_some(), "still open after {GIVE_UP:?}");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"request_timeout\""), "{text}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_within_seconds() {
    let (_db, app) = ingest("").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let mut buf = [0u8; 1024];
    let mut received = Vec::new();
    tokio::time::timeout(GIVE_UP, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("closed within 30 s");
    app.stop().await;
}

/// The limit between requests does not touch a request in progress, however long it
/// takes, nor a client that pauses between requests within the keep-alive time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_and_short_pauses_keep_their_connection() {
    let (db, app) = ingest("request_timeout = \"12s\"").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    for i in 0..3 {
        stream
            .write_all(&request_bytes(&format!("pause-{i}")))
            .await
            .unwrap();
        assert_eq!(read_response(&mut stream).await, 202);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Longer than the limit between requests (10 s): answered on the same connection.
    let stall = Stall::start(&db).await;
    stream.write_all(&request_bytes("slow")).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 503);
    stall.release().await;
    stream.write_all(&request_bytes("slow")).await.unwrap();
    let status = read_response(&mut stream).await;
    assert!([200, 202].contains(&status), "{status}");
    app.stop().await;
}
