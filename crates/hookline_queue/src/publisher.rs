use std::time::Duration;

use futures_util::future::join_all;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer};
use tokio::sync::Mutex;

use crate::{Envelope, QueueError, TRACEPARENT_HEADER, Topology};

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the work queue.
    Work,
    /// To the delay queue for this delay, then back to work.
    Retry(Duration),
    /// To the dead-letter queue.
    Dead,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection, failing within a few seconds if the broker does not answer.
///
/// # Errors
/// [`QueueError`] if the broker is unreachable.
pub async fn connect(url: &str, name: &str) -> Result<Connection, QueueError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .map_err(|_| QueueError::Timeout(CONNECT_TIMEOUT))?
        .map_err(QueueError::from)
}

/// Connects, declares the topology and starts consuming the work queue with manual acks
/// and at most `prefetch` unacknowledged messages in flight.
///
/// # Errors
/// [`QueueError`] if the broker is unreachable or refuses the declarations.
pub async fn open_consumer(
    url: &str,
    topology: &Topology,
    delays: &[Duration],
    prefetch: u16,
    tag: &str,
) -> Result<(Connection, Channel, Consumer), QueueError> {
    let connection = connect(url, tag).await?;
    let channel = connection.create_channel().await?;
    topology.declare(&channel, delays).await?;
    // Prefetch bounds what a crashed worker holds hostage (redelivered on its death) and
    // how much work sits in one process's memory.
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            topology.work_queue().into(),
            tag.into(),
            // no_ack = false: a message leaves the queue only when we ack it after commit.
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel, consumer))
}

/// One message as it goes on the wire.
struct Message<'a> {
    body: Vec<u8>,
    message_id: Option<String>,
    traceparent: Option<&'a str>,
}

/// Publishes envelopes with publisher confirms, reconnecting lazily after any failure.
///
/// A publish succeeds only when the broker has confirmed every message of the batch
/// (persisted to the quorum queue). On any error the connection is dropped and the
/// next call reconnects, so a broker restart needs no intervention.
pub struct Publisher {
    url: String,
    topology: Topology,
    delays: Vec<Duration>,
    name: String,
    state: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    /// A publisher that connects on first use.
    pub fn new(url: &str, topology: Topology, delays: Vec<Duration>, name: &str) -> Self {
        Self {
            url: url.to_string(),
            topology,
            delays,
            name: name.to_string(),
            state: Mutex::new(None),
        }
    }

    /// The topology this publisher declares and publishes to.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Connects (if not connected) and declares the topology: call at start-up to fail
    /// early on a misconfigured broker.
    ///
    /// # Errors
    /// [`QueueError`] if the broker is unreachable or refuses a declaration.
    pub async fn ensure_connected(&self) -> Result<(), QueueError> {
        let mut state = self.state.lock().await;
        self.channel(&mut state).await.map(|_| ())
    }

    /// Whether the last known connection is up (no IO; for readiness).
    pub async fn is_connected(&self) -> bool {
        let state = self.state.lock().await;
        state
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
    }

    async fn channel<'a>(
        &self,
        state: &'a mut Option<(Connection, Channel)>,
    ) -> Result<&'a Channel, QueueError> {
        let healthy = state
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected());
        if !healthy {
            *state = None;
            let connection = connect(&self.url, &self.name).await?;
            let channel = connection.create_channel().await?;
            self.topology.declare(&channel, &self.delays).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            *state = Some((connection, channel));
        }
        Ok(&state.as_ref().expect("set above").1)
    }

    /// Publishes every envelope to `route` and waits until the broker confirms them all.
    /// `expiration` (delay queues only) lets a message leave its delay queue early, which
    /// is how retries get jitter.
    ///
    /// # Errors
    /// [`QueueError`] if any message is not confirmed; none of the batch should then be
    /// considered published (some may have been: consumers are idempotent).
    pub async fn publish(
        &self,
        envelopes: &[Envelope],
        route: Route,
        expiration: Option<Duration>,
    ) -> Result<(), QueueError> {
        let messages: Vec<Message> = envelopes
            .iter()
            .map(|e| Message {
                body: e.to_bytes(),
                message_id: Some(e.event_id.to_string()),
                traceparent: e.traceparent.as_deref(),
            })
            .collect();
        self.publish_messages(&messages, route, expiration).await
    }

    /// Publishes the envelopes as messages of at most `per_message` pointers each (a
    /// version-2 batch message; a lone envelope stays a version-1 message with its
    /// `traceparent` header), all confirmed before this returns. One message per group
    /// commit instead of one per event: the broker's cost is per message, and on a small
    /// machine it is what bounds throughput.
    ///
    /// # Errors
    /// [`QueueError`] if any message is not confirmed.
    pub async fn publish_batched(
        &self,
        envelopes: &[Envelope],
        route: Route,
        per_message: usize,
    ) -> Result<(), QueueError> {
        let messages: Vec<Message> = envelopes
            .chunks(per_message.max(1))
            .map(|chunk| match chunk {
                [one] => Message {
                    body: one.to_bytes(),
                    message_id: Some(one.event_id.to_string()),
                    traceparent: one.traceparent.as_deref(),
                },
                many => Message {
                    body: crate::encode_batch(many),
                    message_id: None,
                    traceparent: None,
                },
            })
            .collect();
        self.publish_messages(&messages, route, None).await
    }

    /// Publishes raw bytes that are not an [`Envelope`] (a poison message on its way to
    /// the dead-letter queue, kept for inspection), with the same confirm guarantee.
    ///
    /// # Errors
    /// [`QueueError`] if the broker does not confirm it.
    pub async fn publish_raw(&self, body: &[u8], route: Route) -> Result<(), QueueError> {
        let message = Message {
            body: body.to_vec(),
            message_id: None,
            traceparent: None,
        };
        self.publish_messages(std::slice::from_ref(&message), route, None)
            .await
    }

    async fn publish_messages(
        &self,
        messages: &[Message<'_>],
        route: Route,
        expiration: Option<Duration>,
    ) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        let result = self
            .publish_locked(&mut state, messages, route, expiration)
            .await;
        if result.is_err() {
            // Start from a fresh connection next time; lapin channels do not recover from
            // every failure by themselves.
            if let Some((connection, _)) = state.take() {
                let _ = connection.close(0, "publish failed".into()).await;
            }
        }
        result
    }

    async fn publish_locked(
        &self,
        state: &mut Option<(Connection, Channel)>,
        messages: &[Message<'_>],
        route: Route,
        expiration: Option<Duration>,
    ) -> Result<(), QueueError> {
        let channel = self.channel(state).await?;
        let routing_key = match route {
            Route::Work => "work".to_string(),
            Route::Retry(delay) => Topology::retry_key(delay),
            Route::Dead => "dead".to_string(),
        };
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let mut headers = FieldTable::default();
            if let Some(tp) = message.traceparent {
                headers.insert(
                    TRACEPARENT_HEADER.into(),
                    AMQPValue::LongString(LongString::from(tp)),
                );
            }
            let mut properties = BasicProperties::default()
                // 2 = persistent: written to disk by the broker, survives its restart.
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_headers(headers);
            if let Some(id) = &message.message_id {
                properties = properties.with_message_id(id.as_str().into());
            }
            if let Some(expiration) = expiration {
                properties = properties.with_expiration(expiration.as_millis().to_string().into());
            }
            let confirm = channel
                .basic_publish(
                    self.topology.exchange().into(),
                    routing_key.as_str().into(),
                    // mandatory: an unroutable message comes back instead of vanishing, so
                    // a missing binding is an error, not silent loss.
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.body,
                    properties,
                )
                .await?;
            confirms.push(confirm);
        }
        // Many messages in flight, then one wait: this batching is what makes confirms
        // cheap (one round trip of latency per batch, not per message).
        let results = tokio::time::timeout(CONFIRM_TIMEOUT, join_all(confirms))
            .await
            .map_err(|_| QueueError::Timeout(CONFIRM_TIMEOUT))?;
        for result in results {
            match result? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(QueueError::NotConfirmed(format!(
                        "returned: {}",
                        returned.reply_text
                    )));
                }
                Confirmation::Nack(_) => return Err(QueueError::NotConfirmed("nack".into())),
                Confirmation::NotRequested => {
                    return Err(QueueError::NotConfirmed("confirms not enabled".into()));
                }
            }
        }
        Ok(())
    }
}
