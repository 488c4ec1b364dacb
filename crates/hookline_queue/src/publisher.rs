use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use crate::{Envelope, Nodes, QueueError, Route, TRACEPARENT_HEADER, Topology};

/// Bound on declaring the topology and enabling confirms on a fresh connection: a broker
/// that accepted the connection but stopped answering must not hold the connect lock.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Closing a connection found broken waits at most this long, in the background.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

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
///
/// With several broker nodes, a connect goes to the first that answers, and the
/// reconnect after a failure starts from the next node ([`Nodes`]).
///
/// Concurrent publishes share one confirm-mode channel and hold no lock while they wait:
/// each publishes its messages and awaits its own confirms, so the confirms of
/// concurrent batches pipeline instead of queueing behind each other. Connecting is
/// single-flight: callers that find no connection wait for one attempt rather than each
/// opening their own.
pub struct Publisher {
    nodes: Nodes,
    topology: Topology,
    delays: Vec<Duration>,
    name: String,
    /// The current session. Held only to clone or replace it, never across an await, so
    /// readiness and publishes never wait behind a connect.
    state: Mutex<State>,
    /// Held by the one caller that is connecting.
    connecting: tokio::sync::Mutex<()>,
    /// Finished connect attempts, so callers that waited for one know it happened.
    attempts: AtomicU64,
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    /// Why the last connect attempt failed, for the callers that waited for it.
    last_failure: Option<String>,
}

/// One connection and its confirm-mode channel; cheap to clone (the channel is a handle
/// and the connection is shared).
#[derive(Clone)]
struct Session {
    /// Which connect attempt made it: a failure marks only its own session broken, never
    /// a newer one another caller already opened.
    generation: u64,
    /// The node it is connected to.
    node: usize,
    connection: Arc<Connection>,
    channel: Channel,
}

impl Session {
    fn healthy(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

impl Publisher {
    /// A publisher to `nodes` (one URL, or [`Nodes`] for failover) that connects on
    /// first use.
    pub fn new(
        nodes: impl Into<Nodes>,
        topology: Topology,
        delays: Vec<Duration>,
        name: &str,
    ) -> Self {
        Self {
            nodes: nodes.into(),
            topology,
            delays,
            name: name.to_string(),
            state: Mutex::new(State::default()),
            connecting: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
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
        self.session().await.map(|_| ())
    }

    /// Whether the current connection is up. No IO and no waiting (a connect in progress
    /// does not hold this up), so a readiness probe can call it on every request.
    pub fn is_connected(&self) -> bool {
        self.state().session.as_ref().is_some_and(Session::healthy)
    }

    /// Starts connecting in a background task, unless connected or a connect is already
    /// under way; returns at once. Lets a readiness probe bring the connection back after
    /// an outage without waiting for it (and without a publish having to come first).
    pub fn connect_in_background(self: &Arc<Self>) {
        if self.is_connected() || self.connecting.try_lock().is_err() {
            return;
        }
        let publisher = self.clone();
        tokio::spawn(async move {
            if let Err(e) = publisher.ensure_connected().await {
                tracing::debug!(error = %e, "background reconnect to the broker failed");
            }
        });
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every
        // critical section is one assignment), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live_session(&self) -> Option<Session> {
        let session = self.state().session.clone()?;
        if session.healthy() {
            return Some(session);
        }
        // The connection died under us (its node went away): reconnect elsewhere first.
        self.nodes.lost(session.node);
        None
    }

    /// The current session, connecting first if there is none (or it is broken).
    async fn session(&self) -> Result<Session, QueueError> {
        if let Some(session) = self.live_session() {
            return Ok(session);
        }
        let attempts_before = self.attempts.load(Ordering::SeqCst);
        let _connecting = self.connecting.lock().await;
        if let Some(session) = self.live_session() {
            return Ok(session); // another caller connected while we waited
        }
        if self.attempts.load(Ordering::SeqCst) != attempts_before {
            // The attempt we waited for failed: share its outcome rather than start a
            // second one at once (a stampede on a broker that is down).
            let failure = self.state().last_failure.clone().unwrap_or_default();
            return Err(QueueError::Unavailable(failure));
        }
        let generation = self.attempts.load(Ordering::SeqCst) + 1;
        let opened = self.open(generation).await;
        let mut state = self.state();
        self.attempts.store(generation, Ordering::SeqCst);
        match opened {
            Ok(session) => {
                if let Some(old) = state.session.replace(session.clone()) {
                    close_in_background(old, "reconnected");
                }
                state.last_failure = None;
                Ok(session)
            }
            Err(e) => {
                state.last_failure = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn open(&self, generation: u64) -> Result<Session, QueueError> {
        let (connection, node) = self.nodes.connect(&self.name).await?;
        let setup = async {
            let channel = connection.create_channel().await?;
            self.topology.declare(&channel, &self.delays).await?;
            // Confirm mode: the broker acks each message once it is safely in its queue,
            // which is what lets a publish mean "stored".
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, QueueError>(channel)
        };
        let channel = tokio::time::timeout(SETUP_TIMEOUT, setup)
            .await
            .map_err(|_| QueueError::Timeout(SETUP_TIMEOUT))
            .and_then(|setup| setup);
        let channel = match channel {
            Ok(channel) => channel,
            Err(e) => {
                // The node answered but could not set up (it is leaving the cluster, say):
                // the next attempt starts from another node.
                self.nodes.lost(node);
                return Err(e);
            }
        };
        Ok(Session {
            generation,
            node,
            connection: Arc::new(connection),
            channel,
        })
    }

    /// Drops `generation`'s session so the next call reconnects; a newer session (opened
    /// since by another caller) is left alone.
    fn mark_broken(&self, generation: u64) {
        let broken = {
            let mut state = self.state();
            match &state.session {
                Some(current) if current.generation == generation => state.session.take(),
                _ => None,
            }
        };
        if let Some(session) = broken {
            self.nodes.lost(session.node);
            // lapin channels do not recover from every failure by themselves: start from a
            // fresh connection next time.
            close_in_background(session, "publish failed");
        }
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
        let session = self.session().await?;
        let result = self
            .publish_on(&session.channel, messages, route, expiration)
            .await;
        if result.is_err() {
            self.mark_broken(session.generation);
        }
        result
    }

    async fn publish_on(
        &self,
        channel: &Channel,
        messages: &[Message<'_>],
        route: Route,
        expiration: Option<Duration>,
    ) -> Result<(), QueueError> {
        let routing_key = Topology::routing_key(route);
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

/// Closes a session that is no longer used, without making anyone wait for the broker.
fn close_in_background(session: Session, reason: &'static str) {
    tokio::spawn(async move {
        // 0: not a reply-success close; the connection is given up on.
        let close = session.connection.close(0, reason.into());
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    });
}
