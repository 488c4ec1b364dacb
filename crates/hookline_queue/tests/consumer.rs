//! The consumer against the real broker: each way of settling a delivery does what its
//! name says.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_queue::{Broker, Consumer, Envelope, Publisher, Route, Topology, decode};
use hookline_testkit::{amqp_prefix, amqp_url, eventually};
use uuid::Uuid;

/// Generous: a loaded 2-core CI box must never fail on time.
const WAIT: Duration = Duration::from_secs(30);

async fn next(consumer: &mut Consumer) -> hookline_queue::Delivery {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("the consumer is not cancelled")
        .expect("the connection holds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_removes_nack_requeue_redelivers_and_reject_drops_from_the_work_queue() {
    let topology = Topology::new(amqp_prefix());
    let mut consumer = Consumer::open(&amqp_url(), &topology, &[], 1, "queue-test-consumer")
        .await
        .unwrap();
    let publisher = Publisher::new(&amqp_url(), topology.clone(), Vec::new(), "queue-test");
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let first = Envelope::new(Uuid::now_v7(), "test", Some(traceparent.into()));
    let second = Envelope::new(Uuid::now_v7(), "test", None);
    publisher
        .publish(&[first.clone(), second.clone()], Route::Work, None)
        .await
        .unwrap();

    // Prefetch 1: the second message comes only once the first is settled.
    let delivery = next(&mut consumer).await;
    assert_eq!(decode(delivery.body()).unwrap(), vec![first.clone()]);
    assert_eq!(delivery.traceparent().as_deref(), Some(traceparent));
    assert!(!delivery.redelivered());
    delivery.nack_requeue().await.unwrap();

    // The requeued first message comes back marked redelivered; the broker decides
    // whether before or after the second, so either order is accepted.
    for _ in 0..2 {
        let delivery = next(&mut consumer).await;
        let envelopes = decode(delivery.body()).unwrap();
        if envelopes == [first.clone()] {
            assert!(delivery.redelivered());
            delivery.ack().await.unwrap();
        } else {
            assert_eq!(envelopes, vec![second.clone()]);
            assert!(!delivery.redelivered());
            assert_eq!(delivery.traceparent(), None);
            delivery.reject().await.unwrap();
        }
    }

    consumer.cancel().await.unwrap();
    consumer.close("test done").await.unwrap();
    let broker = Broker::connect(&amqp_url(), "queue-test").await.unwrap();
    eventually("the work queue empty", WAIT, || async {
        (broker.message_count(&topology.work_queue()).await.ok()? == 0).then_some(())
    })
    .await
    .unwrap();
    broker.delete_topology(&topology, &[]).await.unwrap();
    let _ = broker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_queue_can_be_counted_read_and_purged() {
    let topology = Topology::new(amqp_prefix());
    let publisher = Publisher::new(&amqp_url(), topology.clone(), Vec::new(), "queue-test");
    let dead: Vec<Envelope> = (0..3)
        .map(|_| Envelope::new(Uuid::now_v7(), "test", None))
        .collect();
    publisher.publish(&dead, Route::Dead, None).await.unwrap();
    let broker = Broker::connect(&amqp_url(), "queue-test").await.unwrap();
    eventually("three dead letters", WAIT, || async {
        (broker.message_count(&topology.dead_queue()).await.ok()? == 3).then_some(())
    })
    .await
    .unwrap();
    let taken = broker.get(&topology.dead_queue()).await.unwrap().unwrap();
    assert_eq!(decode(&taken.body).unwrap(), vec![dead[0].clone()]);
    assert_eq!(broker.purge(&topology.dead_queue()).await.unwrap(), 2);
    assert_eq!(broker.get(&topology.dead_queue()).await.unwrap(), None);
    broker.delete_topology(&topology, &[]).await.unwrap();
    let _ = broker.close().await;
}
