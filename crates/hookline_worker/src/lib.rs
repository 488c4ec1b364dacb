//! `hookline-worker`: turns stored events into resource status changes, exactly once.
//!
//! A loop over one step, [`process_batch`] ([`process`] is a batch of one): the
//! messages that arrive together are decided in one PostgreSQL transaction that locks
//! their events (a redelivery finds its event final and stops there), locks their
//! resources (serialising every change to one resource across all workers), asks each
//! source's lifecycle what the reported status does, logs the transitions and marks the
//! events processed. The messages are acknowledged only after that commit.
//!
//! Failures are sorted where they happen: an event that can never be processed (unknown
//! source or status, missing key) is marked `failed` and not retried; a transient failure
//! (database down, deadlock, a panic) goes back through a delay queue with jitter, and to
//! the dead-letter queue once `[worker] max_attempts` is spent. A message is acknowledged
//! only once its successor (retry or dead letter) is confirmed by the broker, so none is
//! lost; messages that are not Hookline envelopes at all go to the dead-letter queue as
//! they came and are counted (`outcome="poison"`): they name no event to retry.
//!
//! Your own effects run in the decision transaction: register [`Handler`]s with
//! [`Worker::builder`] ([`effects`] explains when they are called and what their errors do).

// Unit tests see the dev-dependencies too, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod admin;
mod consume;
mod deliver;
pub mod effects;
mod processor;
mod schedule;
mod startup;
mod step;

pub use deliver::Routes;
pub use effects::{EffectDecision, EffectEvent, Handler, HandlerError, Handlers};
pub use processor::Processor;
pub use schedule::{NextStep, RetryPolicy};
pub use startup::{Worker, WorkerBuilder};

// The binary's global allocator (src/main.rs): a package dependency, so the library sees
// it as well.
use mimalloc as _;
pub use step::{Deps, Outcome, ProcessError, Transition, process, process_batch};
