use std::time::Duration;

use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use crate::{Nodes, QueueError, Topology};

/// A message taken off a queue for good by [`Broker::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The message body.
    pub body: Vec<u8>,
    /// Its W3C `traceparent` header, if any.
    pub traceparent: Option<String>,
}

/// A short-lived connection for operating on queues by name: what the CLI and the tests
/// do besides publishing and consuming (counting, purging, taking one message, cleanup).
pub struct Broker {
    connection: Connection,
    channel: Channel,
}

impl Broker {
    /// Connects as `name` to the first of `nodes` that answers (one URL, or [`Nodes`]).
    ///
    /// # Errors
    /// [`QueueError`] if no node is reachable.
    pub async fn connect(nodes: impl Into<Nodes>, name: &str) -> Result<Self, QueueError> {
        let (connection, _) = nodes.into().connect(name).await?;
        let channel = connection.create_channel().await?;
        Ok(Self {
            connection,
            channel,
        })
    }

    /// Ready messages in `queue` (unacknowledged ones are not counted).
    ///
    /// # Errors
    /// [`QueueError`] if the queue does not exist (which closes this broker's channel).
    pub async fn message_count(&self, queue: &str) -> Result<u32, QueueError> {
        let declared = self
            .channel
            .queue_declare(
                queue.into(),
                // passive: only look, never create (a typo would otherwise pass silently).
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(declared.message_count())
    }

    /// Takes the next ready message off `queue` for good, if there is one.
    ///
    /// # Errors
    /// [`QueueError`] if the queue does not exist.
    pub async fn get(&self, queue: &str) -> Result<Option<Taken>, QueueError> {
        // no_ack: acknowledged on receipt; the caller consumes it for good.
        let message = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await?;
        Ok(message.map(|m| Taken {
            traceparent: crate::consumer::traceparent(&m.delivery.properties),
            body: m.delivery.data,
        }))
    }

    /// Empties `queue`; returns how many messages it held.
    ///
    /// # Errors
    /// [`QueueError`] if the queue does not exist.
    pub async fn purge(&self, queue: &str) -> Result<u32, QueueError> {
        Ok(self
            .channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await?)
    }

    /// Deletes `queue` and the messages in it.
    ///
    /// # Errors
    /// [`QueueError`] if the broker refuses.
    pub async fn delete_queue(&self, queue: &str) -> Result<(), QueueError> {
        // The defaults (if_unused, if_empty = false): delete even with consumers or
        // messages; this is cleanup.
        self.channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await?;
        Ok(())
    }

    /// Deletes every queue of `topology` (with these `delays`) and its exchange, skipping
    /// what does not exist. For cleaning up after tests.
    ///
    /// # Errors
    /// [`QueueError`] on the first deletion the broker refuses.
    pub async fn delete_topology(
        &self,
        topology: &Topology,
        delays: &[Duration],
    ) -> Result<(), QueueError> {
        for queue in topology.queues(delays) {
            self.delete_queue(&queue).await?;
        }
        // if_unused = false: delete even while queues are still bound (they are gone).
        self.channel
            .exchange_delete(
                topology.exchange().as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await?;
        Ok(())
    }

    /// Closes the connection.
    ///
    /// # Errors
    /// [`QueueError`] if the connection already failed.
    pub async fn close(self) -> Result<(), QueueError> {
        // 200 = reply-success: a deliberate close.
        self.connection.close(200, "done".into()).await?;
        Ok(())
    }
}
