//! `event_payloads`: what an effect handler reads is what ingest stored, byte for byte.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hookline_db::{NewEvent, event_payloads};
use hookline_domain::Headers;
use hookline_testkit::{TestDb, new_event, store_event};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_round_trip_headers_and_bodies_including_non_utf8_bytes() {
    let db = TestDb::new().await;
    let headers = Headers::new([
        ("Refersion-Topic".to_string(), b"NEW_CONVERSION".to_vec()),
        ("x-raw".to_string(), vec![0xff, 0x00, 0x80]),
        ("x-raw".to_string(), b"second".to_vec()),
    ]);
    let mut event = new_event("refersion", "k-1");
    event.headers = NewEvent::headers_json(&headers);
    event.body = vec![0xde, 0xad, b'{', 0xbe, 0xef];
    let id = store_event(&db, event).await.event_id;
    let other = store_event(&db, new_event("refersion", "k-2"))
        .await
        .event_id;

    let mut conn = db.connect().await;
    let payloads = event_payloads(&mut conn, &[other, id, Uuid::now_v7()])
        .await
        .unwrap();
    assert_eq!(
        payloads.iter().map(|p| p.id).collect::<Vec<_>>(),
        [id, other],
        "existing ones only, in id order"
    );
    assert_eq!(payloads[0].dedup_key, "k-1");
    assert_eq!(payloads[0].headers, headers);
    assert_eq!(
        payloads[0].headers.get_str("refersion-topic"),
        Some("NEW_CONVERSION")
    );
    assert_eq!(payloads[0].body, [0xde, 0xad, b'{', 0xbe, 0xef]);
    assert_eq!(payloads[1].body, b"{}");
    assert!(event_payloads(&mut conn, &[]).await.unwrap().is_empty());
}
