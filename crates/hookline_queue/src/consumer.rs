use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use crate::{Nodes, QueueError, TRACEPARENT_HEADER, Topology};

/// Closing politely waits for the broker's answer; a broker that is gone must not hold
/// up a shutdown or a reconnect.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A consumer of the work queue on its own connection, with manual acknowledgements.
///
/// Every delivery must be settled with [`Delivery::ack`], [`Delivery::nack_requeue`] or
/// [`Delivery::reject`]; one that is not returns to the queue when the connection closes.
pub struct Consumer {
    nodes: Nodes,
    /// The node this consumer is connected to.
    node: usize,
    connection: Connection,
    channel: Channel,
    inner: lapin::Consumer,
}

impl Consumer {
    /// Connects as `tag` to the first of `nodes` that answers (one URL, or [`Nodes`]:
    /// after this consumer's connection is lost, the next open starts from the next
    /// node), declares the topology (with one delay queue per entry of `delays`) and
    /// starts consuming the work queue with at most `prefetch` unacknowledged messages in
    /// flight.
    ///
    /// # Errors
    /// [`QueueError`] if no node is reachable or the broker refuses the declarations.
    pub async fn open(
        nodes: impl Into<Nodes>,
        topology: &Topology,
        delays: &[Duration],
        prefetch: u16,
        tag: &str,
    ) -> Result<Self, QueueError> {
        let nodes = nodes.into();
        let (connection, node) = nodes.connect(tag).await?;
        match Self::start(&connection, topology, delays, prefetch, tag).await {
            Ok((channel, inner)) => Ok(Self {
                nodes,
                node,
                connection,
                channel,
                inner,
            }),
            Err(e) => {
                nodes.lost(node);
                Err(e)
            }
        }
    }

    async fn start(
        connection: &Connection,
        topology: &Topology,
        delays: &[Duration],
        prefetch: u16,
        tag: &str,
    ) -> Result<(Channel, lapin::Consumer), QueueError> {
        let channel = connection.create_channel().await?;
        topology.declare(&channel, delays).await?;
        // Prefetch bounds what a crashed worker holds hostage (redelivered on its death)
        // and how much work sits in one process's memory.
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let inner = channel
            .basic_consume(
                topology.work_queue().into(),
                tag.into(),
                // no_ack = false: a message leaves the queue only when it is acknowledged,
                // which the worker does after its transaction commits.
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((channel, inner))
    }

    /// The next delivery; `None` once the broker cancelled the consumer. An error means
    /// the connection or channel is lost: reopen (which then starts from the next node).
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let next = self.inner.next().await.map(|next| {
            next.map(|inner| Delivery { inner })
                .map_err(QueueError::from)
        });
        if !matches!(next, Some(Ok(_))) {
            self.nodes.lost(self.node);
        }
        next
    }

    /// Stops new deliveries. The channel stays open, so deliveries already handed out can
    /// still be settled (that is how a worker drains).
    ///
    /// # Errors
    /// [`QueueError`] if the broker does not confirm the cancel (the channel is gone).
    pub async fn cancel(&self) -> Result<(), QueueError> {
        self.channel
            .basic_cancel(self.inner.tag(), BasicCancelOptions::default())
            .await?;
        Ok(())
    }

    /// Closes the channel and the connection, waiting at most 5 s for the broker.
    /// Unsettled deliveries return to the queue.
    ///
    /// # Errors
    /// [`QueueError`] if the broker does not answer in time or the connection already
    /// failed; either way nothing is left open.
    pub async fn close(self, reason: &str) -> Result<(), QueueError> {
        let close = async {
            // 200 = reply-success: a deliberate close, not an error the broker should log.
            let channel = self.channel.close(200, reason.into()).await;
            let connection = self.connection.close(200, reason.into()).await;
            channel.and(connection)
        };
        tokio::time::timeout(CLOSE_TIMEOUT, close)
            .await
            .map_err(|_| QueueError::Timeout(CLOSE_TIMEOUT))?
            .map_err(QueueError::from)
    }
}

/// One message from the work queue, to be settled exactly once.
#[derive(Debug)]
pub struct Delivery {
    inner: lapin::message::Delivery,
}

impl Delivery {
    /// The message body.
    pub fn body(&self) -> &[u8] {
        &self.inner.data
    }

    /// The W3C `traceparent` header, if the publisher set one.
    pub fn traceparent(&self) -> Option<String> {
        traceparent(&self.inner.properties)
    }

    /// Whether the broker delivered this message before (to a consumer that did not settle
    /// it).
    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    /// Done: the message leaves the queue.
    ///
    /// # Errors
    /// [`QueueError`] if the channel died; the broker then redelivers the message.
    pub async fn ack(self) -> Result<(), QueueError> {
        // multiple = false (the default): this delivery only; the ones before it on the
        // channel may still be in flight.
        settled(self.inner.acker.ack(BasicAckOptions::default()).await)
    }

    /// Not done: the message goes back to the work queue, never dropped.
    ///
    /// # Errors
    /// [`QueueError`] if the channel died; the broker then redelivers the message.
    pub async fn nack_requeue(self) -> Result<(), QueueError> {
        let options = BasicNackOptions {
            // requeue: back to the work queue for another attempt.
            requeue: true,
            ..BasicNackOptions::default()
        };
        settled(self.inner.acker.nack(options).await)
    }

    /// Never: the message leaves the work queue without being done. The work queue is
    /// declared without a dead-letter exchange (its arguments cannot change on a running
    /// deployment without redeclaring it), so the broker drops the message unless an
    /// operator policy sets one; to keep a message, publish it to
    /// [`Route::Dead`](crate::Route::Dead) first and then [`ack`](Self::ack) it, as the worker
    /// does.
    ///
    /// # Errors
    /// [`QueueError`] if the channel died; the broker then redelivers the message.
    pub async fn reject(self) -> Result<(), QueueError> {
        let options = BasicNackOptions {
            // requeue = false: not returned to the queue (dead-lettered if a policy says so).
            requeue: false,
            ..BasicNackOptions::default()
        };
        settled(self.inner.acker.nack(options).await)
    }
}

/// lapin answers `Ok(false)` when the acker is unusable (channel closed, or used already).
fn settled(result: lapin::Result<bool>) -> Result<(), QueueError> {
    match result? {
        true => Ok(()),
        false => Err(QueueError::ChannelClosed),
    }
}

/// The `traceparent` header of a message, if present.
pub(crate) fn traceparent(properties: &lapin::BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(TRACEPARENT_HEADER)? {
        AMQPValue::LongString(value) => String::from_utf8(value.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(value) => Some(value.as_str().to_string()),
        _ => None,
    }
}
