//! The test's corner of the shared RabbitMQ: a random prefix per test, a connection to look
//! at and feed its queues, a confirming publisher with the topology the worker declares,
//! and clean-up.

use std::time::Duration;

use hookline_queue::{Broker, Envelope};
use uuid::Uuid;

use crate::config::{config, test_retry_delays};
use crate::urls::amqp_url;

/// A unique AMQP prefix, so tests sharing the broker never see each other's queues.
pub fn amqp_prefix() -> String {
    format!("hl_test_{}", Uuid::new_v4().simple())
}

/// A broker connection for inspecting and feeding the test's queues.
///
/// # Panics
/// If RabbitMQ is unreachable.
pub async fn broker() -> Broker {
    Broker::connect(&amqp_url(), "hookline-test")
        .await
        .expect("RabbitMQ must be running for tests")
}

/// Ready messages in `queue` (unacknowledged ones are not counted).
///
/// # Panics
/// If the queue does not exist.
pub async fn ready_messages(queue: &str) -> u32 {
    let broker = broker().await;
    let count = broker.message_count(queue).await.expect("queue exists");
    let _ = broker.close().await;
    count
}

/// Takes every ready message off `queue` (acknowledged on receipt) and returns the
/// envelopes in queue order.
///
/// # Panics
/// If the broker is unreachable or a message is not an envelope.
pub async fn drain(queue: &str) -> Vec<Envelope> {
    let broker = broker().await;
    let mut envelopes = Vec::new();
    while let Some(message) = broker.get(queue).await.expect("basic.get") {
        envelopes.push(Envelope::from_bytes(&message.body).expect("an envelope"));
    }
    let _ = broker.close().await;
    envelopes
}

/// A publisher on `prefix` declaring one delay queue per entry of `delays`; it connects
/// on first use.
pub fn publisher(prefix: &str, delays: Vec<Duration>) -> hookline_queue::Publisher {
    hookline_queue::Publisher::new(
        &amqp_url(),
        hookline_queue::Topology::new(prefix),
        delays,
        "hookline-test-publisher",
    )
}

/// A confirming publisher on the test's prefix, connected, with the topology the worker
/// of `toml` declares (its retry delays).
///
/// # Panics
/// If the broker is unreachable.
pub async fn test_publisher(toml: &str, prefix: &str) -> hookline_queue::Publisher {
    let (config, _) = config(toml);
    let worker = &config.worker;
    let delays = hookline_queue::retry_delays(
        worker.max_attempts,
        Duration::from_millis(worker.retry_base_ms),
        Duration::from_millis(worker.retry_cap_ms),
    );
    let publisher = publisher(prefix, delays);
    publisher.ensure_connected().await.expect("broker up");
    publisher
}

/// Publishes envelopes (first attempt) for `ids` to the dead-letter queue of `prefix`, as
/// a worker does when retries run out.
///
/// # Panics
/// If publishing fails.
pub async fn dead_letter(prefix: &str, ids: &[Uuid], source: &str) {
    let envelopes: Vec<Envelope> = ids
        .iter()
        .map(|id| Envelope::new(*id, source, None))
        .collect();
    publisher(prefix, test_retry_delays())
        .publish(&envelopes, hookline_queue::Route::Dead, None)
        .await
        .expect("publish to the dead-letter queue");
}

/// Deletes the queues (work, dead letter, the delay queues of the default test config)
/// and the exchange of `prefix`; best effort.
pub async fn delete_broker_state(prefix: &str) {
    let Ok(broker) = Broker::connect(&amqp_url(), "hookline-test-cleanup").await else {
        return;
    };
    let topology = hookline_queue::Topology::new(prefix);
    let _ = broker
        .delete_topology(&topology, &test_retry_delays())
        .await;
    let _ = broker.close().await;
}
