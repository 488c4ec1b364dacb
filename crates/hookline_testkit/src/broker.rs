//! The test's corner of the shared RabbitMQ: a random prefix per test, a channel to look
//! at and feed its queues, a confirming publisher with the topology the worker declares,
//! and clean-up.

use std::time::Duration;

use hookline_queue::Envelope;
use hookline_queue::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use uuid::Uuid;

use crate::config::{config, test_retry_delays};
use crate::urls::amqp_url;

/// A unique AMQP prefix, so tests sharing the broker never see each other's queues.
pub fn amqp_prefix() -> String {
    format!("hl_test_{}", Uuid::new_v4().simple())
}

/// A broker connection and channel for inspecting and feeding the test's queues.
///
/// # Panics
/// If RabbitMQ is unreachable.
pub async fn broker_channel() -> (hookline_queue::Connection, hookline_queue::Channel) {
    let connection = hookline_queue::connect(&amqp_url(), "hookline-test")
        .await
        .expect("RabbitMQ must be running for tests");
    let channel = connection.create_channel().await.expect("channel");
    (connection, channel)
}

/// Ready messages in `queue` (unacknowledged ones are not counted).
///
/// # Panics
/// If the queue does not exist.
pub async fn ready_messages(queue: &str) -> u32 {
    let (connection, channel) = broker_channel().await;
    let declared = channel
        .queue_declare(
            queue.into(),
            // passive: only look, never create (a typo would otherwise pass silently).
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .expect("queue exists");
    let _ = connection.close(200, "done".into()).await;
    declared.message_count()
}

/// Takes every ready message off `queue` (acknowledged on receipt) and returns the
/// envelopes in queue order.
///
/// # Panics
/// If the broker is unreachable or a message is not an envelope.
pub async fn drain(queue: &str) -> Vec<Envelope> {
    let (connection, channel) = broker_channel().await;
    let mut envelopes = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        envelopes.push(Envelope::from_bytes(&message.delivery.data).expect("an envelope"));
    }
    let _ = connection.close(200, "done".into()).await;
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
    let Ok(connection) = hookline_queue::connect(&amqp_url(), "hookline-test-cleanup").await else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    let topology = hookline_queue::Topology::new(prefix);
    let mut queues = vec![topology.work_queue(), topology.dead_queue()];
    queues.extend(
        test_retry_delays()
            .into_iter()
            .map(|d| topology.retry_queue(d)),
    );
    for queue in queues {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = channel
        .exchange_delete(topology.exchange().as_str().into(), Default::default())
        .await;
    let _ = connection.close(200, "done".into()).await;
}
