/// A broker failure. Every variant but [`QueueError::Config`] is transient from
/// Hookline's point of view: the event is safe in PostgreSQL and will be (re)published
/// once the broker is back.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Connecting, declaring or publishing failed at the protocol or network level.
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker refused a message (nack) or could not route it (returned).
    #[error("broker did not confirm the message: {0}")]
    NotConfirmed(String),
    /// The broker did not answer in time.
    #[error("broker timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A message body is not a Hookline envelope (a poison message).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The connect attempt this call waited for (started by a concurrent caller) failed;
    /// the next call tries again.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker URLs are unusable as configured (none, or one that is not an AMQP
    /// URL). Permanent: fix `amqp.url`.
    #[error("invalid amqp.url: {0}")]
    Config(String),
    /// A delivery could not be settled: its channel is gone (the broker redelivers the
    /// message to another consumer) or it was settled already.
    #[error("the delivery can no longer be acknowledged: its channel is closed")]
    ChannelClosed,
}
