//! Broker nodes and TLS: a list of node URLs is tried in order and a lost connection
//! fails over to the next node; `amqps://` works against a local TLS endpoint (a
//! TLS-terminating proxy in front of the shared broker) when its CA is trusted, and fails
//! with a certificate error when it is not.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_queue::{Broker, Consumer, Envelope, Nodes, Publisher, Route, Topology, decode};
use hookline_testkit::urls::refused;
use hookline_testkit::{Proxy, TestCa, TlsProxy, amqp_prefix, amqp_url, eventually};
use uuid::Uuid;

/// Generous: a loaded 2-core CI box must never fail on time.
const WAIT: Duration = Duration::from_secs(30);

/// Publishes one fresh envelope (retrying until the broker confirms) and returns it.
async fn publish_one(publisher: &Publisher) -> Envelope {
    let envelope = Envelope::new(Uuid::now_v7(), "test", None);
    eventually("a confirmed publish", WAIT, || async {
        publisher
            .publish(std::slice::from_ref(&envelope), Route::Work, None)
            .await
            .ok()
    })
    .await
    .unwrap();
    envelope
}

/// The next delivery's envelopes, acknowledged.
async fn consume_one(consumer: &mut Consumer) -> Vec<Envelope> {
    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("the consumer is not cancelled")
        .expect("the connection holds");
    let envelopes = decode(delivery.body()).unwrap();
    delivery.ack().await.unwrap();
    envelopes
}

async fn cleanup(topology: &Topology) {
    let broker = Broker::connect(&amqp_url(), "queue-test").await.unwrap();
    broker.delete_topology(topology, &[]).await.unwrap();
    broker.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_node_is_skipped_by_the_publisher_the_consumer_and_the_broker_handle() {
    let topology = Topology::new(amqp_prefix());
    let nodes = Nodes::new([refused(&amqp_url()), amqp_url()], None).unwrap();
    let mut consumer = Consumer::open(&nodes, &topology, &[], 1, "queue-test-consumer")
        .await
        .unwrap();
    let publisher = Publisher::new(&nodes, topology.clone(), Vec::new(), "queue-test");
    let sent = publish_one(&publisher).await;
    assert_eq!(consume_one(&mut consumer).await, vec![sent]);
    let broker = Broker::connect(&nodes, "queue-test").await.unwrap();
    assert_eq!(
        broker.message_count(&topology.work_queue()).await.unwrap(),
        0
    );
    consumer.close("done").await.unwrap();
    cleanup(&topology).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_node_dead_the_error_names_each_node_and_no_password() {
    // Nothing listens on ports 1 and 2: both refuse at once.
    let dead = "amqp://hookline:mq-pa55word@127.0.0.1:1/%2f";
    let also_dead = "amqp://hookline:mq-pa55word@127.0.0.1:2/%2f";
    let nodes = Nodes::new([dead, also_dead], None).unwrap();
    let err = Broker::connect(&nodes, "queue-test")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no broker node answered"), "{err}");
    assert!(err.contains("hookline:***@127.0.0.1:1/"), "{err}");
    assert!(err.contains("hookline:***@127.0.0.1:2/"), "{err}");
    assert!(!err.contains("mq-pa55word"), "the password leaked: {err}");

    let publisher = Publisher::new(&nodes, Topology::new(amqp_prefix()), Vec::new(), "t");
    let err = publisher.ensure_connected().await.unwrap_err().to_string();
    assert!(
        err.contains("no broker node answered") && !err.contains("mq-pa55word"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_node_in_use_drops_its_connections_clients_reconnect_to_the_next_node() {
    let topology = Topology::new(amqp_prefix());
    let first = Proxy::broker().await;
    let second = Proxy::broker().await;
    let nodes = Nodes::new([first.amqp_url(), second.amqp_url()], None).unwrap();
    let mut consumer = Consumer::open(&nodes, &topology, &[], 10, "queue-test-consumer")
        .await
        .unwrap();
    let publisher = Publisher::new(&nodes, topology.clone(), Vec::new(), "queue-test");
    let before = publish_one(&publisher).await;
    assert_eq!(consume_one(&mut consumer).await, vec![before.clone()]);
    let on_first = first.accepted();
    assert_eq!(
        (on_first, second.accepted()),
        (2, 0),
        "both start on node 0"
    );

    // Node 0 drops every connection and is at once back: the reconnect must still go to
    // node 1, the next one, rather than straight back to the node that just failed.
    first.down();
    first.up();
    let sent = publish_one(&publisher).await;
    let consumer_lost = tokio::time::timeout(WAIT, consumer.next()).await.unwrap();
    assert!(
        !matches!(consumer_lost, Some(Ok(_))),
        "the cut connection ends the consumer"
    );
    let _ = consumer.close("reconnecting").await;
    let mut consumer = Consumer::open(&nodes, &topology, &[], 10, "queue-test-consumer")
        .await
        .unwrap();
    // The first message's ack can still have been on its way when node 0 cut the
    // connection; the broker then delivers that message again (at least once). Anything
    // else first is a failure.
    let mut got = consume_one(&mut consumer).await;
    if got == vec![before] {
        got = consume_one(&mut consumer).await;
    }
    assert_eq!(got, vec![sent]);
    assert_eq!(
        first.accepted(),
        on_first,
        "no reconnect went back to node 0"
    );
    assert_eq!(
        second.accepted(),
        2,
        "the publisher and the consumer moved to node 1"
    );
    consumer.close("done").await.unwrap();
    cleanup(&topology).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_to_an_endpoint_whose_ca_is_trusted_publishes_and_consumes() {
    let ca = TestCa::new("hookline test broker CA");
    let endpoint = TlsProxy::broker(&ca).await;
    let topology = Topology::new(amqp_prefix());
    let nodes = Nodes::new([endpoint.amqps_url()], Some(ca.cert_pem().to_string())).unwrap();
    let mut consumer = Consumer::open(&nodes, &topology, &[], 1, "queue-test-consumer")
        .await
        .unwrap();
    let publisher = Publisher::new(&nodes, topology.clone(), Vec::new(), "queue-test");
    let sent = publish_one(&publisher).await;
    assert_eq!(consume_one(&mut consumer).await, vec![sent]);
    consumer.close("done").await.unwrap();
    cleanup(&topology).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_to_an_endpoint_whose_ca_is_not_trusted_fails_on_the_certificate() {
    let ca = TestCa::new("a CA nobody trusts");
    let endpoint = TlsProxy::broker(&ca).await;
    // The system store only, and then another CA: neither signed the endpoint.
    let other = TestCa::new("another CA");
    for trusted in [None, Some(other.cert_pem().to_string())] {
        let nodes = Nodes::new([endpoint.amqps_url()], trusted).unwrap();
        let err = tokio::time::timeout(WAIT, Broker::connect(&nodes, "queue-test"))
            .await
            .expect("a failed verification answers at once")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("certificate"), "{err}");
        assert!(err.contains("UnknownIssuer"), "{err}");
    }
}
