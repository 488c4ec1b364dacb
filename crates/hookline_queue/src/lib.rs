//! RabbitMQ for Hookline: the topology, the message envelope, a confirming publisher, a
//! consumer with typed acknowledgements, and the few queue operations the CLI and tests
//! need.
//!
//! RabbitMQ carries only pointers (event ids): PostgreSQL is the source of truth, so
//! anything lost here can be republished from the database. What this crate guarantees
//! is that a publish counts only once the broker has confirmed it, and that a consumer
//! acknowledges only what its caller says is done. It is the only crate that talks AMQP:
//! every exchange, queue and routing key name comes from [`Topology`].

// Unit tests see the dev-dependencies too, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod broker;
mod consumer;
mod envelope;
mod error;
mod nodes;
mod publisher;
mod topology;

pub use broker::{Broker, Taken};
pub use consumer::{Consumer, Delivery};
pub use envelope::{BATCH_VERSION, Envelope, TRACEPARENT_HEADER, decode, encode_batch};
pub use error::QueueError;
pub use nodes::Nodes;
pub use publisher::Publisher;
pub use topology::{Route, Topology, retry_delays};
