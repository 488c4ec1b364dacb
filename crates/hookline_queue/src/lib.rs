//! RabbitMQ for Hookline: the topology, the message envelope, a confirming publisher and
//! consumer connections.
//!
//! RabbitMQ carries only pointers (event ids): PostgreSQL is the source of truth, so
//! anything lost here can be republished from the database. What this crate guarantees
//! is that a publish counts only once the broker has confirmed it, and that a consumer
//! acknowledges only what its caller says is done.

mod envelope;
mod error;
mod publisher;
mod topology;

pub use envelope::{
    BATCH_VERSION, Envelope, TRACEPARENT_HEADER, decode, encode_batch, traceparent_header,
};
pub use error::QueueError;
pub use lapin::{BasicProperties, Channel, Connection, message::Delivery, options, types};
pub use publisher::{Publisher, Route, connect, open_consumer};
pub use topology::{Topology, retry_delays};
