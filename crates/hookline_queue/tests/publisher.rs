//! The publisher against the real broker: concurrent publishes on one `Publisher` all
//! land, and they pipeline (none waits for another's confirms).

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use hookline_queue::{Broker, Envelope, Publisher, Route, Topology};
use hookline_testkit::{amqp_prefix, amqp_url, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// Generous: a loaded 2-core CI box must never fail on time.
const WAIT: Duration = Duration::from_secs(30);

fn envelopes(n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|_| Envelope::new(Uuid::now_v7(), "test", None))
        .collect()
}

/// Every event id in the messages of `queue`, taking them off for good.
async fn take_all(broker: &Broker, queue: &str) -> BTreeSet<Uuid> {
    let mut ids = BTreeSet::new();
    while let Some(message) = broker.get(queue).await.expect("basic.get") {
        for envelope in hookline_queue::decode(&message.body).expect("an envelope") {
            ids.insert(envelope.event_id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_on_one_publisher_all_succeed_and_every_message_lands() {
    let topology = Topology::new(amqp_prefix());
    let publisher = Arc::new(Publisher::new(
        &amqp_url(),
        topology.clone(),
        Vec::new(),
        "queue-test",
    ));
    // Not connected first: the callers race for the connection too, and must share one.
    let batches: Vec<Vec<Envelope>> = (0..16).map(|_| envelopes(25)).collect();
    let results = join_all(batches.iter().enumerate().map(|(i, batch)| {
        let publisher = publisher.clone();
        async move {
            if i % 2 == 0 {
                publisher.publish(batch, Route::Work, None).await
            } else {
                publisher.publish_batched(batch, Route::Work, 10).await
            }
        }
    }))
    .await;
    for result in results {
        result.expect("every publish confirmed");
    }

    let broker = Broker::connect(&amqp_url(), "queue-test").await.unwrap();
    let expected: BTreeSet<Uuid> = batches.iter().flatten().map(|e| e.event_id).collect();
    // 8 batches of 25 single-event messages, 8 of 3 batch messages (10 + 10 + 5).
    eventually("every message counted in the queue", WAIT, || async {
        (broker.message_count(&topology.work_queue()).await.ok()? == 8 * 25 + 8 * 3).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(take_all(&broker, &topology.work_queue()).await, expected);
    broker.delete_topology(&topology, &[]).await.unwrap();
    let _ = broker.close().await;
}

/// A TCP proxy to the broker whose broker-to-client direction can be held: while held,
/// the broker still receives everything, but its confirms do not reach the publisher.
struct HoldingProxy {
    addr: std::net::SocketAddr,
    held: Arc<AtomicBool>,
}

impl HoldingProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(AtomicBool::new(false));
        let broker = amqp_url()
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("127.0.0.1:5672")
            .to_string();
        tokio::spawn({
            let held = held.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(&broker).await else {
                        continue;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    let held = held.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let Ok(n) = server_read.read(&mut buf).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            while held.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { addr, held }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_waiting_for_its_confirms_does_not_hold_up_the_next_publish() {
    let proxy = HoldingProxy::start().await;
    let topology = Topology::new(amqp_prefix());
    let publisher = Arc::new(Publisher::new(
        &proxy.url(),
        topology.clone(),
        Vec::new(),
        "queue-test",
    ));
    publisher.ensure_connected().await.unwrap();
    let broker = Broker::connect(&amqp_url(), "queue-test").await.unwrap();

    // Confirms stop reaching the publisher: the first publish is stuck in its confirm wait.
    proxy.held.store(true, Ordering::SeqCst);
    let first = envelopes(5);
    let second = envelopes(7);
    let first_task = tokio::spawn({
        let publisher = publisher.clone();
        let batch = first.clone();
        async move { publisher.publish(&batch, Route::Work, None).await }
    });
    eventually("the first batch at the broker", WAIT, || async {
        (broker.message_count(&topology.work_queue()).await.ok()? == 5).then_some(())
    })
    .await
    .unwrap();
    // With one lock held across the confirm wait, the second batch could not even be
    // sent until the first was confirmed; now it reaches the broker alongside.
    let second_task = tokio::spawn({
        let publisher = publisher.clone();
        let batch = second.clone();
        async move { publisher.publish(&batch, Route::Work, None).await }
    });
    eventually(
        "the second batch at the broker while the first awaits its confirms",
        WAIT,
        || async { (broker.message_count(&topology.work_queue()).await.ok()? == 12).then_some(()) },
    )
    .await
    .unwrap();
    assert!(!first_task.is_finished(), "confirms are being held back");

    proxy.held.store(false, Ordering::SeqCst);
    first_task.await.unwrap().expect("first batch confirmed");
    second_task.await.unwrap().expect("second batch confirmed");
    let expected: BTreeSet<Uuid> = first.iter().chain(&second).map(|e| e.event_id).collect();
    assert_eq!(take_all(&broker, &topology.work_queue()).await, expected);
    broker.delete_topology(&topology, &[]).await.unwrap();
    let _ = broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_connection_the_next_publish_reconnects() {
    let proxy = hookline_testkit::Proxy::start("127.0.0.1:5672").await;
    let topology = Topology::new(amqp_prefix());
    let publisher = Publisher::new(
        &format!("amqp://guest:guest@{}/%2f", proxy.addr),
        topology.clone(),
        Vec::new(),
        "queue-test",
    );
    publisher.ensure_connected().await.unwrap();
    assert!(publisher.is_connected());
    proxy.down();
    eventually("the publisher to notice", WAIT, || async {
        (!publisher.is_connected()).then_some(())
    })
    .await
    .unwrap();
    assert!(
        publisher
            .publish(&envelopes(1), Route::Work, None)
            .await
            .is_err()
    );
    proxy.up();
    let batch = envelopes(3);
    eventually("a publish to succeed again", WAIT, || async {
        publisher.publish(&batch, Route::Work, None).await.ok()
    })
    .await
    .unwrap();
    let broker = Broker::connect(&amqp_url(), "queue-test").await.unwrap();
    let ids = take_all(&broker, &topology.work_queue()).await;
    assert!(batch.iter().all(|e| ids.contains(&e.event_id)));
    broker.delete_topology(&topology, &[]).await.unwrap();
    let _ = broker.close().await;
}
